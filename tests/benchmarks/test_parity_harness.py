"""benchmarks/parity.py: one zoo entry per case becomes both libraries' arguments, and they agree."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import parity  # noqa: E402

SHARED = ["learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma", "gradient_steps",
          "target_update_interval", "exploration_fraction", "exploration_initial_eps", "exploration_final_eps",
          "max_grad_norm"]


@pytest.mark.parametrize("name", list(parity.CASES))
def test_translation_gives_both_libraries_the_same_hyperparameters(name):
    from stable_baselines3 import DQN as SB3DQN

    case = parity.CASES[name]
    dq, sb3_kwargs, steps = parity.translate(case)
    assert steps == int(case["hyper"]["n_timesteps"]) == dq["total_timesteps"]
    model = SB3DQN("MlpPolicy", parity.make_case_env(case, one_hot=False)(), seed=0, device="cpu", **sb3_kwargs)
    for key in SHARED:
        theirs = getattr(model, key)
        theirs = theirs(1.0) if callable(theirs) else theirs  # SB3 keeps learning_rate as a schedule
        assert theirs == pytest.approx(dq[key]), key
    assert model.train_freq.frequency == dq["train_freq"] and model.train_freq.unit.value == "step"
    widths = [m.out_features for m in model.q_net.q_net if hasattr(m, "out_features")][:-1]
    assert widths == dq["policy_kwargs"]["net_arch"]
    assert model.policy.normalize_images == dq["policy_kwargs"].get("normalize_images", True)
    assert dq["loss"] == "huber" and dq["optimizer"] == "adam" and not dq["double_q"] and dq["n_step"] == 1
    # both see the same env: same spaces, and dqnkit one-hot encodes what SB3's policy one-hot encodes
    ours = parity.make_case_env(case, one_hot=True)()
    assert ours.action_space == model.action_space
    if hasattr(model.observation_space, "n"):
        assert ours.observation_space.shape == (model.observation_space.n,)
    elif len(ours.observation_space.shape) == 3 and ours.observation_space.dtype.name == "uint8":
        # SB3 transposes image observations to channels-first (VecTransposeImage): for an MLP a permutation
        # of the inputs; its predict() transposes the raw observations the same way
        h, w, c = ours.observation_space.shape
        assert model.observation_space.shape == (c, h, w) and model.observation_space.dtype == ours.observation_space.dtype
    else:
        assert ours.observation_space == model.observation_space


def test_dqnkit_overrides_change_only_dqnkit_and_get_their_own_label():
    case = parity.CASES["MiniGrid-Empty-5x5-v0"]
    dq, sb3_kwargs, _ = parity.translate(case, dqnkit_overrides={"double_q": True})
    assert dq["double_q"] is True and "double_q" not in sb3_kwargs
    assert parity.label("dqnkit", ["double_q=true"]) == "dqnkit[double_q=true]"
    assert parity.label("dqnkit", None) == "dqnkit" and parity.label("sb3", ["x=1"]) == "sb3"


def test_verdict_reads_the_confidence_intervals():
    low, high, mid = parity.summarize([1.0, 1.1, 0.9, 1.0, 1.05]), parity.summarize([5.0, 5.2, 4.9, 5.1, 5.0]), \
        parity.summarize([0.0, 2.0, 4.0, 6.0, 3.0])
    assert parity.verdict(low, high) == "worse"
    assert parity.verdict(high, low) == "better"
    assert parity.verdict(mid, high) == "same" or mid["ci"][1] < high["ci"][0]
    assert parity.verdict(low, low) == "same"
    assert low["iqm"] == pytest.approx(1.0166666, rel=1e-5)  # mean of the middle three of five

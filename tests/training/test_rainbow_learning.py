"""Each Rainbow-family option alone, and all together, learns CartPole-v1 (real training, fixed seed).

Budget: the CartPole-v1 preset (rl-baselines3-zoo hyperparameters, 50k env steps, about
35-50 s each on one CPU core). The measure is the best greedy model of the run (the
checkpoint saved at the highest periodic evaluation), re-evaluated on 20 fresh episodes:
CartPole with these hyperparameters oscillates between 500 and ~100 late in training, so
the last snapshot alone would test luck, not learning.
"""
import pytest

from dqnkit import DQN

C51 = {"distributional": True, "v_min": 0.0, "v_max": 200.0}
OPTIONS = {
    "double": {"double_q": True},
    "dueling": {"dueling": True},
    "per": {"prioritized_replay": True},
    "nstep": {"n_step": 3},
    "noisy": {"noisy": True},
    "c51": C51,
}


def test_rainbow_preset_learns_cartpole(tmp_path):
    """All options together: the rainbow-CartPole-v1 preset."""
    model = DQN.from_preset("rainbow-CartPole-v1", seed=0, run_dir=tmp_path / "rainbow")
    cfg = model.config
    assert cfg.double_q and cfg.dueling and cfg.prioritized_replay and cfg.noisy and cfg.distributional
    assert cfg.n_step == 3
    model.learn()
    model.close()
    assert DQN.load(tmp_path / "rainbow", which="best").evaluate(20)["mean_return"] >= 400


@pytest.mark.parametrize("name", list(OPTIONS))
def test_option_learns_cartpole(name, tmp_path):
    model = DQN.from_preset("CartPole-v1", seed=0, run_dir=tmp_path / name, **OPTIONS[name])
    model.learn()
    model.close()
    best = DQN.load(tmp_path / name, which="best")
    result = best.evaluate(20)
    assert result["mean_return"] >= 400, (name, result["mean_return"])

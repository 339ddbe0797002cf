"""Each Rainbow-family option, and all of them together, learns CartPole-v1 (real training, fixed seed).

Budget: SHORT below (a [64, 64] net, one update per env step, 3-step returns, 20k env steps: the
CartPole-v1-fast preset until 2026-12-03, when that preset was retuned for wall time; a 10-seed population
of SHORT reached a greedy 475 within 20k steps on 10/10 seeds), with each option added to it. SHORT's own
run is the n-step test. Noisy Nets replace epsilon-greedy, which this short
budget relies on, so the noisy test keeps the rl-zoo CartPole-v1 preset (50k env steps;
seed 0 peaked at 226 with SHORT) and is marked slow: in the default suite, noisy nets learn as part of the rainbow case. The measure is the best greedy model of the run (the checkpoint saved at the highest
periodic evaluation), re-evaluated on 20 fresh episodes: CartPole's DQN oscillates late in training, so the
last snapshot alone would test luck, not learning. Each run stops at its first periodic evaluation at or above
475 (the built-in StopAtReturn, as `--stop-at-return 475`): the checkpoint under test is then that one, and
the steps after it could only add a better checkpoint that the assertion does not need.
"""
import pytest

from dqnkit import DQN
from dqnkit.training.callbacks import StopAtReturn

SHORT = dict(total_timesteps=20_000, learning_rate=2.5e-3, buffer_size=20_000, target_update_interval=250,
             train_freq=1, gradient_steps=1, exploration_fraction=0.2, exploration_final_eps=0.02,
             policy_kwargs={"net_arch": [64, 64]}, learning_rate_schedule="constant", n_step=3,
             eval_freq=1000, eval_episodes=20, checkpoint_freq=0)  # on the CartPole-v1 preset
C51 = {"distributional": True, "v_min": 0.0, "v_max": 200.0}
OPTIONS = {
    "nstep": {},  # SHORT itself: n_step=3
    "double": {"double_q": True},
    "dueling": {"dueling": True},
    "per": {"prioritized_replay": True},
    "c51": C51,
    "rainbow": {"double_q": True, "dueling": True, "prioritized_replay": True, "noisy": True, **C51},
}


def _best_return(run_dir, **options) -> float:
    model = DQN.from_preset("CartPole-v1", seed=0, run_dir=run_dir, **options)
    model.learn(callback=StopAtReturn(475))
    model.close()
    return DQN.load(run_dir, which="best").evaluate(20)["mean_return"]


@pytest.mark.parametrize("name", list(OPTIONS))
def test_option_learns_cartpole(name, tmp_path):
    best = _best_return(tmp_path / name, **{**SHORT, **OPTIONS[name]})
    assert best >= 400, (name, best)


@pytest.mark.slow  # 50k env steps (about a minute): noisy nets stay in CI through the rainbow case above
def test_noisy_learns_cartpole(tmp_path):
    best = _best_return(tmp_path / "noisy", noisy=True)
    assert best >= 400, best


def test_rainbow_preset_sets_every_option():
    cfg = DQN.from_preset("rainbow-CartPole-v1").config
    assert cfg.double_q and cfg.dueling and cfg.prioritized_replay and cfg.noisy and cfg.distributional
    assert cfg.n_step == 3

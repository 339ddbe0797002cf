"""Full-budget preset runs (2-4 minutes each): `python -m pytest -m slow`.

Each trains a preset at its rl-baselines3-zoo budget with seed 0 and checks the best
checkpoint (the model saved at the run's highest periodic evaluation) on 20 fresh greedy
episodes. Measured over 3 seeds in benchmarks/results/presets.md and presets_best.md.
"""
import pytest

from dqnkit import DQN

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("preset, threshold", [
    ("Acrobot-v1", -77.0),       # rl-zoo: -77 at 1e5 env steps
    ("LunarLander-v3", 155.0),   # rl-zoo: 155 at 1e5 env steps
    # rl-zoo: -101 at 1.2e5; our best checkpoints over seeds 0-2 reached -102, -111, -100.5, so this
    # checks that the car learns to reach the flag reliably (-200 = never), not the zoo figure.
    ("MountainCar-v0", -115.0),
])
def test_preset_reaches_its_target(preset, threshold, tmp_path):
    model = DQN.from_preset(preset, seed=0, run_dir=tmp_path / preset)
    model.learn()
    model.close()
    best = DQN.load(tmp_path / preset, which="best")
    assert best.evaluate(20, seed=10_000)["mean_return"] >= threshold

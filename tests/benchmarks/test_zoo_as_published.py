"""benchmarks/_common's ZOO_AS_PUBLISHED and ZOO_VALUES_RETUNED take dqnkit's tuning off the rl-zoo presets.

The oracle is parity.py's own copy of each rl-baselines3-zoo entry: the benchmarks that compare with SB3 at the
same hyperparameters (sb3_cartpole.py, population.py) or ablate from rl-zoo's DQN (variants.py) must get
exactly that config, whatever a preset adds on top of it.
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _common as C  # noqa: E402
import parity  # noqa: E402

from dqnkit.presets.zoo import config_from_zoo  # noqa: E402

# keys that shape evaluation, checkpoints and logging only, not learning
SIDE = {"eval_freq", "eval_episodes", "eval_epsilon", "checkpoint_freq", "log_interval", "tensorboard"}
ZOO_PRESETS = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3"]


def learning_fields(values: dict) -> dict:
    cfg = config_from_zoo(values).to_dict()
    return {k: v for k, v in cfg.items() if k not in SIDE}


@pytest.mark.parametrize("preset", ZOO_PRESETS)
def test_preset_as_published_is_rl_zoos_entry(preset):
    zoo = {**parity.CASES[preset]["hyper"], "env_id": preset}
    assert learning_fields(C.preset_values(preset, as_published=True)) == learning_fields(zoo)
    assert learning_fields({**C.preset_values(preset), **C.zoo_overrides(preset)}) == learning_fields(zoo)


def test_the_tuned_presets_differ_from_rl_zoo_only_in_the_published_keys():
    tuned = set()
    for preset in ZOO_PRESETS:
        mine = learning_fields(C.preset_values(preset))
        zoo = learning_fields({**parity.CASES[preset]["hyper"], "env_id": preset})
        diff = {k for k in mine if mine[k] != zoo[k]}
        retuned = set(C.ZOO_VALUES_RETUNED.get(preset, {}))
        assert diff <= set(C.ZOO_AS_PUBLISHED) | retuned, (preset, diff)
        assert retuned <= diff, (preset, retuned - diff)  # no stale entry
        tuned |= diff - retuned
    assert tuned == set(C.ZOO_AS_PUBLISHED)  # every key in it is tuned in some preset (none is stale)

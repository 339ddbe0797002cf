"""Seeds x grid -> members, and the split into groups that can share one batched network."""
import pytest

from dqnkit.errors import ConfigError
from dqnkit.population.members import MEMBER_KEYS, describe_split, expand, parse_grid, parse_seeds, split_groups


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("0-2,7,10-11") == [0, 1, 2, 7, 10, 11]
    assert parse_seeds(range(3)) == [0, 1, 2]
    for bad in ["", "a-b", "1,1"]:
        with pytest.raises(ConfigError):
            parse_seeds(bad)


def test_parse_grid_reads_yaml_values_and_rejects_unknown_keys():
    grid = parse_grid(["learning_rate=1e-3,5e-4", "double_q=false,true", "policy_kwargs={net_arch: [32]},{net_arch: [8, 8]}"])
    assert grid == {"learning_rate": [1e-3, 5e-4], "double_q": [False, True],
                    "policy_kwargs": [{"net_arch": [32]}, {"net_arch": [8, 8]}]}
    with pytest.raises(ConfigError, match="not a config field"):
        parse_grid(["learnin_rate=1"])
    with pytest.raises(ConfigError, match="--seeds"):
        parse_grid(["seed=1,2"])
    with pytest.raises(ConfigError, match="key=value1,value2"):
        parse_grid(["double_q"])


def test_cross_product_names_and_groups():
    base = {"env_id": "CartPole-v1", "total_timesteps": 1000}
    members = expand(base, [0, 1], {"learning_rate": [1e-3, 5e-4], "double_q": [False, True]})
    assert len(members) == 8
    assert members[0].name == "double_q=false,learning_rate=0.001__s0"
    assert {m.config.seed for m in members} == {0, 1}
    assert len(split_groups(members)) == 1  # learning rate and Double DQN vary per member
    shaped = expand(base, [0, 1], {"policy_kwargs": [{"net_arch": [32]}, {"net_arch": [64, 64]}],
                                   "gamma": [0.9, 0.99]})
    groups = split_groups(shaped)
    assert [len(g) for g in groups] == [4, 4]
    text = describe_split(groups)
    assert "2 groups" in text and "policy_kwargs" in text and "gamma" not in text.split("\n")[0]
    assert {"learning_rate", "gamma", "double_q", "n_step", "alpha", "beta_initial", "tau", "loss"} <= MEMBER_KEYS
    assert not {"dueling", "distributional", "n_atoms", "policy_kwargs", "batch_size"} & MEMBER_KEYS

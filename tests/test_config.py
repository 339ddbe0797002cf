import pytest
import yaml

from dqnkit.config import Config
from dqnkit.presets.zoo import config_from_zoo, parse_overrides, read_config_file
from dqnkit.errors import ConfigError
from dqnkit.presets import list_presets, load_preset

ZOO = """
atari:
  env_wrapper:
    - stable_baselines3.common.atari_wrappers.AtariWrapper
  frame_stack: 4
  policy: 'CnnPolicy'
CartPole-v1:
  n_timesteps: !!float 5e4
  policy: 'MlpPolicy'
  learning_rate: !!float 2.3e-3
  batch_size: 64
  buffer_size: 100000
  learning_starts: 1000
  gamma: 0.99
  target_update_interval: 10
  train_freq: 256
  gradient_steps: 128
  exploration_fraction: 0.16
  exploration_final_eps: 0.04
  policy_kwargs: "dict(net_arch=[256, 256])"
"""


def test_zoo_entry_loads_unchanged(tmp_path):
    path = tmp_path / "dqn.yml"
    path.write_text(ZOO)
    cfg = config_from_zoo(read_config_file(path, "CartPole-v1"))
    assert cfg.env_id == "CartPole-v1"
    assert cfg.total_timesteps == 50_000 and isinstance(cfg.total_timesteps, int)
    assert cfg.net_arch == [256, 256]
    assert cfg.learning_rate == pytest.approx(2.3e-3)
    assert cfg.train_freq == 256 and cfg.gradient_steps == 128


def test_zoo_file_with_several_envs_needs_env(tmp_path):
    path = tmp_path / "dqn.yml"
    path.write_text(ZOO)
    with pytest.raises(ConfigError, match="--env"):
        read_config_file(path)


@pytest.mark.parametrize("values, message", [
    ({"learning_rate": -1.0}, "learning_rate must be a positive number"),
    ({"batch_size": 512, "buffer_size": 100}, "batch_size .* larger than buffer_size"),
    ({"gamma": 1.5}, r"gamma must be in \[0, 1\]"),
    ({"tau": 0.0}, "tau must be in"),
    ({"priority_clip": -1.0}, "priority_clip must be > 0 or null"),
    ({"loss": "l1"}, "loss must be one of huber, mse"),
    ({"batch_size": "big"}, "batch_size must be of type int"),
    ({"learnin_rate": 1e-3}, "unknown config key 'learnin_rate'; did you mean 'learning_rate'"),
    ({"gradient_steps": 0}, "gradient_steps must be >= 1, or -1"),
    ({"exploration_schedule": "cosine"}, "exploration_schedule must be one of"),
    ({"policy_kwargs": {"net_arch": [64, -1]}}, "net_arch must be a list of positive ints"),
    ({"policy_kwargs": "dict(net_arch=__import__('os'))"}, "literal values"),
])
def test_validation_messages(values, message):
    with pytest.raises(ConfigError, match=message):
        config_from_zoo(values)


def test_overrides_parse_yaml_values():
    out = parse_overrides(["learning_rate=1e-3", "double_q=true", "policy_kwargs.net_arch=[32,32]", "max_grad_norm=null"])
    assert out == {"learning_rate": 1e-3, "double_q": True, "policy_kwargs": {"net_arch": [32, 32]},
                   "max_grad_norm": None}
    cfg = config_from_zoo(out)
    assert cfg.double_q is True and cfg.net_arch == [32, 32] and cfg.max_grad_norm is None


def test_config_yaml_round_trip():
    cfg = config_from_zoo({"env_id": "Acrobot-v1", "dueling": True, "n_step": 3})
    again = config_from_zoo(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg


def test_every_preset_is_a_valid_config():
    names = list_presets()
    for required in ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3", "GridWorld-v0"]:
        assert required in names
    for name in names:
        values = load_preset(name)
        config_from_zoo(values)


def test_every_field_has_a_doc():
    docs = Config.docs()
    assert all(isinstance(d, str) and len(d) > 10 for d in docs.values())


def test_zoo_env_wrapper_forms_normalise(tmp_path):
    assert config_from_zoo({"env_wrapper": "minigrid.wrappers.ImgObsWrapper"}).env_wrapper == [
        "minigrid.wrappers.ImgObsWrapper"]
    listed = config_from_zoo({"env_wrapper": ["a.B", {"c.D": {"k": 1}}, {"e:F": None}]}).env_wrapper
    assert listed == ["a.B", {"c.D": {"k": 1}}, {"e:F": {}}]
    # the zoo's AtariWrapper is dqnkit's own Atari preprocessing: dropped, not applied twice
    path = tmp_path / "dqn.yml"
    path.write_text(ZOO)
    assert config_from_zoo(read_config_file(path, "atari")).env_wrapper == []
    with pytest.raises(ConfigError, match="env_wrapper entry 3 must be an import path"):
        config_from_zoo({"env_wrapper": [3]})
    with pytest.raises(ConfigError, match="normalize_images must be true or false"):
        config_from_zoo({"policy_kwargs": {"normalize_images": "yes"}})


def test_linear_learning_rate_schedule_and_zoo_lin_prefix():
    cfg = config_from_zoo({"learning_rate": "lin_2e-3", "total_timesteps": 1000})
    assert cfg.learning_rate == pytest.approx(2e-3) and cfg.learning_rate_schedule == "linear"
    assert cfg.learning_rate_final == 0.0
    assert [cfg.learning_rate_at(s) for s in (0, 250, 1000, 5000)] == pytest.approx([2e-3, 1.5e-3, 0.0, 0.0])
    const = config_from_zoo({"learning_rate": 1e-3})
    assert const.learning_rate_at(10**9) == 1e-3
    with pytest.raises(ConfigError, match="learning_rate_final must be in"):
        config_from_zoo({"learning_rate": 1e-3, "learning_rate_final": 1e-2})
    with pytest.raises(ConfigError, match="learning_rate_schedule must be one of constant, linear"):
        config_from_zoo({"learning_rate_schedule": "cosine"})
    with pytest.raises(ConfigError, match="layer_norm must be true or false"):
        config_from_zoo({"policy_kwargs": {"layer_norm": 1}})

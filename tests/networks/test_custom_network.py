"""Custom networks by import path (config q_network): as a torso under dqnkit's heads, as the whole Q-network,
their checkpoints (safetensors + the path in JSON), and the one-line errors."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from dqnkit import DQN
from dqnkit.config import Config
from dqnkit.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
NETS = textwrap.dedent('''
    from torch import nn

    class Torso(nn.Module):
        """A tanh MLP torso; out_dim None -> hidden features."""
        def __init__(self, obs_shape, out_dim, hidden=32):
            super().__init__()
            n = 1
            for d in obs_shape:
                n *= d
            self.net = nn.Sequential(nn.Flatten(1), nn.Linear(n, hidden), nn.Tanh(),
                                     nn.Linear(hidden, out_dim or hidden), nn.Tanh())

        def forward(self, x):
            return self.net(x)

    def whole(obs_shape, n_actions, hidden=32):
        return nn.Sequential(nn.Flatten(1), nn.Linear(obs_shape[0], hidden), nn.ReLU(), nn.Linear(hidden, n_actions))

    def wrong(obs_shape, n_actions):
        return nn.Linear(obs_shape[0], n_actions + 1)

    def fixed(obs_shape, out_dim):
        return nn.Linear(obs_shape[0], 32)  # ignores out_dim

    def not_a_module(obs_shape, out_dim):
        return "not a network"
''')
TINY = dict(total_timesteps=300, learning_starts=100, batch_size=32, buffer_size=1000, eval_freq=0, eval_episodes=1,
            tensorboard=False, verbose=0)


@pytest.fixture
def nets(tmp_path, monkeypatch):
    folder = tmp_path / "netpkg"
    folder.mkdir()
    (folder / "my_nets.py").write_text(NETS)
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    sys.modules.pop("my_nets", None)


def test_a_custom_torso_learns_the_grid_world_and_skips_the_mlp_fast_path(nets):
    model = DQN.from_preset("GridWorld-v0", seed=0, q_network="my_nets:Torso", q_network_kwargs={"hidden": 32},
                            tensorboard=False, verbose=0)
    agent = model.trainer.agent
    assert type(agent.online.torso.body).__name__ == "Torso" and agent.online.torso.out_dim == 32  # measured
    assert agent.fast_layers is None
    model.learn()
    assert model.evaluate(5)["mean_return"] == pytest.approx(3.0)  # the optimal 8-step path


def test_a_custom_torso_round_trips_through_safetensors_and_json(nets, tmp_path):
    model = DQN("CartPole-v1", q_network="my_nets:Torso", q_network_kwargs={"hidden": 16}, features_dim=8, **TINY)
    model.learn()
    saved = model.save(tmp_path / "model")
    assert sorted(p.name for p in saved.iterdir()) == ["model.safetensors", "state.json"]
    config = json.loads((saved / "state.json").read_text())["config"]
    assert (config["q_network"], config["q_network_kwargs"], config["features_dim"]) == ("my_nets:Torso", {"hidden": 16}, 8)
    obs = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    loaded = DQN.load(saved)
    np.testing.assert_array_equal(loaded.q_values(obs), model.q_values(obs))
    assert loaded.trainer.agent.online.torso.out_dim == 8


def test_dueling_and_c51_heads_go_on_top_of_a_custom_torso(nets):
    dueling = DQN("CartPole-v1", q_network="my_nets:Torso", dueling=True, **TINY)
    net = dueling.trainer.agent.online
    assert net.value is not None and net.value[0].in_features == 32
    dueling.learn()
    assert dueling.trainer.agent.updates > 0
    c51 = DQN("CartPole-v1", q_network="my_nets:Torso", distributional=True, n_atoms=11, **TINY)
    assert c51.trainer.agent.online(torch.zeros(3, 4)).shape == (3, 2, 11)


def test_a_whole_custom_q_network_trains_and_refuses_heads(nets):
    model = DQN("CartPole-v1", q_network="my_nets:whole", q_network_role="q_network", **TINY)
    online = model.trainer.agent.online
    assert online.advantage is None and model.q_values(np.zeros(4)).shape == (2,)
    before = [p.detach().clone() for p in online.parameters()]
    model.learn()
    assert any(not torch.equal(a, b) for a, b in zip(before, online.parameters()))
    with pytest.raises(ConfigError, match="whole Q-network, which leaves no head for dueling, noisy; use "
                                          "q_network_role=torso"):
        Config(q_network="my_nets:whole", q_network_role="q_network", dueling=True, noisy=True).validate()


@pytest.mark.parametrize("path, role, message", [
    ("my_nets:wrong", "q_network", r"outputs shape \(2, 3\) .* must output \(batch, n_actions\) = \(2, 2\)"),
    ("my_nets:fixed", "torso", r"outputs shape \(2, 32\) .* must output \(2, features_dim\) = \(2, 5\)"),
    ("my_nets:not_a_module", "torso", "returned a str, not a torch.nn.Module"),
    ("no_such_package.nets:Torso", "torso", "cannot import module 'no_such_package.nets' for q_network"),
    ("my_nets:Missing", "torso", "module 'my_nets' has no 'Missing'"),
])
def test_a_bad_custom_network_is_one_line(nets, path, role, message):
    extra = {"features_dim": 5} if path == "my_nets:fixed" else {}
    with pytest.raises(ConfigError, match=message) as info:
        DQN("CartPole-v1", q_network=path, q_network_role=role, **extra, **TINY)
    assert "\n" not in str(info.value)


def test_config_checks_the_custom_network_keys():
    with pytest.raises(ConfigError, match="not an import path"):
        Config(q_network="Torso").validate()
    with pytest.raises(ConfigError, match="JSON values only"):
        Config(q_network="a.b:C", q_network_kwargs={"f": object()}).validate()
    with pytest.raises(ConfigError, match="configure a custom q_network"):
        Config(q_network_kwargs={"hidden": 3}).validate()


def test_loading_a_checkpoint_whose_network_cannot_be_imported_says_so(nets, tmp_path):
    saved = DQN("CartPole-v1", q_network="my_nets:Torso", **TINY).save(tmp_path / "model")
    sys.modules.pop("my_nets", None)
    sys.path.remove(str(nets))
    with pytest.raises(ConfigError, match="cannot import module 'my_nets' for q_network 'my_nets:Torso'.*PYTHONPATH"):
        DQN.load(saved)


def test_population_mode_refuses_a_custom_network(nets):
    with pytest.raises(ConfigError, match="population mode .* cannot stack a custom q_network"):
        DQN.population("CartPole-v1", seeds="0-1", q_network="my_nets:Torso", **{k: v for k, v in TINY.items()
                                                                               if k != "verbose"}).learn()


def test_the_cli_takes_a_custom_network_through_set(nets, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(nets), str(REPO)])}
    run = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "dqnkit.cli", "train", "--env", "CartPole-v1", "--steps", "300",
                             "--set", "q_network=my_nets:Torso", "--set", "q_network_kwargs={hidden: 8}",
                             "--set", "learning_starts=100", "--set", "eval_episodes=1", "--set", "tensorboard=false",
                             "--out", str(run), "--quiet"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "q_network_kwargs:\n  hidden: 8" in (run / "config.yaml").read_text()
    state = json.loads(next((run / "checkpoints").glob("step_*/state.json")).read_text())
    assert state["config"]["q_network"] == "my_nets:Torso"


def test_a_yaml_config_names_the_network(nets, tmp_path):
    from dqnkit.presets.zoo import config_from_zoo, read_config_file

    file = tmp_path / "dqn.yml"
    file.write_text("CartPole-v1:\n  q_network: my_nets:Torso\n  q_network_kwargs: {hidden: 8}\n  dueling: true\n")
    cfg = config_from_zoo({**read_config_file(file, "CartPole-v1"), "env_id": "CartPole-v1"})
    assert (cfg.q_network, cfg.q_network_kwargs, cfg.dueling) == ("my_nets:Torso", {"hidden": 8}, True)


def test_a_custom_network_runs_its_acting_forward_even_when_every_env_explores(nets):
    """dqnkit's own networks skip the acting forward when epsilon-greedy explores in every env; a user's network
    may draw from torch's generator or update state in its forward (Dropout, BatchNorm), so it always runs."""
    model = DQN("CartPole-v1", q_network="my_nets:Torso", **TINY)
    agent = model.trainer.agent
    calls = []
    agent.online.register_forward_hook(lambda *_: calls.append(1))
    obs = np.zeros((1, 4), dtype=np.float32)
    agent.act(obs, 1.0, np.random.default_rng(0))
    assert len(calls) == 1 and not agent.act_may_skip
    assert DQN("CartPole-v1", **TINY).trainer.agent.act_may_skip

"""Export: the ONNX (onnxruntime) and TorchScript files compute what DQN.q_values computes (atol 1e-5), with
dqnkit's preprocessing inside them (uint8 scaling, one-hot states, C51 expectations)."""
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import onnxruntime as ort
import pytest
import torch

from dqnkit import DQN
from dqnkit.cli import main
from dqnkit.deploy.export import export_model, load_spec
from dqnkit.errors import DqnkitError

REPO = Path(__file__).resolve().parents[2]
TINY = dict(total_timesteps=300, learning_starts=100, batch_size=32, buffer_size=1000, eval_freq=0, eval_episodes=1,
            tensorboard=False, verbose=0)


class PixelEnv(gym.Env):
    """uint8 [0, 255] observations: the exported model must scale them by 1/255 as the torso does."""

    def __init__(self, shape=(3, 6, 6)):
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        self.action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), float(action == 1), False, False, {}


def observations(model, rng, n=16):
    raw = model.trainer.envs.raw_observation_space
    if isinstance(raw, gym.spaces.Discrete):
        return rng.integers(raw.start, raw.start + raw.n, size=n)
    shape, dtype = model.trainer.envs.obs_shape, model.trainer.envs.obs_dtype
    if dtype == np.uint8:
        return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    return rng.normal(size=(n, *shape)).astype(np.float32) * 2


CASES = {
    "mlp": lambda: DQN("CartPole-v1", **TINY),
    "dueling": lambda: DQN("CartPole-v1", dueling=True, **TINY),
    "c51_noisy": lambda: DQN("CartPole-v1", distributional=True, noisy=True, n_atoms=11, **TINY),
    "one_hot": lambda: DQN("GridWorld-v0", **TINY),
    "uint8_mlp": lambda: DQN(PixelEnv, **TINY),
    "nature_cnn": lambda: DQN(lambda: PixelEnv((4, 36, 36)), **TINY),
}


@pytest.mark.parametrize("case", list(CASES))
def test_onnx_and_torchscript_compute_dqnkits_q_values(case, tmp_path):
    model = CASES[case]()
    if case in ("mlp", "dueling"):
        model.learn()  # trained weights, not only the initial ones
    onnx_path = export_model(model, tmp_path / "q.onnx", format="onnx")
    script_path = export_model(model, tmp_path / "q.pt", format="torchscript")
    spec = load_spec(onnx_path)
    obs = observations(model, np.random.default_rng(0))
    assert str(obs.dtype) == spec["input"]["dtype"]
    expected = model.q_values(obs)
    onnx_q = ort.InferenceSession(str(onnx_path)).run(None, {spec["input"]["name"]: obs})[0]
    script_q = torch.jit.load(str(script_path))(torch.from_numpy(obs)).numpy()
    assert onnx_q.shape == expected.shape == script_q.shape == (len(obs), model.trainer.envs.n_actions)
    np.testing.assert_allclose(onnx_q, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(script_q, expected, atol=1e-5, rtol=0)
    if case == "uint8_mlp":  # without the 1/255 inside, the raw values would give other Q-values
        raw = model.trainer.agent.online.q_values(torch.from_numpy(obs).float()).detach().numpy()
        assert np.abs(raw - expected).max() > 1e-3


def test_the_cli_exports_a_run_and_the_readme_snippet_runs_it(tmp_path, capsys):
    run = tmp_path / "run"
    DQN("CartPole-v1", run_dir=run, dueling=True, **TINY).learn()
    assert main(["export", str(run), "--format", "onnx", "--which", "latest"]) == 0
    path = run / "export" / "q_network.onnx"
    assert str(path) in capsys.readouterr().out and json.loads(path.with_suffix(".json").read_text())["env_id"] == "CartPole-v1"
    # the README's inference snippet, as written there (it imports no dqnkit)
    readme = (REPO / "README.md").read_text()
    snippet = readme.split("Inference without dqnkit:\n\n```python\n", 1)[1].split("```", 1)[0]
    assert "dqnkit" not in snippet.replace("RUN/export/q_network.onnx", "")
    scope: dict = {}
    exec(snippet.replace("RUN/export/q_network.onnx", str(path)), scope)
    obs = np.array([[0.01, -0.02, 0.03, 0.04]], dtype=np.float32)
    np.testing.assert_allclose(scope["q"], DQN.load(run).q_values(obs), atol=1e-5)
    assert scope["action"] == int(DQN.load(run).predict(obs[0]))
    out = tmp_path / "elsewhere.pt"
    assert main(["export", str(run), "--format", "torchscript", "--out", str(out)]) == 0 and out.is_file()
    assert torch.jit.load(str(out))(torch.from_numpy(obs)).argmax(1).item() == scope["action"]


def test_a_missing_onnx_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx":
            raise ImportError("No module named 'onnx'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(DqnkitError, match=r"pip install 'dqnkit\[export\]'"):
        export_model(DQN("CartPole-v1", **TINY), "x.onnx")

"""Real training on small budgets with fixed seeds: learning, determinism, resume, failure handling."""
import csv
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from dqnkit.api import DQN
from dqnkit.config import Config
from dqnkit.presets.zoo import config_from_zoo
from dqnkit.errors import TrainingDiverged
from dqnkit.training.trainer import Trainer

FAST = dict(learning_starts=300, train_freq=4, gradient_steps=1, batch_size=32, buffer_size=5000,
            eval_freq=1000, eval_episodes=3, checkpoint_freq=1000, target_update_interval=200,
            policy_kwargs={"net_arch": [32, 32]}, exploration_fraction=0.3, learning_rate=1e-3)


def read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_gridworld_learns_optimal_path(tmp_path):
    model = DQN.from_preset("GridWorld-v0", seed=0)
    model.learn()
    env = model.make_eval_env().unwrapped
    # the greedy path from the start reaches the goal in the optimal 8 moves (return 7 * -1 + 10 = 3)
    state, _ = env.reset(seed=0)
    path = [env.to_pos(state)]
    for _ in range(20):
        action = model.predict(state)
        state, reward, terminated, truncated, _ = env.step(action)
        path.append(env.to_pos(state))
        if terminated or truncated:
            break
    assert path[-1] == env.goal and len(path) - 1 == 8, path
    assert model.evaluate(5)["mean_return"] == pytest.approx(3.0)
    q_start = model.q_values(0)
    assert q_start.shape == (4,)


def test_two_runs_with_one_seed_are_identical(tmp_path):
    cfg = Config.from_dict({**FAST, "total_timesteps": 2000, "seed": 7})
    for name in ("a", "b"):
        t = Trainer(cfg, tmp_path / name, verbosity="quiet")
        t.learn()
        t.close()
    assert read(tmp_path / "a" / "eval.csv") == read(tmp_path / "b" / "eval.csv")
    assert read(tmp_path / "a" / "episodes.csv") == read(tmp_path / "b" / "episodes.csv")


@pytest.mark.parametrize("num_envs, extra", [
    (1, {}), (3, {"prioritized_replay": True, "n_step": 3}),
    # a round's PER batches drawn at once, its noise in one call, the Rainbow head's fast path
    (2, {"prioritized_replay": True, "per_round_sampling": True, "noisy": True, "dueling": True,
         "distributional": True, "v_min": 0.0, "v_max": 100.0, "train_freq": 16, "gradient_steps": 4})])
def test_resume_with_replay_matches_uninterrupted_run(tmp_path, num_envs, extra):
    cfg = Config.from_dict({**FAST, **extra, "total_timesteps": 3000, "seed": 5, "save_replay": True,
                            "num_envs": num_envs, "checkpoint_freq": 1500, "eval_freq": 750})
    full = Trainer(cfg, tmp_path / "full", verbosity="quiet")
    full.learn()
    full.close()
    first = Trainer(cfg, tmp_path / "resumed", verbosity="quiet")
    first.learn(1500)
    first.close()
    second = Trainer(cfg, tmp_path / "resumed", verbosity="quiet")
    second.restore(tmp_path / "resumed" / "checkpoints" / "step_0000001500")
    second.learn()
    second.close()
    for name in ("eval.csv", "episodes.csv"):
        assert read(tmp_path / "full" / name) == read(tmp_path / "resumed" / name), name
    drop_sps = lambda rows: [{k: v for k, v in r.items() if k != "sps"} for r in rows]  # noqa: E731
    assert drop_sps(read(tmp_path / "full" / "updates.csv")) == drop_sps(read(tmp_path / "resumed" / "updates.csv"))


def test_resume_cli_continues_to_more_steps(cli, tmp_path):
    run = tmp_path / "run"
    r = cli("train", "--steps", "800", "--out", run, "--quiet", "--set", "learning_starts=200",
            "--set", "eval_freq=400", "--set", "eval_episodes=2")
    assert r.returncode == 0, r.stderr
    r = cli("resume", run, "--steps", "1200", "--quiet")
    assert r.returncode == 0, r.stderr
    assert read(run / "eval.csv")[-1]["env_step"] == "1200"
    # trained without --save-replay: resume says what that means, even with --quiet
    assert "replay buffer starts empty" in r.stderr and "--save-replay" in r.stderr


class _RewardBlowsUp:
    """CartPole whose rewards become NaN after ``after`` steps (a stand-in for a diverging run)."""

    def __init__(self, after):
        self.after = after
        self.count = 0

    def __call__(self):
        import gymnasium as gym
        outer = self

        class Wrapper(gym.Wrapper):
            def step(self, action):
                obs, reward, term, trunc, info = self.env.step(action)
                outer.count += 1
                return obs, (float("nan") if outer.count > outer.after else reward), term, trunc, info

        return Wrapper(gym.make("CartPole-v1"))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = Config.from_dict({**FAST, "total_timesteps": 3000, "checkpoint_freq": 400, "eval_freq": 0})
    t = Trainer(cfg, tmp_path / "run", env=_RewardBlowsUp(after=1000), verbosity="quiet")
    with pytest.raises(TrainingDiverged, match="NaN/inf.*last good checkpoint is .*step_0000000800"):
        t.learn()
    t.close()
    ckpts = sorted((tmp_path / "run" / "checkpoints").glob("step_*"))
    assert ckpts[-1].name == "step_0000000800"
    tensors = __import__("safetensors.torch", fromlist=["load_file"]).load_file(str(ckpts[-1] / "model.safetensors"))
    assert all(bool(v.isfinite().all()) for v in tensors.values() if v.is_floating_point())


def test_ctrl_c_writes_checkpoint_and_says_how_to_resume(tmp_path):
    run = tmp_path / "run"
    # A shell starts background jobs with SIGINT ignored, and Python then keeps ignoring it (no KeyboardInterrupt):
    # give the child the default disposition, as a terminal's Ctrl-C would find it, whoever started pytest.
    proc = subprocess.Popen([sys.executable, "-m", "dqnkit.cli", "train", "--steps", "200000", "--out", str(run),
                             "--set", "eval_freq=0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline and not (run / "episodes.csv").exists():
        time.sleep(0.2)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "dqnkit resume" in out
    assert list((run / "checkpoints").glob("step_*"))


def test_python_api_save_load_round_trip(tmp_path):
    model = DQN("CartPole-v1", **{**FAST, "total_timesteps": 600})
    model.learn()
    obs = np.array([0.01, -0.02, 0.03, 0.04], dtype=np.float32)
    q = model.q_values(obs)
    path = model.save(tmp_path / "model")
    loaded = DQN.load(path)
    assert np.array_equal(loaded.q_values(obs), q)
    assert loaded.predict(obs) == int(np.argmax(q))
    assert loaded.num_timesteps == 600
    assert "mean_return" in loaded.evaluate(2)


def test_discrete_observations_are_one_hot_encoded():
    model = DQN("FrozenLake-v1", env_kwargs={"is_slippery": False}, **{**FAST, "total_timesteps": 400})
    assert model.trainer.envs.obs_shape == (16,)
    model.learn()
    assert model.q_values(3).shape == (4,)
    assert model.q_values(np.array([0, 5])).shape == (2, 4)


def test_callable_env_is_accepted():
    import gymnasium as gym
    model = DQN(lambda: gym.make("CartPole-v1"), **{**FAST, "total_timesteps": 300, "eval_freq": 0})
    model.learn()
    assert model.num_timesteps == 300


@pytest.mark.parametrize("options", [{"double_q": True}, {"dueling": True}, {"noisy": True},
                                     {"distributional": True, "v_min": 0.0, "v_max": 200.0},
                                     {"prioritized_replay": True}, {"n_step": 3}, {"tau": 0.05},
                                     {"exploration_schedule": "exponential"},
                                     {"exploration_schedule": "multiplicative"}, {"num_envs": 4}])
def test_every_option_runs_end_to_end(options):
    model = DQN("CartPole-v1", **{**FAST, "total_timesteps": 800, "eval_freq": 0, "eval_episodes": 1, **options})
    model.learn()
    assert model.num_timesteps >= 800
    assert np.isfinite(model.q_values(np.zeros(4, dtype=np.float32))).all()


def test_cartpole_preset_reaches_475():
    """The default job: the CartPole-v1 preset (rl-zoo hyperparameters, 3-step returns, a linear lr decay), 50k
    env steps, seed 0."""
    model = DQN.from_preset("CartPole-v1", seed=0)
    model.learn()
    assert model.evaluate(20)["mean_return"] >= 475


def test_predict_non_deterministic_explores_at_current_epsilon():
    model = DQN("CartPole-v1", **{**FAST, "total_timesteps": 1000, "exploration_initial_eps": 1.0})
    obs = np.zeros((200, 4), dtype=np.float32)
    actions = model.predict(obs, deterministic=False)  # epsilon is 1.0 at env step 0: uniform actions
    assert actions.shape == (200,) and set(actions.tolist()) == {0, 1}
    assert set(model.predict(obs).tolist()) == {int(np.argmax(model.q_values(obs[0])))}


def test_linear_learning_rate_decays_in_updates_csv_and_layer_norm_trains(tmp_path):
    cfg = config_from_zoo({**FAST, "total_timesteps": 2000, "seed": 3, "learning_rate": "lin_1e-3", "log_interval": 50,
                            "policy_kwargs": {"net_arch": [32, 32], "layer_norm": True}})
    t = Trainer(cfg, tmp_path / "run", verbosity="quiet")
    t.learn()
    t.close()
    rows = read(tmp_path / "run" / "updates.csv")
    lrs = [float(r["learning_rate"]) for r in rows]
    steps = [int(r["env_step"]) for r in rows]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] < 1e-3 and lrs[-1] < 1e-4
    # the rate of a round is set from the env step the round starts at
    assert all(abs(lr - 1e-3 * (1 - s / 2000)) <= 1e-3 * 4 / 2000 + 1e-12 for lr, s in zip(lrs, steps))
    assert any(isinstance(m, torch.nn.LayerNorm) for m in t.agent.online.modules())


def test_torch_threads_zero_restores_the_process_count_after_an_earlier_run_set_one(monkeypatch):
    """torch_threads=0 means the count torch had at import, not whatever the last run in this process set."""
    import dqnkit.learner.agent as agent_module

    before = torch.get_num_threads()
    monkeypatch.setattr(agent_module, "PROCESS_TORCH_THREADS", 3)
    try:
        Trainer(Config(env_id="CartPole-v1", torch_threads=1), verbosity="quiet").close()
        assert torch.get_num_threads() == 1
        Trainer(Config(env_id="CartPole-v1", torch_threads=0), verbosity="quiet").close()
        assert torch.get_num_threads() == 3
        Trainer(Config(env_id="CartPole-v1", torch_threads=2), verbosity="quiet").close()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)

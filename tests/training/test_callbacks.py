"""learn(callback=...): the built-in stops end at the right point with a resumable checkpoint; custom hooks."""
import csv
import json

import pytest

from dqnkit.api import DQN
from dqnkit.config import Config
from dqnkit.errors import ConfigError
from dqnkit.training.callbacks import (StopAtReturn, StopWithoutImprovement, TimeLimit, TrainingView,
                                       parse_duration)
from dqnkit.training.checkpoint import find_checkpoint
from dqnkit.training.trainer import Trainer

FAST = dict(learning_starts=300, train_freq=4, batch_size=32, buffer_size=5000, eval_freq=500, eval_episodes=2,
            checkpoint_freq=0, target_update_interval=200, policy_kwargs={"net_arch": [16]}, learning_rate=1e-3,
            tensorboard=False)


def read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _resume_to_end(cfg, run):
    """A fresh trainer resumes the stopped run from its latest checkpoint and trains to total_timesteps."""
    t = Trainer(cfg, run, verbosity="quiet")
    t.restore(find_checkpoint(run))
    start = t.env_step
    result = t.learn()
    t.close()
    assert result["status"] == "finished" and result["env_step"] == cfg.total_timesteps
    return start


def test_stop_at_return_stops_at_the_first_eval_reaching_it(tmp_path):
    # any greedy CartPole episode lasts >= 8 steps, so the first evaluation (env step 500) reaches 5
    cfg = Config.from_dict({**FAST, "total_timesteps": 2000})
    t = Trainer(cfg, tmp_path / "run", verbosity="quiet")
    result = t.learn(callback=StopAtReturn(5))
    t.close()
    assert result["status"] == "stopped" and result["env_step"] == 500
    assert "--stop-at-return 5" in result["stopped_by"]
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "stopped" and info["env_step"] == 500
    assert find_checkpoint(tmp_path / "run").name == "step_0000000500"
    assert [r["env_step"] for r in read(tmp_path / "run" / "eval.csv")] == ["500"]  # no second eval at the stop
    assert _resume_to_end(cfg, tmp_path / "run") == 500


def test_stop_at_return_above_every_eval_does_not_stop(tmp_path):
    cfg = Config.from_dict({**FAST, "total_timesteps": 1000})
    result = Trainer(cfg, None, verbosity="quiet").learn(callback=StopAtReturn(10_000))
    assert result["status"] == "finished" and result["stopped_by"] is None


def test_stop_without_improvement_after_k_equal_evals(tmp_path):
    # no learning before learning_starts: the network never changes, every evaluation (same seeds) gives the
    # same return, so the first sets the best and the next K=2 do not improve on it -> stop at the third
    cfg = Config.from_dict({**FAST, "total_timesteps": 5000, "learning_starts": 10_000})
    t = Trainer(cfg, tmp_path / "run", verbosity="quiet")
    result = t.learn(callback=[StopWithoutImprovement(2)])
    t.close()
    assert result["status"] == "stopped" and result["env_step"] == 1500
    returns = {r["mean_return"] for r in read(tmp_path / "run" / "eval.csv")}
    assert len(returns) == 1
    assert _resume_to_end(cfg, tmp_path / "run") == 1500


def test_stop_without_improvement_counts_only_evals_since_the_best():
    cb = StopWithoutImprovement(2)

    class View:
        def __init__(self, r):
            self.metrics = {"eval": {"mean_return": r}}
    assert [cb.on_eval(View(r)) for r in (1, 3, 2, 3, 4, 4, 4)] == [True, True, True, False, True, True, False]


def test_time_limit_stops_with_a_resumable_checkpoint(tmp_path):
    cfg = Config.from_dict({**FAST, "total_timesteps": 10_000_000, "eval_freq": 0, "learning_starts": 100})
    t = Trainer(cfg, tmp_path / "run", verbosity="quiet")
    result = t.learn(callback=TimeLimit("1s"))
    t.close()
    assert result["status"] == "stopped" and 0 < result["env_step"] < 10_000_000
    assert "time-limit" in result["stopped_by"]
    ckpt = find_checkpoint(tmp_path / "run")
    assert ckpt.name == f"step_{result['env_step']:010d}"
    resumed = Trainer(cfg, tmp_path / "run", verbosity="quiet")
    resumed.restore(ckpt)
    again = resumed.learn(result["env_step"] + 200)
    resumed.close()
    assert again["status"] == "finished" and again["env_step"] == result["env_step"] + 200


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("1h", 3600), ("1.5h", 5400), ("600", 600)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10x", "", "-5m", "m", "0s"])
def test_bad_duration_is_one_clear_line(text):
    with pytest.raises(ConfigError, match=r"--time-limit .*\(90s, 10m, 1h\)") as err:
        parse_duration(text)
    assert "\n" not in str(err.value)


class Recorder:
    def __init__(self):
        self.steps, self.updates, self.episodes, self.evals, self.checkpoints = [], [], [], [], []
        self.elapsed = []

    def on_step(self, view):
        self.steps.append(view.env_step)
        self.updates.append(view.updates)
        self.elapsed.append(view.elapsed_s)
        assert 0.0 <= view.epsilon <= 1.0

    def on_episode_end(self, view):
        self.episodes.append((view.episodes, view.metrics["episode_length"]))

    def on_eval(self, view):
        self.evals.append((view.env_step, view.metrics["eval"]["mean_return"]))

    def on_checkpoint(self, view):
        self.checkpoints.append(view.metrics["checkpoint"])
        with pytest.raises(AttributeError, match="read-only"):
            view.env_step = 0


def test_custom_callback_sees_increasing_counters(tmp_path):
    rec = Recorder()
    model = DQN("CartPole-v1", run_dir=tmp_path / "run", verbose=0,
                **{**FAST, "total_timesteps": 1200, "num_envs": 2, "checkpoint_freq": 600})
    model.learn(callback=rec)
    model.close()
    assert rec.steps == list(range(2, 1201, 2))  # once per vector step, num_envs env steps apart
    assert rec.updates == sorted(rec.updates) and rec.updates[-1] > 0
    assert rec.elapsed == sorted(rec.elapsed)
    assert [e for e, _ in rec.episodes] == list(range(1, len(rec.episodes) + 1)) and len(rec.episodes) > 5
    assert all(length > 0 for _, length in rec.episodes)
    assert [s for s, _ in rec.evals] == [500, 1000, 1200]
    assert [p.name for p in rec.checkpoints] == ["step_0000000600", "step_0000001200", "step_0000001200"]


def test_a_callback_without_hooks_is_refused():
    with pytest.raises(ConfigError, match="has none of on_step"):
        Trainer(Config.from_dict({**FAST, "total_timesteps": 100}), None, verbosity="quiet").learn(callback=object())


def test_view_reads_the_trainer_live():
    t = Trainer(Config.from_dict({**FAST, "total_timesteps": 100}), None, verbosity="quiet")
    view = TrainingView(t)
    t.learn(64)
    assert view.env_step == 64 and view.metrics["eval"]["env_step"] == 64


def test_cli_bad_time_limit_is_one_line(cli, tmp_path):
    r = cli("train", "--steps", "200", "--out", tmp_path / "run", "--time-limit", "10 minutes", "--quiet")
    assert r.returncode != 0
    lines = [line for line in r.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and "--time-limit '10 minutes'" in lines[0], r.stderr
    assert not (tmp_path / "run").exists()


def test_cli_stop_at_return_and_resume(cli, tmp_path):
    run = tmp_path / "run"
    r = cli("train", "--steps", "1500", "--out", run, "--quiet", "--stop-at-return", "5", "--set", "eval_freq=500",
            "--set", "eval_episodes=2", "--set", "learning_starts=200", "--set", "tensorboard=false")
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "run.json").read_text())["env_step"] == 500
    r = cli("resume", run, "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "run.json").read_text())["env_step"] == 1500

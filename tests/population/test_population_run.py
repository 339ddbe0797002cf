"""Populations trained for real: one member equals the single run, seeds are independent, the run folders
work with every command, and a population killed with SIGKILL resumes to the uninterrupted metrics."""
import csv
import json
import signal
import subprocess
import sys
import time

import yaml

from dqnkit.config import Config
from dqnkit.population.members import Member
from dqnkit.population.run import train_population
from dqnkit.population.trainer import PopulationTrainer
from dqnkit.training.trainer import Trainer

SMALL = dict(env_id="CartPole-v1", total_timesteps=1500, learning_starts=200, train_freq=4, gradient_steps=1,
             batch_size=32, buffer_size=5000, eval_freq=500, eval_episodes=3, checkpoint_freq=750,
             target_update_interval=100, policy_kwargs={"net_arch": [32, 32]}, exploration_fraction=0.3,
             learning_rate=1e-3, tensorboard=False, log_interval=50)


def rows(path, drop=("sps",)):
    with open(path, newline="") as fh:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(fh)]


def test_a_member_equals_the_single_run_with_its_seed(tmp_path):
    cfg = Config.from_dict({**SMALL, "seed": 4})
    single = Trainer(cfg, tmp_path / "single", verbosity="quiet")
    single.learn()
    single.close()
    pop = PopulationTrainer([Member("s3", Config.from_dict({**SMALL, "seed": 3}), {}), Member("s4", cfg, {})],
                            tmp_path / "pop", verbosity="quiet")
    pop.learn()
    pop.close()
    for name in ("eval.csv", "episodes.csv"):
        assert rows(tmp_path / "pop" / "s4" / name) == rows(tmp_path / "single" / name), name
    # the loss and Q columns too (the reported grad norm is computed another way: equal to float rounding)
    assert rows(tmp_path / "pop" / "s4" / "updates.csv", drop=("sps", "grad_norm")) == \
        rows(tmp_path / "single" / "updates.csv", drop=("sps", "grad_norm"))


def test_same_seed_same_member_other_seed_differs(tmp_path):
    members = [Member(n, Config.from_dict({**SMALL, "seed": s, "total_timesteps": 1000}), {})
               for n, s in (("a", 7), ("b", 7), ("c", 8))]
    pop = PopulationTrainer(members, tmp_path, verbosity="quiet")
    pop.learn()
    pop.close()
    a, b, c = (rows(tmp_path / n / "episodes.csv") for n in "abc")
    assert a == b and rows(tmp_path / "a" / "updates.csv") == rows(tmp_path / "b" / "updates.csv")
    assert a != c


def test_rainbow_population_trains_and_its_members_load(tmp_path):
    from dqnkit.api import DQN

    rainbow = dict(double_q=True, dueling=True, prioritized_replay=True, n_step=3, noisy=True, distributional=True,
                   v_min=0.0, v_max=100.0, total_timesteps=800, eval_freq=400)
    results = train_population({**SMALL, **rainbow}, [0, 1], {"gamma": [0.99, 0.9]}, tmp_path, verbosity="quiet",
                               say=lambda text: None)
    assert len(results) == 4 and all(r["last_eval"]["env_step"] == 800 for r in results)
    model = DQN.load(results[3]["run_dir"])
    assert model.config.gamma == 0.9 and model.config.seed == 1 and model.num_timesteps == 800
    assert "mean_return" in model.evaluate(2)


def test_population_cli_folders_work_with_every_command(tmp_path, cli):
    out = tmp_path / "pop"
    res = cli("train", "--env", "CartPole-v1", "--seeds", "0-3", "--steps", "1000", "--quiet", "--out", out,
              *sum((["--set", f"{k}={v}"] for k, v in [("learning_starts", 200), ("eval_freq", 500),
                                                        ("policy_kwargs.net_arch", "[32]"), ("tensorboard", "false")]),
                   []))
    assert res.returncode == 0, res.stderr
    info = json.loads((out / "population.json").read_text())
    assert info["groups"][0]["members"] == ["s0", "s1", "s2", "s3"]
    assert info["groups"][0]["checkpoint_env_step"] == 1000
    for seed in range(4):
        member = out / f"s{seed}"
        for name in ("config.yaml", "episodes.csv", "updates.csv", "eval.csv", "run.json", "report.html"):
            assert (member / name).is_file(), (member, name)
        assert (member / "checkpoints" / "step_0000001000" / "model.safetensors").is_file()
    res = cli("compare", out, "--out", tmp_path / "cmp")
    # the CartPole-v1 preset has 3-step returns, which name the group
    assert res.returncode == 0 and "| 3-step DQN | 4 |" in res.stdout, res.stdout + res.stderr
    res = cli("eval", out / "s2", "--episodes", "2", "--json")
    assert res.returncode == 0 and '"mean_return"' in res.stdout, res.stderr
    res = cli("plot", out / "s1")
    assert res.returncode == 0 and (out / "s1" / "plots" / "return.png").is_file(), res.stderr
    res = cli("resume", out / "s3", "--steps", "1200", "--quiet")  # one member alone, as an ordinary run
    assert res.returncode == 0, res.stderr
    assert rows(out / "s3" / "eval.csv")[-1]["env_step"] == "1200"
    res = cli("train", "--env", "CartPole-v1", "--seeds", "0-1", "--grid", "policy_kwargs={net_arch: [16]},"
              "{net_arch: [8, 8]}", "--steps", "400", "--out", tmp_path / "split", "--set", "learning_starts=100")
    assert res.returncode == 0 and "2 groups" in res.stdout and "policy_kwargs" in res.stdout, res.stdout + res.stderr


def test_kill_9_then_resume_gives_the_uninterrupted_metrics(tmp_path, cli):
    base = {**SMALL, "total_timesteps": 3000, "save_replay": True, "checkpoint_freq": 1000, "eval_freq": 500}
    train_population(base, [0, 1], {}, tmp_path / "full", verbosity="quiet", say=lambda text: None)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base))
    proc = subprocess.Popen([sys.executable, "-m", "dqnkit.cli", "train", "--config", str(config), "--seeds", "0-1",
                             "--quiet", "--out", str(tmp_path / "cut")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    pop_file = tmp_path / "cut" / "population.json"
    while time.time() < deadline:
        if pop_file.is_file() and (json.loads(pop_file.read_text())["groups"][0]["checkpoint_env_step"] or 0) >= 1000:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    step = json.loads(pop_file.read_text())["groups"][0]["checkpoint_env_step"]
    assert step is not None and step < 3000, "the run finished before it could be killed"
    res = cli("resume", tmp_path / "cut", "--quiet")
    assert res.returncode == 0, res.stderr
    for member in ("s0", "s1"):
        for name in ("episodes.csv", "eval.csv", "updates.csv"):
            assert rows(tmp_path / "cut" / member / name) == rows(tmp_path / "full" / member / name), (member, name)

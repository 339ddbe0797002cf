"""The command line of distributed training: bad input in one line, and train + resume on the session's Ray."""
import csv
import sys
import time

import pytest

from dqnkit.cli import main
from dqnkit.config import Config
from dqnkit.distributed.cluster import connect, require_ray, split_address
from dqnkit.errors import ConfigError, DqnkitError

SMALL = ["--env", "CartPole-v1", "--set", "eval_freq=0", "--set", "eval_episodes=2", "--set", "learning_starts=200",
         "--set", "tensorboard=false", "--set", "buffer_size=4000", "--set", "apex_chunk_steps=25", "--quiet"]


def test_actors_zero_is_refused(tmp_path, capsys):
    with pytest.raises(ConfigError, match="actors must be >= 1"):
        Config.from_dict({"distributed": "ray", "actors": 0})
    code = main(["train", "--distributed", "ray", "--actors", "0", "--out", str(tmp_path / "r"), *SMALL])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "actors must be >= 1, got 0" in err[0]
    assert not (tmp_path / "r").exists()


def test_without_ray_the_error_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(DqnkitError, match=r"pip install 'dqnkit\[ray\]'"):
        require_ray()
    code = main(["train", "--distributed", "ray", "--out", str(tmp_path / "r"), *SMALL])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pip install 'dqnkit[ray]'" in err[0]


def test_unreachable_ray_address_fails_fast_with_one_line(capsys):
    assert split_address("10.0.0.5:6379") == ("10.0.0.5", 6379) and split_address("auto") is None
    t0 = time.monotonic()
    with pytest.raises(DqnkitError, match="cannot reach a Ray cluster at 127.0.0.1:9") as info:
        connect("127.0.0.1:9", timeout_s=30)
    assert time.monotonic() - t0 < 30 and "\n" not in str(info.value)


def test_train_then_resume_on_ray_from_the_cli(tmp_path, ray_session, capsys):
    run = tmp_path / "run"
    code = main(["train", "--distributed", "ray", "--actors", "2", "--sync", "--save-replay", "--steps", "500",
                 "--out", str(run), *SMALL])
    assert code == 0, capsys.readouterr().err
    cfg = Config.from_dict(__import__("yaml").safe_load((run / "config.yaml").read_text()))
    assert cfg.distributed == "ray" and cfg.actors == 2 and cfg.apex_sync
    assert main(["resume", str(run), "--steps", "800", "--quiet"]) == 0
    with open(run / "actors.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    steps = sorted({int(r["env_step"]) for r in rows})
    assert 500 in steps and steps[-1] >= 800  # the first run's last rows, then the resumed run's on Ray
    last = [r for r in rows if int(r["env_step"]) == steps[-1]]
    assert sum(int(r["env_steps"]) for r in last) == steps[-1]  # the actors' counters continued
    run_json = __import__("json").loads((run / "run.json").read_text())
    assert run_json["status"] == "finished" and run_json["env_step"] >= 800
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "2", "--json"]) == 0  # eval takes an Ape-X run folder unchanged
    assert __import__("json").loads(capsys.readouterr().out)["episodes"] == 2


def test_distributed_modules_do_not_import_ray_until_used():
    import subprocess
    code = ("import sys\nimport dqnkit.distributed.learner, dqnkit.distributed.fleet, dqnkit.cli\n"
            "assert 'ray' not in sys.modules, 'ray imported at module level'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_python_api_refuses_to_train_a_distributed_config_in_one_process():
    from dqnkit import DQN
    model = DQN("CartPole-v1", distributed="ray", actors=2, total_timesteps=300, eval_freq=0)
    with pytest.raises(ConfigError, match="dqnkit train --distributed ray"):
        model.learn()
    assert model.num_timesteps == 0

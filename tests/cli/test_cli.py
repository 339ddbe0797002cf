"""The CLI end to end, in subprocesses, on small budgets."""
import csv
import json
import re

import pytest

SMALL = ["--set", "learning_starts=200", "--set", "eval_freq=500", "--set", "eval_episodes=3",
         "--set", "train_freq=4", "--set", "gradient_steps=1", "--set", "buffer_size=5000"]


def rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_train_then_eval_cartpole(cli, tmp_path):
    run = tmp_path / "run"
    r = cli("train", "--env", "CartPole-v1", "--steps", "1000", "--seed", "3", "--out", run, "--quiet", *SMALL)
    assert r.returncode == 0, r.stderr
    for name in ["config.yaml", "episodes.csv", "updates.csv", "eval.csv", "run.json"]:
        assert (run / name).is_file(), name
    assert list(run.glob("events.out.tfevents.*")), "no TensorBoard events"
    assert (run / "checkpoints" / "index.json").is_file()
    assert [r["env_step"] for r in rows(run / "eval.csv")] == ["500", "1000"]
    assert set(rows(run / "episodes.csv")[0]) == {"env_step", "episode", "return", "length", "epsilon"}
    assert {"update", "loss", "mean_q", "td_abs_mean"} <= set(rows(run / "updates.csv")[0])
    r = cli("eval", run, "--episodes", "4", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["episodes"] == 4 and len(out["returns"]) == 4
    assert out["mean_return"] == pytest.approx(sum(out["returns"]) / 4)
    assert "std_return" in out


def test_presets_list_and_show(cli):
    r = cli("presets")
    assert r.returncode == 0 and "CartPole-v1" in r.stdout and "LunarLander-v3" in r.stdout
    r = cli("presets", "show", "CartPole-v1")
    assert r.returncode == 0 and "learning_rate" in r.stdout and "CartPole-v1:" in r.stdout


def test_python_dash_m_is_the_cli():
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "dqnkit", "presets"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "rainbow-LunarLander-v3" in r.stdout
    r = subprocess.run([sys.executable, "-m", "dqnkit", "train", "--set", "learnin_rate=1"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "did you mean 'learning_rate'" in r.stderr


def test_zoo_config_file_trains(cli, tmp_path):
    cfg = tmp_path / "dqn.yml"
    cfg.write_text("CartPole-v1:\n  n_timesteps: !!float 400\n  policy: 'MlpPolicy'\n  learning_starts: 100\n"
                   "  policy_kwargs: \"dict(net_arch=[32, 32])\"\n  eval_freq: 0\n  eval_episodes: 2\n")
    r = cli("train", "--config", cfg, "--out", tmp_path / "run", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "net_arch:\n  - 32\n  - 32" in (tmp_path / "run" / "config.yaml").read_text()


def _one_line_error(r, *fragments):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_bad_inputs_give_one_clear_line(cli, tmp_path):
    _one_line_error(cli("train", "--env", "Pendulum-v1", "--quiet"), "Pendulum-v1", "Discrete")
    _one_line_error(cli("train", "--env", "CartPol-v1", "--quiet"), "CartPol-v1", "CartPole-v1")
    _one_line_error(cli("train", "--set", "learnin_rate=0.1", "--quiet"), "learnin_rate", "learning_rate")
    _one_line_error(cli("train", "--set", "learning_rate=-1", "--quiet"), "learning_rate", "positive")
    _one_line_error(cli("train", "--set", "batch_size=64", "--set", "buffer_size=10", "--quiet"),
                    "batch_size", "buffer_size")
    _one_line_error(cli("train", "--set", "batch_size=abc", "--quiet"), "batch_size", "int")
    _one_line_error(cli("eval", tmp_path / "nope"), "does not exist")
    _one_line_error(cli("resume", tmp_path / "nope"), "not a dqnkit run folder")


def test_debug_shows_traceback(cli):
    r = cli("--debug", "train", "--env", "Pendulum-v1", "--quiet")
    assert r.returncode != 0 and "Traceback" in r.stderr


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from tests.conftest import run_cli
    run = tmp_path_factory.mktemp("tiny") / "run"
    r = run_cli("train", "--steps", "600", "--out", run, "--quiet", *SMALL)
    assert r.returncode == 0, r.stderr
    return run


def test_checkpoint_from_another_env_is_rejected(cli, tiny_run, tmp_path):
    from dqnkit.api import DQN
    from dqnkit.errors import CheckpointError
    with pytest.raises(CheckpointError, match="trained on CartPole-v1"):
        DQN.load(tiny_run, env="Acrobot-v1")


def test_corrupt_and_truncated_checkpoints(cli, tiny_run, tmp_path):
    import shutil
    ckpt = sorted((tiny_run / "checkpoints").glob("step_*"))[-1]
    bad = tmp_path / "bad"
    shutil.copytree(ckpt, bad)
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    _one_line_error(cli("eval", bad), "corrupt or truncated", "model.safetensors")
    bad2 = tmp_path / "bad2"
    shutil.copytree(ckpt, bad2)
    (bad2 / "state.json").write_text("{not json")
    _one_line_error(cli("eval", bad2), "corrupt", "state.json")
    bad3 = tmp_path / "bad3"
    shutil.copytree(ckpt, bad3)
    (bad3 / "model.safetensors").write_bytes(b"\x00" * 8 + b"garbage")
    _one_line_error(cli("eval", bad3), "model.safetensors")


def test_existing_run_folder_is_not_overwritten(cli, tiny_run):
    _one_line_error(cli("train", "--out", tiny_run, "--quiet"), "already holds a run", "dqnkit resume")


def test_tabular_cli_solves_gridworld(cli, tmp_path):
    r = cli("tabular", "--env", "GridWorld-v0", "--episodes", "400", "--out", tmp_path / "tab")
    assert r.returncode == 0, r.stderr
    assert "greedy mean return 3.00" in r.stdout
    r = cli("eval", tmp_path / "tab", "--json", "--episodes", "3")
    assert json.loads(r.stdout)["mean_return"] == pytest.approx(3.0)
    r = cli("eval", tmp_path / "tab" / "qtable.safetensors", "--json", "--episodes", "1")  # a file: its folder
    assert json.loads(r.stdout)["checkpoint"] == str(tmp_path / "tab"), r.stderr


def test_tabular_cli_frozenlake_not_slippery(cli, tmp_path):
    r = cli("tabular", "--env", "FrozenLake-v1", "--env-kwarg", "is_slippery=false", "--episodes", "1500",
            "--out", tmp_path / "fl")
    assert r.returncode == 0, r.stderr
    assert "greedy mean return 1.00" in r.stdout


def test_debug_works_after_the_subcommand_too(cli, tmp_path):
    for args in (("train", "--env", "Pendulum-v1", "--quiet", "--debug"), ("eval", tmp_path / "nope", "--debug")):
        r = cli(*args)
        assert r.returncode != 0 and "Traceback" in r.stderr, r.stderr
    assert "--debug" in cli("train", "--help").stdout


def test_presets_list_gives_the_steps_as_the_configs_integers(cli):
    from dqnkit.presets import list_presets, load_preset
    from dqnkit.presets.zoo import config_from_zoo
    r = cli("presets")
    assert r.returncode == 0, r.stderr
    listed = dict(line.split()[0:1] + [line.rsplit("steps=", 1)[1]] for line in r.stdout.splitlines())
    assert listed == {name: str(config_from_zoo(load_preset(name)).total_timesteps) for name in list_presets()}
    assert listed["CartPole-v1"] == "50000"  # the zoo file writes !!float 5e4
    # the words a newcomer reads name tutorials and papers, not the project's internal seed notebooks
    texts = [cli("--help").stdout, cli("presets", "show", "GridWorld-v0").stdout]
    assert not any(re.search(r"seeds?\W+0\d\d|seeds' ", text) for text in texts), texts


def test_eval_says_which_checkpoint_it_uses(cli, tiny_run):
    text = cli("eval", "--help").stdout
    assert "latest checkpoint" in " ".join(text.split()) and "--which best" in " ".join(text.split())
    assert "latest checkpoint" in " ".join(cli("--help").stdout.split())
    r = cli("eval", tiny_run, "--episodes", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"checkpoint: {tiny_run / 'checkpoints' / 'step_0000000600'}"
    r = cli("eval", tiny_run, "--episodes", "1", "--which", "best", "--json")
    assert json.loads(r.stdout)["checkpoint"] == str(tiny_run / "checkpoints" / "best")


def test_compare_group_by_has_help(cli):
    text = " ".join(cli("compare", "--help").stdout.split())
    assert "--group-by KEY one group per value of this config key" in text
    assert "comparison/ beside the runs" in text


def test_eval_names_the_runs_eval_epsilon_when_it_uses_it(cli, tmp_path):
    run = tmp_path / "run"
    r = cli("train", "--steps", "600", "--out", run, "--quiet", "--set", "eval_epsilon=0.05", *SMALL)
    assert r.returncode == 0, r.stderr
    r = cli("eval", run, "--episodes", "2")
    assert r.returncode == 0, r.stderr
    assert "2 epsilon-greedy (0.05) episodes" in r.stdout, r.stdout
    assert "2 greedy episodes" in cli("eval", run, "--episodes", "2", "--epsilon", "0").stdout

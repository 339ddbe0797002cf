"""Atari through the CLI: the smoke preset trains Pong from pixels, checkpoints and evaluates."""
import csv
import json



def test_pong_smoke_run_checkpoints_and_evaluates(cli, tmp_path):
    run = tmp_path / "pong"
    # the smoke preset at 1,200 of its 3,000 steps (CI time): still two evaluations (each one episode cut at
    # 1,000 frames, 250 agent steps), a checkpoint and 175 updates of the Nature CNN
    r = cli("train", "--preset", "atari-cpu-smoke", "--steps", "1200", "--set", "eval_freq=600",
            "--set", "checkpoint_freq=600", "--set", "max_episode_frames=1000",
            "--set", "torch_threads=1", "--out", run, "--quiet")  # one thread: the other xdist worker holds a core
    assert r.returncode == 0, r.stderr
    evals = list(csv.DictReader(open(run / "eval.csv")))
    assert [e["env_step"] for e in evals] == ["600", "1200"]
    assert json.loads((run / "run.json").read_text())["updates"] == (1200 - 500) // 4  # train_freq 4 after 500
    assert list((run / "checkpoints").glob("step_*"))
    cfg = (run / "config.yaml").read_text()
    assert "frame_stack: 4" in cfg and "torso: nature_cnn" in cfg
    r = cli("eval", run, "--episodes", "1", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["episodes"] == 1 and -21 <= out["mean_return"] <= 21


def test_ale_env_id_gets_the_nature_preset():
    import argparse

    from dqnkit.cli.training import build_config
    args = argparse.Namespace(preset=None, config=None, env="ALE/Breakout-v5", set=[], seed=None, steps=None,
                              num_envs=None, save_replay=False)
    cfg = build_config(args)
    assert cfg.env_id == "ALE/Breakout-v5" and cfg.frame_stack == 4 and cfg.torso == "nature_cnn"

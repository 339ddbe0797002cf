"""What a newcomer passes to DQN.load and `dqnkit eval`, and the modes of the files a run writes."""
import os
import stat

import numpy as np
import pytest

from dqnkit.api import DQN
from dqnkit.config import Config
from dqnkit.errors import CheckpointError
from dqnkit.training.trainer import Trainer

TINY = dict(total_timesteps=400, learning_starts=100, train_freq=4, gradient_steps=1, batch_size=32,
            buffer_size=2000, eval_freq=200, eval_episodes=2, checkpoint_freq=200, seed=3,
            policy_kwargs={"net_arch": [16, 16]}, tensorboard=False)
OBS = np.array([0.01, -0.02, 0.03, 0.04], dtype=np.float32)


def train_run(run_dir, **extra):
    trainer = Trainer(Config.from_dict({**TINY, **extra}), run_dir, verbosity="quiet")
    trainer.learn()
    trainer.close()
    return run_dir


def test_a_file_inside_a_model_folder_means_the_folder(tmp_path, cli):
    run = train_run(tmp_path / "run")
    best = run / "checkpoints" / "best"
    assert np.array_equal(DQN.load(best / "model.safetensors").q_values(OBS), DQN.load(run, which="best").q_values(OBS))
    model = DQN.load(run)
    saved = model.save(tmp_path / "cartpole-model")
    assert np.array_equal(DQN.load(saved / "model.safetensors").q_values(OBS), model.q_values(OBS))
    assert np.array_equal(DQN.load(run / "config.yaml").q_values(OBS), model.q_values(OBS))  # the run folder
    r = cli("eval", best / "model.safetensors", "--episodes", "2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"checkpoint: {best}"


def test_a_folder_without_a_model_names_the_folders_that_have_one(tmp_path, cli):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    for path in (empty, empty / "notes.txt", tmp_path / "missing"):
        with pytest.raises(CheckpointError) as err:
            DQN.load(path)
        message = str(err.value)
        assert "`dqnkit train`" in message and "checkpoints/step_*" in message and "model.save" in message, message
    r = cli("eval", empty)
    assert r.returncode == 2 and "model.save" in r.stderr and "Traceback" not in r.stderr


def _modes(root, prefix=""):
    """{relative name: (mode, is a folder)} of ``root`` and everything under it."""
    return {prefix + str(p.relative_to(root)): (stat.S_IMODE(p.stat().st_mode), p.is_dir())
            for p in [root, *root.rglob("*")]}


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_every_file_follows_the_umask(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        run = train_run(tmp_path / "run", save_replay=True)
        saved = DQN.load(run).save(tmp_path / "saved")
    finally:
        os.umask(old)
    modes = {**_modes(run), **_modes(saved, "saved/")}
    for name in ("model.safetensors", "state.json", "replay.safetensors"):
        assert f"checkpoints/step_0000000400/{name}" in modes, name
    assert {"run.json", "config.yaml", "checkpoints/index.json", "saved/model.safetensors"} <= set(modes)
    wrong = {name: oct(mode) for name, (mode, is_dir) in modes.items() if mode != (dir_mode if is_dir else file_mode)}
    assert not wrong, wrong

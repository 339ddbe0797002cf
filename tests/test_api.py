"""The Python API as a newcomer meets it: bad observations, the run folder, what evaluate returns, progress."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dqnkit.api import DQN
from dqnkit.errors import DqnkitError, EnvError

REPO = Path(__file__).resolve().parents[1]
TINY = dict(total_timesteps=300, learning_starts=100, train_freq=4, gradient_steps=1, batch_size=32,
            buffer_size=1000, eval_freq=0, eval_episodes=1, policy_kwargs={"net_arch": [16, 16]}, tensorboard=False)


def test_an_observation_of_the_wrong_shape_names_the_expected_one():
    model = DQN("CartPole-v1", **TINY)
    with pytest.raises(EnvError, match=re.escape("shape (3,) does not fit CartPole-v1: pass one observation of "
                                                 "shape (4,) or a batch of shape (B, 4)")):
        model.predict(np.zeros(3))
    with pytest.raises(EnvError, match=re.escape("shape (2, 3)")):
        model.q_values(np.zeros((2, 3)))
    assert model.predict(np.zeros((5, 4))).shape == (5,)  # a batch still works
    grid = DQN("GridWorld-v0", **TINY)
    with pytest.raises(EnvError, match="state 25 is outside GridWorld-v0's observation space Discrete\\(25\\); "
                                       "pass a state index from 0 to 24"):
        grid.predict(25)
    assert grid.q_values(np.arange(25)).shape == (25, 4)


def test_a_run_dir_is_an_attribute_and_gets_plots_and_a_report(tmp_path):
    assert DQN("CartPole-v1", **TINY).run_dir is None
    with pytest.raises(DqnkitError, match="run_dir="):
        DQN("CartPole-v1", **TINY).write_report()
    model = DQN("GridWorld-v0", run_dir=tmp_path / "grid", **TINY)
    assert model.run_dir == tmp_path / "grid"
    model.learn()
    assert {"return.png", "eval_return.png", "policy.png"} <= {p.name for p in (tmp_path / "grid" / "plots").glob("*.png")}
    page = (tmp_path / "grid" / "report.html").read_text()
    assert "Greedy policy of DQN - GridWorld-v0" in page and "data:image/png;base64," in page


def test_evaluate_documents_every_key_it_returns():
    result = DQN("CartPole-v1", **TINY).evaluate(2)
    assert set(result) == {"mean_return", "std_return", "episodes", "returns", "lengths", "mean_length"}
    assert result["mean_length"] == pytest.approx(np.mean(result["lengths"]))
    readme_line = next(line for line in (REPO / "README.md").read_text().splitlines() if "model.evaluate(" in line)
    for key in result:
        assert f"``{key}``" in DQN.evaluate.__doc__, key
        assert f'"{key}"' in readme_line, key


LEARN = f"""
from dqnkit import DQN
DQN("CartPole-v1", **{TINY!r}).learn()
"""


def _in_a_terminal(code):
    """stdout of ``python -c code`` run on a pseudo-terminal (stdout.isatty() is True there)."""
    import pty
    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    return b"".join(chunks).decode(errors="replace")


def test_learn_shows_a_progress_bar_in_a_terminal_and_nothing_elsewhere(capsys):
    shown = _in_a_terminal(LEARN + 'print("-- verbose=0:")\nDQN("CartPole-v1", verbose=0, **' + repr(TINY) + ').learn()')
    bar, quiet = shown.split("-- verbose=0:")
    assert "train" in bar and "300/300" in bar, bar  # rich's bar, ending full
    assert quiet.strip() == "", quiet
    DQN("CartPole-v1", **TINY).learn()  # under pytest stdout is a pipe, not a terminal
    assert capsys.readouterr().out == ""
    DQN("CartPole-v1", verbose=1, **TINY).learn()
    assert "env_step 300/300" in capsys.readouterr().out


def test_learn_in_a_jupyter_kernel_updates_a_bar_in_place():
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", env={**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"})
    try:
        msg_id = kc.execute(LEARN)
        shown, updates = [], []
        while True:
            msg = kc.get_iopub_msg(timeout=300)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "error":
                pytest.fail("\n".join(content["traceback"]))
            if kind == "display_data":
                shown.append(content["data"]["text/plain"])
            if kind == "update_display_data":
                updates.append(content["data"]["text/plain"])
            if kind == "status" and content["execution_state"] == "idle":
                break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert len(shown) == 1 and shown[0].startswith("train [") and "0/300" in shown[0], shown
    assert updates and updates[-1].startswith("train [" + "#" * 30 + "] 300/300"), updates

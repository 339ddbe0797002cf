"""dqnkit play: the agent in a window. Under Xvfb (started here; the test fails if it is missing), a screenshot
taken while `dqnkit play` runs shows the env's picture; without a display, one line suggests `dqnkit record`."""
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dqnkit import DQN
from dqnkit.deploy.play import play
from dqnkit.errors import DqnkitError

REPO = Path(__file__).resolve().parents[2]
TINY = dict(total_timesteps=300, learning_starts=100, batch_size=32, buffer_size=1000, eval_freq=0, eval_episodes=1,
            tensorboard=False, verbose=0)
INSTALL = "install xvfb and x11-apps (Debian: apt-get install xvfb x11-apps) to run the live-play test"


@pytest.fixture
def xvfb():
    """A private X server; yields its DISPLAY (':N')."""
    assert shutil.which("Xvfb"), f"Xvfb not found: {INSTALL}"
    assert shutil.which("xwd"), f"xwd not found: {INSTALL}"
    number = next(n for n in range(90, 300) if not Path(f"/tmp/.X{n}-lock").exists()
                  and not Path(f"/tmp/.X11-unix/X{n}").exists())
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            assert server.poll() is None and time.monotonic() < deadline, f"Xvfb :{number} did not start"
            time.sleep(0.1)
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(10)


def screenshot(display: str) -> np.ndarray:
    """The root window of ``display`` as an (H, W, bytes per pixel) array, read from xwd's XWD format."""
    data = subprocess.run(["xwd", "-root", "-silent", "-display", display], capture_output=True, check=True,
                          timeout=20).stdout
    header = struct.unpack(">25I", data[:100])
    header_size, width, height, bits_per_pixel, bytes_per_line, n_colors = (header[0], header[4], header[5],
                                                                             header[11], header[12], header[19])
    start = header_size + 12 * n_colors
    rows = np.frombuffer(data[start:start + height * bytes_per_line], dtype=np.uint8).reshape(height, bytes_per_line)
    return rows[:, :width * bits_per_pixel // 8].reshape(height, width, bits_per_pixel // 8)


def test_play_shows_the_env_in_a_window_and_prints_each_return(xvfb, tmp_path):
    run = tmp_path / "mc"
    DQN("MountainCar-v0", run_dir=run, **TINY).learn()  # an untrained car: 200 steps, about 7 s at 30 fps
    blank = screenshot(xvfb)
    assert len(np.unique(blank.reshape(-1, blank.shape[2]), axis=0)) == 1  # the empty screen is one colour
    env = {**os.environ, "DISPLAY": xvfb, "PYTHONPATH": str(REPO), "SDL_AUDIODRIVER": "dummy"}
    proc = subprocess.Popen([sys.executable, "-m", "dqnkit.cli", "play", str(run), "--episodes", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    picture = None
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        shot = screenshot(xvfb)
        drawn = (shot[..., :3] != blank[0, 0, :3]).any(axis=-1)
        if drawn.mean() > 0.2 and len(np.unique(shot.reshape(-1, shot.shape[2]), axis=0)) > 2:
            picture = shot
            break
        time.sleep(0.2)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert picture is not None, "no window with a picture appeared on the X display while `dqnkit play` ran"
    assert "episode 1: return -200.00 (200 steps)" in out


def test_play_without_a_display_suggests_record(tmp_path, cli, monkeypatch):
    run = tmp_path / "cp"
    DQN("CartPole-v1", run_dir=run, **TINY).learn()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, "-m", "dqnkit.cli", "play", str(run)], capture_output=True, text=True,
                            env={**env, "PYTHONPATH": str(REPO)}, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line
    assert "no display" in result.stderr and "dqnkit record RUN" in result.stderr
    monkeypatch.setenv("DISPLAY", ":12345")  # a display is set, but GridWorld-v0 draws no window
    with pytest.raises(DqnkitError, match="GridWorld-v0 does not draw itself in a window .* use `dqnkit record RUN`"):
        play(DQN("GridWorld-v0", **TINY))

"""Recording videos: quiet on the first recording, one frame per step, and an extra that leaves Pillow alone."""
import importlib.metadata
import logging
import tomllib
import warnings
from pathlib import Path

import gymnasium as gym
import imageio
import numpy as np
from packaging.requirements import Requirement

from dqnkit.training.video import record_episodes

REPO = Path(__file__).resolve().parents[2]


def make_cartpole(render_mode=None):
    return gym.make("CartPole-v1", render_mode=render_mode)


def always_right(obs):
    return np.array([0.0, 1.0])


def test_recordings_into_one_folder_warn_about_nothing(tmp_path, caplog):
    env = make_cartpole()
    env.reset(seed=5)
    steps, done = 0, False
    while not done:
        _, _, term, trunc, _ = env.step(1)
        steps, done = steps + 1, term or trunc
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("error")  # Gymnasium's "Overwriting existing videos" was a warning
        first = record_episodes(always_right, make_cartpole, tmp_path / "videos", prefix="step_0000001000", seed=5)
        second = record_episodes(always_right, make_cartpole, tmp_path / "videos", prefix="step_0000002000", seed=5,
                                 gif=False)
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    assert [p.name for p in first] == ["step_0000001000-episode-0.mp4", "step_0000001000.gif"]
    assert [p.name for p in second] == ["step_0000002000-episode-0.mp4"]
    reader = imageio.get_reader(str(first[0]))
    assert reader.count_frames() == steps + 1  # the reset frame and one per step
    assert reader.get_meta_data()["fps"] == make_cartpole().metadata["render_fps"]


def _requirements(name, extras=()):
    reqs = [Requirement(r) for r in importlib.metadata.requires(name) or []]
    return [r for r in reqs if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in ("", *extras))]


def test_the_video_extra_puts_no_upper_bound_on_pillow():
    """Installing dqnkit[video] beside a newer Pillow must not downgrade it (moviepy 2 capped it below 12)."""
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["video"]
    seen, todo, pillow = set(), [Requirement(r) for r in extra], []
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name == "pillow":
            pillow.append(str(req))
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += _requirements(req.name, tuple(req.extras))
        except importlib.metadata.PackageNotFoundError:
            pass  # not installed here: nothing of it to check
    assert {"imageio", "imageio-ffmpeg"} <= seen and "moviepy" not in seen
    assert pillow, "imageio needs Pillow; the walk should have met it"
    capped = [r for r in pillow if any(s.operator in ("<", "<=", "==", "~=", "===") for s in Requirement(r).specifier)]
    assert not capped, capped

"""Videos of an agent: MP4 via Gymnasium's RecordVideo (moviepy), plus a GIF for READMEs (imageio).

Both libraries are optional (``pip install "dqnkit[video]"``) and imported only here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dqnkit.errors import DqnkitError


def _require_video() -> None:
    try:
        import imageio  # noqa: F401
        import moviepy  # noqa: F401
    except ImportError as exc:
        raise DqnkitError(f"recording videos needs {exc.name}; install it with: pip install \"dqnkit[video]\"") from None


def record_run(run: Path, *, episodes: int = 1, epsilon: float = 0.0, out_dir: str | Path | None = None,
               seed: int = 0, gif: bool = True, max_gif_frames: int = 400) -> list[Path]:
    """Record ``episodes`` episodes of the run's (or checkpoint's) agent acting epsilon-greedily."""
    _require_video()
    import os
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # render off-screen: no display needed
    import gymnasium as gym
    import imageio

    from dqnkit.api import DQN

    model = DQN.load(run)
    out = Path(out_dir) if out_dir else Path(run) / "videos"
    out.mkdir(parents=True, exist_ok=True)
    env = model.trainer.make_eval_env(render_mode="rgb_array")
    prefix = "agent"
    env = gym.wrappers.RecordVideo(env, str(out), episode_trigger=lambda _: True, name_prefix=prefix,
                                   disable_logger=True)
    rng = np.random.default_rng(seed)
    frames: list[np.ndarray] = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done = False
        while not done:
            if ep == 0 and gif and len(frames) < max_gif_frames:
                frames.append(env.env.render())  # the inner env's frame; RecordVideo keeps its own
            q = model.q_values(obs)
            action = int(rng.integers(len(q))) if rng.random() < epsilon else int(np.argmax(q))
            obs, _, term, trunc, _ = env.step(action)
            done = term or trunc
    env.close()
    paths = sorted(out.glob(f"{prefix}-episode-*.mp4"))
    if gif and frames:
        gif_path = out / f"{prefix}.gif"
        imageio.mimsave(gif_path, frames[::2], duration=1 / 25, loop=0)
        paths.append(gif_path)
    model.close()
    return paths

"""Videos of an agent: MP4 via Gymnasium's RecordVideo (moviepy), plus a GIF for READMEs (imageio).

Both libraries are optional (``pip install "dqnkit[video]"``) and imported only here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from dqnkit.errors import DqnkitError
from dqnkit.learner.explore import epsilon_greedy


def require_video() -> None:
    try:
        import imageio  # noqa: F401
        import moviepy  # noqa: F401
    except ImportError as exc:
        raise DqnkitError(f"recording videos needs {exc.name}; install it with: pip install \"dqnkit[video]\"") from None


def record_episodes(q_values: Callable[[np.ndarray], np.ndarray], make_env: Callable[..., object], out_dir: Path, *,
                    prefix: str = "agent", episodes: int = 1, epsilon: float = 0.0, seed: int = 0, gif: bool = True,
                    max_gif_frames: int = 400) -> list[Path]:
    """Play ``episodes`` epsilon-greedy episodes; write ``{prefix}-episode-K.mp4`` (and ``{prefix}.gif``)."""
    require_video()
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # render off-screen: no display needed
    import gymnasium as gym
    import imageio

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = make_env(render_mode="rgb_array")
    env = gym.wrappers.RecordVideo(base, str(out_dir), episode_trigger=lambda _: True, name_prefix=prefix,
                                   disable_logger=True)
    rng = np.random.default_rng(seed)
    n_actions = int(base.action_space.n)
    frames: list[np.ndarray] = []
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            if ep == 0 and gif:
                frames.append(base.render())
            done = False
            while not done:
                greedy = np.array([int(np.argmax(q_values(obs)))])
                action = int(epsilon_greedy(greedy, epsilon, n_actions, rng)[0])
                obs, _, term, trunc, _ = env.step(action)
                done = term or trunc
                if ep == 0 and gif and len(frames) < max_gif_frames:
                    frames.append(base.render())
    finally:
        env.close()
    paths = [out_dir / f"{prefix}-episode-{ep}.mp4" for ep in range(episodes)]
    if gif and frames:
        gif_path = out_dir / f"{prefix}.gif"
        imageio.mimsave(gif_path, frames[::2] if len(frames) > 200 else frames, duration=1 / 25, loop=0)
        paths.append(gif_path)
    return [p for p in paths if p.is_file()]

"""Videos of an agent: one MP4 per episode (H.264 through imageio-ffmpeg) plus a GIF for READMEs (imageio).

Both are optional (``pip install "dqnkit[video]"``) and imported only here. Frames come from the env's
``rgb_array`` render: the reset frame, then one per step, at the env's ``render_fps`` (30 when it has none).
imageio-ffmpeg ships its own ffmpeg binary, and neither library pins Pillow (moviepy, which Gymnasium's
RecordVideo needs, caps it below 12).
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
        import imageio_ffmpeg  # noqa: F401
    except ImportError as exc:
        raise DqnkitError(f"recording videos needs {exc.name}; install it with: pip install \"dqnkit[video]\"") from None


def record_episodes(q_values: Callable[[np.ndarray], np.ndarray], make_env: Callable[..., object], out_dir: Path, *,
                    prefix: str = "agent", episodes: int = 1, epsilon: float = 0.0, seed: int = 0, gif: bool = True,
                    max_gif_frames: int = 400) -> list[Path]:
    """Play ``episodes`` epsilon-greedy episodes; write ``{prefix}-episode-K.mp4`` (and ``{prefix}.gif``)."""
    require_video()
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # render off-screen: no display needed
    import imageio

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = make_env(render_mode="rgb_array")
    fps = int(env.metadata.get("render_fps") or 30)
    rng = np.random.default_rng(seed)
    n_actions = int(env.action_space.n)
    frames: list[np.ndarray] = []
    paths = []
    try:
        for ep in range(episodes):
            path = out_dir / f"{prefix}-episode-{ep}.mp4"
            # macro_block_size 2: H.264 in yuv420p needs even sides (an odd side is scaled up by one pixel)
            with imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=2,
                                    ffmpeg_log_level="error") as writer:
                obs, _ = env.reset(seed=seed + ep)
                done = False
                while True:
                    frame = env.render()
                    writer.append_data(frame)
                    if ep == 0 and gif and len(frames) < max_gif_frames:
                        frames.append(frame)
                    if done:
                        break
                    greedy = np.array([int(np.argmax(q_values(obs)))])
                    action = int(epsilon_greedy(greedy, epsilon, n_actions, rng)[0])
                    obs, _, term, trunc, _ = env.step(action)
                    done = term or trunc
            paths.append(path)
    finally:
        env.close()
    if gif and frames:
        gif_path = out_dir / f"{prefix}.gif"
        imageio.mimsave(gif_path, frames[::2] if len(frames) > 200 else frames, duration=1 / 25, loop=0)
        paths.append(gif_path)
    return [p for p in paths if p.is_file()]

"""``dqnkit play RUN``: watch the (epsilon-)greedy agent live in a window (keras-rl's ``test(visualize=True)``).

The env is the evaluation env of the run (Atari: unclipped score, lives not terminal), made with
``render_mode="human"``, so the env draws itself at its own ``render_fps``. Each episode's return is printed.
Without a display (no ``DISPLAY`` on Linux) there is no window to open: ``dqnkit record`` writes videos instead.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable

import numpy as np

from dqnkit.errors import DqnkitError
from dqnkit.learner.explore import epsilon_greedy

PLAY_SEED = 3_000_000  # episode i resets with seed PLAY_SEED + i unless a seed is given


def require_display() -> None:
    """One line suggesting ``dqnkit record`` where no window can be opened."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise DqnkitError("no display to open a window on (DISPLAY is not set); record the agent instead with "
                          "`dqnkit record RUN` (MP4/GIF), or run under a desktop session or xvfb-run")


def play(model: Any, episodes: int = 1, *, epsilon: float = 0.0, seed: int | None = None,
         say: Callable[[str], None] = print, after_step: Callable[[int, int], None] | None = None) -> list[float]:
    """Play ``episodes`` episodes of ``model`` (a :class:`dqnkit.DQN`) in a window, acting epsilon-greedily with
    ``epsilon`` (0 = greedy); returns the episode returns. ``after_step(episode, step)`` runs after each step."""
    if int(episodes) < 1:
        raise DqnkitError(f"--episodes {episodes} must be at least 1")
    if not 0.0 <= float(epsilon) <= 1.0:
        raise DqnkitError(f"--epsilon {epsilon} must be in [0, 1]")
    require_display()
    probe = model.make_eval_env()
    modes = list(probe.metadata.get("render_modes", []))
    probe.close()
    if "human" not in modes:
        raise DqnkitError(f"{model.config.env_id} does not draw itself in a window (its render modes: "
                          f"{', '.join(modes) or 'none'}); use `dqnkit record RUN` for a video")
    first = PLAY_SEED if seed is None else int(seed)
    rng = np.random.default_rng(first)
    env = model.make_eval_env(render_mode="human")
    returns: list[float] = []
    try:
        for episode in range(int(episodes)):
            obs, _ = env.reset(seed=first + episode)
            total, steps, done = 0.0, 0, False
            while not done:
                greedy = np.atleast_1d(np.argmax(model.q_values(obs), axis=-1))
                action = int(epsilon_greedy(greedy, float(epsilon), env.action_space.n, rng)[0])
                obs, reward, terminated, truncated, _ = env.step(action)
                total, steps, done = total + float(reward), steps + 1, bool(terminated or truncated)
                if after_step is not None:
                    after_step(episode, steps)
            returns.append(total)
            say(f"episode {episode + 1}: return {total:.2f} ({steps} steps)")
    finally:
        env.close()
    if len(returns) > 1:
        say(f"{len(returns)} episodes: mean return {np.mean(returns):.2f} +/- {np.std(returns):.2f}")
    return returns

"""Atari 2600 from pixels: the preprocessing of Mnih et al. (2015), option by option.

:func:`make_atari_env` builds ``gym.make(env_id, frameskip=1, ...)`` from ale-py and wraps it, inner
to outer, in

1. :class:`AtariFramePreprocessing`: no-op reset (1..``noop_max`` no-ops), sticky actions, frame skip
   with a max over the last two emulated frames, grayscale, ``screen_size`` x ``screen_size`` (Mnih
   et al. 2015, Methods, "Preprocessing" and Extended Data Table 1: "no-op max 30", "action repeat 4";
   sticky actions from Machado et al. 2018);
2. :class:`FireReset`: press FIRE (then action 2) after every reset in games whose second action is
   FIRE (OpenAI Baselines' ``FireResetEnv``, also in Stable-Baselines3 and CleanRL);
3. :class:`LifeLossSignal`: ``info["life_loss"]`` on the step a life is lost, a learning signal only,
   the episode goes on (Mnih et al. 2015 made a lost life terminal for learning; Machado et al. 2018,
   Sec. 5, recommend against it, so it is an option, ``terminal_on_life_loss``);
4. :class:`ClipReward`: the returned reward is ``sign(r)``; ``info["raw_reward"]`` keeps ``r``
   (Mnih et al. 2015, Methods, "Training details");
5. ``gymnasium.wrappers.FrameStackObservation(k, padding_type="zero")``: observations ``(k, H, W)``
   uint8, the newest frame last, zeros before the first frame of an episode.

Sticky actions (``repeat_action_probability``, ALE v5's default 0.25) and the episode cap in emulator
frames (``max_num_frames_per_episode``, 108,000 = 30 minutes) follow Machado et al. (2018), *Revisiting
the Arcade Learning Environment*, JAIR 61, Sec. 5.2 and Table 9; ALE reports the cap as ``truncated``.

What the trainer sees per step: ``terminated`` = game over, ``truncated`` = frame cap (the true final
observation is in the vector env's ``final_obs``), ``info["life_loss"]`` (always present; False when
``terminal_on_life_loss`` is off or ``evaluation=True``), ``info["raw_reward"]`` (the unclipped reward;
the reported episode return is its sum over the whole game, all lives). A learner that treats a lost
life as terminal sets ``terminated = terminated | life_loss`` for the replay buffer and passes
``episode_end = terminated | truncated`` (game over or cap) so that frame stacks are rebuilt correctly.

Deviations from ``gymnasium.wrappers.AtariPreprocessing`` (why :class:`AtariFramePreprocessing` is our
own): when an episode ends in the middle of a frame skip, gymnasium's wrapper returns a stale
max-pool (it grabs screens only on the last two sub-steps); ours always pools the last two frames
actually emulated, so the final observation of a *truncated* episode, which the learner bootstraps
from, is exact. It also applies sticky actions (next paragraph) and reports ``info["noops"]``.

Exact resume: ALE draws sticky actions from its own C++ RNG, seeded only by ``reset(seed=...)``, which
also reloads the ROM (about 90 ms). :class:`AtariFramePreprocessing` therefore applies sticky actions
itself, per emulator frame as ALE does, drawing from the env's ``np_random``; the ALE env is built
with ``repeat_action_probability=0`` and is then deterministic given the actions (checked: two seeds,
same actions, same frames). An episode is thus a function of (``np_random`` state at reset, actions),
which is what ``dqnkit.envs.recorder.EpisodeRecorder`` re-simulates.

ale-py's vector env (``ale_py.vector_env.AtariVectorEnv``, C++ threads), measured with ale-py 0.12.1
on 2 shared CPU cores, Pong, sticky actions 0.25, random actions, no learning: 2,731 / 4,056 / 6,082
env-steps/s for 1 / 2 / 4 envs against 2,275 / 2,356 / 2,285 for ``SyncVectorEnv`` of
:func:`make_atari_env` (a second run: 2,591 / 5,068 / 6,026 against 2,257 / 2,317 / 2,279), so clearly
faster from 2 envs. Its step semantics can be matched: ``autoreset_mode="SameStep"`` gives the reset observation
plus ``info["final_obs"]`` (an ``(N, k, H, W)`` array; checked equal to the true final stack, truncation
included), ``reward_clipping=False`` leaves raw rewards, ``info["lives"]`` allows a life-loss signal,
episodes start zero-padded, frames are resized with ``INTER_AREA`` (a reset frame matched ours pixel
for pixel) and the frame cap counts emulator frames. dqnkit nevertheless does not use it (no ``make_atari_vector_env``):

- it exposes no per-env state (``ALEVectorInterface`` has only reset/send/recv), so a run cannot be
  snapshotted and resumed exactly, which dqnkit's checkpoints promise;
- its RNG streams (no-ops, sticky actions) differ from the single-env pipeline used for evaluation
  and recording, so a seed does not name the same episodes in both;
- on a game-over or truncation step it reports the *next* episode's lives (no ``final_info``), so
  the life-loss flag of that step cannot be recovered.
A trainer that gives up exact resume could wrap it (a ``VectorWrapper`` adding ``raw_reward``,
``sign`` clipping and a ``lives`` difference) for 1.7x to 2.7x the env throughput at 2 to 4 envs.
"""
from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dqnkit.errors import ConfigError, EnvError

__all__ = [
    "AtariFramePreprocessing",
    "ClipReward",
    "FireReset",
    "LifeLossSignal",
    "is_atari",
    "make_atari_env",
    "register_ale",
]

_INSTALL = 'pip install "dqnkit[atari]"'


def register_ale() -> None:
    """Import ale-py and register its envs with Gymnasium (idempotent); EnvError if not installed."""
    try:
        import ale_py  # noqa: PLC0415
    except ImportError as exc:
        raise EnvError(f"Atari envs (ALE/...) need ale-py, which is not installed; {_INSTALL}.") from exc
    gym.register_envs(ale_py)


def is_atari(env_id: str) -> bool:
    """True for ``ALE/...`` ids and for ids whose registered entry point is in ale-py (``PongNoFrameskip-v4``)."""
    if not isinstance(env_id, str):
        return False
    if env_id.startswith("ALE/"):
        return True
    if env_id not in gym.registry:
        try:
            register_ale()
        except EnvError:
            return False
    spec = gym.registry.get(env_id)
    if spec is None:
        return False
    entry = spec.entry_point if isinstance(spec.entry_point, str) else getattr(spec.entry_point, "__module__", "")
    return str(entry).startswith("ale_py")


# ----------------------------------------------------------------------- wrappers
class AtariFramePreprocessing(gym.Wrapper):
    """No-op reset, sticky actions, frame skip with max-pooling, grayscale, resize.

    Protocol (Mnih et al. 2015, Methods; sticky actions: Machado et al. 2018, Sec. 5.2):
    - ``reset``: reset the game, then take ``n ~ U{1, noop_max}`` NOOP actions (one emulator frame
      each; ``n = 0`` when ``noop_max = 0``) drawn from the env's ``np_random``, so a seeded reset
      repeats them; the game is reset again if it ends during the no-ops. ``info["noops"] = n``.
      The first observation is the last frame, unpooled (as Baselines and Gymnasium do).
    - ``step(a)``: ``frame_skip`` emulator frames, rewards summed, stopping early if the episode ends.
      Sticky actions: on each frame, with probability ``sticky_action_prob`` the previous frame's
      action is emulated instead of ``a`` (ALE's rule, NOOP after a reset), drawn from ``np_random``.
      The observation is the pixel-wise max of the last two frames emulated (Atari sprites flicker),
      the current frame alone when ``frame_skip = 1``; an episode ending mid-skip pools its last two
      frames too, so the final observation of a truncated episode is exact.
    - Frames are ALE's grayscale screen (210 x 160), resized to ``screen_size`` x ``screen_size`` with
      OpenCV's ``INTER_AREA`` (as Stable-Baselines3's ``WarpFrame`` and Gymnasium).

    The ALE env must be built with ``frameskip=1`` and ``repeat_action_probability=0``.
    Deviation from ``gymnasium.wrappers.AtariPreprocessing``: that wrapper grabs screens on the last
    two sub-steps only, so an episode ending earlier returns a stale pool; it has no sticky actions.
    """

    def __init__(self, env: gym.Env, *, noop_max: int = 30, frame_skip: int = 4, screen_size: int = 84,
                 sticky_action_prob: float = 0.0) -> None:
        super().__init__(env)
        try:
            import cv2  # noqa: F401, PLC0415
        except ImportError as exc:
            raise EnvError(f"Atari preprocessing needs OpenCV (opencv-python-headless); {_INSTALL}.") from exc
        raw = env.unwrapped
        if getattr(raw, "_frameskip", 1) != 1:
            raise EnvError("AtariFramePreprocessing skips frames itself: build the ALE env with frameskip=1")
        if raw.ale.getFloat("repeat_action_probability") != 0.0:
            raise EnvError("AtariFramePreprocessing applies sticky actions itself: build the ALE env with "
                           "repeat_action_probability=0")
        if noop_max < 0 or frame_skip < 1 or screen_size < 1 or not 0.0 <= sticky_action_prob <= 1.0:
            raise ConfigError(f"need noop_max >= 0, frame_skip >= 1, screen_size >= 1, 0 <= sticky_action_prob <= 1; "
                              f"got {noop_max}, {frame_skip}, {screen_size}, {sticky_action_prob}")
        if noop_max > 0 and raw.get_action_meanings()[0] != "NOOP":
            raise EnvError(f"noop_max={noop_max} needs action 0 to be NOOP; set noop_max: 0 for this game")
        self.noop_max = int(noop_max)
        self.frame_skip = int(frame_skip)
        self.screen_size = int(screen_size)
        self.sticky_action_prob = float(sticky_action_prob)
        height, width = env.observation_space.shape[:2]
        self._frames = np.zeros((2, height, width), dtype=np.uint8)  # the last two emulated frames
        self._newest = 0
        self._previous_action = 0
        self.observation_space = spaces.Box(0, 255, (self.screen_size, self.screen_size), np.uint8)

    @property
    def ale(self):
        return self.env.unwrapped.ale

    def _grab(self) -> None:
        self._newest ^= 1
        self.ale.getScreenGrayscale(self._frames[self._newest])

    def _observation(self, pooled: bool) -> np.ndarray:
        import cv2  # noqa: PLC0415

        frame = self._frames[self._newest]
        if pooled:
            frame = np.maximum(frame, self._frames[self._newest ^ 1])
        return cv2.resize(frame, (self.screen_size, self.screen_size), interpolation=cv2.INTER_AREA)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        _, info = self.env.reset(seed=seed, options=options)
        rng = self.env.unwrapped.np_random
        noops = int(rng.integers(1, self.noop_max + 1)) if self.noop_max > 0 else 0
        for _ in range(noops):
            _, _, terminated, truncated, step_info = self.env.step(0)
            info.update(step_info)
            if terminated or truncated:
                _, info = self.env.reset(options=options)
        self._previous_action = 0
        self._grab()
        info["noops"] = noops
        return self._observation(pooled=False), info

    def step(self, action) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        total, terminated, truncated, info = 0.0, False, False, {}
        rng = self.env.unwrapped.np_random
        sticky = self.sticky_action_prob
        for _ in range(self.frame_skip):
            a = self._previous_action if sticky > 0.0 and rng.random() < sticky else action
            self._previous_action = a
            _, reward, terminated, truncated, info = self.env.step(a)
            total += float(reward)
            # Every frame is grabbed (about 10 us against 70-90 us of emulation): an episode may end on
            # any frame, and the pool is then still over the last two frames actually emulated.
            self._grab()
            if terminated or truncated:
                break
        return self._observation(pooled=self.frame_skip > 1), total, terminated, truncated, info


class FireReset(gym.Wrapper):
    """Press FIRE after reset in games that wait for it (Breakout, ...).

    Protocol (OpenAI Baselines ``atari_wrappers.FireResetEnv``, kept by Stable-Baselines3 and CleanRL):
    after the inner reset, step action 1 (FIRE), then action 2; if either step ends the episode,
    reset again. Their rewards are discarded (they are 0 in the games that need FIRE). Applied only
    when ``get_action_meanings()[1] == "FIRE"`` and the game has at least 3 actions. A game that needs
    FIRE after losing a life is *not* helped: the agent presses FIRE itself (the episode goes on
    across lives, see :class:`LifeLossSignal`).
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        if not self.applies(env):
            raise EnvError("FireReset needs a game whose action 1 is FIRE and with at least 3 actions")

    @staticmethod
    def applies(env: gym.Env) -> bool:
        meanings = env.unwrapped.get_action_meanings()
        return len(meanings) >= 3 and meanings[1] == "FIRE"

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        for action in (1, 2):
            obs, _, terminated, truncated, step_info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(options=options)
            else:
                info.update(step_info)
        return obs, info


class LifeLossSignal(gym.Wrapper):
    """``info["life_loss"] = True`` on the step where ``ale.lives()`` decreased; the episode continues.

    Protocol: Mnih et al. (2015) ended the *learning* episode at a lost life (Baselines'
    ``EpisodicLifeEnv``); here the environment episode runs to game over, so the reported return is the
    whole game's, and the learner decides what a lost life means (``terminal_on_life_loss``). The key
    is present on every step and reset; with ``enabled=False`` (evaluation, or the option off) it is
    always False. The game-over step that takes the last life also reports ``life_loss=True``.
    """

    def __init__(self, env: gym.Env, *, enabled: bool = True) -> None:
        super().__init__(env)
        self.enabled = bool(enabled)
        self.lives = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.lives = int(self.env.unwrapped.ale.lives())
        info["life_loss"] = False
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = int(self.env.unwrapped.ale.lives())
        info["life_loss"] = self.enabled and lives < self.lives
        self.lives = lives
        return obs, reward, terminated, truncated, info


class ClipReward(gym.Wrapper):
    """Return ``sign(r)`` (when ``enabled``); ``info["raw_reward"] = r`` always (Mnih et al. 2015, Methods:
    "we clipped all positive rewards at 1 and all negative rewards at -1, leaving 0 rewards unchanged").
    Report returns from ``raw_reward``: clipping is a learning device only."""

    def __init__(self, env: gym.Env, *, enabled: bool = True) -> None:
        super().__init__(env)
        self.enabled = bool(enabled)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        raw = float(reward)
        info["raw_reward"] = raw
        return obs, (float(np.sign(raw)) if self.enabled else raw), terminated, truncated, info


# ------------------------------------------------------------------------ factory
_RESERVED_KWARGS = {
    "frameskip": "frame_skip",
    "repeat_action_probability": "sticky_action_prob",
    "max_num_frames_per_episode": "max_episode_frames",
}


def make_atari_env(env_id: str, cfg, *, render_mode: str | None = None, evaluation: bool = False) -> gym.Env:
    """An ALE game with dqnkit's preprocessing (module docstring), observations ``(frame_stack, S, S)`` uint8.

    Args:
        env_id: an ALE id, e.g. ``"ALE/Pong-v5"`` (``"PongNoFrameskip-v4"`` works too).
        cfg: a :class:`dqnkit.config.Config`; reads ``env_kwargs``, ``frame_stack``, ``noop_max``,
            ``frame_skip``, ``screen_size``, ``terminal_on_life_loss``, ``clip_rewards``,
            ``fire_reset``, ``sticky_action_prob``, ``max_episode_frames``.
        render_mode: passed to ``gym.make`` (``"rgb_array"`` for videos).
        evaluation: no reward clipping and no life-loss signal (returns and episodes as reported).
    """
    register_ale()
    extra = dict(cfg.env_kwargs or {})
    for key, field_name in _RESERVED_KWARGS.items():
        if key in extra:
            raise ConfigError(f"env_kwargs.{key} is set by dqnkit for Atari; use the config field {field_name} instead")
    try:
        env = gym.make(
            env_id,
            frameskip=1,
            repeat_action_probability=0.0,  # sticky actions are applied by AtariFramePreprocessing
            max_num_frames_per_episode=int(cfg.max_episode_frames),
            render_mode=render_mode,
            **extra,
        )
    except gym.error.NameNotFound as exc:
        raise EnvError(f"unknown Atari env {env_id!r} ({exc}); ids look like 'ALE/Pong-v5'") from exc
    env = AtariFramePreprocessing(env, noop_max=cfg.noop_max, frame_skip=cfg.frame_skip,
                                  screen_size=cfg.screen_size, sticky_action_prob=cfg.sticky_action_prob)
    if cfg.fire_reset and FireReset.applies(env):
        env = FireReset(env)
    env = LifeLossSignal(env, enabled=cfg.terminal_on_life_loss and not evaluation)
    env = ClipReward(env, enabled=cfg.clip_rewards and not evaluation)
    return gym.wrappers.FrameStackObservation(env, int(cfg.frame_stack), padding_type="zero")

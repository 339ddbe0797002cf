"""Guard rails: warn once when a setting silently caps learning.

Each kind of warning is given once per run, in the progress output and in run.json's ``warnings`` list
(and carried in checkpoints, so a resumed run neither repeats nor loses it):

- ``c51_support``: a discounted return seen in training (from an episode's start, in the learning reward)
  falls outside C51's ``[v_min, v_max]``; the projection clips targets to the support's ends, so values
  beyond it cannot be learned (the default [-10, 10] on CartPole, whose returns reach ~100 at gamma 0.99);
- ``buffer_size``: an episode lasted longer than the replay holds per env, so its start is overwritten
  before it ends;
- ``learning_starts``: learning_starts < batch_size, so updates wait for batch_size transitions and the
  first update comes later than learning_starts says;
- ``huber_rewards``: a reward over 100x the Huber loss's linear region (delta 1): every large TD error then
  gets the same constant gradient.

Only C51's check runs per step (two in-place multiply-adds and two reductions over ``num_envs`` values), and
:attr:`Guards.on_step` is None without C51 or once it has warned; the reward check reads the replay's newest
rows every 64 vector steps.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

HUBER_DELTA = 1.0  # torch's smooth_l1_loss default beta, the loss=huber of dqnkit.learner.losses
HUBER_FACTOR = 100.0


class Guards:
    """The guard rails of one run; ``say`` shows a warning (the progress output)."""

    def __init__(self, cfg, num_envs: int):
        self.cfg = cfg
        self.num_envs = int(num_envs)
        self.warnings: list[str] = []
        self.kinds: set[str] = set()
        self.say: Callable[[str], None] = lambda text: None
        self.rows_per_env = math.ceil(cfg.buffer_size / self.num_envs)
        self.reward_limit = HUBER_FACTOR * HUBER_DELTA if cfg.loss == "huber" else None
        self.c51 = bool(cfg.distributional)
        self._ret = np.zeros(self.num_envs)  # discounted return since each env's episode start
        self._disc = np.ones(self.num_envs)  # gamma ** steps since the start
        self._tmp = np.zeros(self.num_envs)
        self.on_step: Callable[[np.ndarray, np.ndarray], None] | None = None
        self._update_on_step()

    def _update_on_step(self) -> None:
        self.on_step = self.step if self.c51 and "c51_support" not in self.kinds else None

    @property
    def checks_rewards(self) -> bool:
        return self.reward_limit is not None and "huber_rewards" not in self.kinds

    def warn(self, kind: str, text: str) -> None:
        if kind in self.kinds:
            return
        self.kinds.add(kind)
        self.warnings.append(text)
        self.say(f"warning: {text}")
        self._update_on_step()

    def start(self) -> None:
        """The checks on the config alone (at the start of ``learn``)."""
        cfg = self.cfg
        if cfg.learning_starts < cfg.batch_size:
            self.warn("learning_starts", f"learning_starts ({cfg.learning_starts}) is smaller than batch_size "
                      f"({cfg.batch_size}): updates wait until {cfg.batch_size} transitions are stored, so learning "
                      f"starts later than learning_starts says; set learning_starts >= {cfg.batch_size}")

    def rewards(self, rewards: np.ndarray) -> None:
        """Learning rewards stored since the last check (the trainer passes the replay's newest rows every 64
        vector steps, so the default config pays nothing per step)."""
        limit = self.reward_limit
        if limit is None or rewards.size == 0:
            return
        top, bottom = float(rewards.max()), float(rewards.min())
        if top > limit or bottom < -limit:
            big = top if top > limit else bottom
            self.warn("huber_rewards", f"a reward of {big:g} is over {HUBER_FACTOR:g}x the Huber loss's linear "
                      f"region (|TD| > {HUBER_DELTA:g}): every large TD error gets the same gradient, which "
                      "slows learning; scale the rewards down (env_wrapper) or set loss=mse")

    def step(self, reward: np.ndarray, ended: np.ndarray) -> None:
        """One vector step's learning rewards and episode ends (C51 only: the discounted returns so far)."""
        if self.c51 and "c51_support" not in self.kinds:
            np.multiply(self._disc, reward, out=self._tmp)
            self._ret += self._tmp
            self._disc *= self.cfg.gamma
            cfg = self.cfg
            top, bottom = float(self._ret.max()), float(self._ret.min())
            if top > cfg.v_max or bottom < cfg.v_min:
                seen = top if top > cfg.v_max else bottom
                bound = "v_max" if top > cfg.v_max else "v_min"
                self.warn("c51_support", f"a discounted return of {seen:.1f} lies outside C51's support "
                          f"[v_min, v_max] = [{cfg.v_min:g}, {cfg.v_max:g}]: targets beyond it are clipped to its "
                          f"ends, which caps what can be learned; set {bound} to cover the returns "
                          f"(e.g. --set {bound}={_round_out(seen)})")
            if ended.any():
                self._ret[ended] = 0.0
                self._disc[ended] = 1.0

    def episode_end(self, length: int) -> None:
        if length > self.rows_per_env and "buffer_size" not in self.kinds:
            cfg = self.cfg
            self.warn("buffer_size", f"buffer_size {cfg.buffer_size} holds {self.rows_per_env} env steps per env "
                      f"but an episode lasted {length}: its start is overwritten before it ends; set buffer_size "
                      f">= {length * self.num_envs}")

    def load(self, warnings: list[str], kinds: list[str]) -> None:
        """The warnings a checkpoint carries: not given again."""
        self.warnings, self.kinds = list(warnings), set(kinds)
        self._update_on_step()

    def state(self) -> dict:
        return {"warnings": list(self.warnings), "kinds": sorted(self.kinds)}


def _round_out(x: float) -> int:
    """A round number beyond ``x``: 63.4 -> 70, -230 -> -300."""
    mag = 10 ** max(1, math.floor(math.log10(abs(x))))
    return int(math.copysign(math.ceil(abs(x) / mag) * mag, x))

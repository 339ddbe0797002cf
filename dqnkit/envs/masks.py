"""Action masks: which actions an env allows in its current state (sb3-contrib's MaskablePPO conventions).

An env gives its mask either in ``info["action_mask"]`` (after ``reset`` and every ``step``) or through an
``action_masks()`` method (sb3-contrib's ``ActionMasker`` wrapper provides one). :class:`MaskInInfo` turns the
method into the info key, so the rest of dqnkit reads one place: the vector env then collects the masks of
every sub-env, and in same-step autoreset mode the final state's mask of an ended episode is in
``infos["final_info"]``, as for any other key.

A mask is a bool array of length ``n_actions`` (True = allowed); 0/1 integers are accepted. The replay stores
masks bit-packed (:func:`pack`, ``np.packbits``): 1 byte per 8 actions per transition. Torch-free.
"""
from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np

from dqnkit.errors import EnvError

MASK_KEY = "action_mask"


class MaskInInfo(gym.Wrapper):
    """Copies ``action_masks()`` into ``info["action_mask"]`` after reset and step (unless the env put one there)."""

    def _with_mask(self, info: dict) -> dict:
        if MASK_KEY not in info:
            info = {**info, MASK_KEY: np.asarray(self.env.get_wrapper_attr("action_masks")(), dtype=bool)}
        return info

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, self._with_mask(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._with_mask(info)


def has_mask_method(env: gym.Env) -> bool:
    try:
        return callable(env.get_wrapper_attr("action_masks"))
    except AttributeError:
        return False


def with_mask_info(env: gym.Env) -> gym.Env:
    """``env`` wrapped in :class:`MaskInInfo` when it has an ``action_masks()`` method, else ``env`` itself."""
    return MaskInInfo(env) if has_mask_method(env) else env


def check_masks(masks: Any, num: int, n_actions: int, where: str = "the env") -> np.ndarray:
    """``masks`` as a ``(num, n_actions)`` bool array; EnvError (one line) when a mask's length is wrong.
    An object array (masks given as lists) is read row by row; a missing row (None) allows every action."""
    arr = np.asarray(masks)
    if arr.dtype == object and arr.ndim == 1:
        rows = [np.ones(n_actions, dtype=bool) if x is None else np.asarray(x).reshape(-1) for x in arr]
        bad = [r.shape[0] for r in rows if r.shape[0] != n_actions]
        if bad:
            arr = np.zeros((len(rows), bad[0]))
        else:
            arr = np.stack(rows) if rows else np.zeros((0, n_actions))
    if arr.ndim != 2 or arr.shape != (num, n_actions):
        length = arr.shape[-1] if arr.ndim >= 1 else 1
        raise EnvError(f"{where} gave an action mask of length {length} but its action space has {n_actions} "
                       f"actions; return a bool array of length {n_actions} in info['action_mask'] or "
                       "from action_masks()")
    return arr.astype(bool, copy=False)


def require_some_allowed(masks: np.ndarray, where: str = "the env") -> None:
    """EnvError when a state to act in allows no action at all."""
    if not masks.any(axis=1).all():
        raise EnvError(f"{where} gave an action mask that allows no action in a state the agent must act in; "
                       "allow at least one action (or end the episode)")


def vector_masks(infos: Mapping[str, Any], num: int, n_actions: int, where: str) -> np.ndarray | None:
    """The current masks of a vector env's sub-envs (``infos`` of reset or a same-step-autoreset step), or None
    when the env gives none. Sub-envs whose info lacks the key allow every action."""
    if MASK_KEY not in infos:
        return None
    present = np.asarray(infos.get("_" + MASK_KEY, np.ones(num, dtype=bool)), dtype=bool)
    masks = check_masks(infos[MASK_KEY], num, n_actions, where)
    if not present.all():
        masks = masks.copy()
        masks[~present] = True
    return masks


def final_masks(infos: Mapping[str, Any], current: np.ndarray, ended: np.ndarray, n_actions: int,
                where: str) -> np.ndarray:
    """The masks of the states each transition of a same-step-autoreset step ended in: ``current`` except in
    the ended rows, which take the final step's mask from ``infos["final_info"]`` (all allowed where missing)."""
    if not ended.any():
        return current
    out = current.copy()
    final = infos.get("final_info")
    if isinstance(final, Mapping) and MASK_KEY in final:
        fin = check_masks(final[MASK_KEY], current.shape[0], n_actions, where)
        present = np.asarray(final.get("_" + MASK_KEY, ended), dtype=bool) & ended
        out[present] = fin[present]
        out[ended & ~present] = True
    else:
        out[ended] = True
    return out


def single_mask(info: Mapping[str, Any], n_actions: int, where: str = "the env") -> np.ndarray | None:
    """The mask in one env's ``info`` as a (n_actions,) bool array, or None."""
    if MASK_KEY not in info:
        return None
    return check_masks(np.asarray(info[MASK_KEY])[None], 1, n_actions, where)[0]


def masks_of_infos(infos: list[Mapping[str, Any]], n_actions: int, where: str) -> np.ndarray | None:
    """The masks in the infos of separate envs, stacked (n, n_actions); None when none of them has one."""
    if not any(MASK_KEY in info for info in infos):
        return None
    rows = np.empty(len(infos), dtype=object)
    for i, info in enumerate(infos):
        rows[i] = info.get(MASK_KEY)
    return check_masks(rows, len(infos), n_actions, where)


def pack(masks: np.ndarray) -> np.ndarray:
    """(B, n_actions) bool -> (B, ceil(n_actions / 8)) uint8."""
    return np.packbits(masks, axis=1)


def unpack(packed: np.ndarray, n_actions: int) -> np.ndarray:
    """The inverse of :func:`pack`."""
    return np.unpackbits(packed, axis=1, count=n_actions).astype(bool)


def packed_width(n_actions: int) -> int:
    return (int(n_actions) + 7) // 8

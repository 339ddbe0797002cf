"""Replay: ring storage (each observation stored once), n-step windows at sample time, and
uniform or proportional prioritised sampling over a float64 sum tree. Stacked pixel observations
store each frame once (``FrameStackStorage``, ``ReplayBuffer(..., frame_stack=k)``).

See ``buffer.py`` for the composition and the papers each part implements.
"""
from dqnkit.replay.buffer import ReplayBuffer
from dqnkit.replay.frames import FrameStackStorage, owned_nbytes
from dqnkit.replay.samplers import PrioritizedSampler, Sampler, UniformSampler
from dqnkit.replay.sum_tree import SumTree

__all__ = ["ReplayBuffer", "FrameStackStorage", "SumTree", "UniformSampler", "PrioritizedSampler", "Sampler",
           "owned_nbytes"]

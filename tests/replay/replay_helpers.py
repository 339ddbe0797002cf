"""Reading given slots of a ReplayBuffer through its public sampling path (the tests' oracle checks)."""
import numpy as np


class FixedSampler:
    """A Sampler (dqnkit.replay.samplers.Sampler protocol) that returns the slots it is given."""

    def __init__(self, index):
        self.index = np.asarray(index, dtype=np.int64)

    def sample(self, batch_size, first_valid, num_valid, beta=0.0):
        assert batch_size == self.index.shape[0]
        return self.index, np.ones(batch_size, dtype=np.float32)


def batch_at(buf, index):
    """The Batch ``buf.sample`` returns when its sampler draws exactly ``index`` (uniform weights)."""
    real = buf.sampler
    buf.sampler = FixedSampler(index)
    try:
        return buf.sample(len(buf.sampler.index))
    finally:
        buf.sampler = real


def slots_sampled(buf, draws=4000):
    """Every slot ``buf.sample`` drew in ``draws`` draws."""
    return set(buf.sample(draws).index.tolist())

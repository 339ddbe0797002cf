"""MemberReplay: member m samples exactly what a single-run ReplayBuffer fed member m's stream would (oracle)."""
import numpy as np
import pytest
import torch

from dqnkit.replay import ReplayBuffer
from dqnkit.replay.members import MemberReplay

M, E = 3, 2


def streams(steps, seed=0):
    rng = np.random.default_rng(seed)
    for t in range(steps):
        obs = rng.normal(size=(M * E, 3)).astype(np.float32)
        yield (obs, rng.integers(0, 4, M * E), rng.normal(size=M * E).astype(np.float32),
               rng.random(M * E) < 0.05, rng.random(M * E) < 0.05, -obs)


@pytest.mark.parametrize("prioritized", [False, True])
def test_each_member_matches_a_single_buffer(prioritized):
    n_steps, gammas, seeds = [1, 3, 2], [0.99, 0.9, 0.5], [7, 8, 9]
    per = dict(alphas=[0.6, 0.5, 0.7], priority_eps=[1e-6] * 3, priority_clips=[None, 1.0, None]) if prioritized else {}
    pop = MemberReplay(40, M, E, (3,), np.float32, n_steps=n_steps, gammas=gammas, seeds=seeds,
                       prioritized=prioritized, **per)
    singles = [ReplayBuffer(40, E, (3,), np.float32, n_step=n, gamma=g, seed=s, prioritized=prioritized,
                            **({"alpha": per["alphas"][m], "priority_clip": per["priority_clips"][m]} if prioritized else {}))
               for m, (n, g, s) in enumerate(zip(n_steps, gammas, seeds))]
    for t, (obs, act, rew, term, trunc, final) in enumerate(streams(60)):
        pop.add(obs, act, rew, term, trunc, final)
        for m, buf in enumerate(singles):
            cols = slice(m * E, (m + 1) * E)
            buf.add(obs[cols], act[cols], rew[cols], term[cols], trunc[cols], final[cols])
        if t < 25:
            continue
        betas = [0.4, 0.7, 1.0]
        got = pop.sample(8, betas)
        for m, buf in enumerate(singles):
            ref = buf.sample(8, betas[m])
            for name in ("obs", "action", "reward", "next_obs", "terminated", "discount", "is_weight"):
                torch.testing.assert_close(getattr(got, name)[m], getattr(ref, name), msg=name)
        if prioritized:
            td = np.abs(np.random.default_rng(t).normal(size=(M, 8))) * 3
            pop.update_priorities(got.index, td)
            for m, buf in enumerate(singles):
                buf.update_priorities(_single_index(got.index[m], m), td[m])


def _single_index(slots, m):
    """Population slots of member m -> the single buffer's slots (row * E + env)."""
    n = M * E
    return (slots // n) * E + slots % n - m * E


def test_member_state_dict_is_the_single_buffers_and_round_trips():
    pop = MemberReplay(30, M, E, (3,), np.float32, n_steps=[2, 2, 2], gammas=[0.9] * 3, seeds=[1, 2, 3])
    single = ReplayBuffer(30, E, (3,), np.float32, n_step=2, gamma=0.9, seed=2)
    for obs, act, rew, term, trunc, final in streams(50, seed=3):
        pop.add(obs, act, rew, term, trunc, final)
        single.add(obs[E:2 * E], act[E:2 * E], rew[E:2 * E], term[E:2 * E], trunc[E:2 * E], final[E:2 * E])
    pop.sample(5)
    single.sample(5)  # advance both sampler streams alike
    arrays, meta = pop.member_state_dict(1)
    ref_arrays, ref_meta = single.state_dict()
    assert meta == ref_meta
    assert set(arrays) == set(ref_arrays)
    for key in arrays:
        np.testing.assert_array_equal(arrays[key], ref_arrays[key], err_msg=key)
    other = MemberReplay(30, M, E, (3,), np.float32, n_steps=[2, 2, 2], gammas=[0.9] * 3, seeds=[0, 0, 0])
    other.load_member_state_dicts([pop.member_state_dict(m) for m in range(M)])
    a, b = pop.sample(6), other.sample(6)
    for name in ("obs", "action", "reward", "next_obs", "terminated", "discount"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name))

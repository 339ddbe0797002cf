"""Ring storage, validity, dtypes and truncation handling of ReplayBuffer."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from dqnkit.replay import ReplayBuffer

from replay_helpers import batch_at, slots_sampled  # noqa: E402


def add_rows(buf, start, count, num_envs, obs_dim=1, term=None, trunc=None):
    """Rows whose obs encode (row, env): obs = 10 * row + env; action = row; reward = env."""
    for t in range(start, start + count):
        obs = (10.0 * t + np.arange(num_envs, dtype=np.float64))[:, None].repeat(obs_dim, 1)
        te = np.zeros(num_envs, bool) if term is None else term(t)
        tr = np.zeros(num_envs, bool) if trunc is None else trunc(t)
        buf.add(obs, np.full(num_envs, t), np.arange(num_envs, dtype=np.float32), te, tr, -obs)


def test_ring_wraparound_and_batched_add():
    buf = ReplayBuffer(10, 2, (1,), np.float64, seed=0)  # T = 5 rows of 2 envs
    add_rows(buf, 0, 7, 2)
    st = buf.storage
    assert st.pos == 2 and st.full and len(buf) == 10
    # rows 0, 1 were overwritten by steps 5, 6; rows 2..4 still hold steps 2..4
    np.testing.assert_array_equal(st.obs[:, :, 0], [[50, 51], [60, 61], [20, 21], [30, 31], [40, 41]])
    np.testing.assert_array_equal(st.action, [[5, 5], [6, 6], [2, 2], [3, 3], [4, 4]])
    np.testing.assert_array_equal(st.reward, [[0, 1]] * 5)
    assert st.obs.dtype == np.float32  # float observations stored as float32
    # valid rows: oldest (row 2) .. second newest, i.e. steps 2..5 for n_step = 1
    b = batch_at(buf, np.array([4, 5, 9, 0, 1]))  # slots (2,0) (2,1) (4,1) (0,0) (0,1)
    np.testing.assert_array_equal(b.obs[:, 0].numpy(), [20, 21, 41, 50, 51])
    np.testing.assert_array_equal(b.next_obs[:, 0].numpy(), [30, 31, 51, 60, 61])  # (4,1) wraps to row 0
    # row 1 is the newest row (its next obs is not written yet): sampling never draws slots 2 and 3
    assert slots_sampled(buf) == {0, 1, 4, 5, 6, 7, 8, 9}


def test_len_and_can_sample():
    buf = ReplayBuffer(30, 3, (1,), np.float32, n_step=2)  # T = 10
    assert len(buf) == 0 and not buf.can_sample(1)
    with pytest.raises(ValueError, match="can_sample"):
        buf.sample(1)
    add_rows(buf, 0, 2, 3)
    assert len(buf) == 6 and not buf.can_sample(1)  # needs n_step + 1 rows
    add_rows(buf, 2, 1, 3)
    assert len(buf) == 9 and buf.can_sample(3) and not buf.can_sample(4)
    add_rows(buf, 3, 20, 3)
    assert len(buf) == 30 and buf.num_valid() == 24 and buf.can_sample(24) and not buf.can_sample(25)


def test_capacity_rounds_up_to_whole_rows():
    buf = ReplayBuffer(10, 3, (1,), np.float32)
    assert buf.storage.num_rows == 4
    add_rows(buf, 0, 9, 3)
    assert len(buf) == 12


@pytest.mark.parametrize("prioritized", [False, True])
def test_never_samples_unwritten_or_newest_rows(prioritized):
    n, N = 3, 3
    buf = ReplayBuffer(60, N, (1,), np.float32, n_step=n, prioritized=prioritized, seed=1)  # T = 20
    add_rows(buf, 0, 7, N)  # rows 0..6 written; valid rows 0..3
    seen = np.concatenate([buf.sample(64).index for _ in range(300)])
    rows = seen // N
    assert rows.min() == 0 and rows.max() == 3
    assert set(np.unique(seen)) == set(range(4 * N))  # every valid slot is reachable
    add_rows(buf, 7, 25, N)  # 32 rows written: ring holds steps 12..31 in rows 12..19, 0..11
    batch = buf.sample(4096)
    rows = batch.index // N
    newest = {(31 - k) % 20 for k in range(n)}  # rows 11, 10, 9
    assert not set(rows.tolist()) & newest
    # obs encodes the step: only steps 12..28 may appear
    steps = (batch.obs[:, 0].numpy() // 10).astype(int)
    assert steps.min() >= 12 and steps.max() <= 28


def test_uint8_observations_stay_uint8():
    buf = ReplayBuffer(16, 2, (4, 4), np.uint8, seed=0)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, size=(2, 4, 4), dtype=np.uint8) for _ in range(6)]
    for t in range(5):
        buf.add(frames[t], [0, 1], [0.0, 0.0], [False, False], [False, False], frames[t + 1])
    assert buf.storage.obs.dtype == np.uint8
    b = batch_at(buf, np.arange(8))
    assert b.obs.dtype == torch.uint8 and b.next_obs.dtype == torch.uint8
    np.testing.assert_array_equal(b.obs.numpy(), np.stack(frames[:4]).reshape(8, 4, 4))
    np.testing.assert_array_equal(b.next_obs.numpy(), np.stack(frames[1:5]).reshape(8, 4, 4))
    with pytest.raises(TypeError):  # float pixels into a uint8 buffer are refused, not silently cast
        buf.add(frames[0].astype(np.float32), [0, 1], [0.0, 0.0], [False, False], [False, False], frames[0])


def test_batch_dtypes_and_shapes():
    buf = ReplayBuffer(20, 2, (3,), np.float64, n_step=2, seed=0)
    add_rows(buf, 0, 8, 2, obs_dim=3)
    b = buf.sample(5)
    assert b.obs.shape == (5, 3) and b.next_obs.shape == (5, 3) and b.obs.dtype == torch.float32
    assert b.action.dtype == torch.int64
    for name in ("reward", "terminated", "discount", "is_weight"):
        t = getattr(b, name)
        assert t.dtype == torch.float32 and t.shape == (5,), name
    assert isinstance(b.index, np.ndarray) and b.index.dtype == np.int64
    assert torch.all(b.is_weight == 1.0)


def test_truncated_final_obs_returned_and_terminated_flagged():
    N = 2
    buf = ReplayBuffer(40, N, (1,), np.float32, seed=0)
    # env 0 truncates at steps 3 and 7, env 1 terminates at step 5
    add_rows(buf, 0, 10, N, term=lambda t: np.array([False, t == 5]), trunc=lambda t: np.array([t in (3, 7), False]))
    assert buf.storage.num_final_obs() == 2
    batch = buf.sample(2000)
    idx = batch.index
    rows, envs = idx // N, idx % N
    nxt, obs = batch.next_obs[:, 0].numpy(), batch.obs[:, 0].numpy()
    trunc = (envs == 0) & np.isin(rows, (3, 7))
    assert trunc.any()
    np.testing.assert_array_equal(nxt[trunc], -obs[trunc])  # add_rows' final obs is -obs
    np.testing.assert_array_equal(batch.terminated.numpy(), ((envs == 1) & (rows == 5)).astype(np.float32))
    rest = ~trunc & ~((envs == 1) & (rows == 5))
    np.testing.assert_array_equal(nxt[rest], obs[rest] + 10)  # next row, same env


def test_final_obs_table_grows_and_is_freed_when_slots_are_overwritten():
    N = 3
    buf = ReplayBuffer(300, N, (1,), np.float32, seed=0)  # T = 100, more truncations than the initial table
    rng = np.random.default_rng(0)
    for t in range(350):
        te, tr = rng.random(N) < 0.1, rng.random(N) < 0.9
        add_rows(buf, t, 1, N, term=lambda _t: te, trunc=lambda _t: tr)
        st = buf.storage
        assert st.num_final_obs() == int((st.truncated & ~st.terminated).sum())
    assert 64 < buf.storage.num_final_obs() and buf.storage.final_obs_capacity() <= buf.storage.num_slots
    first, count = buf.storage.valid_range(1)
    index = (first + np.arange(count)) % buf.storage.num_slots
    b = batch_at(buf, index)
    trunc = buf.storage.truncated_flat[index] & ~buf.storage.terminated_flat[index]
    np.testing.assert_array_equal(b.next_obs[trunc].numpy(), -b.obs[trunc].numpy())  # add_rows' final obs


def test_with_gymnasium_same_step_autoreset():
    """Smoke test on a real vector env: truncated windows bootstrap from info['final_obs']."""
    envs = gym.make_vec(
        "CartPole-v1", num_envs=3, vectorization_mode="sync", max_episode_steps=7,
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
    )
    buf = ReplayBuffer(300, 3, envs.single_observation_space.shape, envs.single_observation_space.dtype, seed=0)
    obs, _ = envs.reset(seed=0)
    envs.action_space.seed(0)
    finals = {}
    for _ in range(40):
        action = envs.action_space.sample()
        next_obs, reward, terminated, truncated, info = envs.step(action)
        final_obs = next_obs.copy()
        if "_final_obs" in info:
            for e in np.flatnonzero(info["_final_obs"]):
                final_obs[e] = info["final_obs"][e]
                if truncated[e] and not terminated[e]:
                    finals[buf.storage.pos * 3 + e] = info["final_obs"][e]
        buf.add(obs, action, reward, terminated, truncated, final_obs)
        obs = next_obs
    envs.close()
    assert finals
    index = np.array([s for s in finals if s // 3 < 39])
    b = batch_at(buf, index)
    np.testing.assert_array_equal(b.next_obs.numpy(), np.stack([finals[s] for s in index]))
    assert torch.all(b.terminated == 0)

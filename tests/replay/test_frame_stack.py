"""Frame-stack replay (each frame stored once) against a naive buffer that stores whole stacks."""
import numpy as np
import pytest

from dqnkit.replay import FrameStackStorage, ReplayBuffer, owned_nbytes

from replay_helpers import batch_at, slots_sampled  # noqa: E402


class StackedStream:
    """N lockstep envs emitting zero-padded frame stacks (as FrameStackObservation(padding_type="zero")
    with same-step autoreset) and random game overs, truncations and life losses."""

    def __init__(self, num_envs, k, hw, seed, p_over=0.03, p_trunc=0.03, p_life=0.05, mid_episode_start=False):
        self.rng = np.random.default_rng(seed)
        self.N, self.k, self.hw = num_envs, k, hw
        self.p = (p_over, p_trunc, p_life)
        shape = (num_envs, k, hw, hw)
        self.obs = np.zeros(shape, np.uint8)
        self.obs[:, -1] = self._frames()
        if mid_episode_start:  # the buffer starts in the middle of episodes: stacks with real history
            self.obs[:, :-1] = self.rng.integers(1, 256, size=(num_envs, k - 1, hw, hw), dtype=np.uint8)

    def _frames(self):
        return self.rng.integers(1, 256, size=(self.N, self.hw, self.hw), dtype=np.uint8)  # never all-zero

    def step(self):
        """Returns (obs, action, reward, terminated, truncated, final_obs, episode_end); advances."""
        N = self.N
        p_over, p_trunc, p_life = self.p
        u = self.rng.random((3, N))
        game_over = u[0] < p_over
        truncated = (u[1] < p_trunc) & ~game_over
        life_loss = (u[2] < p_life) & ~game_over & ~truncated
        terminated = game_over | life_loss
        episode_end = game_over | truncated
        action = self.rng.integers(0, 6, N)
        reward = self.rng.normal(size=N).astype(np.float32)
        obs = self.obs
        true_next = np.concatenate([obs[:, 1:], self._frames()[:, None]], axis=1)
        reset = np.zeros_like(obs)
        reset[:, -1] = self._frames()
        self.obs = np.where(episode_end[:, None, None, None], reset, true_next)
        return obs, action, reward, terminated, truncated, true_next, episode_end


class NaiveBuffer:
    """Stores every (obs, final_obs) whole, keyed by absolute step; computes n-step windows in loops."""

    def __init__(self, num_envs, n_step, gamma):
        self.N, self.n, self.gamma = num_envs, n_step, gamma
        self.rows = []

    def add(self, obs, action, reward, terminated, truncated, final_obs):
        self.rows.append((obs.copy(), action.copy(), reward.copy(), terminated.copy(), truncated.copy(),
                          final_obs.copy()))

    def transition(self, step, env):
        obs0 = self.rows[step][0][env]
        ret, k = 0.0, 0
        for j in range(self.n):
            _, _, r, te, tr, fo = self.rows[step + j]
            ret += self.gamma**j * float(r[env])
            k = j + 1
            if te[env] or tr[env]:
                break
        _, _, _, te, tr, fo = self.rows[step + k - 1]
        if tr[env] and not te[env]:
            nxt = fo[env]
        else:
            nxt = self.rows[step + k][0][env]
        return obs0, self.rows[step][1][env], ret, nxt, float(te[env]), self.gamma**k


def _abs_step(buf, slot, total_rows):
    """Absolute step (row written at add #step) of a flat slot."""
    st = buf.storage
    row = slot // st.num_envs
    age = (st.pos - 1 - row) % st.num_rows
    return total_rows - 1 - age


def _assert_sampleable(step, total_rows, T, k, n_step):
    """Stored, not among the newest n_step rows, and (ring full) its stack's frames not overwritten."""
    oldest_ok = total_rows - T + (k - 1) if total_rows >= T else 0
    assert oldest_ok <= step <= total_rows - 1 - n_step, (step, total_rows)


def _check_all_valid(buf, naive, total_rows, k):
    first, count = buf.storage.valid_range(buf.n_step)
    if count == 0:
        return
    slots = (first + np.arange(count)) % buf.storage.num_slots
    batch = batch_at(buf, slots)
    T = buf.storage.num_rows
    for b, slot in enumerate(slots):
        step, env = _abs_step(buf, slot, total_rows), slot % buf.num_envs
        _assert_sampleable(step, total_rows, T, k, buf.n_step)
        obs, action, ret, nxt, term, disc = naive.transition(step, env)
        np.testing.assert_array_equal(batch.obs[b].numpy(), obs)
        np.testing.assert_array_equal(batch.next_obs[b].numpy(), nxt)
        assert batch.action[b].item() == action
        assert batch.reward[b].item() == pytest.approx(ret, rel=1e-5, abs=1e-5)
        assert batch.terminated[b].item() == term
        assert batch.discount[b].item() == pytest.approx(disc, rel=1e-6)


@pytest.mark.parametrize("num_envs,n_step,prioritized", [(1, 1, False), (3, 3, True), (2, 3, False), (4, 1, True)])
def test_frame_stack_matches_naive_buffer(num_envs, n_step, prioritized):
    k, hw, gamma = 4, 5, 0.9
    capacity = 41 * num_envs  # small: wraps around many times
    buf = ReplayBuffer(capacity, num_envs, (k, hw, hw), np.uint8, n_step=n_step, gamma=gamma,
                       prioritized=prioritized, seed=3, frame_stack=k)
    naive = NaiveBuffer(num_envs, n_step, gamma)
    stream = StackedStream(num_envs, k, hw, seed=num_envs * 10 + n_step)
    rng = np.random.default_rng(0)
    T = buf.storage.num_rows
    for step in range(4 * T + 7):
        obs, action, reward, term, trunc, final, episode_end = stream.step()
        buf.add(obs, action, reward, term, trunc, final, episode_end=episode_end)
        naive.add(obs, action, reward, term, trunc, final)
        total = step + 1
        if step % 9 == 0 or step in (T - 1, T, T + 1):
            _check_all_valid(buf, naive, total, k)
        if buf.can_sample(16):
            batch = buf.sample(16, beta=0.5)
            for b, slot in enumerate(batch.index):  # sampled = valid and equal to the oracle
                s = _abs_step(buf, slot, total)
                _assert_sampleable(s, total, T, k, n_step)
                obs0, _, _, nxt, _, _ = naive.transition(s, slot % num_envs)
                np.testing.assert_array_equal(batch.obs[b].numpy(), obs0)
                np.testing.assert_array_equal(batch.next_obs[b].numpy(), nxt)
            buf.update_priorities(batch.index, rng.random(16) * 3)
    assert buf.storage.num_stored_stacks() == 0  # correct flags: every stack rebuilt from frames
    assert buf.num_valid() == (T - n_step - (k - 1)) * num_envs


def test_default_episode_end_and_mid_episode_start_stay_exact():
    """Flags that disagree with the stacks (life losses passed as episode ends; a buffer created in the
    middle of episodes): the storage keeps those stacks whole and still returns every observation."""
    k, hw, N = 4, 4, 2
    buf = ReplayBuffer(60, N, (k, hw, hw), np.uint8, n_step=3, gamma=0.99, seed=0, frame_stack=k)
    naive = NaiveBuffer(N, 3, 0.99)
    stream = StackedStream(N, k, hw, seed=5, mid_episode_start=True)
    for step in range(100):
        obs, action, reward, term, trunc, final, _ = stream.step()
        buf.add(obs, action, reward, term, trunc, final)  # episode_end defaults to term | trunc
        naive.add(obs, action, reward, term, trunc, final)
        _check_all_valid(buf, naive, step + 1, k)
    assert buf.storage.num_stored_stacks() > 0


def test_oldest_rows_never_sampled_when_full():
    k, N, n = 4, 2, 1
    buf = ReplayBuffer(20, N, (k, 2, 2), np.uint8, n_step=n, prioritized=True, seed=1, frame_stack=k)
    stream = StackedStream(N, k, 2, seed=2, p_over=0, p_trunc=0, p_life=0)  # one long episode
    for _ in range(10 + 5):  # T = 10 rows; 5 rows overwritten
        buf.add(*stream.step())
    st = buf.storage
    first, count = st.valid_range(n)
    assert count == (10 - n - (k - 1)) * N and first == ((st.pos + k - 1) % 10) * N
    leaves = np.asarray(buf.sampler.tree.leaves())
    oldest = np.concatenate([st.row_slots((st.pos + j) % 10) for j in range(k - 1)])
    assert (leaves[oldest] == 0).all()  # PER can never draw them
    assert (leaves[(first + np.arange(count)) % 20] > 0).all()
    idx = buf.sample(2000).index
    offset = (idx - first) % 20
    assert (offset < count).all()
    assert not set(oldest[:1].tolist()) & slots_sampled(buf)


def test_frame_stack_checkpoint_round_trip():
    k, hw, N = 4, 3, 2
    kw = dict(n_step=3, gamma=0.9, prioritized=True, seed=7, frame_stack=k)
    a = ReplayBuffer(50, N, (k, hw, hw), np.uint8, **kw)
    stream = StackedStream(N, k, hw, seed=11, mid_episode_start=True)
    for _ in range(70):
        a.add(*stream.step())
    arrays, meta = a.state_dict()
    arrays = {name: np.array(v) for name, v in arrays.items()}  # as written to disk
    b = ReplayBuffer(50, N, (k, hw, hw), np.uint8, **kw)
    b.load_state_dict(arrays, meta)
    for _ in range(5):  # same samples, same observations, and the same future
        x, y = a.sample(8, 0.4), b.sample(8, 0.4)
        np.testing.assert_array_equal(x.index, y.index)
        np.testing.assert_array_equal(x.obs.numpy(), y.obs.numpy())
        np.testing.assert_array_equal(x.next_obs.numpy(), y.next_obs.numpy())
        step = stream.step()
        a.add(*step)
        b.add(*step)
    plain = ReplayBuffer(50, N, (k, hw, hw), np.uint8, n_step=3, gamma=0.9, prioritized=True, seed=7)
    with pytest.raises(Exception, match="frame_stack"):
        plain.load_state_dict(arrays, meta)


def test_frame_stack_validation_messages():
    with pytest.raises(ValueError, match=r"uint8 observations of shape \(4, H, W\)"):
        ReplayBuffer(100, 1, (4, 84, 84), np.float32, frame_stack=4)
    with pytest.raises(ValueError, match=r"\(4, H, W\)"):
        ReplayBuffer(100, 1, (3, 84, 84), np.uint8, frame_stack=4)
    with pytest.raises(ValueError, match="frame_stack=4 needs more than 6 rows"):
        ReplayBuffer(6, 1, (4, 8, 8), np.uint8, n_step=3, frame_stack=4)


@pytest.mark.parametrize("prioritized", [False, True])
def test_memory_per_transition_at_84x84(prioritized):
    capacity = 20_000
    buf = ReplayBuffer(capacity, 4, (4, 84, 84), np.uint8, prioritized=prioritized, frame_stack=4)
    total = owned_nbytes(buf.storage) + (owned_nbytes(buf.sampler.tree) if prioritized else 0)
    per_transition = total / capacity
    # frame 7056 + action 8 + reward 4 + 3 flags + 2 x int32 side-table maps (+ sum tree), side tables tiny
    assert 7056 + 8 + 4 + 3 + 8 <= per_transition <= 7200, per_transition
    assert isinstance(buf.storage, FrameStackStorage)

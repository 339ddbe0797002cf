"""n-step windows against a naive per-transition Python oracle and a hand-computed example."""
import numpy as np
import pytest

from dqnkit.replay import ReplayBuffer

from replay_helpers import batch_at, slots_sampled  # noqa: E402


class FakeVecEnv:
    """N lockstep envs with SAME_STEP autoreset. Observations are (unique id, episode id), so a test
    can tell which episode an observation belongs to; final observations get their own ids."""

    def __init__(self, num_envs, p_term, p_trunc, seed):
        self.n = num_envs
        self.rng = np.random.default_rng(seed)
        self.p_term, self.p_trunc = p_term, p_trunc
        self.next_id = 0
        self.episode = np.arange(num_envs) * 1000
        self.obs = np.stack([self._new_obs(e) for e in range(num_envs)])

    def _new_obs(self, e):
        self.next_id += 1
        return np.array([self.next_id, self.episode[e]], dtype=np.float64)

    def step(self):
        """Returns the args of ReplayBuffer.add and the obs to use next."""
        action = self.rng.integers(0, 4, size=self.n)
        reward = self.rng.integers(-5, 6, size=self.n).astype(np.float64)
        term = self.rng.random(self.n) < self.p_term
        trunc = self.rng.random(self.n) < self.p_trunc  # both may be set at once, as Gymnasium allows
        final = np.stack([self._new_obs(e) for e in range(self.n)])  # true next observations
        nxt = final.copy()
        for e in np.flatnonzero(term | trunc):
            self.episode[e] += 1
            nxt[e] = self._new_obs(e)  # reset observation of the new episode
        args = (self.obs.copy(), action, reward, term, trunc, final)
        self.obs = nxt
        return args


def oracle(history, g, e, n, gamma):
    """Naive n-step transition starting at global step g in env e: (obs, action, return, k, terminated, next_obs)."""
    ret = 0.0
    for k in range(n):
        obs, action, reward, term, trunc, final = history[g + k]
        ret += gamma**k * reward[e]
        if term[e]:
            return ret, k + 1, 1.0, None
        if trunc[e]:
            return ret, k + 1, 0.0, final[e]
    return ret, n, 0.0, history[g + n][0][e]


def valid_slots_oracle(rows_added, T, N, n):
    """Global steps of all valid slots, computed the slow way, and their flat slot ids."""
    out = []
    for g in range(max(0, rows_added - T), rows_added - n):
        for e in range(N):
            out.append((g, e, (g % T) * N + e))
    return out


def check_all_valid(buf, history, n, gamma, episode_ids=True):
    T, N = buf.storage.num_rows, buf.num_envs
    slots = valid_slots_oracle(len(history), T, N, n)
    assert buf.num_valid() == len(slots)
    if not slots:
        return []
    index = np.array([s for _, _, s in slots])
    batch = batch_at(buf, index)
    seen = []
    for i, (g, e, _) in enumerate(slots):
        ret, k, term, next_obs = oracle(history, g, e, n, gamma)
        assert batch.obs[i].numpy() == pytest.approx(history[g][0][e])
        assert batch.action[i].item() == history[g][1][e]
        assert batch.reward[i].item() == pytest.approx(ret, rel=1e-6, abs=1e-5)
        assert batch.discount[i].item() == pytest.approx(gamma**k, rel=1e-6)
        assert batch.terminated[i].item() == term
        if term == 0.0:
            np.testing.assert_array_equal(batch.next_obs[i].numpy(), next_obs)
            if episode_ids:  # never crosses into the next episode: same episode id as the start
                assert batch.next_obs[i, 1].item() == batch.obs[i, 1].item()
        seen.append((k, int(term)))
    return seen


@pytest.mark.parametrize("n_step", [1, 2, 3, 5])
def test_nstep_matches_oracle_with_vector_envs_and_wraparound(n_step):
    N, gamma = 3, 0.9
    env = FakeVecEnv(N, p_term=0.12, p_trunc=0.12, seed=n_step)
    buf = ReplayBuffer(20, N, (2,), np.float64, n_step=n_step, gamma=gamma, seed=0)  # T = 7 rows
    history = []
    seen = set()
    for step in range(60):  # wraps the 7-row ring several times
        args = env.step()
        history.append(args)
        buf.add(*args)
        seen.update(check_all_valid(buf, history, n_step, gamma))
    # Every window length ended by a termination and by something else (truncation or full n) occurred.
    for k in range(1, n_step + 1):
        assert (k, 1) in seen, f"no window of length {k} ended by termination"
        assert (k, 0) in seen, f"no non-terminal window of length {k}"


def test_truncation_at_every_window_position():
    """One env, n=4: an episode truncated at each offset 0..3 of a window, then a termination."""
    n, gamma = 4, 0.5
    buf = ReplayBuffer(40, 1, (1,), np.float32, n_step=n, gamma=gamma)
    history = []
    ends = {2: "trunc", 5: "trunc", 6: "trunc", 10: "term", 11: "trunc", 13: "term", 14: "term"}
    for t in range(20):
        obs = np.array([[float(t)]])
        flag = ends.get(t)
        final = np.array([[100.0 + t]])  # true final obs, differs from the next row's reset obs
        args = (obs, np.array([t]), np.array([float(t + 1)]), np.array([flag == "term"]),
                np.array([flag == "trunc"]), final)
        history.append(args)
        buf.add(*args)
    check_all_valid(buf, history, n, gamma, episode_ids=False)
    # Hand-check two windows. Slot 3: rows 3,4,5 with truncation at 5 -> k=3.
    b = batch_at(buf, np.array([3, 7, 0]))
    assert b.reward[0].item() == pytest.approx(4 + 0.5 * 5 + 0.25 * 6)
    assert b.discount[0].item() == pytest.approx(0.125)
    assert b.terminated[0].item() == 0.0 and b.next_obs[0].item() == 105.0
    # Slot 7: rows 7..10, termination at 10 -> k=4, terminated.
    assert b.reward[1].item() == pytest.approx(8 + 0.5 * 9 + 0.25 * 10 + 0.125 * 11)
    assert b.discount[1].item() == pytest.approx(0.0625) and b.terminated[1].item() == 1.0
    # Slot 0: rows 0,1,2 truncated at 2 -> k=3, next obs is the final obs of row 2 (102), not row 3's obs.
    assert b.reward[2].item() == pytest.approx(1 + 0.5 * 2 + 0.25 * 3)
    assert b.next_obs[2].item() == 102.0 and b.terminated[2].item() == 0.0


def test_hand_computed_example():
    # rewards 1, 2, 4, 8, 16, ...; termination at row 2, truncation at row 4; n=3, gamma=0.5
    buf = ReplayBuffer(10, 1, (1,), np.float32, n_step=3, gamma=0.5)
    for t in range(8):
        buf.add(np.array([[t]], dtype=np.float32), [0], [2.0**t], [t == 2], [t == 4],
                np.array([[-1.0 - t]], dtype=np.float32))
    assert buf.num_valid() == 5  # rows 0..4; rows 5, 6, 7 are the newest n
    b = batch_at(buf, np.arange(5))
    np.testing.assert_allclose(b.reward.numpy(), [1 + 1 + 1, 2 + 2, 4, 8 + 8, 16])
    np.testing.assert_allclose(b.discount.numpy(), [0.125, 0.25, 0.5, 0.25, 0.5])
    np.testing.assert_array_equal(b.terminated.numpy(), [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(b.next_obs[3:].numpy().ravel(), [-5.0, -5.0])  # final obs of row 4
    assert slots_sampled(buf) == {0, 1, 2, 3, 4}  # the newest n rows are never drawn

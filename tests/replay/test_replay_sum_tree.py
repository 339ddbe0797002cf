"""SumTree against a naive NumPy oracle (a plain array with cumsum / searchsorted)."""
import numpy as np
import pytest

from dqnkit.replay import SumTree


def oracle_find(values: np.ndarray, u: np.ndarray) -> np.ndarray:
    """First leaf whose inclusive prefix sum exceeds u."""
    return np.searchsorted(np.cumsum(values), u, side="right")


@pytest.mark.parametrize("num_leaves", [1, 2, 7, 64, 1000])
def test_matches_oracle_over_random_batched_updates_with_duplicates(num_leaves):
    rng = np.random.default_rng(num_leaves)
    tree = SumTree(num_leaves)
    oracle = np.zeros(num_leaves)
    for step in range(2000):
        k = int(rng.integers(1, 33))
        idx = rng.integers(0, num_leaves, size=k)  # duplicates are common for small trees
        # Dyadic values (multiples of 1/8): every partial sum is exact, so find must match exactly.
        vals = rng.integers(0, 40, size=k) / 8.0
        tree.update(idx, vals)
        for i, v in zip(idx, vals):  # sequential semantics: last write wins
            oracle[i] = v
        if step % 10 == 0:
            assert tree.total() == oracle.sum()
            np.testing.assert_array_equal(tree.get(np.arange(num_leaves)), oracle)
            np.testing.assert_array_equal(tree.leaves(), oracle)
            if oracle.sum() > 0:
                u = rng.random(256) * oracle.sum()
                # also exact boundaries: each prefix sum itself belongs to the next positive leaf
                u = np.concatenate((u, np.cumsum(oracle)[:-1][np.cumsum(oracle)[:-1] < oracle.sum()], [0.0]))
                found = tree.find(u)
                np.testing.assert_array_equal(found, oracle_find(oracle, u))
                assert (oracle[found] > 0).all()


def test_few_index_path_gives_the_same_bits_as_the_batched_path(monkeypatch):
    """Updates of <= SCALAR_MAX indices walk up one index at a time; the tree must be bit-identical."""
    import dqnkit.replay.sum_tree as st

    rng = np.random.default_rng(7)
    few, batched = SumTree(1000), SumTree(1000)
    ops = [(rng.integers(0, 1000, size=int(rng.integers(1, st.SCALAR_MAX + 1))), None) for _ in range(3000)]
    ops = [(idx, rng.random(idx.shape[0]) * 10.0 ** rng.integers(-6, 4)) for idx, _ in ops]
    for idx, vals in ops:
        few.update(idx, vals)
    monkeypatch.setattr(st, "SCALAR_MAX", 0)  # every update now takes the vectorised path
    for idx, vals in ops:
        batched.update(idx, vals)
    np.testing.assert_array_equal(few.nodes(), batched.nodes())
    with pytest.raises(IndexError):
        SumTree(4).update([4], [1.0])
    with pytest.raises(ValueError):
        SumTree(4).update([0], [float("nan")])


def test_duplicate_indices_last_write_wins_and_parents_consistent():
    tree = SumTree(5)
    tree.update(np.array([3, 3, 1, 3]), np.array([1.0, 2.0, 5.0, 7.0]))
    np.testing.assert_array_equal(tree.leaves(), [0, 5, 0, 7, 0])
    assert tree.total() == 12.0
    tree.update(np.array([3, 1, 3]), np.array([4.0, 0.0, 0.5]))
    np.testing.assert_array_equal(tree.leaves(), [0, 0, 0, 0.5, 0])
    assert tree.total() == 0.5
    # every internal node equals the sum of its children
    t = tree.nodes()
    for i in range(1, tree.capacity):
        assert t[i] == t[2 * i] + t[2 * i + 1]


def test_random_float_values_find_respects_prefix_sums_and_no_drift():
    n = 3000
    tree2 = SumTree(n)
    oracle = np.zeros(n)
    rng = np.random.default_rng(1)
    for _ in range(3000):
        idx = rng.integers(0, n, size=16)
        vals = rng.random(16) ** 3 * (rng.random(16) > 0.3)  # many exact zeros
        tree2.update(idx, vals)
        for i, v in zip(idx, vals):
            oracle[i] = v
    np.testing.assert_array_equal(tree2.leaves(), oracle)
    assert tree2.total() == pytest.approx(oracle.sum(), rel=1e-12)
    total = tree2.total()
    u = np.sort(rng.random(10_000)) * total
    u = np.minimum(u, total * (1 - 1e-12))
    found = tree2.find(u)
    cum = np.cumsum(oracle)
    lo, hi = cum[found] - oracle[found], cum[found]
    assert (oracle[found] > 0).all(), "find landed on a zero-priority leaf"
    tol = 1e-9 * total
    assert (u >= lo - tol).all() and (u < hi + tol).all()


def test_find_never_returns_zero_leaf_even_out_of_range():
    tree = SumTree(10)  # capacity 16: leaves 10..15 are padding with value 0
    tree.update(np.array([2, 6]), np.array([1.0, 3.0]))
    found = tree.find(np.array([-5.0, 0.0, 0.999, 1.0, 3.9999, 4.0, 1e9]))
    np.testing.assert_array_equal(found, [2, 2, 2, 6, 6, 6, 6])


def test_set_leaves_rebuilds_tree():
    rng = np.random.default_rng(3)
    vals = rng.random(37)
    a, b = SumTree(37), SumTree(37)
    a.set_leaves(vals)
    b.update(np.arange(37), vals)
    np.testing.assert_array_equal(a.nodes(), b.nodes())


def test_rejects_bad_values():
    tree = SumTree(4)
    with pytest.raises(ValueError):
        tree.update(np.array([0]), np.array([-1.0]))
    with pytest.raises(ValueError):
        tree.update(np.array([0]), np.array([np.nan]))
    with pytest.raises(IndexError):
        tree.update(np.array([4]), np.array([1.0]))

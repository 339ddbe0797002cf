"""The sharded replay without Ray: chunks from an in-process actor, shard picking, priorities, stream cuts."""
import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from dqnkit.config import Config
from dqnkit.distributed.actor import ApexActor
from dqnkit.distributed.cluster import actor_epsilons
from dqnkit.distributed.shards import ShardedReplay, chunk_rows
from dqnkit.replay import ReplayBuffer


def small_cfg(**kw):
    base = dict(env_id="CartPole-v1", num_envs=2, env_kwargs={"max_episode_steps": 12}, distributed="ray",
                actors=2, apex_chunk_steps=7, n_step=3, prioritized_replay=True, seed=3)
    base.update(kw)
    return Config.from_dict(base).to_dict()


def make_buffer(cfg_dict, capacity=400, seed=0, prioritized=True):
    cfg = Config.from_dict(cfg_dict)
    return ReplayBuffer(capacity, cfg.num_envs, (4,), np.float32, n_step=cfg.n_step, gamma=cfg.gamma,
                        prioritized=prioritized, alpha=cfg.alpha, seed=seed)


def recording_actor(cfg_dict, reference: ReplayBuffer) -> ApexActor:
    """An actor whose every env step also goes straight into ``reference`` through ReplayBuffer.add."""
    actor = ApexActor(cfg_dict, 0, 2)
    step = actor.envs.step

    def recorded(actions):
        out = step(actions)
        reference.add(actor.obs, actions, out.reward, out.terminated, out.truncated, out.final_obs,
                      episode_end=out.episode_end)
        return out

    actor.envs.step = recorded
    return actor


def storage_arrays(buffer: ReplayBuffer) -> dict:
    arrays, meta = buffer.state_dict()
    return {k: np.array(v) for k, v in arrays.items() if not k.startswith("sampler.")}, meta["storage"]


def test_chunk_stream_into_a_shard_is_bit_identical_to_plain_add():
    cfg = small_cfg()
    reference = make_buffer(cfg)
    actor = recording_actor(cfg, reference)
    shards = ShardedReplay([make_buffer(cfg), make_buffer(cfg)], seed=1)
    truncations = 0
    for _ in range(9):  # 63 rows of 2 envs, episodes of at most 12 steps
        chunk = actor.sample(7)
        truncations += int((chunk["truncated"] & ~chunk["terminated"]).sum())
        shards.add_chunk(0, chunk)
    assert truncations > 0  # the final-observation side table is exercised
    got, got_meta = storage_arrays(shards.shards[0])
    want, want_meta = storage_arrays(reference)
    assert got.keys() == want.keys() and got_meta == want_meta
    for key in want:
        assert got[key].dtype == want[key].dtype and np.array_equal(got[key], want[key]), key
    assert len(shards.shards[1]) == 0


def test_initial_priorities_become_the_shards_priorities():
    cfg = small_cfg()
    actor = ApexActor(cfg, 1, 2)
    shards = ShardedReplay([make_buffer(cfg), make_buffer(cfg)], seed=1)
    chunks = [actor.sample(7) for _ in range(3)]
    for chunk in chunks:
        shards.add_chunk(1, chunk)
    td = np.concatenate([c["td_abs"] for c in chunks])  # (21, 2): rows in write order
    shard = shards.shards[1]
    first, count = shard.storage.valid_range(shard.n_step)
    assert count == (21 - 3) * 2
    leaves = shard.sampler.tree.get(np.arange(count))
    expected = (td[:18].reshape(-1) + 1e-6) ** Config().alpha
    np.testing.assert_allclose(leaves, expected, rtol=1e-9)
    assert np.all(shard.sampler.tree.get(np.arange(count, 42)) == 0.0)  # the newest n_step rows: not yet
    assert len(set(np.round(leaves, 9))) > 5  # really the actor's values, not one max priority


def fill(shard: ReplayBuffer, rows: int, rng) -> None:
    for _ in range(rows):
        shard.add(rng.normal(size=(2, 4)).astype(np.float32), rng.integers(0, 2, 2), rng.normal(size=2),
                  np.zeros(2, bool), np.zeros(2, bool), rng.normal(size=(2, 4)).astype(np.float32))


def test_uniform_shard_picking_follows_sampleable_counts():
    cfg = small_cfg(prioritized_replay=False)
    rng = np.random.default_rng(0)
    bufs = [make_buffer(cfg, prioritized=False, seed=i) for i in range(3)]
    for b, rows in zip(bufs, (13, 43, 103)):
        fill(b, rows, rng)
    shards = ShardedReplay(bufs, seed=7)
    counts = np.bincount(shards.sample(6000).index // shards.slots, minlength=3)
    valid = np.array([b.num_valid() for b in bufs], dtype=float)
    assert valid.tolist() == [20.0, 80.0, 200.0]
    stat = chisquare(counts, valid / valid.sum() * counts.sum())
    assert stat.pvalue > 1e-3, (counts, stat)
    wrong = chisquare(counts, np.full(3, counts.sum() / 3))  # equal shares would be rejected
    assert wrong.pvalue < 1e-6


def test_prioritized_shard_picking_follows_priority_totals_and_updates_reach_their_shard():
    cfg = small_cfg()
    rng = np.random.default_rng(1)
    bufs = [make_buffer(cfg, seed=i) for i in range(3)]
    for b in bufs:
        fill(b, 53, rng)
    shards = ShardedReplay(bufs, seed=9)
    n = bufs[0].num_valid()
    scale = np.array([1.0, 3.0, 6.0])
    for i, s in enumerate(scale):  # shard i's |TD| all s: its total is n * (s + eps) ** alpha
        shards.update_priorities(i * shards.slots + np.arange(n), np.full(n, s))
    for i, s in enumerate(scale):
        leaves = bufs[i].sampler.tree.get(np.arange(n))
        np.testing.assert_allclose(leaves, (s + 1e-6) ** cfg["alpha"])
    totals = shards.shard_weights()
    np.testing.assert_allclose(totals, n * (scale + 1e-6) ** cfg["alpha"])
    counts = np.bincount(shards.sample_round(50, 100).index // shards.slots, minlength=3)
    stat = chisquare(counts, totals / totals.sum() * counts.sum())
    assert stat.pvalue > 1e-3, (counts, stat)
    # one slot of shard 2 updated through a global index: only that shard's leaf moves
    before = [b.sampler.tree.leaves().copy() for b in bufs]
    shards.update_priorities(np.array([2 * shards.slots + 5]), np.array([0.25]))
    after = [b.sampler.tree.leaves() for b in bufs]
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    assert np.isclose(after[2][5], (0.25 + 1e-6) ** cfg["alpha"]) and not np.isclose(before[2][5], after[2][5])


def test_importance_weights_are_those_of_one_big_prioritized_buffer():
    cfg = small_cfg()
    rng = np.random.default_rng(2)
    bufs = [make_buffer(cfg, seed=i) for i in range(2)]
    for b in bufs:
        fill(b, 33, rng)
    shards = ShardedReplay(bufs, seed=4)
    n = bufs[0].num_valid()
    for i in range(2):
        shards.update_priorities(i * shards.slots + np.arange(n), rng.uniform(0.1, 5.0, n))
    batch = shards.sample(64, beta=0.5)
    shard, slot = np.divmod(batch.index, shards.slots)
    p = np.array([bufs[s].sampler.tree.get(np.array([j]))[0] for s, j in zip(shard, slot)])
    w = (2 * n * p / shards.shard_weights().sum()) ** -0.5  # N * P(i), P(i) = p_i / (sum over all shards)
    np.testing.assert_allclose(batch.is_weight.numpy(), (w / w.max()).astype(np.float32), rtol=1e-5)
    # the rows are the transitions the index names
    for r in range(5):
        np.testing.assert_array_equal(batch.obs[r].numpy(), bufs[shard[r]].storage.obs_flat[slot[r]])


def test_a_cut_closes_open_episodes_with_the_observation_reached():
    cfg = small_cfg(prioritized_replay=False, env_kwargs={})
    actor = ApexActor(cfg, 0, 2)
    shards = ShardedReplay([make_buffer(cfg, prioritized=False)], seed=0)
    chunk = actor.sample(7)
    shards.add_chunk(0, chunk)
    shards.cut(0)
    st = shards.shards[0].storage
    row = (st.pos - 1) % st.num_rows
    open_ = ~(chunk["terminated"][-1] | chunk["truncated"][-1])
    assert open_.any()
    assert np.array_equal(st.truncated[row], chunk["truncated"][-1] | open_)
    np.testing.assert_array_equal(st.final_obs_of(st.row_slots(row)[open_]), chunk["next_obs"][open_])


def test_chunk_rows_rebuild_final_observations():
    cfg = small_cfg()
    chunk = ApexActor(cfg, 0, 2).sample(30)
    rows = list(chunk_rows(chunk))
    assert len(rows) == 30
    for flat, obs in zip(chunk["final_rows"], chunk["final_obs"]):
        t, e = divmod(int(flat), 2)
        np.testing.assert_array_equal(rows[t]["final_obs"][e], obs)
    assert chunk["final_rows"].size > 0


@pytest.mark.parametrize("n", [1, 2, 8])
def test_actor_epsilons_follow_the_apex_formula(n):
    eps = actor_epsilons(n, 0.4, 7.0)
    assert len(eps) == n
    assert eps[0] == pytest.approx(0.4)
    for i, e in enumerate(eps):
        expected = 0.4 if n == 1 else 0.4 ** (1 + 7 * i / (n - 1))
        assert e == pytest.approx(expected, rel=1e-12)
    if n == 8:
        assert eps[-1] == pytest.approx(0.4 ** 8) and all(a > b for a, b in zip(eps, eps[1:]))
    actors = [ApexActor(small_cfg(actors=n), i, n).epsilon for i in range(min(n, 2))]
    assert actors == pytest.approx(eps[:2])


def test_frame_stacks_travel_as_newest_frames_and_come_back_bit_identical():
    from dqnkit.distributed.shards import pack_frames, unpack_frames

    rng = np.random.default_rng(5)
    K, E, k = 40, 3, 4
    stacks = np.empty((K, E, k, 6, 5), dtype=np.uint8)
    current = rng.integers(0, 255, (E, k, 6, 5), dtype=np.uint8)
    for t in range(K):
        for e in range(E):
            if t > 0 and rng.random() < 0.1:  # an episode start: the reset frame repeated (FrameStackObservation)
                current[e] = rng.integers(0, 255, (1, 6, 5), dtype=np.uint8)
            elif t > 0:
                current[e] = np.concatenate((current[e, 1:], rng.integers(0, 255, (1, 6, 5), dtype=np.uint8)))
        stacks[t] = current
    packed = pack_frames(stacks)
    assert packed["reset_rows"].size > 0
    assert sum(a.nbytes for a in packed.values()) < stacks.nbytes / 2
    back = unpack_frames(packed)
    assert back.dtype == stacks.dtype and np.array_equal(back, stacks)

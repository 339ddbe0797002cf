"""state_dict / load_state_dict: exact restore through safetensors + JSON, RNG state included."""
import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from dqnkit.errors import CheckpointError
from dqnkit.replay import ReplayBuffer

from replay_helpers import batch_at  # noqa: E402


def make(prioritized, seed=123, **kw):
    return ReplayBuffer(60, 3, (2,), np.float32, n_step=3, gamma=0.9, prioritized=prioritized, seed=seed, **kw)


def feed(buf, rng, steps):
    for _ in range(steps):
        obs = rng.standard_normal((3, 2))
        buf.add(obs, rng.integers(0, 4, 3), rng.standard_normal(3), rng.random(3) < 0.1, rng.random(3) < 0.15,
                rng.standard_normal((3, 2)))


def assert_batches_equal(a, b):
    for name in a._fields:
        x, y = getattr(a, name), getattr(b, name)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)


def roundtrip(buf, tmp_path):
    arrays, meta = buf.state_dict()
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp_path / "replay.safetensors"))
    (tmp_path / "replay.json").write_text(json.dumps(meta))
    return load_file(str(tmp_path / "replay.safetensors")), json.loads((tmp_path / "replay.json").read_text())


@pytest.mark.parametrize("prioritized", [False, True])
def test_roundtrip_gives_identical_subsequent_samples(prioritized, tmp_path):
    rng = np.random.default_rng(0)
    a = make(prioritized)
    feed(a, rng, 35)  # wraps the 20-row ring
    for _ in range(3):
        batch = a.sample(16, beta=0.5)
        a.update_priorities(batch.index, rng.random(16) * 3)
    arrays, meta = roundtrip(a, tmp_path)
    assert a.storage.num_final_obs() > 0 and arrays["final_obs"].shape[0] == a.storage.num_final_obs()
    b = make(prioritized, seed=999)  # a different seed: the RNG state must come from the checkpoint
    b.load_state_dict(arrays, meta)
    assert len(b) == len(a) and b.storage.pos == a.storage.pos
    for _ in range(5):
        ba, bb = a.sample(32, beta=0.5), b.sample(32, beta=0.5)
        assert_batches_equal(ba, bb)
        td = rng.random(32)
        a.update_priorities(ba.index, td)
        b.update_priorities(bb.index, td)
    # keep going: identical adds give identical state and samples
    state = rng.bit_generator.state
    feed(a, rng, 7)
    rng.bit_generator.state = state
    feed(b, rng, 7)
    assert_batches_equal(a.sample(64), b.sample(64))
    if prioritized:
        np.testing.assert_array_equal(a.sampler.tree.nodes(), b.sampler.tree.nodes())


def test_truncated_final_obs_survive_roundtrip(tmp_path):
    a = make(False)
    feed(a, np.random.default_rng(1), 30)
    st = a.storage
    first, count = st.valid_range(a.n_step)
    index = (first + np.arange(count)) % st.num_slots
    before = batch_at(a, index)
    arrays, meta = roundtrip(a, tmp_path)
    b = make(False)
    b.load_state_dict(arrays, meta)
    after = batch_at(b, index)
    assert_batches_equal(before, after)
    # and the truncated windows really used the side table
    truncated_windows = (after.terminated.numpy() == 0) & np.isin(index, np.flatnonzero(st.truncated_flat))
    assert truncated_windows.any()


def test_meta_is_json_and_reports_pos_full_rng(tmp_path):
    a = make(True)
    feed(a, np.random.default_rng(2), 25)
    arrays, meta = a.state_dict()
    meta = json.loads(json.dumps(meta))
    assert meta["pos"] == 5 and meta["full"] is True
    assert meta["sampler"]["rng"]["bit_generator"] == "PCG64"
    assert all(isinstance(v, np.ndarray) for v in arrays.values())


def test_load_into_mismatched_buffer_raises(tmp_path):
    a = make(True)
    feed(a, np.random.default_rng(3), 10)
    arrays, meta = a.state_dict()
    with pytest.raises(CheckpointError, match="prioritized"):
        make(False).load_state_dict(arrays, meta)
    with pytest.raises(CheckpointError, match="n_step"):
        ReplayBuffer(60, 3, (2,), np.float32, n_step=2, prioritized=True).load_state_dict(arrays, meta)
    with pytest.raises(CheckpointError, match="alpha"):
        make(True, alpha=0.5).load_state_dict(arrays, meta)

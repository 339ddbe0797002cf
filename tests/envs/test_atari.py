"""Atari preprocessing on real ALE frames: life loss, reward clipping, max-pooling, no-ops, stacks."""
import numpy as np
import pytest

pytest.importorskip("ale_py")
cv2 = pytest.importorskip("cv2")
import gymnasium as gym  # noqa: E402

from dqnkit.config import Config  # noqa: E402
from dqnkit.envs.atari import AtariFramePreprocessing, is_atari, make_atari_env, register_ale  # noqa: E402
from dqnkit.envs.recorder import EpisodeRecorder  # noqa: E402
from dqnkit.errors import ConfigError  # noqa: E402


def cfg(**kw):
    return Config.from_dict({"env_id": "ALE/Pong-v5", "frame_stack": 4, **kw})


class ScreenRecorder(gym.Wrapper):
    """Independent record of every emulator frame: ale.getScreenGrayscale() after each raw step/reset."""

    def __init__(self, env):
        super().__init__(env)
        self.frames = []

    def _grab(self):
        self.frames.append(self.env.unwrapped.ale.getScreenGrayscale())

    def reset(self, **kw):
        out = self.env.reset(**kw)
        self._grab()
        return out

    def step(self, action):
        out = self.env.step(action)
        self._grab()
        return out


def raw_env(game, **kw):
    register_ale()
    return gym.make(game, frameskip=1, repeat_action_probability=0.0, **kw)


def resize(frame):
    return cv2.resize(frame, (84, 84), interpolation=cv2.INTER_AREA)


def test_is_atari():
    assert is_atari("ALE/Pong-v5") and is_atari("PongNoFrameskip-v4")
    assert not is_atari("CartPole-v1") and not is_atari("GridWorld-v0")


def test_life_loss_signalled_episode_spans_the_game():
    """Breakout, 5 lives, random play to game over: 5 life losses signalled, the episode goes on after
    each, and the summed raw_reward equals the evaluation env's return on the same game."""
    train = make_atari_env("ALE/Breakout-v5", cfg())
    evaluate = make_atari_env("ALE/Breakout-v5", cfg(), evaluation=True)
    obs_t, info_t = train.reset(seed=3)
    obs_e, _ = evaluate.reset(seed=3)
    assert info_t["life_loss"] is False and info_t["lives"] == 5
    rng = np.random.default_rng(0)
    losses, raw_return, eval_return, steps = [], 0.0, 0.0, 0
    while True:
        a = int(rng.integers(train.action_space.n))
        obs_t, r_t, term_t, trunc_t, info_t = train.step(a)
        obs_e, r_e, term_e, trunc_e, info_e = evaluate.step(a)
        steps += 1
        np.testing.assert_array_equal(obs_t, obs_e)  # same game, learning signals aside
        assert info_e["life_loss"] is False and r_e == info_e["raw_reward"]
        assert r_t == np.sign(info_t["raw_reward"])
        raw_return += info_t["raw_reward"]
        eval_return += r_e
        if info_t["life_loss"]:
            losses.append((steps, term_t, info_t["lives"]))
        assert (term_t, trunc_t) == (term_e, trunc_e)
        if term_t or trunc_t:
            break
    assert term_t and not trunc_t
    assert [lives for *_, lives in losses] == [4, 3, 2, 1, 0]
    assert [term for _, term, _ in losses] == [False] * 4 + [True]  # the game goes on after 4 of them
    assert raw_return == eval_return and steps > losses[0][0]


def test_reward_clipping_leaves_raw_reward():
    """Space Invaders pays 5..30 per alien: the learner sees sign(r), info['raw_reward'] keeps r."""
    env = make_atari_env("ALE/SpaceInvaders-v5", cfg())
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(400):
        _, r, term, trunc, info = env.step(int(rng.integers(env.action_space.n)))
        assert r == np.sign(info["raw_reward"])
        seen.add(info["raw_reward"])
        if term or trunc:
            env.reset()
    assert max(seen) >= 5.0
    unclipped = make_atari_env("ALE/SpaceInvaders-v5", cfg(clip_rewards=False))
    unclipped.reset(seed=0)
    _, r, *_, info = unclipped.step(0)
    assert r == info["raw_reward"]


def test_observation_is_max_of_last_two_raw_frames():
    """Checked against the emulator's own screens, including an episode cut mid-skip (frame cap 42 =
    10 agent steps + 2 frames): the final observation pools the last two frames actually emulated."""
    rec = ScreenRecorder(raw_env("ALE/SpaceInvaders-v5", max_num_frames_per_episode=42))
    env = AtariFramePreprocessing(rec, noop_max=0, frame_skip=4)
    obs, info = env.reset(seed=0)
    np.testing.assert_array_equal(obs, resize(rec.frames[-1]))  # reset: last frame, unpooled
    rng = np.random.default_rng(0)
    pooled_differs = 0
    for step in range(1, 100):
        obs, _, term, trunc, info = env.step(int(rng.integers(env.action_space.n)))
        frames = rec.frames
        np.testing.assert_array_equal(obs, resize(np.maximum(frames[-1], frames[-2])))
        pooled_differs += not np.array_equal(obs, resize(frames[-1]))
        if trunc:
            break
    assert trunc and not term and step == 11 and info["episode_frame_number"] == 42
    assert pooled_differs > 0  # flickering sprites: pooling is not a no-op here


def test_noops_in_range_and_reproducible():
    env = AtariFramePreprocessing(raw_env("ALE/Pong-v5"), noop_max=30)
    counts = []
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        assert 0 <= info["noops"] <= 30
        assert env.unwrapped.ale.getEpisodeFrameNumber() == info["noops"]  # one frame per no-op
        obs2, info2 = env.reset(seed=seed)
        assert info2["noops"] == info["noops"]
        np.testing.assert_array_equal(obs, obs2)
        counts.append(info["noops"])
    assert len(set(counts)) > 1
    _, info = AtariFramePreprocessing(raw_env("ALE/Pong-v5"), noop_max=0).reset(seed=0)
    assert info["noops"] == 0


def test_stack_at_episode_start_is_zero_padded():
    env = make_atari_env("ALE/Breakout-v5", cfg())
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert env.observation_space.shape == (4, 84, 84)
    assert not obs[:3].any() and obs[3].any()
    nxt, *_ = env.step(0)
    assert not nxt[:2].any()
    np.testing.assert_array_equal(nxt[2], obs[3])


def test_sticky_actions_and_exact_resimulation():
    """Sticky actions come from np_random (ALE's own stays off): probability 1 repeats the reset's NOOP
    forever, and an unseeded later episode re-simulates exactly from its recorded start."""
    always = make_atari_env("ALE/Pong-v5", cfg(sticky_action_prob=1.0, noop_max=0, fire_reset=False))
    never = make_atari_env("ALE/Pong-v5", cfg(sticky_action_prob=0.0, noop_max=0, fire_reset=False))
    always.reset(seed=0)
    never.reset(seed=0)
    for a in [2, 3, 2, 3, 5, 4] * 5:
        o1, *_ = always.step(a)
        o2, *_ = never.step(0)
        np.testing.assert_array_equal(o1, o2)

    def build():
        return EpisodeRecorder(make_atari_env("ALE/Pong-v5", cfg(sticky_action_prob=0.25)))

    env = build()
    env.reset(seed=4)
    for a in range(30):
        env.step(a % 6)
    env.reset()  # second episode: unseeded
    rng = np.random.default_rng(2)
    for _ in range(60):
        obs, *_ = env.step(int(rng.integers(6)))
    restored = build().restore(env.snapshot())
    np.testing.assert_array_equal(restored, obs)


def test_reserved_env_kwargs_rejected():
    with pytest.raises(ConfigError, match="frame_skip"):
        make_atari_env("ALE/Pong-v5", cfg(env_kwargs={"frameskip": 4}))

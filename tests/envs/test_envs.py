"""Environment layer: GridWorld-v0, make_env / make_vec_env, final observations, space descriptions."""
from __future__ import annotations

import importlib
import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

import dqnkit.envs
from dqnkit.envs import (
    GridWorldEnv,
    OneHotObservation,
    check_discrete,
    final_observations,
    make_env,
    make_vec_env,
    obs_spec,
    spaces_signature,
)
from dqnkit.errors import ConfigError, EnvError

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
WRAPPED_WARNING = "is different from the unwrapped version"


def run_check_env(env: gym.Env) -> None:
    """check_env, failing on every warning except the one about checking a wrapped env."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    bad = [str(w.message) for w in caught if WRAPPED_WARNING not in str(w.message)]
    assert not bad, bad


# ------------------------------------------------------------------ GridWorld
@pytest.mark.parametrize("render_mode", [None, "rgb_array", "ansi"])
@pytest.mark.parametrize("slippery", [False, True])
def test_gridworld_passes_check_env(render_mode, slippery):
    env = gym.make("GridWorld-v0", render_mode=render_mode, slippery=slippery)
    run_check_env(env.unwrapped)
    run_check_env(env)


def test_gridworld_registered_with_time_limit_and_reregistration_is_harmless():
    assert gym.spec("GridWorld-v0").max_episode_steps == 100
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(dqnkit.envs)
    assert gym.spec("GridWorld-v0").max_episode_steps == 100


def test_gridworld_layout_and_helpers():
    env = gym.make("GridWorld-v0").unwrapped
    assert env.grid_shape == (5, 5)
    assert env.start == (0, 0) and env.goal == (4, 4) and env.obstacles == [(1, 2)]
    assert env.observation_space == spaces.Discrete(25) and env.action_space == spaces.Discrete(4)
    assert env.action_names == ("up", "right", "down", "left")
    assert len(env.action_arrows) == 4
    assert env.key_states["near_start"] == (1, 0) and env.key_states["center"] == (2, 2)
    for s in range(25):
        assert env.to_state(env.to_pos(s)) == s
    assert env.to_state((2, 3)) == 13 and env.to_pos(13) == (2, 3)
    obs, info = env.reset(seed=0)
    assert obs == 0 and isinstance(info, dict)


def test_gridworld_rewards_and_termination():
    env = gym.make("GridWorld-v0")
    env.reset(seed=0)
    # Off the grid: stay in place, -1, not terminal.
    assert env.step(UP)[:4] == (0, -1.0, False, False)
    assert env.step(LEFT)[:4] == (0, -1.0, False, False)
    # Along the top row and down the right column to the goal: 7 moves of -1, then +10.
    total = 0.0
    for i, a in enumerate([RIGHT] * 4 + [DOWN] * 4):
        obs, r, terminated, truncated, _ = env.step(a)
        total += r
        assert terminated == (i == 7) and not truncated
    assert obs == 24 and r == 10.0 and total == 3.0

    # Into the obstacle at (1, 2): -10 and terminated.
    env.reset()
    env.step(RIGHT)
    env.step(RIGHT)
    obs, r, terminated, truncated, _ = env.step(DOWN)
    assert (obs, r, terminated, truncated) == (7, -10.0, True, False)


def test_gridworld_truncates_at_100_steps():
    env = gym.make("GridWorld-v0")
    env.reset(seed=0)
    for t in range(1, 101):
        _, r, terminated, truncated, _ = env.step(UP)
        assert r == -1.0 and not terminated
        assert truncated == (t == 100)


def test_gridworld_reset_start_option_and_kwargs():
    env = gym.make("GridWorld-v0", size=(3, 4), start=(2, 0), goal=(0, 3), obstacles=[(1, 1), (1, 2)])
    obs, _ = env.reset(seed=1)
    assert obs == 8 and env.observation_space.n == 12
    obs, _ = env.reset(options={"start": (0, 2)})
    assert obs == 2
    assert env.step(RIGHT)[:3] == (3, 10.0, True)
    with pytest.raises(ConfigError, match="terminal"):
        env.reset(options={"start": (1, 1)})
    with pytest.raises(ConfigError, match="outside"):
        GridWorldEnv(goal=(5, 5))
    with pytest.raises(ConfigError, match="obstacle"):
        GridWorldEnv(obstacles=[(0, 0)])


def test_gridworld_slippery_moves_sideways_only():
    env = gym.make("GridWorld-v0", slippery=True)
    env.reset(seed=3)
    seen = set()
    for _ in range(200):
        env.unwrapped.s = 12  # centre (2, 2)
        obs, *_ = env.step(RIGHT)
        seen.add(obs)
    assert seen == {7, 13, 17}  # intended (2, 3) or perpendicular (1, 2) / (3, 2)


def test_gridworld_renders():
    env = gym.make("GridWorld-v0", render_mode="rgb_array")
    env.reset(seed=0)
    img = env.render()
    assert img.shape == (160, 160, 3) and img.dtype == np.uint8
    env.step(DOWN)  # agent to (1, 0): its cell's centre pixel changes colour
    img2 = env.render()
    assert not np.array_equal(img[48, 16], img2[48, 16])
    text = gym.make("GridWorld-v0", render_mode="ansi")
    text.reset(seed=0)
    out = text.render()
    assert isinstance(out, str) and out.splitlines()[0].split() == ["A", ".", ".", ".", "."]
    assert "X" in out and "G" in out


# ------------------------------------------------------------------ make_env
@pytest.mark.parametrize("env_id,kwargs,n", [("FrozenLake-v1", {"is_slippery": False}, 16), ("GridWorld-v0", {}, 25)])
def test_make_env_one_hot_encodes_discrete_observations(env_id, kwargs, n):
    env = make_env(env_id, seed=0, env_kwargs=kwargs)
    assert isinstance(env, OneHotObservation)
    assert env.observation_space == spaces.Box(0.0, 1.0, (n,), np.float32)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (n,)
    np.testing.assert_array_equal(obs, np.eye(n, dtype=np.float32)[0])
    down = 1 if env_id == "FrozenLake-v1" else DOWN  # FrozenLake: 0 left, 1 down, 2 right, 3 up
    obs, *_ = env.step(down)  # state 4 in FrozenLake 4x4, state 5 in the 5x5 grid
    assert obs.sum() == 1.0 and obs.argmax() == (4 if n == 16 else 5)
    assert env.observation_space.contains(obs)


def test_make_env_passes_box_observations_through_and_accepts_callables():
    env = make_env("CartPole-v1", seed=0)
    assert env.observation_space.shape == (4,)
    env2 = make_env(lambda: gym.make("GridWorld-v0"), seed=0)
    assert env2.observation_space.shape == (25,)
    raw = make_env("GridWorld-v0", one_hot=False)
    assert isinstance(raw.observation_space, spaces.Discrete)


def test_make_env_rejects_continuous_actions():
    with pytest.raises(EnvError, match="Discrete") as info:
        make_env("Pendulum-v1")
    assert "Pendulum-v1" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(EnvError, match="MultiDiscrete"):
        check_discrete(spaces.MultiDiscrete([2, 3]), "Multi-v0")
    assert check_discrete(spaces.Discrete(3), "x") == spaces.Discrete(3)


def test_make_env_unknown_id_suggests_close_match():
    with pytest.raises(EnvError, match="CartPole-v1") as info:
        make_env("CartPol-v1")
    assert "CartPol-v1" in str(info.value) and "register" in str(info.value)


def test_make_env_bad_kwargs_is_config_error():
    with pytest.raises(ConfigError, match="env_kwargs"):
        make_env("GridWorld-v0", env_kwargs={"no_such_option": 1})


def test_make_env_shifts_discrete_actions_with_nonzero_start():
    class Shifted(gym.Env):
        observation_space = spaces.Box(-1, 1, (2,), np.float32)
        action_space = spaces.Discrete(3, start=-1)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return np.zeros(2, np.float32), {}

        def step(self, action):
            assert action in (-1, 0, 1)
            return np.zeros(2, np.float32), float(action), False, False, {}

    env = make_env(Shifted)
    assert env.action_space == spaces.Discrete(3)
    env.reset(seed=0)
    assert env.step(0)[1] == -1.0 and env.step(2)[1] == 1.0


# ----------------------------------------------------------------- vector envs
def test_make_vec_env_is_same_step_autoreset():
    envs = make_vec_env("GridWorld-v0", 2, seed=0)
    assert envs.autoreset_mode == gym.vector.AutoresetMode.SAME_STEP
    assert envs.single_observation_space.shape == (25,)
    assert spaces_signature(envs) == spaces_signature(make_env("GridWorld-v0"))
    envs.close()


def test_final_observations_match_single_env_ground_truth():
    """A CartPole vector env with mixed terminations and truncations vs 3 single envs stepped in lockstep."""
    seed, n = 7, 3
    kwargs = {"max_episode_steps": 15}  # CartPole random episodes end both ways around 15 steps
    envs = make_vec_env("CartPole-v1", n, seed=seed, env_kwargs=kwargs)
    singles = [make_env("CartPole-v1", env_kwargs=kwargs) for _ in range(n)]
    obs, _ = envs.reset(seed=seed)
    single_obs = np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(singles)])
    np.testing.assert_array_equal(obs, single_obs)

    rng = np.random.default_rng(0)
    kinds = {"terminated": 0, "truncated": 0, "both-envs-same-step": 0}
    for _ in range(150):
        actions = rng.integers(2, size=n)
        next_obs, rewards, terminated, truncated, infos = envs.step(actions)
        ended = terminated | truncated
        true_final, after_reset = [], []
        for i, e in enumerate(singles):
            o, r, term, trunc, _ = e.step(int(actions[i]))
            assert (r, term, trunc) == (rewards[i], terminated[i], truncated[i])
            true_final.append(o)
            after_reset.append(e.reset()[0] if term or trunc else o)
        got = final_observations(next_obs, infos, ended)
        np.testing.assert_array_equal(got, np.stack(true_final))
        np.testing.assert_array_equal(next_obs, np.stack(after_reset))  # the vector env already reset
        if ended.any():
            assert infos["_final_obs"].tolist() == ended.tolist()
            assert not np.shares_memory(got, next_obs)
        kinds["terminated"] += int(terminated.sum())
        kinds["truncated"] += int((truncated & ~terminated).sum())
        kinds["both-envs-same-step"] += int(ended.sum() >= 2)
    assert all(v > 0 for v in kinds.values()), kinds
    envs.close()


def test_final_observations_rejects_next_step_autoreset():
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1", max_episode_steps=2)])
    envs.reset(seed=0)
    envs.step(np.array([0]))
    next_obs, _, terminated, truncated, infos = envs.step(np.array([0]))
    with pytest.raises(EnvError, match="same-step"):
        final_observations(next_obs, infos, terminated | truncated)


# ---------------------------------------------------------------- descriptions
def test_obs_spec():
    assert obs_spec(spaces.Box(-1, 1, (4,), np.float64)) == ((4,), np.float32)
    assert obs_spec(spaces.Box(0, 255, (84, 84, 4), np.uint8)) == ((84, 84, 4), np.uint8)
    assert obs_spec(spaces.Box(0, 10, (3,), np.int64)) == ((3,), np.uint8)
    assert obs_spec(spaces.Box(0, 1000, (3,), np.int64)) == ((3,), np.float32)
    assert obs_spec(spaces.Discrete(7)) == ((7,), np.float32)
    assert obs_spec(make_env("CartPole-v1").observation_space) == ((4,), np.float32)
    with pytest.raises(EnvError, match="FlattenObservation"):
        obs_spec(spaces.Dict({"a": spaces.Discrete(2)}))


def test_spaces_signature_is_json_and_tells_envs_apart():
    cart = spaces_signature(make_env("CartPole-v1"))
    assert json.loads(json.dumps(cart)) == cart
    assert cart["action_space"] == {"type": "Discrete", "n": 2, "start": 0}
    assert cart == spaces_signature(make_env("CartPole-v1"))
    assert cart != spaces_signature(make_env("Acrobot-v1"))
    grid = spaces_signature(make_env("GridWorld-v0"))
    assert grid != spaces_signature(make_env("GridWorld-v0", env_kwargs={"size": 6}))
    pixels = spaces_signature(make_env(_PixelEnv))
    assert pixels["observation_space"] == {"type": "Box", "shape": [84, 84, 4], "dtype": "uint8"}


class _PixelEnv(gym.Env):
    observation_space = spaces.Box(0, 255, (84, 84, 4), np.uint8)
    action_space = spaces.Discrete(4)


# ------------------------------------------------------------------ input scaling
def test_input_scale_only_for_uint8_boxes_bounded_0_255():
    from dqnkit.envs import input_scale

    assert input_scale(spaces.Box(0, 255, (7, 7, 3), np.uint8)) == pytest.approx(1 / 255)
    assert input_scale(spaces.Box(0, 255, (128,), np.uint8)) == pytest.approx(1 / 255)  # RAM-like, any rank
    assert input_scale(spaces.Box(0, 255, (7, 7, 3), np.uint8), normalize_images=False) == 1.0
    assert input_scale(spaces.Box(0, 10, (7, 7, 3), np.uint8)) == 1.0
    assert input_scale(spaces.Box(0, 255, (3,), np.int64)) == 1.0
    assert input_scale(spaces.Box(-1.0, 1.0, (3,), np.float32)) == 1.0
    assert input_scale(spaces.Discrete(4)) == 1.0


# ------------------------------------------------------------------ wrappers from the config
def test_make_env_applies_wrappers_innermost_first_with_kwargs():
    env = make_env("CartPole-v1", wrappers=[{"gymnasium.wrappers:TimeLimit": {"max_episode_steps": 7}},
                                            "gymnasium.wrappers.RecordEpisodeStatistics"])
    assert isinstance(env, gym.wrappers.RecordEpisodeStatistics)
    env.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, _, term, trunc, _ = env.step(0 if steps % 2 else 1)
        steps, done = steps + 1, term or trunc
    assert steps == 7 and trunc


@pytest.mark.parametrize("wrapper, error, message", [
    ("no_such_pkg.Wrapper", EnvError, "cannot import module 'no_such_pkg'"),
    ("gymnasium.wrappers.NoSuchWrapper", EnvError, "has no 'NoSuchWrapper'"),
    ("Wrapper", ConfigError, "is not an import path"),
    ({"gymnasium.wrappers.TimeLimit": {"bogus": 1}}, ConfigError, "rejected its arguments"),
])
def test_bad_wrappers_fail_with_one_clear_line(wrapper, error, message):
    with pytest.raises(error, match=message):
        make_env("CartPole-v1", wrappers=[wrapper])


def test_minigrid_ids_register_themselves_and_need_a_box_wrapper():
    with pytest.raises(EnvError, match="env_wrapper=minigrid.wrappers.ImgObsWrapper"):
        make_env("MiniGrid-Empty-5x5-v0")
    env = make_env("MiniGrid-Empty-5x5-v0", wrappers=["minigrid.wrappers.ImgObsWrapper"])
    assert env.observation_space.shape == (7, 7, 3) and env.observation_space.dtype == np.uint8
    assert env.action_space.n == 7

"""Action masks: acting, exploration, the TD target (plain, Double, C51) and evaluation never use a masked action."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from dqnkit.api import DQN
from dqnkit.config import Config
from dqnkit.envs.masks import pack, unpack
from dqnkit.errors import ConfigError, EnvError
from dqnkit.learner.agent import Agent
from dqnkit.learner.explore import epsilon_greedy, uniform_allowed
from dqnkit.learner.losses import td_target
from dqnkit.replay import ReplayBuffer
from dqnkit.training.trainer import Trainer

FORBIDDEN = 2


class Corridor(gym.Env):
    """Reward 1 per step for 20 steps; action 2 is never allowed (taking it raises). ``route``: info or method;
    ``mask_length``: the length of the mask given (3 is right)."""

    def __init__(self, route="info", mask_length=3):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.route, self.mask_length = route, mask_length
        self.t = 0

    def action_masks(self):
        mask = np.ones(self.mask_length, dtype=bool)
        mask[FORBIDDEN] = False
        return mask

    def _obs(self):
        return np.array([self.t / 20.0, 0.5], dtype=np.float32)

    def _info(self):
        return {"action_mask": self.action_masks()} if self.route == "info" else {}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), self._info()

    def step(self, action):
        if int(action) == FORBIDDEN:
            raise AssertionError("the agent took a masked action")
        self.t += 1
        return self._obs(), 1.0, False, self.t >= 20, self._info()


class MethodCorridor(Corridor):
    def __init__(self):
        super().__init__(route="method")


FAST = dict(learning_starts=64, train_freq=1, batch_size=32, buffer_size=2000, eval_freq=400, eval_episodes=2,
            checkpoint_freq=0, target_update_interval=50, gamma=0.5, learning_rate=1e-3, tensorboard=False,
            exploration_fraction=0.5, policy_kwargs={"net_arch": [16]})


def _make_forbidden_greedy(agent):
    """Action 2's Q-value +100 above the others in both networks: the greedy choice without the mask."""
    with torch.no_grad():
        agent.online.advantage[-1].bias[FORBIDDEN] += 100.0
    agent.sync_target()


@pytest.mark.parametrize("env, extra", [(Corridor, {}), (MethodCorridor, {"double_q": True}),
                                        (Corridor, {"num_envs": 2, "gradient_steps": 2})])
def test_training_never_takes_or_bootstraps_from_a_masked_action(env, extra):
    cfg = Config.from_dict({**FAST, **extra, "total_timesteps": 800})
    t = Trainer(cfg, None, env=env, verbosity="quiet")
    assert t.envs.masked
    _make_forbidden_greedy(t.agent)
    obs = np.stack([np.array([0.0, 0.5], np.float32)] * 4)
    assert (t.agent.q_values(obs).argmax(1) == FORBIDDEN).all()  # without the mask it would be chosen
    result = t.learn()  # Corridor raises on a masked action: in warm-up, epsilon, greedy acting and evaluation
    assert result["last_eval"]["mean_return"] == 20.0
    # the target's max runs over the allowed actions: Q stays near the true 1 / (1 - gamma) = 2, far from the
    # 1 + 0.5 * 100 = 51 that bootstrapping from action 2 would give
    q = t.agent.q_values(obs)
    assert q[:, :FORBIDDEN].max() < 5.0, q
    assert q[:, FORBIDDEN].min() > 50.0  # never trained: still the greedy action without the mask
    batch = t.buffer.sample(64)
    assert batch.next_mask.shape == (64, 3) and not batch.next_mask[:, FORBIDDEN].any()
    t.close()


def test_c51_action_choice_respects_the_mask():
    cfg = Config.from_dict({**FAST, "distributional": True, "v_min": 0.0, "v_max": 10.0, "n_atoms": 11,
                            "total_timesteps": 400})
    t = Trainer(cfg, None, env=Corridor, verbosity="quiet")
    with torch.no_grad():  # action 2's distribution all on the top atom: the largest expectation by far
        t.agent.online.advantage[-1].bias.view(3, 11)[FORBIDDEN, -1] += 50.0
    t.agent.sync_target()
    result = t.learn()
    assert result["last_eval"]["mean_return"] == 20.0
    q = t.agent.q_values(np.array([[0.0, 0.5]], np.float32))[0]
    assert q[FORBIDDEN] > 9.0 and q[:FORBIDDEN].max() < 5.0, q
    t.close()


def test_td_target_oracle_with_masks():
    reward, discount, terminated = torch.tensor([1.0, 1.0]), torch.tensor([0.5, 0.5]), torch.tensor([0.0, 0.0])
    q_target = torch.tensor([[1.0, 2.0, 100.0], [3.0, -1.0, 100.0]])
    q_online = torch.tensor([[5.0, 0.0, 100.0], [0.0, 5.0, 100.0]])
    mask = torch.tensor([[True, True, False], [True, True, False]])
    assert td_target(reward, discount, terminated, q_target).tolist() == [51.0, 51.0]
    assert td_target(reward, discount, terminated, q_target, next_mask=mask).tolist() == [2.0, 2.5]
    # Double DQN: the online net's argmax over allowed actions (0, then 1), evaluated by the target net
    assert td_target(reward, discount, terminated, q_target, q_online, mask).tolist() == [1.5, 0.5]


def test_agent_act_greedy_and_random_respect_the_mask():
    cfg = Config.from_dict({**FAST, "total_timesteps": 100})
    agent = Agent(cfg, (2,), 3)
    _make_forbidden_greedy(agent)
    obs = np.random.default_rng(0).random((500, 2), dtype=np.float32)
    mask = np.ones((500, 3), dtype=bool)
    mask[:, FORBIDDEN] = False
    rng = np.random.default_rng(1)
    assert (agent.act(obs, 0.0, rng) == FORBIDDEN).all()
    for eps in (0.0, 0.5, 1.0):
        actions = agent.act(obs, eps, rng, mask)
        assert not (actions == FORBIDDEN).any()
    random_actions = agent.act(obs, 1.0, rng, mask)
    assert 0.4 < (random_actions == 0).mean() < 0.6  # uniform over the two allowed actions


def test_uniform_allowed_is_uniform_over_allowed_actions():
    rng = np.random.default_rng(0)
    mask = np.zeros((30_000, 5), dtype=bool)
    mask[:, [0, 3, 4]] = True
    counts = np.bincount(uniform_allowed(mask, rng), minlength=5)
    assert counts[1] == counts[2] == 0
    expected = 10_000
    chi2 = sum((c - expected) ** 2 / expected for c in counts[[0, 3, 4]])
    assert chi2 < 13.8  # chi-square, 2 degrees of freedom, p = 0.001
    rows = np.eye(5, dtype=bool)  # one allowed action per row: always that one
    assert (uniform_allowed(rows, rng) == np.arange(5)).all()
    greedy = np.full(5, 1)
    assert (epsilon_greedy(greedy, 1.0, 5, rng, rows) == np.arange(5)).all()


def test_mask_of_the_wrong_length_is_one_clear_line():
    with pytest.raises(EnvError, match="action mask of length 4 but its action space has 3 actions") as err:
        Trainer(Config.from_dict({**FAST, "total_timesteps": 100}), None,
                env=lambda: Corridor(mask_length=4), verbosity="quiet")
    assert "\n" not in str(err.value)


def test_predict_with_action_masks():
    model = DQN(Corridor, verbose=0, **{**FAST, "total_timesteps": 100})
    _make_forbidden_greedy(model.trainer.agent)
    obs = np.array([0.0, 0.5], np.float32)
    assert model.predict(obs) == FORBIDDEN
    assert model.predict(obs, action_masks=[True, True, False]) != FORBIDDEN
    with pytest.raises(EnvError, match="length 2"):
        model.predict(obs, action_masks=[True, False])


def test_population_refuses_masked_envs():
    with pytest.raises(ConfigError, match="population mode does not support envs with action masks"):
        DQN.population(Corridor, seeds=[0, 1], **{**FAST, "total_timesteps": 100}).learn()


@pytest.mark.parametrize("n_actions", [1, 7, 8, 9, 20])
def test_bit_pack_round_trip(n_actions):
    masks = np.random.default_rng(n_actions).random((50, n_actions)) < 0.5
    packed = pack(masks)
    assert packed.dtype == np.uint8 and packed.shape == (50, (n_actions + 7) // 8)
    assert np.array_equal(unpack(packed, n_actions), masks)


def _filled_buffer(seed=0, **kwargs):
    buf = ReplayBuffer(64, 2, (1,), np.float32, seed=3, mask_actions=10, **kwargs)
    rng = np.random.default_rng(seed)
    masks_by_slot = {}
    for t in range(40):
        masks = rng.random((2, 10)) < 0.6
        masks[:, 0] = True
        buf.add(np.full((2, 1), t, np.float32), [0, 1], [1.0, 1.0], [False, False], [False, False],
                np.zeros((2, 1), np.float32), next_mask=masks)
        for e in range(2):
            masks_by_slot[(t % 32) * 2 + e] = masks[e]
    return buf, masks_by_slot


def test_replay_next_mask_is_the_mask_at_the_window_end():
    buf, masks_by_slot = _filled_buffer()
    batch = buf.sample(200)
    for slot, mask in zip(batch.index, batch.next_mask.numpy()):
        assert np.array_equal(mask, masks_by_slot[int(slot)])
    buf3, masks3 = _filled_buffer(n_step=3)
    batch = buf3.sample(200)
    for slot, mask in zip(batch.index, batch.next_mask.numpy()):
        assert np.array_equal(mask, masks3[(int(slot) + 2 * 2) % 64])  # the third row's transition


def test_replay_save_load_keeps_masks():
    buf, _ = _filled_buffer()
    arrays, meta = buf.state_dict()
    assert arrays["next_mask"].dtype == np.uint8 and arrays["next_mask"].shape == (64, 2)
    assert meta["config"]["mask_actions"] == 10
    from safetensors.numpy import load_file, save_file
    import json
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, f"{d}/r.safetensors")
        loaded, meta2 = load_file(f"{d}/r.safetensors"), json.loads(json.dumps(meta))
    fresh = ReplayBuffer(64, 2, (1,), np.float32, seed=99, mask_actions=10)
    fresh.load_state_dict(loaded, meta2)
    a, b = buf.sample(100), fresh.sample(100)
    assert np.array_equal(a.index, b.index) and torch.equal(a.next_mask, b.next_mask)
    unmasked = ReplayBuffer(64, 2, (1,), np.float32)
    with pytest.raises(Exception, match="mask_actions"):
        unmasked.load_state_dict(loaded, meta2)


def test_resume_with_replay_and_masks_matches_uninterrupted_run(tmp_path):
    cfg = Config.from_dict({**FAST, "total_timesteps": 600, "save_replay": True, "checkpoint_freq": 300,
                            "eval_freq": 300, "seed": 3})
    full = Trainer(cfg, tmp_path / "full", env=MethodCorridor, verbosity="quiet")
    full.learn()
    full.close()
    first = Trainer(cfg, tmp_path / "part", env=MethodCorridor, verbosity="quiet")
    first.learn(300)
    first.close()
    second = Trainer(cfg, tmp_path / "part", env=MethodCorridor, verbosity="quiet")
    second.restore(tmp_path / "part" / "checkpoints" / "step_0000000300")
    assert second.envs.current_mask is not None and not second.envs.current_mask[:, FORBIDDEN].any()
    second.learn()
    second.close()
    assert (tmp_path / "full" / "episodes.csv").read_text() == (tmp_path / "part" / "episodes.csv").read_text()
    strip = lambda text: [line.rsplit(",", 1)[0] for line in text.splitlines()]  # noqa: E731 - drop sps
    assert strip((tmp_path / "full" / "updates.csv").read_text()) == strip((tmp_path / "part" / "updates.csv").read_text())

"""Stable-Baselines3's DQN as an oracle: the same learner math and the same loop schedule.

The parity issue asks that dqnkit learn at least as well as SB3 with the same hyperparameters. These
tests pin the two places where a systematic difference could hide:
- the learner: from the same weights, on the same batches, dqnkit's update (with its hand-derived MLP
  backward and fused Adam) ends at SB3's weights;
- the loop: for a config, the env steps at which each library trains (and how many updates), syncs the
  target network, and the epsilon it acts with at every step.
"""
import gymnasium as gym
import numpy as np
import pytest
import torch

import stable_baselines3 as sb3  # in the test extra
from stable_baselines3.common.logger import configure
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from dqnkit.learner.agent import Agent
from dqnkit.api import DQN
from dqnkit.config import Config
from dqnkit.types import Batch


def _linears(module):
    return [m for m in module.modules() if isinstance(m, torch.nn.Linear)]


@pytest.mark.parametrize("loss_options", [{}, {"max_grad_norm": 0.05}])
def test_update_equals_sb3_train_step(loss_options):
    torch.manual_seed(0)
    sb = sb3.DQN("MlpPolicy", gym.make("CartPole-v1"), learning_rate=1e-3, batch_size=32, learning_starts=0,
                 policy_kwargs={"net_arch": [32, 32]}, seed=0, **loss_options)
    sb.set_logger(configure(None, []))
    cfg = Config.from_dict({"learning_rate": 1e-3, "batch_size": 32, "policy_kwargs": {"net_arch": [32, 32]},
                            "device": "cpu", **loss_options})
    agent = Agent(cfg, (4,), 2)
    with torch.no_grad():
        for src, dst_online, dst_target in zip(_linears(sb.q_net), _linears(agent.online), _linears(agent.target)):
            for dst in (dst_online, dst_target):
                dst.weight.copy_(src.weight)
                dst.bias.copy_(src.bias)
        sb.q_net_target.load_state_dict(sb.q_net.state_dict())

    class OneBatch:  # SB3's train() samples from this
        batch = None

        def sample(self, batch_size, env=None):
            return self.batch

    sb.replay_buffer = OneBatch()
    rng = np.random.default_rng(0)
    for k in range(120):
        obs, nxt = (torch.tensor(rng.normal(size=(32, 4)), dtype=torch.float32) for _ in range(2))
        act = torch.tensor(rng.integers(0, 2, 32))
        rew = torch.tensor(rng.normal(size=32) * 5, dtype=torch.float32)  # both Huber branches
        term = torch.tensor(rng.random(32) < 0.1, dtype=torch.float32)
        sb.replay_buffer.batch = ReplayBufferSamples(obs, act[:, None], nxt, term[:, None], rew[:, None])
        sb.train(gradient_steps=1, batch_size=32)
        agent.update(Batch(obs, act, rew, nxt, term, torch.full((32,), 0.99), torch.ones(32), np.arange(32)))
        if k % 40 == 39:
            sb.q_net_target.load_state_dict(sb.q_net.state_dict())
            agent.sync_target()
    for src, dst in zip(_linears(sb.q_net), _linears(agent.online)):
        assert torch.allclose(src.weight.detach(), dst.weight, atol=1e-5), (src.weight - dst.weight).abs().max()
        assert torch.allclose(src.bias.detach(), dst.bias, atol=1e-5)


def _sb3_schedule(cfg: dict, steps: int) -> dict:
    import stable_baselines3.dqn.dqn as sb3_dqn

    events = {"train": [], "sync": [], "eps": []}
    sb = sb3.DQN("MlpPolicy", gym.make("CartPole-v1"), policy_kwargs={"net_arch": [16]}, seed=0, **cfg)
    train = sb.train
    sb.train = lambda gradient_steps, batch_size: (events["train"].append((sb.num_timesteps, gradient_steps)),
                                                   train(gradient_steps, batch_size))
    predict = sb.predict
    sb.predict = lambda obs, state=None, episode_start=None, deterministic=False: (
        events["eps"].append((sb.num_timesteps, round(sb.exploration_rate, 9))),
        predict(obs, state, episode_start, deterministic))[1]
    polyak = sb3_dqn.polyak_update

    def counting_polyak(params, target_params, tau):
        params = list(params)
        if params:  # the batch-norm-stats call passes no parameters
            events["sync"].append(sb.num_timesteps)
        return polyak(params, target_params, tau)

    sb3_dqn.polyak_update = counting_polyak
    try:
        sb.learn(steps)
    finally:
        sb3_dqn.polyak_update = polyak
    return events


def _dqnkit_schedule(cfg: dict, steps: int) -> dict:
    events = {"train": [], "sync": [], "eps": []}
    model = DQN("CartPole-v1", policy_kwargs={"net_arch": [16]}, seed=0, total_timesteps=steps, eval_freq=0,
                tensorboard=False, **cfg)
    trainer, agent = model.trainer, model.trainer.agent
    sync, act, train_round = agent.sync_target, agent.act, agent.train_round
    agent.sync_target = lambda: (events["sync"].append(trainer.env_step), sync())[1]
    agent.act = lambda obs, eps, rng: (events["eps"].append((trainer.env_step, round(eps, 9))), act(obs, eps, rng))[1]

    def counted_round(buffer, n_updates, batch_size, beta):
        done = list(train_round(buffer, n_updates, batch_size, beta))
        events["train"].append((trainer.env_step, len(done)))
        yield from done

    agent.train_round = counted_round
    model.learn()
    model.close()
    return events


@pytest.mark.parametrize("cfg", [
    # rl-zoo's CartPole-v1: long rounds, target synced every 10 env steps
    dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100000, learning_starts=1000, gamma=0.99,
         target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
         exploration_final_eps=0.04),
    # the parity issue's MiniGrid config (on CartPole here): a round every 4 steps, gradient_steps=-1 like Acrobot's
    dict(learning_rate=5e-4, buffer_size=50000, learning_starts=1000, batch_size=64, train_freq=4,
         gradient_steps=-1, target_update_interval=500, gamma=0.99, exploration_fraction=0.3,
         exploration_final_eps=0.05),
])
def test_loop_schedule_equals_sb3(cfg):
    steps = 3072  # a multiple of both train_freqs: SB3 stops at the end of a rollout
    ours, theirs = _dqnkit_schedule(cfg, steps), _sb3_schedule(cfg, steps)
    assert ours["train"] == theirs["train"]
    assert ours["sync"] == theirs["sync"]
    assert ours["eps"] == theirs["eps"]  # both act greedily-or-random only after learning_starts

"""The learner of a population: M members' online and target networks, optimizers and updates, batched.

Member ``m`` is what :class:`dqnkit.learner.agent.Agent` would be with member ``m``'s config: the same
initial weights (built by that Agent, from the member's seed), the same noise generator, the same target,
loss, Double DQN choice, gradient clipping and optimizer rule, with its own learning rate, gamma, tau and
target interval. One forward and one backward serve all members: the stacked networks of
:mod:`dqnkit.networks.batched`, the hand-derived batched backward for plain MLPs, and the per-member
optimizer and clipping of :mod:`dqnkit.population.optim`. The loss is the sum over members of each
member's mean loss, so no member's gradient depends on another's.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dqnkit.config import Config
from dqnkit.learner.agent import Agent
from dqnkit.learner.explore import epsilon_greedy
from dqnkit.learner.losses import categorical_projection
from dqnkit.networks.batched import BatchedQNetwork, batched_td_loss_and_grads
from dqnkit.networks.noisy import factorised_noise
from dqnkit.population.optim import MemberOptimizer, clip_per_member
from dqnkit.types import Batch


class PopulationAgent:
    """M members of one architecture; ``cfgs[m]`` is member ``m``'s config."""

    def __init__(self, cfgs: Sequence[Config], obs_shape: tuple, n_actions: int, *, input_scale: float = 1.0):
        self.cfgs = list(cfgs)
        cfg = self.cfgs[0]
        self.num_members, self.n_actions, self.obs_shape = len(self.cfgs), n_actions, tuple(obs_shape)
        singles = [Agent(c, obs_shape, n_actions, torso="mlp", input_scale=input_scale) for c in self.cfgs]
        self.device = singles[0].device
        self.online = BatchedQNetwork([a.online for a in singles]).to(self.device)
        self.target = BatchedQNetwork([a.target for a in singles]).to(self.device)
        self.target.requires_grad_(False)
        self.noise_gens = [a.noise_gen for a in singles]
        self.params = self.online.parameter_list()
        self.optimizer = MemberOptimizer(self.params, cfg.optimizer, [c.learning_rate for c in self.cfgs],
                                         [c.adam_eps for c in self.cfgs], [c.weight_decay for c in self.cfgs],
                                         amsgrad=cfg.amsgrad)
        self.fast_layers = self.online.plain_layers() if cfg.fast_path else None
        self.noisy, self.distributional = cfg.noisy, cfg.distributional
        self.batched_round = not cfg.prioritized_replay and not cfg.noisy
        self.weighted = cfg.prioritized_replay
        self.updates = 0
        t = lambda values, dtype=torch.float32: torch.tensor(values, dtype=dtype, device=self.device)  # noqa: E731
        self.double = t([c.double_q for c in self.cfgs], torch.bool)
        self.any_double = bool(self.double.any())
        self.huber = t([c.loss == "huber" for c in self.cfgs], torch.bool)
        self.tau = t([c.tau for c in self.cfgs])
        inf = float("inf")
        self.max_grad_norm = t([c.max_grad_norm if c.max_grad_norm is not None else inf for c in self.cfgs])
        self.norm_reported = t([c.max_grad_norm is not None for c in self.cfgs], torch.bool)
        clip_values = [c.grad_clip_value for c in self.cfgs]
        self.clip_value = t([v if v is not None else inf for v in clip_values]) if any(
            v is not None for v in clip_values) else None

    # --- acting ------------------------------------------------------------------------
    def _tensor(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(obs, device=self.device)

    @torch.inference_mode()
    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """(M, K, |A|) Q-values of each member's K observations, with mean noisy weights (greedy evaluation)."""
        self.online.train(False)
        q = self.online.q_values(self._tensor(obs))
        self.online.train(True)
        return q.cpu().numpy()

    @torch.inference_mode()
    def act(self, obs: np.ndarray, epsilons: Sequence[float], rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """(M, E) actions: one forward for all members, then each member's epsilon-greedy from its own generator."""
        if self.noisy:
            self.online.reset_noise(self.noise_gens)
        greedy = self.online.q_values(self._tensor(obs)).argmax(dim=-1).cpu().numpy()
        return np.stack([epsilon_greedy(greedy[m], epsilons[m], self.n_actions, rngs[m])
                         for m in range(self.num_members)])

    # --- learning ----------------------------------------------------------------------
    def set_learning_rates(self, lrs: Sequence[float]) -> None:
        self.optimizer.set_lr(lrs)

    def train_round(self, replay, n_updates: int, batch_size: int, betas: Sequence[float]
                    ) -> Iterator[dict[str, torch.Tensor]]:
        """As :meth:`Agent.train_round`, for all members at once (batches of shape (M, batch_size, ...))."""
        if self.batched_round:
            big = replay.sample(batch_size * n_updates)
            targets = self.fixed_targets(big)
            next_out = self.bootstrap_outputs(big.next_obs) if targets is None else None
            for g in range(n_updates):
                s = slice(g * batch_size, (g + 1) * batch_size)
                part = big.rows((slice(None), s))
                if targets is None:
                    yield self.update(part, next_target_out=next_out[:, s])
                else:
                    yield self.update(part, target=targets[:, s])
            return
        noise = self.update_noise(n_updates)
        for g in range(n_updates):
            batch = replay.sample(batch_size, betas)
            metrics = self.update(batch, noise=None if noise is None else noise[g])
            if self.weighted:
                replay.update_priorities(batch.index, metrics["td_abs"].cpu().numpy())
            yield metrics

    @torch.no_grad()
    def bootstrap_outputs(self, next_obs: torch.Tensor) -> torch.Tensor:
        return self.target(next_obs)

    @torch.no_grad()
    def fixed_targets(self, batch: Batch) -> torch.Tensor | None:
        """Targets from the target net alone (no member Double, no C51, no noise), else None."""
        if self.any_double or self.distributional or self.noisy:
            return None
        return self._value_target(batch, self.target(batch.next_obs), None)

    def _value_target(self, batch: Batch, next_q_target: torch.Tensor, next_q_online: torch.Tensor | None):
        a_star = next_q_target.argmax(dim=-1)
        if next_q_online is not None:
            a_star = torch.where(self.double.view(-1, 1), next_q_online.argmax(dim=-1), a_star)
        next_v = next_q_target.gather(-1, a_star.unsqueeze(-1)).squeeze(-1)
        return batch.reward + batch.discount * (1.0 - batch.terminated) * next_v

    def update_noise(self, n_updates: int) -> torch.Tensor | None:
        """(n_updates, M, 2, noise_dim): member ``m``'s noise drawn from its generator as :meth:`Agent.update_noise`
        draws it (one call per member); None without noisy nets."""
        if not self.noisy:
            return None
        shape = (n_updates, 2, self.online.noise_dim)
        return torch.stack([factorised_noise(gen, shape) for gen in self.noise_gens], dim=1)

    def update(self, batch: Batch, next_target_out: torch.Tensor | None = None,
               target: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One gradient step of every member; metrics: loss (M,), td_abs (M, B), q_sa (M, B), grad_norm (M,).
        ``noise`` (M, 2, noise_dim): one row of ``update_noise`` (drawn here when not given)."""
        if self.noisy:
            if noise is None:
                noise = self.update_noise(1)[0]
            self.online.set_noise(noise[:, 0])
            self.target.set_noise(noise[:, 1])
        if next_target_out is None and target is None:
            next_target_out = self.bootstrap_outputs(batch.next_obs)
        next_online_q = None
        if self.any_double and target is None:
            with torch.no_grad():
                next_online_q = self.online.q_values(batch.next_obs)
        is_weight = batch.is_weight if self.weighted else None
        if target is None and not self.distributional:
            target = self._value_target(batch, next_target_out, next_online_q)
        if self.fast_layers is not None:
            loss, td_abs, q_sa = batched_td_loss_and_grads(self.online, self.fast_layers, batch.obs, batch.action,
                                                           target, is_weight, self.huber)
            return self._step(loss, td_abs, q_sa)
        out = self.online(batch.obs)
        if self.distributional:
            loss, td_abs, q_sa = self._categorical(batch, out, next_target_out, next_online_q, is_weight)
        else:
            q_sa = out.gather(2, batch.action.unsqueeze(2)).squeeze(2)
            td = q_sa - target.detach()
            hub = self.huber.view(-1, 1)
            per_sample = torch.where(hub, F.smooth_l1_loss(q_sa, target.detach(), reduction="none"), td * td)
            if is_weight is not None:
                per_sample = per_sample * is_weight
            loss, td_abs = per_sample.mean(dim=1), td.detach().abs()
        for p in self.params:
            p.grad = None
        loss.sum().backward()
        return self._step(loss.detach(), td_abs, q_sa.detach())

    def _categorical(self, batch: Batch, out: torch.Tensor, next_target_out: torch.Tensor,
                     next_online_q: torch.Tensor | None, is_weight: torch.Tensor | None):
        support = self.online.support
        m, b = batch.reward.shape
        with torch.no_grad():
            next_probs_all = next_target_out.softmax(dim=-1)
            a_star = (next_probs_all * support).sum(-1).argmax(dim=-1)
            if next_online_q is not None:
                a_star = torch.where(self.double.view(-1, 1), next_online_q.argmax(dim=-1), a_star)
            next_probs = next_probs_all.gather(2, a_star.view(m, b, 1, 1).expand(m, b, 1, support.shape[0]))
            target_probs = categorical_projection(next_probs.reshape(m * b, -1), batch.reward.reshape(-1),
                                                  batch.discount.reshape(-1), batch.terminated.reshape(-1),
                                                  support).view(m, b, -1)
        logits_sa = out.gather(2, batch.action.view(m, b, 1, 1).expand(m, b, 1, support.shape[0])).squeeze(2)
        per_sample = -(target_probs * F.log_softmax(logits_sa, dim=-1)).sum(-1)
        td_abs = per_sample.detach()
        if is_weight is not None:
            per_sample = per_sample * is_weight
        q_sa = (logits_sa.detach().softmax(-1) * support).sum(-1)
        return per_sample.mean(dim=1), td_abs, q_sa

    def _step(self, loss: torch.Tensor, td_abs: torch.Tensor, q_sa: torch.Tensor) -> dict[str, torch.Tensor]:
        norms = clip_per_member(self.params, self.max_grad_norm, self.clip_value)
        self.optimizer.step()
        self.updates += 1
        grad_norm = torch.where(self.norm_reported, norms, torch.zeros_like(norms))
        return {"loss": loss, "td_abs": td_abs, "q_sa": q_sa, "grad_norm": grad_norm}

    @torch.no_grad()
    def sync_target(self, due: np.ndarray) -> None:
        """Members with ``due[m]``: hard copy (tau 1) or Polyak ``target <- tau online + (1 - tau) target``."""
        weight = torch.where(torch.as_tensor(due, device=self.device), self.tau, torch.zeros_like(self.tau))
        for name in self.online.names:
            t, o = self.target.p(name), self.online.p(name)
            t.copy_(torch.lerp(t, o, weight.view(-1, *([1] * (t.dim() - 1)))))

    # --- one member as an ordinary Agent (checkpoints) --------------------------------------------
    def member_agent(self, m: int) -> Agent:
        """Member ``m`` as an ordinary :class:`Agent` (networks, optimizer state, updates, noise generator)."""
        cfg = self.cfgs[m]
        with torch.random.fork_rng(devices=[]):  # Agent() seeds torch's global RNG; keep the run's
            agent = Agent(cfg, self.obs_shape, self.n_actions, torso="mlp",
                          input_scale=float(self.online.input_scale))
        agent.online.load_state_dict(self.online.member_state_dict(m))
        agent.target.load_state_dict(self.target.member_state_dict(m))
        if self.optimizer.step_count > 0:
            for p, st in zip(agent.params, self.optimizer.member_state(m)):
                agent.optimizer.state[p] = {k: v.clone() for k, v in st.items()}
        for group in agent.optimizer.param_groups:
            group["lr"] = self.optimizer.lr_values[m]
        agent.updates = self.updates
        agent.noise_gen.set_state(self.noise_gens[m].get_state())
        return agent

    def load_member(self, m: int, agent: Agent) -> None:
        """The inverse of :meth:`member_agent`."""
        self.online.load_member(m, agent.online.state_dict())
        self.target.load_member(m, agent.target.state_dict())
        states = [agent.optimizer.state[p] for p in agent.params if p in agent.optimizer.state]
        self.optimizer.load_member_state(m, states)
        lrs = list(self.optimizer.lr_values)
        lrs[m] = agent.optimizer.param_groups[0]["lr"]
        self.optimizer.set_lr(lrs)
        self.updates = agent.updates
        self.noise_gens[m].set_state(agent.noise_gen.get_state())

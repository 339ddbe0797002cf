"""The learner side: online and target networks, optimizer, acting, gradient updates, target sync.

The math of the loss lives in :mod:`dqnkit.learner.losses`; this module wires networks to it.
:meth:`Agent.train_round` is one training round of the loop: it draws its batches from the replay
buffer, and decides alone whether the round's batches and TD targets can be computed at once.
"""
from __future__ import annotations

import copy
from typing import Iterator

import numpy as np
import torch

from dqnkit.config import Config
from dqnkit.errors import ConfigError
from dqnkit.learner.explore import epsilon_draws, explore, with_exploration
from dqnkit.learner.losses import categorical_loss, categorical_projection, masked_q, td_target, value_loss
from dqnkit.learner.optimizers import make_optimizer, match_param_layouts
from dqnkit.networks import QNetwork
from dqnkit.networks.custom import build_custom
from dqnkit.networks.head_fastpath import (HeadForward, categorical_loss_and_grads, grouped_outputs, head_plan,
                                           head_td_loss_and_grads)
from dqnkit.networks.mlp_fastpath import mlp_outputs, plain_mlp_layers, td_loss_and_grads
from dqnkit.networks.noisy import factorised_noise
from dqnkit.types import Batch


# torch's intra-op thread count when dqnkit was imported (one per core in a fresh process): what
# torch_threads=0 asks for, even after an earlier run in this process set another count.
PROCESS_TORCH_THREADS = torch.get_num_threads()


def set_torch_threads(n: int) -> None:
    """``torch_threads``: n > 0 threads, or 0 for the process's count at import (see PROCESS_TORCH_THREADS)."""
    want = n if n > 0 else PROCESS_TORCH_THREADS
    if torch.get_num_threads() != want:
        torch.set_num_threads(want)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but torch sees no CUDA GPU; use --set device=cpu or auto")
    return dev


class Agent:
    """Online/target Q-networks and their optimizer.

    ``update(batch)`` takes one gradient step and returns tensors (no host sync) so the
    training loop decides when to read them.
    """

    def __init__(self, cfg: Config, obs_shape: tuple, n_actions: int, *, torso: str = "mlp",
                 device: torch.device | None = None, input_scale: float = 1.0):
        self.cfg = cfg
        self.device = device or resolve_device(cfg.device)
        self.n_actions = n_actions
        torch.manual_seed(cfg.seed)  # network initialisation only; noise and sampling own their generators
        if self.device.type == "cpu":
            # Adam's second-moment estimates of tiny gradients become denormal floats, which the CPU
            # handles ~10x slower; flushing them to zero took a CartPole run from 19.1 s to 14.6 s.
            torch.set_flush_denormal(True)
        self.weighted = cfg.prioritized_replay  # uniform replay: is_weight is all ones, skip the multiply
        custom = None
        if cfg.q_network is not None:  # the user's network, imported by path (dqnkit.networks.custom)
            custom = build_custom(cfg.q_network, cfg.q_network_kwargs, obs_shape, role=cfg.q_network_role,
                                  n_actions=n_actions, features_dim=cfg.features_dim, input_scale=input_scale)
        self.online = QNetwork(obs_shape, n_actions, net_arch=cfg.net_arch, torso=torso, dueling=cfg.dueling,
                               noisy=cfg.noisy, noisy_sigma0=cfg.noisy_sigma0, distributional=cfg.distributional,
                               n_atoms=cfg.n_atoms, v_min=cfg.v_min, v_max=cfg.v_max,
                               input_scale=input_scale, layer_norm=cfg.layer_norm, custom=custom,
                               whole=cfg.q_network_role == "q_network" and custom is not None,
                               dueling_aggregation=cfg.dueling_aggregation).to(self.device)
        # acting may skip the forward when every env explores; a user's network always runs it, since its forward
        # may draw from torch's generator or update state (Dropout, BatchNorm)
        self.act_may_skip = custom is None
        self.target = copy.deepcopy(self.online)
        self.target.requires_grad_(False)
        self.optimizer = make_optimizer(cfg, self.online.parameters(), self.device)
        self.noise_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.params = [p for p in self.online.parameters()]
        # MLP Q-nets take a hand-derived backward (same gradients, about half the ops): mlp_fastpath for the plain
        # head, head_fastpath for dueling (mean aggregation only), noisy and C51 heads; autograd for the rest.
        self.fast_layers, self.fast_head, self.fast_target_head = None, None, None
        self.fast_target_layers = None  # the target net's plain-MLP layers, for round-wide target passes (mlp_outputs)
        if cfg.fast_path:
            self.fast_layers = plain_mlp_layers(self.online)
            self.fast_target_layers = plain_mlp_layers(self.target)
            if not cfg.dueling or getattr(cfg, "dueling_aggregation", "mean") == "mean":
                self.fast_head, self.fast_target_head = head_plan(self.online), head_plan(self.target)
        # The buffer and the target net are fixed during a training round, so all its batches can be drawn in one
        # gather (see train_round): uniform replay without noisy nets (noisy ones draw batch by batch, as population
        # mode does), and PER when per_round_sampling trades drawing from fresh priorities for it.
        self.batched_round = (not cfg.prioritized_replay and not cfg.noisy) or (
            cfg.prioritized_replay and cfg.per_round_sampling)
        self.updates = 0
        if cfg.noisy:
            self.online.reset_noise(self.noise_gen)
            self.target.reset_noise(self.noise_gen)

    # --- acting ------------------------------------------------------------------------
    def _obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(obs, device=self.device)

    @torch.inference_mode()
    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q-values (expected values for C51) for a batch of observations; eval mode (mean noisy weights)."""
        was_training = self.online.training
        self.online.train(False)
        q = self.online.q_values(self._obs_tensor(obs))
        self.online.train(was_training)
        return q.cpu().numpy()

    @torch.inference_mode()
    def act(self, obs: np.ndarray, epsilon: float, rng: np.random.Generator,
            mask: np.ndarray | None = None, temperature: float | None = None) -> np.ndarray:
        """One forward pass for the whole vector of envs; epsilon-greedy on top (noise does the exploring when
        noisy), or the config's Boltzmann exploration at ``temperature``. ``mask`` (N, |A|) bool: the allowed
        actions, for the argmax and the exploring actions alike."""
        if self.cfg.noisy:
            self.online.reset_noise(self.noise_gen)  # from its own generator: rng's draws are unaffected
        if self.cfg.exploration != "epsilon":
            q = self.online.q_values(self._obs_tensor(obs))
            return explore(q.cpu().numpy(), self.cfg.exploration, epsilon, temperature, rng, mask)
        # epsilon_greedy's draws, taken before the forward (which draws nothing from rng): none when every env explores
        exploring, random_actions = epsilon_draws(len(obs), epsilon, self.n_actions, rng, mask)
        if self.act_may_skip and random_actions is not None and exploring.all():
            return random_actions
        q = self.online.q_values(self._obs_tensor(obs))
        if mask is not None:
            q = masked_q(q, torch.as_tensor(mask, device=self.device))
        return with_exploration(q.argmax(dim=1).cpu().numpy(), exploring, random_actions)

    # --- learning ----------------------------------------------------------------------
    def train_round(self, buffer, n_updates: int, batch_size: int, beta: float) -> Iterator[dict[str, torch.Tensor]]:
        """``n_updates`` gradient steps on batches of ``buffer`` (a :class:`dqnkit.replay.ReplayBuffer`), yielding
        each step's metrics as it is taken. With noisy nets the round's noise is drawn first, in one call.

        With ``batched_round`` all batches come from one draw (uniform: one ``sample``; PER with
        ``per_round_sampling``: ``sample_round``, from the priorities at the start of the round) and, where the
        TD target needs the target net only (``fixed_targets``), one target forward pass; otherwise each batch is
        drawn after the previous step. With PER each batch's new priorities are written after its step.
        """
        noise = self.update_noise(n_updates)
        per = self.cfg.prioritized_replay
        if self.batched_round:
            big = buffer.sample_round(n_updates, batch_size, beta) if per else buffer.sample(batch_size * n_updates)
            pre = self.round_targets(big, noise)
            written = []
            for g in range(n_updates):
                s = slice(g * batch_size, (g + 1) * batch_size)
                part = big.rows(s)
                metrics = self.update(part, noise=None if noise is None else noise[g],
                                      **{k: v[s] for k, v in pre.items()})
                if per:
                    written.append((part.index, metrics["td_abs"]))
                yield metrics
            if written:
                # The round's samples came from the priorities at its start, so its writes can wait for its
                # end: one call, in update order (a slot drawn twice keeps its later priority, as before).
                buffer.update_priorities(np.concatenate([i for i, _ in written]),
                                         torch.cat([t for _, t in written]).cpu().numpy())
            return
        for g in range(n_updates):
            batch = buffer.sample(batch_size, beta)
            metrics = self.update(batch, noise=None if noise is None else noise[g])
            if per:
                buffer.update_priorities(batch.index, metrics["td_abs"].cpu().numpy())
            yield metrics

    @property
    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @torch.no_grad()
    def bootstrap_outputs(self, next_obs: torch.Tensor) -> torch.Tensor:
        """Target-network outputs at s' (Q-values or C51 logits); may be computed once for many updates."""
        if self.fast_target_layers is not None:
            return mlp_outputs(self.fast_target_layers, next_obs, self.target.torso.input_scale)
        return self.target(next_obs)

    @torch.no_grad()
    def fixed_targets(self, batch: Batch) -> torch.Tensor | None:
        """TD targets that depend on the target net only (plain max target, not Double, not C51), for a
        whole round of updates at once; None when the target needs the online net."""
        if self.cfg.double_q or self.cfg.distributional or self.cfg.noisy:
            return None
        return td_target(batch.reward, batch.discount, batch.terminated, self.bootstrap_outputs(batch.next_obs),
                         next_mask=batch.next_mask)

    @torch.no_grad()
    def round_targets(self, big: Batch, noise: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """What the TD targets of a whole round's batches (``big``, update after update) need from the target net,
        computed at once since the target net is fixed during the round: ``update``'s keyword arguments, each
        with one row per sample of ``big`` (an empty dict when each update must compute its own).

        - The finished target (``target`` or C51's ``target_probs``) when it needs the target net only (not Double).
        - Double DQN: the target net's outputs at s' (``next_target_out``; C51: ``next_projected``, the projected
          distribution of every action), for the online net's choice made in each update.
        - With noisy nets, each update's target noise is its own row of ``noise``: the outputs come from
          :func:`grouped_outputs` (head fast path only; other noisy nets compute theirs update by update).
        """
        cfg = self.cfg
        targets = self.fixed_targets(big)
        if targets is not None:
            return {"target": targets}
        if noise is None:
            out = self.bootstrap_outputs(big.next_obs)
        elif self.fast_head is not None:
            out = grouped_outputs(self.fast_target_head, big.next_obs, noise[:, 1])
        else:
            return {}
        if not cfg.distributional:
            if cfg.double_q:
                return {"next_target_out": out}
            return {"target": td_target(big.reward, big.discount, big.terminated, out, next_mask=big.next_mask)}
        support = self.online.support
        probs = out.softmax(dim=-1)
        if not cfg.double_q:
            a_star = masked_q((probs * support).sum(-1), big.next_mask).argmax(dim=1)
            chosen = probs[torch.arange(a_star.shape[0], device=a_star.device), a_star]
            return {"target_probs": categorical_projection(chosen, big.reward, big.discount, big.terminated, support)}
        return {"next_projected": categorical_projection(probs, big.reward, big.discount, big.terminated, support)}

    def update_noise(self, n_updates: int) -> torch.Tensor | None:
        """The noise of ``n_updates`` updates (n_updates, 2 (online, target), noise_dim), from one generator call;
        None without noisy nets."""
        if not self.cfg.noisy:
            return None
        return factorised_noise(self.noise_gen, (n_updates, 2, self.online.noise_dim))

    def update(self, batch: Batch, next_target_out: torch.Tensor | None = None, target: torch.Tensor | None = None,
               noise: torch.Tensor | None = None, target_probs: torch.Tensor | None = None,
               next_projected: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One gradient step on ``batch``; returns tensors: loss, td_abs (per sample), q_sa, grad_norm.

        What the TD target needs from the target net may be passed in when computed once for many updates
        (see ``round_targets``): its outputs at s' (``next_target_out``), the finished ``target``, or for C51 the
        finished ``target_probs`` or every action's projected distribution at s' (``next_projected``, for Double
        DQN). So may ``noise`` (one row of ``update_noise``: the online and the target net's noise for this
        update; drawn here when not given).
        """
        cfg = self.cfg
        if cfg.noisy:
            if noise is None:
                noise = self.update_noise(1)[0]
            self.online.set_noise(noise[0])
            self.target.set_noise(noise[1])
        done = target is not None or target_probs is not None
        if not done and next_target_out is None and next_projected is None:
            next_target_out = self.bootstrap_outputs(batch.next_obs)
        next_online_q, fwd = None, None
        if cfg.double_q and not done:
            if self.fast_head is not None:  # one pass over [s; s']: the loss's forward and the online choice at s'
                fwd = HeadForward(self.fast_head, torch.cat([batch.obs, batch.next_obs]))
                next_online = fwd.keep_rows(batch.obs.shape[0])
                next_online_q = (next_online.softmax(-1) * self.online.support).sum(-1) if cfg.distributional \
                    else next_online
            else:
                with torch.no_grad():
                    next_online_q = self.online.q_values(batch.next_obs)
        is_weight = batch.is_weight if self.weighted else None
        if target is None and not cfg.distributional:
            target = td_target(batch.reward, batch.discount, batch.terminated, next_target_out, next_online_q,
                               batch.next_mask)
        if self.fast_layers is not None:
            loss, td_abs, q_sa = td_loss_and_grads(self.fast_layers, batch.obs, batch.action, target, is_weight,
                                                   cfg.loss, self.online.torso.input_scale)
            return self._step_optimizer(loss, td_abs, q_sa)
        if cfg.distributional:
            if target_probs is None and next_projected is not None:
                a_star = masked_q(next_online_q, batch.next_mask).argmax(dim=1)
                target_probs = next_projected[torch.arange(a_star.shape[0], device=a_star.device), a_star]
            elif target_probs is None:
                target_probs = self._categorical_target(batch, next_target_out, next_online_q)
            if self.fast_head is not None:
                loss, td_abs, q_sa = categorical_loss_and_grads(self.fast_head, batch.obs, batch.action, target_probs,
                                                                is_weight, fwd)
                return self._step_optimizer(loss, td_abs, q_sa)
            out = self.online(batch.obs)
            logits_sa = out[torch.arange(out.shape[0], device=out.device), batch.action]
            loss, td_abs = categorical_loss(logits_sa, target_probs, is_weight)
            q_sa = (logits_sa.detach().softmax(-1) * self.online.support).sum(-1)
        elif self.fast_head is not None:
            loss, td_abs, q_sa = head_td_loss_and_grads(self.fast_head, batch.obs, batch.action, target, is_weight,
                                                        cfg.loss, fwd)
            return self._step_optimizer(loss, td_abs, q_sa)
        else:
            out = self.online(batch.obs)
            q_sa = out.gather(1, batch.action.unsqueeze(1)).squeeze(1)
            loss, td_abs = value_loss(q_sa, target, is_weight, cfg.loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return self._step_optimizer(loss, td_abs, q_sa)

    @torch.no_grad()
    def _categorical_target(self, batch: Batch, next_target_out: torch.Tensor,
                            next_online_q: torch.Tensor | None) -> torch.Tensor:
        """C51's projected target distribution (B, n_atoms) of the bootstrap action at s'."""
        support = self.online.support
        next_probs_all = next_target_out.softmax(dim=-1)
        selector = next_online_q if next_online_q is not None else (next_probs_all * support).sum(-1)
        a_star = masked_q(selector, batch.next_mask).argmax(dim=1)
        next_probs = next_probs_all[torch.arange(a_star.shape[0], device=a_star.device), a_star]
        return categorical_projection(next_probs, batch.reward, batch.discount, batch.terminated, support)

    def _step_optimizer(self, loss: torch.Tensor, td_abs: torch.Tensor, q_sa: torch.Tensor) -> dict[str, torch.Tensor]:
        """Clip the gradients already in ``.grad`` and take one optimizer step."""
        cfg = self.cfg
        if cfg.grad_clip_value is not None:
            torch.nn.utils.clip_grad_value_(self.params, cfg.grad_clip_value)
        if cfg.max_grad_norm is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm, foreach=True)
        else:
            grad_norm = torch.zeros((), device=self.device)
        self.optimizer.step()
        self.updates += 1
        return {"loss": loss.detach(), "td_abs": td_abs, "q_sa": q_sa.detach(), "grad_norm": grad_norm}

    def set_learning_rate(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    @torch.no_grad()
    def sync_target(self) -> None:
        """Hard copy when tau == 1, else Polyak averaging target <- tau * online + (1 - tau) * target."""
        online, target = list(self.online.parameters()), list(self.target.parameters())
        if self.cfg.tau >= 1.0:
            torch._foreach_copy_(target, online)
        else:
            torch._foreach_lerp_(target, online, self.cfg.tau)

    # --- state -------------------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        """All tensors of the learner (networks and optimizer) under flat names, for safetensors."""
        out = {f"online.{k}": v for k, v in self.online.state_dict().items()}
        out.update({f"target.{k}": v for k, v in self.target.state_dict().items()})
        for idx, state in self.optimizer.state_dict()["state"].items():
            for name, value in state.items():
                out[f"optim.{idx}.{name}"] = torch.as_tensor(value)
        return out

    def meta(self) -> dict:
        groups = self.optimizer.state_dict()["param_groups"]
        return {"updates": self.updates, "param_groups": groups, "noise_gen": _gen_state(self.noise_gen)}

    def load(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        def sub(prefix: str) -> dict:
            return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        for net, prefix in ((self.online, "online."), (self.target, "target.")):
            weights = sub(prefix)
            if "torso.input_scale" in net.state_dict() and "torso.input_scale" not in weights:
                # written before MLP inputs were scaled (dqnkit 0.1.0 before normalize_images): keep its raw inputs
                weights["torso.input_scale"] = torch.tensor(1.0)
            net.load_state_dict(weights)
        state: dict[int, dict] = {}
        for key, value in sub("optim.").items():
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = value
        if state or meta.get("param_groups"):
            self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
            match_param_layouts(self.optimizer)
        self.updates = int(meta.get("updates", 0))
        if "noise_gen" in meta:
            self.noise_gen.set_state(torch.tensor(meta["noise_gen"], dtype=torch.uint8))


def _gen_state(gen: torch.Generator) -> list[int]:
    return gen.get_state().tolist()


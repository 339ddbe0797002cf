"""Optimizers and gradient clipping with one setting and one state per member of a population.

``torch.optim`` keeps one learning rate per parameter group, and ``clip_grad_norm_`` over stacked
tensors takes one global norm, which mixes members (a large gradient of one member would shrink every
other member's step). Here every hyperparameter is a tensor with one entry per member, broadcast over
the member axis of the stacked parameters, and norms are taken per member.

Adam and AdamW run torch's fused kernels (``torch._fused_adam_``/``_fused_adamw_``, what
``torch.optim.Adam(fused=True)`` and therefore a single dqnkit run uses) once per group of members that share
their settings (learning rate, eps, weight decay and step). When every member shares them (a population of
seeds), a parameter whose per-member size is a multiple of 16 goes in whole: the kernel's vector loop then
covers every member's elements exactly as it covers them in a call on that member's slice (its work units
are 16 floats, its scalar tail only the last ``size % vector width`` elements), so the result is bit for
bit the per-member one. Other parameters (an output bias of |A| entries, say) go in as per-member slices,
where a whole-tensor call would move some members' elements from the scalar tail into the vector loop
and change their last bits. RMSprop is written out. Member ``m`` follows what
``torch.optim.Adam/AdamW/RMSprop`` would do for a single network with member ``m``'s settings
(``tests/population/test_population_agent.py`` checks it against them):

- Adam (Kingma & Ba 2015): ``m <- b1 m + (1-b1) g``, ``v <- b2 v + (1-b2) g^2``,
  ``p <- p - lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps)``; L2 weight decay adds ``wd * p`` to g;
  AMSGrad uses the running max of ``v``.
- AdamW (Loshchilov & Hutter 2019): Adam without the L2 term, and ``p <- p (1 - lr wd)`` first.
- RMSprop (torch's defaults: alpha 0.99, no momentum, not centred): ``v <- a v + (1-a) g^2``,
  ``p <- p - lr g / (sqrt(v) + eps)``.
"""
from __future__ import annotations

from typing import Sequence

import torch

BETAS = (0.9, 0.999)
RMSPROP_ALPHA = 0.99


def _per_member(values: Sequence[float], ref: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(list(values), dtype=ref.dtype, device=ref.device)


def _expand(t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """(M,) -> (M, 1, ..., 1) broadcastable against ``p`` (M, ...)."""
    return t.view(-1, *([1] * (p.dim() - 1)))


class MemberOptimizer:
    """Adam, AdamW or RMSprop over stacked parameters ``(M, ...)``, with per-member lr, eps and weight decay."""

    def __init__(self, params: Sequence[torch.nn.Parameter], kind: str, lr: Sequence[float], eps: Sequence[float],
                 weight_decay: Sequence[float], amsgrad: bool = False):
        if kind not in ("adam", "adamw", "rmsprop"):
            raise ValueError(f"unknown optimizer {kind!r}")
        self.params = list(params)
        self.kind, self.amsgrad = kind, bool(amsgrad)
        ref = self.params[0]
        self.num_members = ref.shape[0]
        self.lr_values = [float(x) for x in lr]  # python floats: what the fused kernels take, and what is logged
        self.lr = _per_member(lr, ref)
        self.eps_values = [float(x) for x in eps]
        self.eps = _per_member(eps, ref)
        self.wd_values = [float(x) for x in weight_decay]
        self.weight_decay = _per_member(weight_decay, ref)
        zeros = [torch.zeros_like(p) for p in self.params]
        self.exp_avg = [z.clone() for z in zeros] if kind != "rmsprop" else []
        self.exp_avg_sq = [z.clone() for z in zeros]
        self.max_exp_avg_sq = [z.clone() for z in zeros] if self.amsgrad and kind != "rmsprop" else []
        self.fused = kind != "rmsprop" and ref.device.type in ("cpu", "cuda")
        # each member's step count (python ints: grouping members needs no device sync); the fused kernels
        # read step tensors, one per tensor they update, refilled from these before each call
        self._member_steps = [0] * self.num_members
        # see the module docstring; 16 float32s are the kernel's work unit (other dtypes: per-member slices)
        self._whole = [p.dtype == torch.float32 and p[0].numel() % 16 == 0 for p in self.params]
        self._step_tensors = [torch.zeros((), dtype=torch.float32, device=ref.device)
                              for _ in range(len(self.params) * self.num_members)]

    def set_lr(self, lr: Sequence[float]) -> None:
        self.lr_values = [float(x) for x in lr]
        self.lr = _per_member(lr, self.params[0])

    @property
    def step_count(self) -> int:
        """Steps taken so far (the most of any member: members step together, a resumed one may lag)."""
        return max(self._member_steps)

    @torch.no_grad()
    def step(self) -> None:
        self._member_steps = [n + 1 for n in self._member_steps]
        if self.fused:
            self._fused_step()
            return
        for i, p in enumerate(self.params):
            g = p.grad
            lr, eps, wd = _expand(self.lr, p), _expand(self.eps, p), _expand(self.weight_decay, p)
            if self.kind == "rmsprop":
                if bool((self.weight_decay != 0).any()):
                    g = g + wd * p
                v = self.exp_avg_sq[i]
                v.mul_(RMSPROP_ALPHA).addcmul_(g, g, value=1 - RMSPROP_ALPHA)
                p.sub_(lr * g / (v.sqrt() + eps))
                continue
            b1, b2 = BETAS
            if self.kind == "adamw":
                p.mul_(1 - lr * wd)
            elif bool((self.weight_decay != 0).any()):
                g = g + wd * p
            m, v = self.exp_avg[i], self.exp_avg_sq[i]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            steps = self._member_steps  # each member's own count (python floats, as torch.optim computes them)
            bias1 = _expand(_per_member([1 - b1 ** n for n in steps], p), p)
            bias2_sqrt = _expand(_per_member([(1 - b2 ** n) ** 0.5 for n in steps], p), p)
            if self.amsgrad:
                torch.maximum(self.max_exp_avg_sq[i], v, out=self.max_exp_avg_sq[i])
                denom = (self.max_exp_avg_sq[i].sqrt() / bias2_sqrt) + eps
            else:
                denom = (v.sqrt() / bias2_sqrt) + eps
            p.sub_((lr / bias1) * m / denom)

    def _groups(self) -> dict[tuple[float, float, float, int], list[int]]:
        groups: dict[tuple[float, float, float, int], list[int]] = {}
        for m in range(self.num_members):
            key = (self.lr_values[m], self.eps_values[m], self.wd_values[m], self._member_steps[m])
            groups.setdefault(key, []).append(m)
        return groups

    def _fused_step(self) -> None:
        kernel = torch._fused_adamw_ if self.kind == "adamw" else torch._fused_adam_
        b1, b2 = BETAS
        for (lr, eps, wd, step), members in self._groups().items():
            # whole tensors where that is bit for bit the same (all members in the group), else member slices
            whole = self._whole if len(members) == self.num_members else [False] * len(self.params)

            def pick(xs, ms=members, whole=whole):
                return [x for x, w in zip(xs, whole) if w] + [x[m] for m in ms for x, w in zip(xs, whole) if not w]
            params = pick(self.params)
            steps = self._step_tensors[:len(params)]
            torch._foreach_zero_(steps)  # then the step count, as torch.optim's state holds it
            torch._foreach_add_(steps, float(step))
            kernel(params, pick([p.grad for p in self.params]), pick(self.exp_avg), pick(self.exp_avg_sq),
                   pick(self.max_exp_avg_sq) if self.amsgrad else [], steps, amsgrad=self.amsgrad, lr=lr,
                   beta1=b1, beta2=b2, weight_decay=wd, eps=eps, maximize=False)

    # --- one member in torch.optim's format ------------------------------------------------------
    def member_state(self, m: int) -> list[dict[str, torch.Tensor]]:
        """Member ``m``'s state per parameter, keyed as ``torch.optim`` keys it."""
        out = []
        for i in range(len(self.params)):
            st: dict[str, torch.Tensor] = {"step": torch.tensor(float(self._member_steps[m]))}
            if self.kind == "rmsprop":
                st["square_avg"] = self.exp_avg_sq[i][m].clone()
            else:
                st["exp_avg"] = self.exp_avg[i][m].clone()
                st["exp_avg_sq"] = self.exp_avg_sq[i][m].clone()
                if self.amsgrad:
                    st["max_exp_avg_sq"] = self.max_exp_avg_sq[i][m].clone()
            out.append(st)
        return out

    @torch.no_grad()
    def load_member_state(self, m: int, states: list[dict[str, torch.Tensor]]) -> None:
        if not states:  # a member that never stepped
            return
        for i, st in enumerate(states):
            if self.kind == "rmsprop":
                self.exp_avg_sq[i][m].copy_(st["square_avg"])
            else:
                self.exp_avg[i][m].copy_(st["exp_avg"])
                self.exp_avg_sq[i][m].copy_(st["exp_avg_sq"])
                if self.amsgrad:
                    self.max_exp_avg_sq[i][m].copy_(st["max_exp_avg_sq"])
        self._member_steps[m] = int(float(states[0]["step"]))


@torch.no_grad()
def clip_per_member(params: Sequence[torch.Tensor], max_norm: torch.Tensor | None,
                    clip_value: torch.Tensor | None) -> torch.Tensor:
    """Clip each member's gradient elements to ``clip_value[m]`` (inf = off), then its L2 norm over all its
    parameters to ``max_norm[m]`` (inf = off), as ``clip_grad_value_`` and ``clip_grad_norm_`` would for
    that member alone. Returns each member's gradient norm before the norm clip (M,)."""
    grads = [p.grad for p in params]
    if clip_value is not None:
        for g in grads:
            cv = _expand(clip_value, g)
            torch.maximum(torch.minimum(g, cv), -cv, out=g)
    norms = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1) for g in grads]), dim=0)
    if max_norm is not None:
        coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(_expand(coef, g))
    return norms

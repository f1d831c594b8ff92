"""Batched, box-constrained L-BFGS without host synchronisation in its loop.

All `b` problems advance together as one tensor. Each iteration:

1. a quasi-Newton direction from the compact L-BFGS form (Byrd, Nocedal & Schnabel 1994)
   over the free coordinates (those not held at a bound by the gradient);
2. a parallel line search: the objective at several projected step lengths is evaluated in
   one batched call and each problem keeps its best point if it improves (so every problem's
   value never increases);
3. a per-problem step scale grows after a full step and shrinks after a failed search.

The loop only synchronises with the host every `check_every` iterations, to stop early once
every problem has stalled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor


def _value_and_grad(f: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    """`... x p` -> `...` values and `... x p` gradients of the (independent) objectives."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        value = f(x)
        if value.requires_grad:
            (grad,) = torch.autograd.grad(value.sum(), x)
        else:  # the objective does not depend on x
            grad = torch.zeros_like(x)
    value = value.detach()
    bad = ~torch.isfinite(value)
    value = value.masked_fill(bad, float("inf"))
    grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
    return value, grad


def _direction(g: Tensor, S: Tensor, Yd: Tensor, used: Tensor, gamma: Tensor) -> Tensor:
    """`b x p` gradient -> `b x p` quasi-Newton step -H g, H in compact form.

    Byrd, Nocedal & Schnabel 1994, eq. (3.13):
    H = gamma I + [S, gamma Y] [[R^-T (D + gamma Y^T Y) R^-1, -R^-T], [-R^-1, 0]] [S, gamma Y]^T
    with R the upper triangle of S^T Y and D its diagonal. A fixed number of batched ops,
    whatever the history length.

    Args:
        g: `b x p` gradients. S, Yd: `b x m x p` steps and gradient changes, oldest first,
            zero rows where unused. used: `b x m` which rows hold a pair. gamma: `b`.
    """
    a = (S @ g.unsqueeze(-1))  # b x m x 1
    c = (Yd @ g.unsqueeze(-1))  # b x m x 1
    StY = S @ Yd.transpose(-1, -2)  # b x m x m
    diag = torch.where(used, torch.diagonal(StY, dim1=-2, dim2=-1), torch.ones_like(gamma)[:, None])
    R = torch.triu(StY, diagonal=1) + torch.diag_embed(diag)
    YtY = Yd @ Yd.transpose(-1, -2)
    gam = gamma[:, None, None]
    u = torch.linalg.solve_triangular(R, a, upper=True)  # b x m x 1
    inner = diag.unsqueeze(-1) * u + gam * (YtY @ u) - gam * c
    w = torch.linalg.solve_triangular(R.transpose(-1, -2), inner, upper=False)
    Hg = gam.squeeze(-1) * g + (S.transpose(-1, -2) @ w).squeeze(-1) \
        - gam.squeeze(-1) * (Yd.transpose(-1, -2) @ u).squeeze(-1)
    return -Hg


def minimize_batched(
    f: Callable[[Tensor], Tensor],
    x0: Tensor,
    lower: Tensor,
    upper: Tensor,
    *,
    free: Tensor | None = None,
    project: Callable[[Tensor], Tensor] | None = None,
    max_iter: int = 100,
    history: int = 8,
    steps: tuple[float, ...] = (1.0, 0.3, 0.05),
    initial_step: float = 0.1,
    tol: float = 1e-9,
    gtol: float = 1e-6,
    check_every: int = 5,
    patience: int = 2,
) -> tuple[Tensor, Tensor, int]:
    """Minimise `b` independent objectives inside a box.

    Args:
        f: maps `... x p` points to `...` values; element i must depend on point i alone.
        x0: `b x p` starting points inside the box.
        lower, upper: `p` (or `b x p`) bounds.
        free: optional `b x p` boolean mask of coordinates allowed to move.
        project: optional map applied after clamping to the box (e.g. pinning inactive
            coordinates); must be idempotent.
        max_iter: iteration cap.
        history: L-BFGS memory `m`.
        steps: step lengths tried at once, as fractions of each problem's step scale.
        initial_step: length of the first step, in units of the box's widest side.
        tol: a problem has stalled when an iteration lowers its value by less than
            `tol * (1 + |value|)`, or when no coordinate of its projected gradient
            exceeds `gtol` in magnitude.
        check_every: iterations between the (synchronising) checks for early stopping.
        patience: consecutive stalled iterations after which a problem counts as done.

    Returns:
        `b x p` final points, `b` final values, and the number of iterations run.
    """
    b, p = x0.shape
    dtype, device = x0.dtype, x0.device
    box = _Box(lower.expand(b, p), upper.expand(b, p),
               torch.ones(b, p, dtype=torch.bool, device=device) if free is None else free,
               project)
    x = box.clip(x0)
    fx, g = _value_and_grad(f, x)
    state = _State.start(x, fx, g, history)
    width = (box.upper - box.lower).amax()
    alphas = torch.tensor(steps, dtype=dtype, device=device)  # k
    it = 0
    for it in range(1, max_iter + 1):
        d = _step_direction(state, box, initial_step * width)
        _iterate(f, state, box, d, alphas, tol=tol, gtol=gtol)
        if it % check_every == 0 and bool((state.stalls >= patience).all()):  # one host sync
            break
    return state.x, state.fx, it


@dataclass
class _Box:
    """The bounds, the movable coordinates and the projection of one batched problem."""

    lower: Tensor  # b x p
    upper: Tensor  # b x p
    free: Tensor  # b x p
    project: Callable[[Tensor], Tensor] | None

    def clip(self, x: Tensor) -> Tensor:
        x = torch.minimum(torch.maximum(x, self.lower), self.upper)
        return x if self.project is None else self.project(x)

    def held(self, x: Tensor, g: Tensor) -> Tensor:
        """`b x p`: coordinates that may not move, or sit at a bound the gradient pushes on."""
        return ~self.free | ((x <= self.lower) & (g > 0)) | ((x >= self.upper) & (g < 0))


@dataclass
class _State:
    """The iterate and the L-BFGS memory of all `b` problems (the loop's own working state,
    updated in place)."""

    x: Tensor  # b x p
    fx: Tensor  # b
    g: Tensor  # b x p
    S: Tensor  # b x m x p steps, oldest first
    Yd: Tensor  # b x m x p gradient changes
    used: Tensor  # b x m: which rows hold a pair
    gamma: Tensor  # b initial inverse-Hessian scale
    scale: Tensor  # b step scale
    fresh: Tensor  # b: no curvature pair yet
    stalls: Tensor  # b consecutive stalled iterations

    @classmethod
    def start(cls, x: Tensor, fx: Tensor, g: Tensor, history: int) -> _State:
        """The state at the `b x p` starting points, with an empty memory of `history` pairs."""
        (b, p), kw = x.shape, dict(dtype=x.dtype, device=x.device)
        flags = dict(dtype=torch.bool, device=x.device)
        return cls(x=x, fx=fx, g=g, S=torch.zeros(b, history, p, **kw),
                   Yd=torch.zeros(b, history, p, **kw),
                   used=torch.zeros(b, history, **flags), gamma=torch.ones(b, **kw),
                   scale=torch.ones(b, **kw), fresh=torch.ones(b, **flags),
                   stalls=torch.zeros(b, dtype=torch.long, device=x.device))


def _step_direction(state: _State, box: _Box, first_length: Tensor) -> Tensor:
    """`b x p` search directions: quasi-Newton where it descends, else steepest descent;
    the first step of a problem without curvature pairs moves `first_length`."""
    blocked = box.held(state.x, state.g)
    g_free = state.g.masked_fill(blocked, 0.0)
    d = _direction(g_free, state.S, state.Yd, state.used, state.gamma).masked_fill(blocked, 0.0)
    descent = (d * g_free).sum(-1) < 0
    d = torch.where(descent.unsqueeze(-1), d, -g_free)
    first = first_length / d.norm(dim=-1).clamp_min(1e-30)
    return torch.where(state.fresh.unsqueeze(-1), d * first.unsqueeze(-1), d)


def _iterate(f: Callable[[Tensor], Tensor], state: _State, box: _Box, d: Tensor,
             alphas: Tensor, *, tol: float, gtol: float) -> None:
    """One parallel line search along `d`, then the memory and stall updates (in place)."""
    b, p = state.x.shape
    x, g, fx = state.x, state.g, state.fx
    trial = box.clip(x.unsqueeze(0) + (alphas[:, None, None] * state.scale[None, :, None]) * d)
    f_trial, g_trial = _value_and_grad(f, trial)  # k x b, k x b x p
    best = f_trial.argmin(0)  # b
    f_best = f_trial.gather(0, best.unsqueeze(0)).squeeze(0)
    pick = best[None, :, None].expand(1, b, p)
    x_best = trial.gather(0, pick).squeeze(0)
    g_best = g_trial.gather(0, pick).squeeze(0)
    improved = f_best < fx
    # Step-scale control: grow after a full step, shrink after a failed search.
    state.scale = torch.where(improved, (state.scale * alphas[best] * 2).clamp(max=1.0),
                              state.scale * alphas[-1] * 0.5)
    _remember(state, improved, x_best - x, g_best - g)
    g_next = torch.where(improved.unsqueeze(-1), g_best, g)
    x_next = torch.where(improved.unsqueeze(-1), x_best, x)
    small_grad = g_next.masked_fill(box.held(x_next, g_next), 0.0).abs().amax(-1) <= gtol
    stalled = ~improved | ((fx - f_best) < tol * (1 + fx.abs())) | small_grad
    state.stalls = torch.where(stalled, state.stalls + 1, torch.zeros_like(state.stalls))
    state.x, state.g = x_next, g_next
    state.fx = torch.where(improved, f_best, fx)


def _remember(state: _State, improved: Tensor, s_new: Tensor, y_new: Tensor) -> None:
    """Push the `b x p` step and gradient change where they make a curvature pair."""
    sy = (s_new * y_new).sum(-1)
    good_pair = improved & (sy > 1e-12 * s_new.norm(dim=-1) * y_new.norm(dim=-1) + 1e-300)
    keep = good_pair[:, None, None]
    state.S = torch.where(keep, torch.cat([state.S[:, 1:], s_new[:, None]], dim=1), state.S)
    state.Yd = torch.where(keep, torch.cat([state.Yd[:, 1:], y_new[:, None]], dim=1), state.Yd)
    state.used = torch.where(good_pair[:, None],
                             torch.cat([state.used[:, 1:], good_pair[:, None]], dim=1),
                             state.used)
    state.gamma = torch.where(good_pair, sy / (y_new * y_new).sum(-1).clamp_min(1e-300),
                              state.gamma)
    state.fresh = state.fresh & ~good_pair

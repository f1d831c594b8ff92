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
    lower, upper = lower.expand(b, p), upper.expand(b, p)
    free = torch.ones(b, p, dtype=torch.bool, device=device) if free is None else free

    def clip(x: Tensor) -> Tensor:
        x = torch.minimum(torch.maximum(x, lower), upper)
        return x if project is None else project(x)

    x = clip(x0)
    fx, g = _value_and_grad(f, x)
    S = torch.zeros(b, history, p, dtype=dtype, device=device)
    Yd = torch.zeros_like(S)
    used = torch.zeros(b, history, dtype=torch.bool, device=device)
    gamma = torch.ones(b, dtype=dtype, device=device)
    width = (upper - lower).amax()
    scale = torch.ones(b, dtype=dtype, device=device)
    fresh = torch.ones(b, dtype=torch.bool, device=device)  # no curvature pair yet
    alphas = torch.tensor(steps, dtype=dtype, device=device)  # k
    stalls = torch.zeros(b, dtype=torch.long, device=device)  # consecutive stalled iterations
    it = 0
    for it in range(1, max_iter + 1):
        blocked = ~free | ((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0))
        g_free = g.masked_fill(blocked, 0.0)
        d = _direction(g_free, S, Yd, used, gamma).masked_fill(blocked, 0.0)
        # Fall back to steepest descent where the quasi-Newton direction does not descend.
        descent = (d * g_free).sum(-1) < 0
        d = torch.where(descent.unsqueeze(-1), d, -g_free)
        # Without curvature information, the first step moves `initial_step * width`.
        first = initial_step * width / d.norm(dim=-1).clamp_min(1e-30)
        d = torch.where(fresh.unsqueeze(-1), d * first.unsqueeze(-1), d)
        trial = clip(x.unsqueeze(0) + (alphas[:, None, None] * scale[None, :, None]) * d)
        f_trial, g_trial = _value_and_grad(f, trial)  # k x b, k x b x p
        best = f_trial.argmin(0)  # b
        f_best = f_trial.gather(0, best.unsqueeze(0)).squeeze(0)
        pick = best[None, :, None].expand(1, b, p)
        x_best = trial.gather(0, pick).squeeze(0)
        g_best = g_trial.gather(0, pick).squeeze(0)
        improved = f_best < fx
        # Step-scale control: grow after a full step, shrink after a failed search.
        scale = torch.where(improved, (scale * alphas[best] * 2).clamp(max=1.0),
                            scale * alphas[-1] * 0.5)
        s_new, y_new = x_best - x, g_best - g
        sy = (s_new * y_new).sum(-1)
        good_pair = improved & (sy > 1e-12 * s_new.norm(dim=-1) * y_new.norm(dim=-1) + 1e-300)
        keep = good_pair[:, None, None]
        S = torch.where(keep, torch.cat([S[:, 1:], s_new[:, None]], dim=1), S)
        Yd = torch.where(keep, torch.cat([Yd[:, 1:], y_new[:, None]], dim=1), Yd)
        used = torch.where(good_pair[:, None], torch.cat([used[:, 1:], good_pair[:, None]], dim=1),
                           used)
        gamma = torch.where(good_pair, sy / (y_new * y_new).sum(-1).clamp_min(1e-300), gamma)
        fresh = fresh & ~good_pair
        g_next = torch.where(improved.unsqueeze(-1), g_best, g)
        x_next = torch.where(improved.unsqueeze(-1), x_best, x)
        held = ~free | ((x_next <= lower) & (g_next > 0)) | ((x_next >= upper) & (g_next < 0))
        small_grad = g_next.masked_fill(held, 0.0).abs().amax(-1) <= gtol
        stalled = ~improved | ((fx - f_best) < tol * (1 + fx.abs())) | small_grad
        stalls = torch.where(stalled, stalls + 1, torch.zeros_like(stalls))
        x, g = x_next, g_next
        fx = torch.where(improved, f_best, fx)
        if it % check_every == 0 and bool((stalls >= patience).all()):  # one host sync per check
            break
    return x, fx, it

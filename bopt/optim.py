"""Batched, box-constrained BFGS without host synchronisation in its loop.

All `b` problems advance together as one tensor, each with its own dense `p x p` inverse
Hessian (the spaces bopt tunes have tens of columns at most, so a dense matrix per start is
small, and a few batched matrix products replace L-BFGS's loops over its memory). Each
iteration:

1. the free coordinates: those allowed to move whose projected gradient step stays in the
   box (a coordinate at a bound the gradient pushes against is held);
2. a quasi-Newton direction -H g on the free coordinates (H is positive definite, so it
   descends);
3. a parallel line search: the objective at several projected step lengths is evaluated in
   one batched call and each problem keeps its best point if it improves (so every
   problem's value never increases);
4. the BFGS update of H where the step gave a curvature pair (Nocedal & Wright 2006,
   eq. 6.17, with the scaling of eq. 6.20 before the first update), and a per-problem step
   scale that grows after a full step and shrinks after a failed search.

The loop only synchronises with the host every `check_every` iterations, to stop early once
every problem is done (stalled `patience` iterations in a row at some point, or dominated).
On a GPU, a loop given a `graph` label records its second iteration as a CUDA graph and
replays that recording for every later one (`bopt.cuda_graphs`), so an iteration costs the
host one launch instead of a few hundred; the iterates are the eager loop's.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, fields
from typing import Callable

import torch
from torch import Tensor

from bopt import cuda_graphs

ValueAndGrad = Callable[[Tensor], tuple[Tensor, Tensor]]


def _autograd(f: Callable[[Tensor], Tensor]) -> ValueAndGrad:
    """`f` -> a function of `... x p` points giving `...` values and `... x p` gradients of
    the (independent) objectives, by autograd."""
    def value_and_grad(x: Tensor) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            value = f(x)
            if value.requires_grad:
                (grad,) = torch.autograd.grad(value.sum(), x)
            else:  # the objective does not depend on x
                grad = torch.zeros_like(x)
        return value.detach(), grad
    return value_and_grad


def _sanitized(value_and_grad: ValueAndGrad, x: Tensor) -> tuple[Tensor, Tensor]:
    """Values and gradients at `x`, with non-finite values made +inf (never accepted) and
    non-finite gradient entries made 0."""
    value, grad = value_and_grad(x)
    inf = float("inf")
    return (torch.nan_to_num(value, nan=inf, posinf=inf, neginf=inf),
            torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0))


def minimize_batched(
    f: Callable[[Tensor], Tensor],
    x0: Tensor,
    lower: Tensor,
    upper: Tensor,
    *,
    free: Tensor | None = None,
    project: Callable[[Tensor], Tensor] | None = None,
    max_iter: int = 100,
    steps: tuple[float, ...] = (1.0, 0.3, 0.05),
    initial_step: float = 0.1,
    tol: float = 1e-9,
    check_every: int = 5,
    patience: int = 2,
    dominated: float | None = None,
    value_and_grad: ValueAndGrad | None = None,
    graph: str | None = None,
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
        steps: step lengths tried at once, as fractions of each problem's step scale.
        initial_step: length of the first step, in units of the box's widest side.
        tol: a problem has stalled when an iteration lowers its value by less than
            `tol * (1 + |value|)` (a failed line search, or one at a point with no
            projected gradient, lowers it by nothing).
        check_every: iterations between the (synchronising) checks for early stopping.
        patience: consecutive stalled iterations after which a problem counts as done
            (and stays done: a late small gain does not hold the others up).
        dominated: when given, a problem whose value exceeds the lowest one by more than
            this also counts as done (for multistart use, where only the best matters).
        value_and_grad: optional closed-form `x -> (f(x), grad f(x))`, used instead of
            autograd through `f`.
        graph: a label for this loop (e.g. "fit"): on CUDA its iterations are replayed as a
            CUDA graph, unless a capture under this label failed before; None: always eager.

    Returns:
        `b x p` final points, `b` final values, and the number of iterations run.
    """
    graphed = cuda_graphs.eligible(graph, x0.device, max_iter)
    with cuda_graphs.side_stream(x0.device) if graphed else contextlib.nullcontext():  # CUDA
        evaluate = value_and_grad or _autograd(f)
        box = _Box.make(x0, lower, upper, free, project)
        x = box.clip(x0)
        state = _State.start(x, *_sanitized(evaluate, x),
                             initial_step * (box.upper - box.lower).amax())
        search = _Search.make(steps, x0, tol, patience)
        it = _loop(lambda first: _iterate(evaluate, state, box, search, first=first), state,
                   max_iter, check_every, lambda: _done(state, patience, dominated),
                   graph if graphed else None)
    if graphed:
        cuda_graphs.hand_back(state.x, state.fx)
    return state.x, state.fx, it


def _loop(iterate: Callable[[bool], None], state: _State, max_iter: int, check_every: int,
          done: Callable[[], Tensor], graph: str | None) -> int:
    """Run up to `max_iter` iterations, checking `done` every `check_every`; with a `graph`
    label, the iterations after the first (eager: it builds the objective's lazy caches and
    warms the libraries up) are replays of one CUDA graph recording of an iteration.
    Returns the number of iterations run."""
    it, replay = 0, None
    while it < max_iter:
        if graph is not None and it == 1:  # one try per call
            names = tuple(field.name for field in fields(state))  # all rebound per iteration
            replay = cuda_graphs.capture(graph, lambda: iterate(False), state, names, 1)
            graph = None
        if replay is not None:
            replay()
        else:
            iterate(it == 0)
        it += 1
        if it % check_every == 0 and bool(done().all()):  # a sync
            break
    return it


def _done(state: _State, patience: int, dominated: float | None) -> Tensor:
    """`b`: the problems that have stalled for `patience` iterations, or that trail the
    best by more than `dominated`."""
    done = state.stalls >= patience
    return done if dominated is None else done | (state.fx > state.fx.min() + dominated)


@dataclass(frozen=True)
class _Search:
    """The line search's constants, made once."""

    lengths: Tensor  # k x 1 x 1 step lengths, as fractions of the step scale
    grow: Tensor  # k x 1: the step scale's factor after a search that took each length
    shrink: Tensor  # scalar factor after a failed search
    rows: Tensor  # b: 0 .. b-1
    tol: float
    patience: int

    @classmethod
    def make(cls, steps: tuple[float, ...], x: Tensor, tol: float, patience: int) -> _Search:
        alphas = torch.tensor(steps, dtype=x.dtype, device=x.device)  # k
        return cls(alphas[:, None, None], 2 * alphas[:, None], alphas[-1] * 0.5,
                   torch.arange(x.shape[0], device=x.device), tol, patience)


@dataclass
class _Box:
    """The bounds, the movable coordinates and the projection of one batched problem."""

    lower: Tensor  # b x p
    upper: Tensor  # b x p
    free: Tensor  # b x p
    project: Callable[[Tensor], Tensor] | None

    @classmethod
    def make(cls, x0: Tensor, lower: Tensor, upper: Tensor, free: Tensor | None,
             project: Callable[[Tensor], Tensor] | None) -> _Box:
        (b, p), device = x0.shape, x0.device
        return cls(lower.expand(b, p), upper.expand(b, p),
                   torch.ones(b, p, dtype=torch.bool, device=device) if free is None else free,
                   project)

    def clip(self, x: Tensor) -> Tensor:
        x = torch.clamp(x, self.lower, self.upper)
        return x if self.project is None else self.project(x)

    def movable(self, x: Tensor, g: Tensor) -> Tensor:
        """`b x p`: coordinates that may move and whose gradient step stays in the box
        (not at a bound the gradient pushes on, and with a gradient at all)."""
        return self.free & (torch.clamp(x - g, self.lower, self.upper) != x)


@dataclass
class _State:
    """The iterate and the inverse Hessians of all `b` problems (the loop's own working
    state, updated in place)."""

    x: Tensor  # b x p
    fx: Tensor  # b
    g: Tensor  # b x p
    H: Tensor  # b x p x p inverse Hessian approximations
    scale: Tensor  # b x 1 step scale
    stalls: Tensor  # b consecutive stalled iterations

    @classmethod
    def start(cls, x: Tensor, fx: Tensor, g: Tensor, first_length: Tensor) -> _State:
        """The state at the `b x p` starting points. The first H is the identity scaled so
        that the first step moves `first_length`."""
        (b, p), kw = x.shape, dict(dtype=x.dtype, device=x.device)
        first = first_length / g.norm(dim=-1).clamp_min(1e-30)  # b
        H = torch.eye(p, **kw) * first[:, None, None]  # b x p x p
        return cls(x=x, fx=fx, g=g, H=H, scale=torch.ones(b, 1, **kw),
                   stalls=torch.zeros(b, dtype=torch.long, device=x.device))


def _iterate(evaluate: ValueAndGrad, state: _State, box: _Box, search: _Search, *,
             first: bool) -> None:
    """One quasi-Newton direction and parallel line search, then the BFGS and stall updates
    (in place). Written for few operations per iteration: each is a kernel launch on a GPU."""
    x, g, fx = state.x, state.g, state.fx
    mask = box.movable(x, g)  # b x p, False where held
    Hg = torch.bmm(state.H, (g * mask).unsqueeze(-1)).squeeze(-1) * mask  # b x p; -H g descends
    trial = box.clip(torch.addcmul(x, search.lengths * state.scale, Hg, value=-1.0))  # k x b x p
    f_trial, g_trial = _sanitized(evaluate, trial)  # k x b, k x b x p
    best = f_trial.argmin(0)  # b
    f_best = f_trial[best, search.rows]
    improved = f_best < fx
    keep = improved.unsqueeze(-1)  # b x 1
    state.x = torch.where(keep, trial[best, search.rows], x)
    state.g = torch.where(keep, g_trial[best, search.rows], g)
    state.fx = torch.where(improved, f_best, fx)
    # Step-scale control: grow after a full step, shrink after a failed search.
    state.scale = torch.where(keep, (state.scale * search.grow[best]).clamp(max=1.0),
                              state.scale * search.shrink)
    # s = 0 where nothing improved, which makes no curvature pair.
    _update_inverse_hessian(state, state.x - x, state.g - g, first=first)
    # Progress: a lower value, by at least tol (1 + |f|) (from inf any finite value counts:
    # the threshold inf - inf is NaN, and `>` is False for NaN). A failed search, a start
    # that cannot move and one with no finite value stall. A problem that has stalled
    # `patience` times in a row stays done.
    progressed = improved & ~(f_best > torch.add(fx, fx.abs() + 1.0, alpha=-search.tol))
    state.stalls = (state.stalls + 1).masked_fill_(progressed & (state.stalls < search.patience), 0)


def _update_inverse_hessian(state: _State, s: Tensor, y: Tensor, *, first: bool) -> None:
    """The BFGS update of every `H` whose `b x p` step `s` and gradient change `y` make a
    curvature pair (s^T y > 0, relative to their sizes), in place:

        H <- H + (s^T y + y^T H y) s s^T / (s^T y)^2 - (H y s^T + s y^T H) / s^T y,

    with H rescaled to (s^T y / y^T y) I before the `first` update (Nocedal & Wright 2006,
    eq. 6.20). Works on `b x p x 1` columns, so that every scalar is `b x 1 x 1`."""
    s, y = s.unsqueeze(-1), y.unsqueeze(-1)  # b x p x 1
    sy, yy = (s * y).sum(-2, keepdim=True), (y * y).sum(-2, keepdim=True)  # b x 1 x 1
    good = sy > 1e-10 * ((s * s).sum(-2, keepdim=True) * yy).sqrt()  # False where s = 0
    H = state.H
    if first:
        eye = torch.eye(s.shape[-2], dtype=s.dtype, device=s.device)
        H = torch.where(good, eye * (sy / yy), H)
    inv_sy = torch.reciprocal(sy)  # inf or nan only where `good` is false; `where` drops it
    Hy = torch.bmm(H, y)  # b x p x 1
    c = (sy + (y * Hy).sum(-2, keepdim=True)) * inv_sy * 0.5  # b x 1 x 1
    u = (c * s - Hy) * inv_sy  # b x p x 1
    outer = s * u.mT  # b x p x p: s u^T
    state.H = torch.where(good, H + outer + outer.mT, H)

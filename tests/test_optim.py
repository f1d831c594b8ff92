"""Tests for bopt.optim.minimize_batched on problems with known answers."""

import torch

from bopt.optim import minimize_batched


def _tol(dtype):
    # Stopping is by a relative decrease under tol = 1e-9 (float64); float32 gradients of O(1)
    # quadratics carry ~1e-7 relative noise, so the reachable accuracy is ~1e-3 there.
    return 1e-5 if dtype == torch.float64 else 2e-3


def _spd(b, p, generator, dtype, *, diagonal=False):
    """`b x p x p` symmetric positive definite matrices with eigenvalues in [1, 10]."""
    eig = 1 + 9 * torch.rand(b, p, generator=generator, dtype=torch.float64)
    if diagonal:
        return torch.diag_embed(eig).to(dtype)
    Q, _ = torch.linalg.qr(torch.randn(b, p, p, generator=generator, dtype=torch.float64))
    return (Q @ torch.diag_embed(eig) @ Q.transpose(-1, -2)).to(dtype)


def _quadratic(A, c):
    """f(x) = 0.5 (x - c)^T A (x - c) for `... x b x p` points, problem i using A[i], c[i]."""
    def f(x):
        r = x - c  # ... x b x p
        return 0.5 * (r.unsqueeze(-2) @ A @ r.unsqueeze(-1)).squeeze(-1).squeeze(-1)
    return f


def _box(p, dtype):
    return torch.zeros(p, dtype=dtype), torch.ones(p, dtype=dtype)


def test_converges_to_interior_minimiser(dtype):
    g = torch.Generator().manual_seed(0)
    b, p = 8, 5
    A = _spd(b, p, g, dtype)
    c = (0.1 + 0.8 * torch.rand(b, p, generator=g, dtype=torch.float64)).to(dtype)
    x0 = torch.rand(b, p, generator=g, dtype=torch.float64).to(dtype)
    x, fx, iters = minimize_batched(_quadratic(A, c), x0, *_box(p, dtype), max_iter=200)
    assert x.dtype == fx.dtype == dtype and x.shape == (b, p) and fx.shape == (b,)
    torch.testing.assert_close(x, c, atol=_tol(dtype), rtol=0.0)
    assert 1 <= iters <= 200


def test_minimiser_outside_the_box_is_its_projection(dtype):
    # Separable quadratics: the constrained minimiser is the box projection of c.
    g = torch.Generator().manual_seed(1)
    b, p = 8, 4
    A = _spd(b, p, g, dtype, diagonal=True)
    c = (-1 + 3 * torch.rand(b, p, generator=g, dtype=torch.float64)).to(dtype)  # in [-1, 2]
    assert bool(((c < 0) | (c > 1)).any(-1).all())  # every problem has an active bound
    x0 = torch.rand(b, p, generator=g, dtype=torch.float64).to(dtype)
    x, fx, iters = minimize_batched(_quadratic(A, c), x0, *_box(p, dtype), max_iter=200)
    torch.testing.assert_close(x, c.clamp(0, 1), atol=_tol(dtype), rtol=0.0)
    assert bool(((x >= 0) & (x <= 1)).all())
    # Once nothing can move, every problem stalls, also where tol (1 + |f|) is below the
    # dtype's rounding (float32 at the default tol): the loop stops well before max_iter.
    assert iters < 100


def test_never_worse_than_start_and_returns_consistent_values(dtype):
    """A multimodal objective: every problem ends no higher than it started, inside the box,
    and the returned values are the objective at the returned points."""
    g = torch.Generator().manual_seed(2)
    b, p = 16, 3
    freq = (2 + 8 * torch.rand(b, p, generator=g, dtype=torch.float64)).to(dtype)

    def f(x):
        return (torch.sin(freq * x) + 0.3 * (x - 0.5) ** 2).sum(-1)

    lower = torch.full((b, p), 0.2, dtype=dtype)  # per-problem bounds, `b x p`
    upper = torch.full((b, p), 0.9, dtype=dtype)
    x0 = (0.2 + 0.7 * torch.rand(b, p, generator=g, dtype=torch.float64)).to(dtype)
    x, fx, _ = minimize_batched(f, x0, lower, upper, max_iter=50)
    assert bool((fx <= f(x0)).all())
    assert bool((fx < f(x0)).any())
    assert bool(((x >= lower) & (x <= upper)).all())
    atol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(fx, f(x), atol=atol, rtol=0.0)


def test_frozen_coordinates_stay_and_free_ones_minimise_the_rest(dtype):
    g = torch.Generator().manual_seed(3)
    b, p = 6, 4
    A64 = _spd(b, p, g, torch.float64)
    c64 = 0.2 + 0.6 * torch.rand(b, p, generator=g, dtype=torch.float64)
    x0_64 = torch.rand(b, p, generator=g, dtype=torch.float64)
    free = torch.rand(b, p, generator=g) < 0.5
    free[:, 0] = True  # at least one free coordinate per problem
    free[0] = True  # and one problem with none frozen
    A, c, x0 = A64.to(dtype), c64.to(dtype), x0_64.to(dtype)
    x, _, _ = minimize_batched(_quadratic(A, c), x0, *_box(p, dtype), free=free, max_iter=200)
    assert torch.equal(x[~free], x0[~free])
    checked = 0
    for i in range(b):
        # Minimise over the free block F with the rest N fixed:
        # x_F = c_F - A_FF^-1 A_FN (x_N - c_N), inside the box for these draws.
        F, N = free[i], ~free[i]
        expected = c64[i, F] - torch.linalg.solve(
            A64[i][F][:, F], A64[i][F][:, N] @ (x0_64[i, N] - c64[i, N]))
        if bool(((expected > 0) & (expected < 1)).all()):
            torch.testing.assert_close(x[i, F].double(), expected, atol=_tol(dtype), rtol=0.0)
            checked += 1
    assert checked >= b // 2


def test_project_is_applied_to_every_evaluated_point():
    # Project pins coordinate 2 to 0.25 (idempotent); the minimiser must honour it, and
    # the objective must only ever see projected points.
    g = torch.Generator().manual_seed(4)
    b, p = 5, 3
    A = _spd(b, p, g, torch.float64, diagonal=True)
    c = 0.1 + 0.8 * torch.rand(b, p, generator=g, dtype=torch.float64)
    quadratic = _quadratic(A, c)
    seen = []

    def project(x):
        return torch.cat([x[..., :2], torch.full_like(x[..., 2:], 0.25)], dim=-1)

    def f(x):
        seen.append(x.detach()[..., 2].clone())
        return quadratic(x)

    x0 = torch.rand(b, p, generator=g, dtype=torch.float64)
    x, _, _ = minimize_batched(f, x0, *_box(p, torch.float64), project=project, max_iter=100)
    assert all(bool((s == 0.25).all()) for s in seen)
    torch.testing.assert_close(x[:, 2], torch.full((b,), 0.25, dtype=torch.float64), atol=0.0,
                               rtol=0.0)
    torch.testing.assert_close(x[:, :2], c[:, :2], atol=1e-5, rtol=0.0)


def test_steps_into_non_finite_regions_are_rejected():
    # The objective is +inf (or NaN) beyond x_0 > 0.7, while the quadratic pulls to 0.9.
    b, p = 4, 2
    c = torch.tensor([0.9, 0.5], dtype=torch.float64).expand(b, p)

    def f(x):
        value = ((x - c) ** 2).sum(-1)
        value = torch.where(x[..., 0] > 0.75, torch.full_like(value, float("inf")), value)
        return torch.where(x[..., 0] > 0.85, torch.full_like(value, float("nan")), value)

    x0 = torch.tensor([[0.1, 0.1], [0.3, 0.9], [0.5, 0.5], [0.7, 0.2]], dtype=torch.float64)
    x, fx, _ = minimize_batched(f, x0, *_box(p, torch.float64), max_iter=100)
    assert bool(torch.isfinite(fx).all())
    assert bool((x[:, 0] <= 0.75).all()) and bool((fx <= f(x0)).all())


def test_stops_early_once_converged():
    g = torch.Generator().manual_seed(5)
    A = _spd(3, 2, g, torch.float64)
    c = torch.full((3, 2), 0.5, dtype=torch.float64)
    _, _, iters = minimize_batched(_quadratic(A, c), torch.zeros(3, 2, dtype=torch.float64),
                                   *_box(2, torch.float64), max_iter=500, check_every=5)
    assert iters < 500 and iters % 5 == 0


def test_constant_objective_returns_the_start():
    x0 = torch.rand(3, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    x, fx, _ = minimize_batched(lambda x: torch.zeros(x.shape[:-1], dtype=x.dtype), x0,
                                *_box(2, torch.float64), max_iter=5)
    torch.testing.assert_close(x, x0, atol=0.0, rtol=0.0)
    torch.testing.assert_close(fx, torch.zeros(3, dtype=torch.float64), atol=0.0, rtol=0.0)


def test_closed_form_value_and_grad_takes_the_place_of_autograd():
    """Given `value_and_grad`, the solver calls it instead of differentiating `f`, and lands
    where autograd through `f` lands."""
    g = torch.Generator().manual_seed(7)
    b, p = 6, 4
    A = _spd(b, p, g, torch.float64)
    c = 0.1 + 0.8 * torch.rand(b, p, generator=g, dtype=torch.float64)
    f = _quadratic(A, c)
    calls = []

    def value_and_grad(x):
        calls.append(x.shape)
        r = x - c  # ... x b x p
        return f(x), (A @ r.unsqueeze(-1)).squeeze(-1)

    def no_autograd(x):
        raise AssertionError("f must not be called when value_and_grad is given")

    x0 = torch.rand(b, p, generator=g, dtype=torch.float64)
    x, fx, _ = minimize_batched(no_autograd, x0, *_box(p, torch.float64), max_iter=200,
                                value_and_grad=value_and_grad)
    x_ref, _, _ = minimize_batched(f, x0, *_box(p, torch.float64), max_iter=200)
    assert calls
    torch.testing.assert_close(x, c, atol=1e-5, rtol=0.0)
    torch.testing.assert_close(x, x_ref, atol=1e-5, rtol=0.0)


def test_a_start_with_no_finite_value_counts_as_stalled():
    """A problem whose value is inf everywhere it looks (a covariance that never factorises)
    must not hold the others' early stop up until max_iter."""
    target = torch.tensor([0.3, 0.7], dtype=torch.float64)

    def f(x):  # problem 1 is inf everywhere
        value = ((x - target) ** 2).sum(-1)
        return torch.where(torch.arange(2) == 1, torch.full_like(value, float("inf")), value)

    x0 = torch.full((2, 2), 0.5, dtype=torch.float64)
    x, fx, iters = minimize_batched(f, x0, *_box(2, torch.float64), max_iter=150)
    assert iters < 150
    torch.testing.assert_close(x[0], target, atol=1e-4, rtol=0.0)
    assert fx[1] == float("inf")


def test_dominated_problems_stop_holding_the_loop_up():
    """With `dominated`, a slow problem far above the best one counts as done: the loop
    stops once the best has converged, not when the slow one has."""
    scale = torch.tensor([1.0, 1e-4], dtype=torch.float64)  # problem 1 creeps along

    def f(x):
        return ((x - 0.5) ** 2).sum(-1) + 10.0 * (torch.arange(2) == 1) + scale * x.sum(-1)

    x0 = torch.tensor([[0.1, 0.9], [0.0, 0.0]], dtype=torch.float64)
    _, _, plain = minimize_batched(f, x0, *_box(2, torch.float64), max_iter=200)
    _, fx, early = minimize_batched(f, x0, *_box(2, torch.float64), max_iter=200, dominated=2.0)
    assert early <= plain and fx[1] > fx[0] + 2.0


def test_a_problem_done_by_stalling_stays_done():
    """A problem that has stalled `patience` iterations in a row stays done even when a
    later iteration makes progress again (so a late small gain does not restart its count
    and hold the early stop up); before that, progress resets the count."""
    from bopt.optim import _Box, _Search, _State, _iterate

    p = 2
    target = torch.tensor([0.3, 0.7], dtype=torch.float64)

    def value_and_grad(x):
        return ((x - target) ** 2).sum(-1), 2 * (x - target)

    x = torch.full((2, p), 0.9, dtype=torch.float64)
    state = _State.start(x, *value_and_grad(x), torch.tensor(0.1, dtype=torch.float64))
    state.stalls = torch.tensor([2, 1])  # problem 0 already done (patience 2), 1 not yet
    box = _Box(*_box(p, torch.float64), torch.ones(2, p, dtype=torch.bool), None)
    alphas = torch.tensor((1.0, 0.3, 0.05), dtype=torch.float64)
    search = _Search(alphas[:, None, None], 2 * alphas[:, None], alphas[-1] * 0.5,
                     torch.arange(2), 1e-9, 2)
    before = state.fx.clone()
    _iterate(value_and_grad, state, box, search, first=True)
    assert bool((state.fx < before - 1e-3).all())  # both made clear progress
    assert state.stalls.tolist() == [3, 0]


def test_standing_still_stalls_and_leaving_inf_is_progress():
    """One iteration, tol = 0: a problem on a flat objective (it cannot move, and its value
    equals itself) counts as stalled; one whose value goes from inf to finite (a finite
    gradient at an infeasible start) counts as progress."""
    from bopt.optim import _Box, _Search, _State, _iterate

    def value_and_grad(x):  # problem 0 flat at 1; problem 1 inf right of 0.8, else a bowl
        bowl = ((x - 0.3) ** 2).sum(-1)
        value = torch.where(x[..., 0] > 0.8, torch.full_like(bowl, float("inf")), bowl)
        flat = torch.arange(2) == 0
        return (torch.where(flat, 1.0, value),
                torch.where(flat.unsqueeze(-1), 0.0, 2 * (x - 0.3)))

    x = torch.tensor([[0.5, 0.5], [0.9, 0.5]], dtype=torch.float64)
    state = _State.start(x, *value_and_grad(x), torch.tensor(0.3, dtype=torch.float64))
    box = _Box(*_box(2, torch.float64), torch.ones(2, 2, dtype=torch.bool), None)
    alphas = torch.tensor((1.0, 0.3, 0.05), dtype=torch.float64)
    search = _Search(alphas[:, None, None], 2 * alphas[:, None], alphas[-1] * 0.5,
                     torch.arange(2), 0.0, 1)
    assert state.fx[1] == float("inf")
    _iterate(value_and_grad, state, box, search, first=True)
    assert bool(torch.isfinite(state.fx[1]))
    assert state.stalls.tolist() == [1, 0]

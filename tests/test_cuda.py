"""CUDA checks: the same results on the GPU, everything on one device, no host syncs in loops.

Skipped without a CUDA device.
"""

import pytest
import torch

import bopt
from bopt.acquisition import log_expected_improvement, multistart_maximize
from bopt.optim import minimize_batched
from bopt.layout import Layout
from bopt.model import fit_gp

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _data(n: int = 30, d: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g, dtype=torch.float64)
    y = torch.sin(6 * X).sum(-1, keepdim=True)
    return X, (y - y.mean()) / y.std()


def test_posterior_matches_cpu_for_equal_hyperparameters():
    X, Y = _data()
    layout = Layout(d=4, continuous=(0, 1, 2, 3))
    cpu, theta, _ = fit_gp(X, Y, layout)
    gpu, _, _ = fit_gp(X.cuda(), Y.cuda(), layout, warm_start=theta.cuda(), max_iter=0)
    Xt = torch.rand(7, 1, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mean_c, std_c = cpu.mean_std(Xt)
    mean_g, std_g = gpu.mean_std(Xt.cuda())
    assert mean_g.device.type == "cuda"
    torch.testing.assert_close(mean_g.cpu(), mean_c, atol=1e-9, rtol=0.0)
    torch.testing.assert_close(std_g.cpu(), std_c, atol=1e-9, rtol=0.0)


def test_fit_on_cuda_reaches_the_cpu_optimum():
    X, Y = _data()
    layout = Layout(d=4, continuous=(0, 1, 2, 3))
    _, _, rep_c = fit_gp(X, Y, layout)
    _, theta_g, rep_g = fit_gp(X.cuda(), Y.cuda(), layout)
    assert theta_g.device.type == "cuda" and theta_g.dtype == torch.float64
    # Different reduction orders can end the quasi-Newton runs at slightly different points.
    assert abs(rep_g.neg_log_posterior - rep_c.neg_log_posterior) < 1e-4


def test_batched_bfgs_loop_never_syncs_with_the_host():
    target = torch.linspace(0.1, 0.9, 5, device="cuda", dtype=torch.float64)
    x0 = torch.rand(16, 5, device="cuda", dtype=torch.float64)
    lo = torch.zeros(5, device="cuda", dtype=torch.float64)
    hi = torch.ones(5, device="cuda", dtype=torch.float64)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:  # check_every past max_iter: the loop has no early-stopping sync at all
        x, fx, _ = minimize_batched(lambda z: ((z - target) ** 2).sum(-1), x0, lo, hi,
                                    max_iter=30, check_every=31)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(x, target.expand(16, 5), atol=1e-6, rtol=0.0)


def _negated(value, grad):
    return -value, -grad.squeeze(-2)  # `... x 1 x d` gradients of q = 1 points -> `... x d`


def test_one_fit_step_and_one_acquisition_step_never_sync():
    """The closed-form values and gradients of the fit's objective and of log EI, UCB,
    Thompson sampling and noisy EI, and two whole ascent iterations of the solver, run
    without a host sync."""
    from bopt.acquisition import build_score
    from bopt.acquisition.registry import ScoreContext
    from bopt.model import _Objective, _Theta
    from bopt.optim import minimize_batched

    X, Y = _data()
    X, Y = X.cuda(), Y.cuda()
    layout = Layout(d=4, continuous=(0, 1, 2, 3))
    model, _, _ = fit_gp(X, Y, layout)
    objective = _Objective(X, Y, layout)
    theta = _Theta(4, 0).mode(torch.float64, X.device).expand(2, 3, -1).contiguous()
    Z = torch.rand(3, 8, 1, 4, device="cuda", dtype=torch.float64)
    context = ScoreContext(best_f=Y.max(), num_observations=X.shape[0], d=4,
                           generator=torch.Generator(device="cuda").manual_seed(0))
    score = build_score("ei", model, context)
    others = [build_score(key, model, context) for key in ("ucb", "ts", "nei")]
    for each in [score, *others]:  # builds the cross-covariance plans before the check
        each.value_and_grad(Z)
    lo, hi = torch.zeros(4, device="cuda", dtype=torch.float64), torch.ones(
        4, device="cuda", dtype=torch.float64)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        objective.value_and_grad(theta)
        for each in [score, *others]:
            each.value_and_grad(Z)
        minimize_batched(lambda z: -score(z.unsqueeze(-2)), Z[0, :, 0], lo, hi, max_iter=2,
                         check_every=3, value_and_grad=lambda z: _negated(
                             *score.value_and_grad(z.unsqueeze(-2))))
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_multistart_stays_on_the_device():
    X, Y = _data()
    layout = Layout(d=4, continuous=(0, 1, 2, 3))
    model, _, _ = fit_gp(X.cuda(), Y.cuda(), layout)
    g = torch.Generator(device="cuda").manual_seed(0)
    cands, values = multistart_maximize(
        lambda Z: log_expected_improvement(*model.mean_std(Z), Y.max().cuda()).sum(-1),
        layout, generator=g, num_raw_samples=128, device="cuda")
    assert cands.device.type == "cuda" and values.device.type == "cuda"
    assert bool(((cands >= 0) & (cands <= 1)).all())


@pytest.mark.parametrize("acquisition", ["ei", "ucb", "ts"])
def test_optimizer_loop_on_cuda(acquisition, no_capture_failures):
    space = bopt.Space([bopt.Float("x", -2.0, 2.0), bopt.Int("k", 1, 5),
                        bopt.Categorical("c", ["a", "b", "c"]),
                        bopt.Float("y", 0.0, 1.0, when={"c": "a"})])
    opt = bopt.Optimizer(space, acquisition, seed=0, device="cuda", n_initial=4,
                         num_raw_samples=128)

    def objective(p):
        return (p["x"] - 0.5) ** 2 + 0.1 * p["k"] + {"a": p.get("y", 0.0), "b": 1.0, "c": 2.0}[p["c"]]

    opt.minimize(objective, 10, progress=False)
    gp_rounds = [r for r in opt.diagnostics if r.strategy == acquisition]
    assert gp_rounds and all(r.device.startswith("cuda") for r in gp_rounds)
    assert all(r.fallback is None for r in gp_rounds)
    assert no_capture_failures.failures() == {}  # the fit and ascent loops were recorded
    for trial in opt.history:
        assert space.validate(trial.params) == trial.params


def test_a_real_out_of_memory_error_moves_the_round_to_the_cpu(monkeypatch):
    """The first fit on the GPU asks for far more memory than any device has; the round is
    rerun on the CPU and the next round goes back to the GPU."""
    import bopt.engine

    space = bopt.Space([bopt.Float("x", 0.0, 1.0), bopt.Float("y", 0.0, 1.0)])
    opt = bopt.Optimizer(space, device="cuda", seed=0, n_initial=3)
    for _ in range(3):
        t = opt.suggest()
        opt.observe(t, (t.params["x"] - 0.3) ** 2 + t.params["y"])
    real_fit, calls = bopt.engine.fit_gp, []

    def greedy_fit(X, *args, **kwargs):
        calls.append(X.device.type)
        if len(calls) == 1:
            torch.empty(2**45, dtype=torch.float64, device=X.device)  # 256 TiB
        return real_fit(X, *args, **kwargs)

    monkeypatch.setattr(bopt.engine, "fit_gp", greedy_fit)
    trial = opt.suggest()
    info = opt.diagnostics[-1]
    assert calls == ["cuda", "cpu"] and trial.source == "ei"
    assert info.fallback == "cpu" and info.device == "cpu"
    opt.observe(trial, 1.0)
    opt.suggest()
    assert calls[-1] == "cuda" and opt.diagnostics[-1].device.startswith("cuda")


@pytest.fixture
def no_capture_failures(monkeypatch):
    from bopt import cuda_graphs

    monkeypatch.setattr(cuda_graphs, "_failures", {})
    monkeypatch.delenv(cuda_graphs.ENV, raising=False)
    return cuda_graphs


def test_replayed_fit_and_ascent_capture_and_match_the_eager_loops(no_capture_failures,
                                                                     monkeypatch):
    """The cold fit (150 iterations) and the log-EI ascent are recorded as CUDA graphs
    without a failure, and end where the eager loops end."""
    from bopt.acquisition import build_score
    from bopt.acquisition.registry import ScoreContext

    cuda_graphs = no_capture_failures
    X, Y = _data()
    X, Y = X.cuda(), Y.cuda()
    layout = Layout(d=4, continuous=(0, 1, 2, 3))

    def run():
        model, theta, report = fit_gp(X, Y, layout)
        context = ScoreContext(best_f=Y.max(), num_observations=X.shape[0], d=4,
                               generator=torch.Generator(device="cuda").manual_seed(0))
        g = torch.Generator(device="cuda").manual_seed(1)
        cands, values = multistart_maximize(build_score("ei", model, context), layout,
                                            generator=g, num_raw_samples=256, device="cuda")
        return theta, report.neg_log_posterior, cands, values

    monkeypatch.setenv(cuda_graphs.ENV, "0")
    eager = run()
    monkeypatch.delenv(cuda_graphs.ENV)
    replayed = run()
    assert cuda_graphs.failures() == {}
    # Recorded fit iterations solve by triangular solves (`model.factor_solve`), eager ones by
    # `cholesky_solve`: the loops agree up to rounding, carried through 150 iterations.
    torch.testing.assert_close(replayed[0], eager[0], atol=1e-3, rtol=0.0)
    assert abs(replayed[1] - eager[1]) < 1e-6
    torch.testing.assert_close(replayed[2], eager[2], atol=1e-3, rtol=0.0)
    torch.testing.assert_close(replayed[3], eager[3], atol=1e-6, rtol=1e-5)


def test_a_loop_cuda_cannot_record_runs_eagerly_and_leaves_cuda_usable(no_capture_failures):
    cuda_graphs = no_capture_failures
    target = torch.linspace(0.1, 0.9, 5, device="cuda", dtype=torch.float64)
    lo = torch.zeros(5, device="cuda", dtype=torch.float64)
    hi = torch.ones(5, device="cuda", dtype=torch.float64)
    x0 = torch.rand(8, 5, generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64).cuda()

    def syncing(z):  # .item() copies to the host: a capture cannot record it
        return ((z - target) ** 2).sum(-1) + 0.0 * z.sum().item()

    x_eager, f_eager, it_eager = minimize_batched(syncing, x0, lo, hi, max_iter=40)
    x, f, it = minimize_batched(syncing, x0, lo, hi, max_iter=40, graph="syncing")
    assert list(cuda_graphs.failures()) == ["syncing"]
    assert it == it_eager
    torch.testing.assert_close(x, x_eager, atol=1e-12, rtol=0.0)
    assert float((x0 + 1).sum()) == pytest.approx(float(x0.sum().cpu()) + 40)

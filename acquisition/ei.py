"""Expected improvement, in the numerically stable log form.

Ament et al. 2023, "Unexpected Improvements to Expected Improvement for Bayesian
Optimization" (NeurIPS), eq. (9): log EI = log h(z) + log sigma with h(z) = phi(z) + z Phi(z),
evaluated through erfcx for z < -1 so that values and gradients stay finite far into the tail.
"""

from __future__ import annotations

import math

import torch
from botorch.acquisition import AcquisitionFunction
from torch import Tensor

from bopt.acquisition.common import as_batch, posterior_mean_std
from bopt.errors import NumericalError
from bopt.kernels import CrossPlan, mixed_cross, mixed_diag

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_SQRT_HALF_PI = math.sqrt(math.pi / 2)
_SQRT2 = math.sqrt(2.0)


def _log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x < 0 (Maechler 2012, the two-branch form)."""
    return torch.where(x > -math.log(2.0), torch.log(-torch.expm1(x)),
                       torch.log1p(-torch.exp(x)))


def _log_h_value(z: Tensor) -> Tensor:
    upper = z.clamp_min(-1.0)  # clamps keep both branches finite so `where` has clean grads
    direct = torch.log(torch.exp(-0.5 * upper**2 - _LOG_SQRT_2PI)
                       + upper * torch.special.ndtr(upper))
    # z < -1: h(z) = phi(z) (1 - |z| sqrt(pi/2) erfcx(|z| / sqrt 2)).
    lower = z.clamp_max(-1.0)
    eps_bound = -1e6 if z.dtype == torch.float64 else -1e3
    mid = lower.clamp_min(eps_bound)
    w = torch.log(-mid * _SQRT_HALF_PI * torch.special.erfcx(-mid / _SQRT2))
    tail = -0.5 * lower**2 - _LOG_SQRT_2PI + torch.where(
        lower > eps_bound, _log1mexp(w), -2 * torch.log(-lower))  # 1 - ... ~ 1/z^2 as z -> -inf
    return torch.where(z > -1.0, direct, tail)


class _LogH(torch.autograd.Function):
    """log h with its closed-form derivative, d/dz log h(z) = Phi(z) / h(z)."""

    @staticmethod
    def forward(ctx, z):
        out = _log_h_value(z)
        ctx.save_for_backward(z, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        z, out = ctx.saved_tensors
        return grad * torch.exp(torch.special.log_ndtr(z) - out)


def log_h(z: Tensor) -> Tensor:
    """log(phi(z) + z Phi(z)), accurate for every finite z in float64.

    Args:
        z: `...` standardised improvements.

    Returns:
        `...` log values, with a closed-form gradient.
    """
    return _LogH.apply(z)


def log_expected_improvement(mean: Tensor, std: Tensor, best_f: Tensor | float) -> Tensor:
    """log E[max(f - best_f, 0)] for a Gaussian f (maximisation).

    Args:
        mean: `... x q` posterior means.
        std: `... x q` posterior standard deviations, strictly positive.
        best_f: scalar incumbent, on the same scale.

    Returns:
        `... x q` log expected improvements.
    """
    return log_h((mean - best_f) / std) + torch.log(std)


_Z_RANGE = (-1e4, 30.0)  # where the slopes' one-branch form is accurate (see below)


def log_expected_improvement_slopes(mean: Tensor, std: Tensor,
                                    best_f: Tensor | float) -> tuple[Tensor, Tensor, Tensor]:
    """`log_expected_improvement` and its partial derivatives, in closed form and one branch.

    With z = (mean - best_f) / std, Phi(z) = exp(-z^2/2) erfcx(-z/sqrt2) / 2, so
    h(z) = phi(z) D with E = sqrt(pi/2) erfcx(-z/sqrt2) and D = 1 + z E, and

        log h(z) = -z^2/2 - log sqrt(2 pi) + log D,
        d log EI / d mean = E / (D std),   d log EI / d std = 1 / (D std).

    No cancellation for z >= 0; for z < 0 D = 1 - |z| E loses about z^2 ulps, so E and D
    are taken at max(z, -1e4) and carried below it by their asymptotes E ~ 1/|z| and
    D ~ 1/z^2 (exact to about 1e-8 relatively there); above z = 30, where exp(z^2/2) would
    overflow, at 30 and carried by h(z) ~ z (a relative error below 1e-190).
    Agrees with `log_h` to about 1e-10 relative down to z = -1e4 and 1e-8 below.

    Args:
        mean, std: `... x q` posterior means and standard deviations; best_f: scalar.

    Returns:
        `... x q` log expected improvements, and their derivatives with respect to the
        means and to the standard deviations, each `... x q`.
    """
    z = (mean - best_f) / std
    low, high = _Z_RANGE
    ratio = low / z.clamp_max(low)  # 1 above the low end, z_low / z below it
    ratio_high = high / z.clamp_min(high)  # 1 below the high end, z_high / z above it
    zc = z.clamp(low, high)
    E = (_SQRT_HALF_PI * ratio) * torch.special.erfcx(zc * (-1.0 / _SQRT2))
    D_std = (zc * E + ratio) * (ratio * std)  # D std, D = 1 + z E (times ratio^2 below)
    d_std = torch.reciprocal(D_std)
    zh = z.clamp_max(high)  # above it, h(z) = z (1 + O(exp(-z^2/2))): log h grows as log z
    value = torch.addcmul(torch.log(D_std), zh, zh, value=-0.5) - torch.log(ratio_high)
    return value - _LOG_SQRT_2PI, E * d_std * ratio_high, d_std


def expected_improvement(mean: Tensor, std: Tensor, best_f: Tensor | float) -> Tensor:
    """Closed-form EI for maximisation; `... x q` like `log_expected_improvement`."""
    z = (mean - best_f) / std
    pdf = torch.exp(-0.5 * z**2 - _LOG_SQRT_2PI)
    return std * (z * torch.special.ndtr(z) + pdf)


_FANTASY_JITTERS = (1e-10, 1e-8, 1e-6, 1e-4)  # relative to the mean posterior variance


class FantasyLogEI:
    """log E[max(f(x) - m, 0)], where the incumbent `m` is the largest of latent values
    f(S) fantasised jointly at points `S` of the data (and `best_f`, when given).

    Two acquisitions are this one formula (Letham et al. 2019, "Constrained Bayesian
    Optimization with Noisy Experiments", eq. 5; BoTorch's qLogNEI, Ament et al. 2023):

    - log EI with pending points: `S` the pending points, `best_f` the best observation.
      This is q-EI of the batch {x} and the pending points (Ginsbourger et al. 2010), so a
      point next to a pending one gains little and batch members spread out.
    - log noisy EI: `S` the most promising observed points (and the pending ones), no
      `best_f`: the incumbent is the model's belief about the best of them, not the luckiest
      noisy draw.

    f(S) is integrated by Monte Carlo over fixed base samples (a smooth, deterministic
    function for the ascent); f(x) given each fantasy is normal, with a mean linear in the
    fantasy and a variance that does not depend on it, so its EI is in closed form.

    Args:
        model: a bopt GP whose first `num_observed` training rows are the observations (the
            rest, if any, pending points believed at their posterior mean).
        rows: `m` indices into `model.train_X` of the fantasised points `S`.
        num_observed: `n`, the observations the posterior is conditioned on.
        best_f: scalar incumbent on the model's scale, or None.
        base_samples: `m x s` standard normal draws, fixed for the round.
    """

    def __init__(self, model, rows: Tensor, num_observed: int, best_f: Tensor | None,
                 base_samples: Tensor):
        n = num_observed
        self.model, self.n, self.num_fantasies = model, n, base_samples.shape[-1]
        self.L = model.L[:n, :n]  # the factor of the observations alone
        self.alpha = torch.cholesky_solve(model.train_Y[:n], self.L)  # n x 1
        self.X_S = model.train_X[rows]  # m x d
        K_S = model.kernel(self.X_S, model.train_X[:n])  # m x n
        self.W_S = torch.linalg.solve_triangular(self.L, K_S.T, upper=False)  # n x m
        cov = model.kernel(self.X_S, self.X_S) - self.W_S.T @ self.W_S  # m x m, latent
        self.C = _factor_with_jitter(cov)
        self.base = base_samples
        fantasies = (K_S @ self.alpha) + self.C @ base_samples  # m x s
        incumbent = fantasies.amax(0)  # s
        self.incumbent = incumbent if best_f is None else torch.maximum(incumbent, best_f)
        self._plan_cache = None
        if not model.layout.continuous:  # no gradient to give: the ascent uses autograd
            self.value_and_grad = None

    def __call__(self, X: Tensor) -> Tensor:
        """`... x q x d` candidates -> `... x q` log expected improvements."""
        model, n = self.model, self.n
        layout, hypers = model.layout, model.hypers
        Ks = mixed_cross(X, model.train_X[:n], hypers, layout.continuous, layout.categorical)
        K_xS = mixed_cross(X, self.X_S, hypers, layout.continuous, layout.categorical)
        flat = Ks.reshape(-1, n)  # M x n, M = (...q) points
        mean = flat @ self.alpha  # M x 1
        W = torch.linalg.solve_triangular(self.L, flat.T, upper=False)  # n x M
        var = mixed_diag(X, hypers, layout.continuous, layout.categorical).reshape(-1)
        var = var - (W * W).sum(0)  # M
        cov = K_xS.reshape(-1, self.X_S.shape[0]).T - self.W_S.T @ W  # m x M
        a = torch.linalg.solve_triangular(self.C, cov, upper=False)  # m x M
        std = (var - (a * a).sum(0)).clamp_min(1e-12).sqrt().unsqueeze(-1)  # M x 1
        z = (mean + a.T @ self.base - self.incumbent) / std  # M x s
        log_ei = log_h(z) + torch.log(std)
        value = torch.logsumexp(log_ei, dim=-1) - math.log(self.num_fantasies)  # M
        return value.reshape(X.shape[:-1])

    def value_and_grad(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """`... x q x d` candidates -> `... x q` log expected improvements and their
        `... x q x d` gradients, in closed form (no autograd graph).

        With w_s the softmax weights of the fantasies' log EIs and their slopes with
        respect to each fantasy's mean and to the std, the gradients with respect to the
        mean, the whitened cross-covariance `a` and the std are sums over s; they are
        pulled back through std^2 = var - |a|^2, a = (k_xS - v W_S) C^-T, v = k_x L^-T
        and the two cross-covariances.
        """
        with torch.no_grad():
            plan_n, plan_s, C_upper, L_upper, alpha_row = self._plans()
            flat = X.reshape(-1, X.shape[-1])  # M x d
            Ks, slope_n = plan_n.cross(flat)  # M x n
            K_xS, slope_s = plan_s.cross(flat)  # M x m
            mean = (Ks * alpha_row).sum(-1)  # M
            v = torch.linalg.solve_triangular(L_upper, Ks, upper=True, left=False)  # M x n
            cov = K_xS - v @ self.W_S  # M x m
            a = torch.linalg.solve_triangular(C_upper, cov, upper=True, left=False)  # M x m
            var = plan_n.prior_variance - (v * v).sum(-1) - (a * a).sum(-1)  # M
            floor = var <= 1e-12
            std = var.clamp_min(1e-12).sqrt()
            values, d_mean, d_std = log_expected_improvement_slopes(
                (mean.unsqueeze(-1) + a @ self.base), std.unsqueeze(-1), self.incumbent)
            value = torch.logsumexp(values, dim=-1) - math.log(self.num_fantasies)  # M
            w = torch.softmax(values, dim=-1)  # M x s
            g_mean = (w * d_mean).sum(-1)  # M
            g_std_over = ((w * d_std).sum(-1) / std).masked_fill(floor, 0.0).unsqueeze(-1)
            g_a = (w * d_mean) @ self.base.T - g_std_over * a  # M x m
            g_cov = torch.linalg.solve_triangular(self.C, g_a, upper=False, left=False)
            g_v = -g_std_over * v - g_cov @ self.W_S.T  # M x n
            g_Ks = torch.addcmul(torch.linalg.solve_triangular(self.L, g_v, upper=False,
                                                               left=False),
                                 g_mean.unsqueeze(-1), alpha_row)  # M x n
            grad = plan_n.pullback(slope_n, g_Ks) + plan_s.pullback(slope_s, g_cov)
            return value.reshape(X.shape[:-1]), grad.reshape(X.shape)

    def _plans(self):
        """The cross-covariance plans against the observations and the fantasised points,
        and the factors in row form, built on first use."""
        if self._plan_cache is None:
            layout, hypers = self.model.layout, self.model.hypers
            self._plan_cache = (
                CrossPlan(self.model.train_X[:self.n], hypers, layout.continuous,
                          layout.categorical),
                CrossPlan(self.X_S, hypers, layout.continuous, layout.categorical),
                self.C.mT.contiguous(), self.L.mT.contiguous(), self.alpha.mT)
        return self._plan_cache


def _factor_with_jitter(cov: Tensor) -> Tensor:
    """The lower Cholesky factor of a `m x m` posterior covariance, with the smallest
    relative jitter that works (close observations make it nearly singular)."""
    scale = cov.diagonal().mean().clamp_min(1e-30)
    eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    for jitter in _FANTASY_JITTERS:
        L, info = torch.linalg.cholesky_ex(cov + jitter * scale * eye)
        if int(info) == 0:
            return L
    raise NumericalError(f"the fantasised points' covariance is not positive definite even "
                         f"with relative jitter {_FANTASY_JITTERS[-1]:g}")


class LogEI(AcquisitionFunction):
    """Log expected improvement as a BoTorch acquisition function (q = 1).

    Args:
        model: a bopt GP or any single-output BoTorch model.
        best_f: incumbent on the model's target scale.
    """

    def __init__(self, model, best_f: Tensor | float):
        super().__init__(model)
        self.best_f = best_f

    def forward(self, X: Tensor) -> Tensor:
        """`b x q x d` (or `q x d`) -> `b`, summed over `q`."""
        mean, std = posterior_mean_std(self.model, as_batch(X))
        return log_expected_improvement(mean, std, self.best_f).sum(-1)

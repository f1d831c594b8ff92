"""The surrogate: an exact GP with the mixed kernel, fitted by batched MAP estimation.

`fit_gp` maximises the marginal likelihood plus log priors for several hyperparameter
starts at once (one batched Cholesky per evaluation), with the sync-free box-constrained
BFGS of `bopt.optim` and the gradient in closed form (`_Objective.value_and_grad`), all in
float64 on the data's device. The result is a BoTorch `Model` (so BoTorch acquisitions run
on it) that also caches its Cholesky factor for the fast `mean_std` path bopt's own
acquisitions use.

Hyperparameters are optimised as one vector per start, in log space:
`theta = [log cont lengthscales (dc), log cat lengthscales (dk), log scales (3), log noise]`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import gpytorch
import torch
from botorch.models.gpytorch import GPyTorchModel
from gpytorch.constraints import GreaterThan
from gpytorch.distributions import MultivariateNormal
from gpytorch.likelihoods import FixedNoiseGaussianLikelihood, GaussianLikelihood
from gpytorch.means import ZeroMean
from torch import Tensor

from bopt import cuda_graphs
from bopt.optim import minimize_batched
from bopt.errors import FitError
from bopt.kernels import (CrossPlan, MixedHypers, make_mixed_kernel, mixed,
                          mixed_diag)
from bopt.kernels.functional import columns
from bopt.layout import Layout

NOISE_FLOOR = 1e-6
_NOISE_SHAPE_MINUS_1, _NOISE_RATE = 0.1, 1.0  # Gamma(1.1, 1) prior on the noise variance
# A log prior term -c / l^2 on each Matern lengthscale l (unit cube), the short-side half of
# Optuna's lengthscale prior: it stops a fit from collapsing to lengthscales at the lower
# bound (every point independent; noise explained as signal). Off (0): at 0.1 it removed the
# Ackley6 collapse but cost svm_digits and Rosenbrock4 (benchmarks/results/suite_check/).
SHORT_LENGTHSCALE_PENALTY = 0.0
_SECOND_START_MAX_N = 150  # above this, a warm-started fit refines the warm start alone
_LARGE_N = 400  # above this, the line search tries one step length
_GRAPH_MAX_N = 1024  # above this a fit's solves cost more than the launches a CUDA graph saves
# The first step of a warm-started fit, as a share of the log-hyperparameter box's widest
# side (about 8 nats): the warm start is near the new optimum, and a first step of 0.1 (the
# cold fit's) failed and halved for all 5 steps of a 1,000-observation refit.
_WARM_FIRST_STEP = 1e-3
_VARIANCE_FLOOR = 1e-12  # posterior variances (standardised scale) are clamped here
_JITTERS = (0.0, 1e-8, 1e-6, 1e-4, 1e-2)
_LOG_2PI = math.log(2 * math.pi)
_SQRT2, _SQRT3, _SQRT5 = math.sqrt(2.0), math.sqrt(3.0), math.sqrt(5.0)


@dataclass
class FitReport:
    """What a fit did; the loop copies it into its round diagnostics."""

    neg_log_posterior: float
    num_starts: int
    iterations: int
    jitter: float = 0.0
    log_marginal_likelihood: float = math.nan
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Theta:
    """Where each hyperparameter sits in the flat vector, with its prior and bounds."""

    dc: int
    dk: int

    @property
    def p(self) -> int:
        return self.dc + self.dk + 4

    def unpack(self, theta: Tensor) -> tuple[MixedHypers, Tensor]:
        """`h x p` -> hypers with batch `h`, `h` noise variances."""
        e = theta.exp()
        dc, dk = self.dc, self.dk
        return MixedHypers(e[..., :dc], e[..., dc:dc + dk], e[..., dc + dk:dc + dk + 3]), e[..., -1]

    def _used_scales(self) -> list[bool]:
        if self.dk == 0:
            return [True, False, False]
        if self.dc == 0:
            return [False, True, False]
        return [True, True, True]

    def prior(self, dtype, device) -> tuple[Tensor, Tensor]:
        """`p` LogNormal locations and scales (Hvarfner et al. 2024 for the lengthscales).

        The last entry (noise) is not used by `_LogPrior`, which gives the noise a Gamma
        prior; it only places the noise's starting value (`mode`).
        """
        used = self._used_scales()
        scale_loc = math.log(1.0 / sum(used)) + 1.0  # mode exp(loc - 1) = 1 / num terms
        noise_mode = math.log(_NOISE_SHAPE_MINUS_1 / _NOISE_RATE)  # the Gamma prior's mode
        loc = ([_SQRT2 + 0.5 * math.log(max(self.dc, 1))] * self.dc + [0.0] * self.dk
               + [scale_loc] * 3 + [noise_mode])
        sd = [_SQRT3] * self.dc + [1.0] * self.dk + [1.0] * 3 + [0.0]
        return (torch.tensor(loc, dtype=dtype, device=device),
                torch.tensor(sd, dtype=dtype, device=device))

    def bounds(self, dtype, device) -> tuple[Tensor, Tensor]:
        lo = [math.log(0.025)] * self.dc + [math.log(0.01)] * self.dk + [math.log(1e-4)] * 3 + [
            math.log(NOISE_FLOOR)]
        hi = [math.log(100.0)] * (self.dc + self.dk) + [math.log(100.0)] * 3 + [math.log(2.0)]
        return (torch.tensor(lo, dtype=dtype, device=device),
                torch.tensor(hi, dtype=dtype, device=device))

    def free(self, device) -> Tensor:
        """`p` mask: the scales of absent terms stay at their prior mode."""
        return torch.tensor([True] * (self.dc + self.dk) + self._used_scales() + [True],
                            device=device)

    def mode(self, dtype, device) -> Tensor:
        """The prior mode, exp(loc - sd^2) per LogNormal (the noise's `loc` is its Gamma
        mode, with sd 0), clipped to the bounds."""
        loc, sd = self.prior(dtype, device)
        lo, hi = self.bounds(dtype, device)
        return torch.minimum(torch.maximum(loc - sd**2, lo), hi)


class _LogPrior:
    """The log prior density of `_Theta`'s log hyperparameters `t` (free entries only):

    - kernel hyperparameters: LogNormal(loc, sd) in the hyperparameter's value;
    - each Matern lengthscale l also: -SHORT_LENGTHSCALE_PENALTY / l^2 (off by default);
    - the noise variance: Gamma(1.1, 1), nearly flat towards zero (a deterministic objective
      reaches the floor), one nat per unit of standardised variance (Optuna's rate 30 fits
      noise as signal: `benchmarks/results/noise_prior_956a6d8/`); up to a constant.

    All of it is one expression per entry, with constants built once:
    sum_i [-w_i (t_i - loc_i)^2 / 2 + lin_i t_i + gam_i exp(beta_i t_i)] + const,
    so that its value and gradient take a dozen operations in the fit's loop.
    """

    def __init__(self, spec: _Theta, dtype, device):
        loc, sd = spec.prior(dtype, "cpu")  # read on the host: no copies back from a GPU
        free, penalty = spec.free("cpu").tolist(), SHORT_LENGTHSCALE_PENALTY
        w, lin, gam, beta, self.const = [], [], [], [], 0.0
        for i, (is_free, scale) in enumerate(zip(free[:-1], sd[:-1].tolist())):
            w.append(scale**-2 if is_free else 0.0)
            lin.append(-1.0 if is_free else 0.0)  # the log-transform's Jacobian
            self.const -= (math.log(scale) + 0.5 * _LOG_2PI) if is_free else 0.0
            penalised = bool(penalty) and i < spec.dc  # a Matern lengthscale
            gam.append(-penalty if penalised else 0.0)
            beta.append(-2.0 if penalised else 0.0)
        # The noise: (shape - 1) t - rate exp(t).
        w, lin = w + [0.0], lin + [_NOISE_SHAPE_MINUS_1]
        gam, beta = gam + [-_NOISE_RATE], beta + [1.0]
        table = torch.stack([loc, *(torch.tensor(v, dtype=dtype) for v in (w, lin, gam, beta))])
        table = torch.cat([table, (table[3] * table[4]).unsqueeze(0)])
        # One copy to the device; rows: loc, w, lin, gam, beta, gam * beta.
        self.loc, self.w, self.lin, self.gam, self.beta, self.gam_beta = table.to(device)

    def __call__(self, theta: Tensor) -> Tensor:
        """`h x p` log hyperparameters -> `h` log prior densities."""
        return self.value_and_grad(theta)[0]

    def value_and_grad(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """`h x p` -> `h` log prior densities and their `h x p` gradients."""
        d = theta - self.loc
        wd, e = self.w * d, torch.exp(theta * self.beta)
        terms = torch.addcmul(torch.addcmul(self.gam * e, self.lin, theta), wd, d, value=-0.5)
        return terms.sum(-1) + self.const, torch.addcmul(self.lin - wd, self.gam_beta, e)


def neg_log_posterior(theta: Tensor, X: Tensor, Y: Tensor, layout: Layout, *,
                      jitter: float = 0.0) -> Tensor:
    """Negative log marginal likelihood minus log prior, divided by `n`.

    Args:
        theta: `... x p` log hyperparameters (see module docstring).
        X: `n x d` encoded inputs; Y: `n x 1` targets (`bopt.warp.transform_outputs`).
        layout: which columns are continuous or categorical.
        jitter: added to the noise variance.

    Returns:
        `...` values; `inf` where the covariance is not positive definite.
    """
    return _Objective(X, Y, layout, jitter)(theta)


class _GaussianNLL(torch.autograd.Function):
    """`h x n x n` covariances K, `n x 1` targets y -> `h` values 0.5 y'K^-1 y + 0.5 log|K|
    (inf where K does not factorise), with the closed-form gradient 0.5 (K^-1 - a a'),
    a = K^-1 y.

    Autograd through the Cholesky factor costs about three n^3 products (two triangular
    solves and a product); K^-1 from the factor costs two thirds of one: a value and
    gradient 1.5 times faster at 400 observations, 1.7-2 times at 1,000-2,000.
    """

    @staticmethod
    def forward(ctx, K: Tensor, y: Tensor) -> Tensor:
        L, info = torch.linalg.cholesky_ex(K)
        ok = info == 0
        L = torch.where(ok[:, None, None], L, torch.eye(K.shape[-1], dtype=K.dtype,
                                                          device=K.device))
        value, alpha = _nll_from_factor(L, y)
        ctx.save_for_backward(L, alpha, ok)
        return torch.where(ok, value, torch.full_like(value, float("inf")))

    @staticmethod
    def backward(ctx, grad: Tensor):
        L, alpha, ok = ctx.saved_tensors
        g = torch.cholesky_inverse(L) - alpha @ alpha.transpose(-1, -2)  # h x n x n
        g = g * (0.5 * torch.where(ok, grad, torch.zeros_like(grad)))[:, None, None]
        return g, None


def _nll_from_factor(L: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """`h x n x n` Cholesky factors of K -> `h` values 0.5 y'K^-1 y + 0.5 log|K| and the
    `h x n x 1` solves K^-1 y."""
    alpha = factor_solve(L, y.expand(L.shape[0], *y.shape))
    value = 0.5 * (y * alpha).sum((-2, -1)) + torch.log(
        torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    return value, alpha


def factor_solve(L: Tensor, B: Tensor) -> Tensor:
    """K^-1 B from the lower Cholesky factor L of K (`... x n x n`, `... x n x k`).

    Inside a CUDA graph recording, by two triangular solves: `cholesky_solve` and
    `cholesky_inverse` check error codes in host memory there (or call MAGMA, which syncs
    with the host), which a capture refuses; elsewhere the LAPACK routine, which is faster.
    """
    if not cuda_graphs.recording():
        return torch.cholesky_solve(B, L)
    return torch.linalg.solve_triangular(
        L.mT, torch.linalg.solve_triangular(L, B, upper=False), upper=True)


def factor_inverse(L: Tensor, eye: Tensor) -> Tensor:
    """K^-1 from the lower Cholesky factor L of K (`... x n x n`; `eye` the n x n identity),
    recordable as `factor_solve` is (at about four times `cholesky_inverse`'s flops)."""
    if not cuda_graphs.recording():
        return torch.cholesky_inverse(L)
    L_inv = torch.linalg.solve_triangular(L, eye.expand_as(L), upper=False)
    return L_inv.mT @ L_inv


class _Objective:
    """`neg_log_posterior` with its constant tensors (prior, mask, identity, the data's
    pairwise differences) built once, so the optimisation loop copies nothing from the host
    per evaluation; `value_and_grad` gives its gradient in closed form."""

    def __init__(self, X: Tensor, Y: Tensor, layout: Layout, jitter: float = 0.0,
                 known_noise: Tensor | None = None):
        self.X, self.Y, self.layout, self.jitter = X, Y, layout, jitter
        self.spec = _Theta(len(layout.continuous), len(layout.categorical))
        self.log_prior = _LogPrior(self.spec, X.dtype, X.device)
        self.eye = torch.eye(X.shape[0], dtype=X.dtype, device=X.device)
        self.known = known_noise  # n variances on the diagonal, or None
        Xc = columns(X, layout.continuous)
        self.Xc = Xc - Xc.mean(0)  # n x dc, centred (differences are what matter)
        self.Xc_sq = self.Xc * self.Xc
        cat = columns(X, layout.categorical)
        self.differ = (cat.unsqueeze(1) != cat.unsqueeze(0)).to(X.dtype)  # n x n x dk

    def __call__(self, theta: Tensor) -> Tensor:
        batch_shape = theta.shape[:-1]
        theta = theta.reshape(-1, theta.shape[-1])  # h x p
        hypers, noise = self.spec.unpack(theta)
        X, Y, n = self.X, self.Y, self.X.shape[0]
        K = mixed(X, X, hypers, self.layout.continuous, self.layout.categorical)  # h x n x n
        K = K + (noise + self.jitter)[:, None, None] * self.eye
        if self.known is not None:
            K = K + torch.diag_embed(self.known)
        lp = self.log_prior(theta)
        nll = _GaussianNLL.apply(K, Y)
        value = (nll + 0.5 * n * _LOG_2PI - lp) / n
        value = torch.where(torch.isinf(nll), nll, value)  # no factor: inf, and no gradient
        return value.reshape(batch_shape)

    def value_and_grad(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """`... x p` log hyperparameters -> `...` values and their `... x p` gradients.

        d nll / d theta_i = tr(G dK/d theta_i) / 2 with G = K^-1 - a a^T, a = K^-1 y
        (Rasmussen & Williams 2006, eq. 5.9). For a Matern lengthscale, with
        S = (s0 + s2 k_cat) (5/3) (1 + p) exp(-p) and W = G o S (o: elementwise),
        tr(G dK/d log l_j) = sum_ab W_ab (x_aj - x_bj)^2 / l_j^2
        = 2 (sum_a (W 1)_a x_aj^2 - x_j^T W x_j) / l_j^2; for an overlap lengthscale,
        sum_ab (G o (s1 + s2 k_cont) o k_cat)_ab [x_aj != x_bj] / (dk l_j).
        """
        batch_shape = theta.shape[:-1]
        theta = theta.reshape(-1, theta.shape[-1])  # h x p
        spec, n, h = self.spec, self.X.shape[0], theta.shape[0]
        (ls, cat_ls, scales), noise = spec.unpack(theta)
        s = scales[:, :, None, None]  # h x 3 x 1 x 1
        kc = kk = None  # few passes over the `h x n x n` arrays: they dominate at large n
        if spec.dc:
            A = self.Xc * (_SQRT5 / ls).unsqueeze(-2)  # h x n x dc
            sq = (A * A).sum(-1)  # h x n
            p = torch.baddbmm(sq.unsqueeze(-1) + sq.unsqueeze(-2), A, A.mT, alpha=-2.0)
            p = p.clamp_min_(1e-30).sqrt_()  # h x n x n: sqrt5 r
            decay = torch.exp(-p)
            lin_decay = torch.addcmul(decay, p, decay)  # (1 + p) exp(-p)
            kc = torch.addcmul(lin_decay, p * p, decay, value=1.0 / 3.0)
        if spec.dk:
            dist = (self.differ.reshape(n * n, -1) @ (1.0 / cat_ls).mT).mT.reshape(h, n, n)
            kk = torch.exp(dist * (-1.0 / spec.dk))
        # The kernel's terms, weighted by s0, s1, s2 (None: absent in this layout).
        terms = [kc, kk, kc * kk if spec.dc and spec.dk else None]
        K = sum(s[:, i] * t for i, t in enumerate(terms) if t is not None)  # h x n x n
        K.diagonal(dim1=-2, dim2=-1).add_((noise + self.jitter).unsqueeze(-1))
        if self.known is not None:
            K.diagonal(dim1=-2, dim2=-1).add_(self.known)
        L, info = torch.linalg.cholesky_ex(K)
        ok = info == 0
        L = torch.where(ok[:, None, None], L, self.eye)
        nll, alpha = _nll_from_factor(L, self.Y)
        G = factor_inverse(L, self.eye).baddbmm_(alpha, alpha.mT, alpha=-1.0)  # h x n x n
        grads = []
        if spec.dc:
            W = G * lin_decay if not spec.dk else G * lin_decay * (s[:, 0] + s[:, 2] * kk)
            WX = (W.reshape(h * n, n) @ self.Xc).reshape(h, n, -1)  # one matrix product
            tr = W.sum(-1) @ self.Xc_sq - (self.Xc * WX).sum(-2)  # h x dc, half the trace
            factor = scales[:, :1] * (5.0 / 3.0) if not spec.dk else 5.0 / 3.0
            grads.append(tr * factor / (ls * ls))
        if spec.dk:
            scale_k = s[:, 1] + s[:, 2] * kc if spec.dc else s[:, 1]
            Wk = (G * scale_k * kk).reshape(h, n * n)
            grads.append(0.5 * (Wk @ self.differ.reshape(n * n, -1)) / (spec.dk * cat_ls))
        grads.append(torch.stack([0.5 * scales[:, i] * (G * t).sum((-2, -1)) if t is not None
                                  else theta.new_zeros(h) for i, t in enumerate(terms)], dim=-1))
        grads.append((0.5 * noise * torch.diagonal(G, dim1=-2, dim2=-1).sum(-1)).unsqueeze(-1))
        lp, lp_grad = self.log_prior.value_and_grad(theta)
        value = (nll + 0.5 * n * _LOG_2PI - lp) / n
        grad = (torch.cat(grads, dim=-1) - lp_grad) / n
        failed = ~ok
        return value.masked_fill(failed, float("inf")).reshape(batch_shape), \
            grad.masked_fill(failed.unsqueeze(-1), 0.0).reshape(*batch_shape, -1)


class BoptGP(GPyTorchModel, gpytorch.models.ExactGP):
    """An exact GP over encoded inputs, usable as a BoTorch `Model`.

    Its targets are the transformed observations (`bopt.warp.transform_outputs`: unit
    spread, the lower quartile at the zero prior mean); `mean_std` answers from a cached
    Cholesky factor and is what bopt's acquisitions call.
    """

    _num_outputs = 1

    def __init__(self, train_X: Tensor, train_Y: Tensor, layout: Layout, hypers: MixedHypers,
                 noise: float | Tensor, L: Tensor, known_noise: Tensor | None = None):
        super().__init__(train_X, train_Y.squeeze(-1), _likelihood(noise, known_noise, train_X))
        self.layout = layout
        self.mean_module = ZeroMean()
        self.covar_module = make_mixed_kernel(layout)
        self.to(train_X)
        self.covar_module.set_hypers(hypers)
        self.known_noise = known_noise  # n variances each observation adds, or None
        self._noise = torch.as_tensor(noise, dtype=train_X.dtype, device=train_X.device)
        if known_noise is None:
            self.likelihood.noise = self._noise.reshape(1)
        self.eval()
        self.train_X, self.train_Y = train_X, train_Y
        self.L = L  # n x n lower Cholesky factor of K + noise I (+ diag(known_noise))
        self.alpha = torch.cholesky_solve(train_Y, L)  # n x 1
        # Caches built on first use (see _cross_plan): a BoptGP is never changed in place;
        # new data or hyperparameters make a new model (`condition_on`, `fit_gp`).
        self._plan: CrossPlan | None = None
        self._L_upper: Tensor | None = None  # L^T, contiguous, for mean_std_pullback
        self._alpha_row: Tensor | None = None  # alpha^T, likewise

    def forward(self, x: Tensor) -> MultivariateNormal:
        return MultivariateNormal(self.mean_module(x), self.covar_module(x))

    @property
    def hypers(self) -> MixedHypers:
        return MixedHypers(*(t.detach() for t in self.covar_module.hypers))

    @property
    def noise(self) -> Tensor:
        """The fitted noise variance shared by every observation (the known per-observation
        variances, if any, come on top: `known_noise`)."""
        if self.known_noise is not None:
            return self._noise.detach()
        return self.likelihood.noise.detach().squeeze()

    def kernel(self, X1: Tensor, X2: Tensor) -> Tensor:
        """Prior covariance `... x n1 x n2` under the fitted hyperparameters."""
        return mixed(X1, X2, self.hypers, self.layout.continuous, self.layout.categorical)

    def mean_std(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and standard deviation of the latent function.

        Args:
            X: `... x q x d` encoded points.

        Returns:
            `... x q` means and `... x q` standard deviations (target scale).
        """
        mean, std, _ = self.mean_std_whitened(X)
        return mean, std

    def mean_std_whitened(self, X: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """`mean_std`, and the whitened cross-covariances it computed on the way.

        Args:
            X: `... x q x d` encoded points.

        Returns:
            `... x q` means, `... x q` standard deviations, and the `n x (...q)` matrix
            `V = L^-1 k(train_X, X)` (columns in the flattened order of `X`'s points).
        """
        n, layout = self.train_X.shape[0], self.layout
        if layout.continuous:  # the cached plan: nothing recomputed from the training points
            plan = self._cross_plan()
            Ks, prior_variance = plan.covariance(X), plan.prior_variance  # ... x q x n
        else:
            Ks = mixed(X, self.train_X, self.hypers, layout.continuous, layout.categorical)
            prior_variance = mixed_diag(X, self.hypers, layout.continuous, layout.categorical)
        mean = (Ks @ self.alpha).squeeze(-1)  # ... x q
        flat = Ks.reshape(-1, n).T  # n x (...q): one triangular solve for every point
        V = torch.linalg.solve_triangular(self.L, flat, upper=False)
        var = prior_variance - (V * V).sum(0).reshape(X.shape[:-1])
        return mean, var.clamp_min(_VARIANCE_FLOOR).sqrt(), V

    def mean_std_pullback(self, X: Tensor) -> tuple[Tensor, Tensor, Callable]:
        """`mean_std` of `m` points, and the closed-form map from gradients with respect to
        their means and standard deviations to the gradient with respect to `X` (no
        autograd graph: a few large operations, for the acquisition's ascent).

        With `v = L^-1 k(train_X, x)`: d mean / d k = alpha, d std / d k = -L^-T v / std.

        Args:
            X: `m x d` encoded points; the layout needs continuous columns.

        Returns:
            `m` means, `m` standard deviations, and `pullback(g_mean, g_std)` mapping two
            `m` gradients to the `m x d` gradient.
        """
        plan = self._cross_plan()
        if self._L_upper is None:  # built once, for the ascent only
            self._L_upper, self._alpha_row = self.L.mT.contiguous(), self.alpha.mT  # n x n, 1 x n
        Ks, slope = plan.cross(X)  # m x n
        mean = (Ks * self._alpha_row).sum(-1)  # m
        # Row form, V = k L^-T: no transposes of the `m x n` block.
        V = torch.linalg.solve_triangular(self._L_upper, Ks, upper=True, left=False)  # m x n
        var = plan.prior_variance - (V * V).sum(-1)  # m
        floor = var <= _VARIANCE_FLOOR
        std = var.clamp_min(_VARIANCE_FLOOR).sqrt()

        def pullback(g_mean: Tensor, g_std: Tensor) -> Tensor:
            U = torch.linalg.solve_triangular(self.L, V, upper=False, left=False)  # m x n
            coef = (g_std / std).masked_fill(floor, 0.0)  # m
            grad_K = torch.addcmul(g_mean.unsqueeze(-1) * self._alpha_row,
                                   coef.unsqueeze(-1), U, value=-1.0)  # m x n
            return plan.pullback(slope, grad_K)

        return mean, std, pullback

    def _cross_plan(self) -> CrossPlan:
        """The cross-covariance plan against the training points, built on first use."""
        if self._plan is None:
            layout = self.layout
            self._plan = CrossPlan(self.train_X, self.hypers, layout.continuous,
                                   layout.categorical)
        return self._plan

    def condition_on(self, X: Tensor, Y: Tensor) -> "BoptGP":
        """The same hyperparameters with extra data (e.g. believed values of pending points).

        Args:
            X: `k x d` new inputs; Y: `k x 1` their (transformed) targets.
        """
        train_X = torch.cat([self.train_X, X])
        train_Y = torch.cat([self.train_Y, Y])
        known = None if self.known_noise is None else torch.cat(
            [self.known_noise, self.known_noise.new_zeros(X.shape[0])])
        L, jitter = cholesky_with_jitter(train_X, self.hypers, self.noise, self.layout, known)
        return BoptGP(train_X, train_Y, self.layout, self.hypers, self.noise + jitter, L, known)


def _likelihood(noise: float | Tensor, known_noise: Tensor | None, like: Tensor):
    """GPyTorch's view of the noise: homoscedastic, or fixed per observation when some
    observations came with a known standard error (`BoptGP.posterior` then sees it too)."""
    if known_noise is None:
        return GaussianLikelihood(noise_constraint=GreaterThan(NOISE_FLOOR * 0.5))
    total = torch.as_tensor(noise, dtype=like.dtype, device=like.device) + known_noise
    return FixedNoiseGaussianLikelihood(noise=total.detach(), learn_additional_noise=False)


def cholesky_with_jitter(X: Tensor, hypers: MixedHypers, noise: Tensor, layout: Layout,
                         known_noise: Tensor | None = None) -> tuple[Tensor, float]:
    """Factor K + (noise + jitter) I (+ diag(known_noise)) with the smallest jitter from
    `_JITTERS` that works.

    Returns:
        the `n x n` lower factor and the jitter used.

    Raises:
        FitError: if even the largest jitter fails.
    """
    K = mixed(X, X, hypers, layout.continuous, layout.categorical)
    if known_noise is not None:
        K = K + torch.diag_embed(known_noise)
    eye = torch.eye(X.shape[0], dtype=X.dtype, device=X.device)
    for jitter in _JITTERS:
        L, info = torch.linalg.cholesky_ex(K + (noise + jitter) * eye)
        if int(info) == 0 and bool(torch.isfinite(L).all()):  # one sync per factorisation
            return L, jitter
    raise FitError(f"covariance not positive definite even with jitter {_JITTERS[-1]:g}")


def _starts(spec: _Theta, X: Tensor, warm: Tensor | None, *, single: bool) -> list[Tensor]:
    """`p` starting points of the fit: cold, the prior mode and a smoother start; warm, the
    warm start, with the prior mode beside it unless `single` (each start costs a Cholesky
    per step)."""
    lo, hi = spec.bounds(X.dtype, X.device)
    mode = spec.mode(X.dtype, X.device)
    if warm is None:
        return [mode, (mode + torch.cat([torch.full((spec.dc + spec.dk,), math.log(3.0)),
                                         torch.zeros(4)]).to(X)).clamp(lo, hi)]
    return [warm] if single else [warm, mode]


def num_hyperparameters(layout: Layout) -> int:
    """`p`, the length of the log-hyperparameter vector `fit_gp` estimates for `layout`."""
    return _Theta(len(layout.continuous), len(layout.categorical)).p


def fit_gp(X: Tensor, Y: Tensor, layout: Layout, *, warm_start: Tensor | None = None,
           max_iter: int | None = None, known_noise: Tensor | None = None
           ) -> tuple[BoptGP, Tensor, FitReport]:
    """Fit hyperparameters by MAP and return the conditioned GP.

    Args:
        X: `n x d` encoded inputs (float64). Y: `n x 1` targets (`bopt.warp.transform_outputs`).
        layout: the space's layout.
        warm_start: `p` log hyperparameters of the previous round (same layout), tried
            alongside the prior mode.
        max_iter: BFGS iteration cap (default: 150 cold, 10 warm). With 0, the warm
            start is used as it is (the fallback to last round's hyperparameters).
        known_noise: `n` variances (target scale) each observation adds to the fitted
            noise, from standard errors the user reported; None for none.

    Returns:
        The GP, its `p` log hyperparameters (next round's warm start), and a report.

    Raises:
        FitError: if no hyperparameters give a usable covariance factor.
    """
    spec = _Theta(len(layout.continuous), len(layout.categorical))
    dtype, device = X.dtype, X.device
    lo, hi = spec.bounds(dtype, device)
    n = X.shape[0]
    warm = None if warm_start is None else torch.minimum(torch.maximum(warm_start.to(X), lo), hi)
    starts = _starts(spec, X, warm, single=max_iter == 0 or n > _SECOND_START_MAX_N)
    theta0 = torch.stack(starts)  # h x p
    steps = (1.0, 0.25) if n <= _LARGE_N else (1.0,)
    if max_iter is None:
        # Warm starts continue last round's optimisation: a few steps reach the new optimum
        # (at n = 100-400, 5 steps land within 5e-5 of it per observation, 10 within 1e-6).
        max_iter = 150 if warm is None else 10
    report = FitReport(neg_log_posterior=math.nan, num_starts=len(starts), iterations=0)
    if max_iter == 0:  # the warm start as it is: one factor, below, and no optimisation
        theta_best = theta0[0]
    else:
        objective = _Objective(X, Y, layout, known_noise=known_noise)
        theta, values, report.iterations = minimize_batched(
            objective, theta0, lo, hi, value_and_grad=objective.value_and_grad,
            initial_step=0.1 if warm is None else _WARM_FIRST_STEP,
            free=spec.free(device).expand_as(theta0), max_iter=max_iter, steps=steps,
            tol=1e-6, graph="fit" if n <= _GRAPH_MAX_N else None)
        best = values.argmin()
        if not math.isfinite(float(values[best])):
            report.warnings.append("marginal likelihood not finite at any start; "
                                   "kept the starting hyperparameters")
        theta_best = theta[best]
    return _conditioned(X, Y, layout, spec, theta_best, known_noise, report), \
        theta_best.detach(), report


def _conditioned(X: Tensor, Y: Tensor, layout: Layout, spec: _Theta, theta: Tensor,
                 known_noise: Tensor | None, report: FitReport) -> BoptGP:
    """The GP with hyperparameters `theta` conditioned on the data; fills `report` (the
    fit's own) with the jitter, the log marginal likelihood and the fit's objective."""
    n = X.shape[0]
    hypers, noise = spec.unpack(theta)
    L, jitter = cholesky_with_jitter(X, hypers, noise, layout, known_noise)
    if jitter > 0:
        report.jitter = jitter
        report.warnings.append(f"covariance needed jitter {jitter:g} to factorise")
    model = BoptGP(X, Y, layout, hypers, noise + jitter, L, known_noise)
    log_ml = -0.5 * (Y * model.alpha).sum() - torch.log(torch.diagonal(L)).sum() \
        - 0.5 * n * _LOG_2PI
    log_prior = _LogPrior(spec, X.dtype, X.device)(theta.unsqueeze(0))
    # The fit's objective at the result (with the jitter the factor needed, if any).
    report.neg_log_posterior = float((-log_ml - log_prior[0]) / n)
    report.log_marginal_likelihood = float(log_ml)
    return model

"""One model round, from tensors to a proposal.

    values --transform_outputs--> Y `n x 1`;  X, Y --fit_surrogate--> GP (with fallbacks)
    GP + pending points --believe--> GP;  GP --build_score--> score
    score --multistart_maximize--> candidates `b x 1 x d` --decode--> first unseen config

`propose` runs the whole round and returns a `Proposal`: the configuration (None when the
round could not produce one: the loop then proposes a random unseen configuration), the
round's diagnostics as a `RoundInfo`, and the warm start for the next round. It changes
nothing it is given. Numerical trouble degrades step by step (more jitter, the last good
hyperparameters, the CPU after an out-of-memory error, no proposal) and is recorded in the
diagnostics and on the `bopt` logger; any other exception is a bug and propagates.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from bopt.acquisition.budget import AtBudget, PromotionWeighted, with_budget
from bopt.acquisition.optimize import multistart_maximize, perturb
from bopt.acquisition.registry import ScoreContext, build_score
from bopt.errors import FitError, NumericalError
from bopt.layout import Layout, integer_grid_round
from bopt.model import BoptGP, fit_gp, num_hyperparameters
from bopt.runtime import OUT_OF_MEMORY, release_cached_memory
from bopt.space import Space
from bopt.trial import RoundInfo
from bopt.warp import OutputTransform, transform_outputs

logger = logging.getLogger("bopt")

# What a round may degrade from; anything else is a programming error and propagates.
NUMERICAL_TROUBLE = (NumericalError, torch.linalg.LinAlgError, OUT_OF_MEMORY)
_NUM_SEEDS = 5  # best observations whose perturbations join the raw candidates
_NUM_NEIGHBOURS = 256  # neighbours scored when the ascent found only seen configurations
# Log EI takes its noisy form when the fitted noise variance exceeds this share of the
# targets' variance (a noise sd of 10% of the data's): the best observation is then a noisy
# draw, not a safe incumbent. Deterministic smooth objectives fit 1e-6 to 1e-3.
NOISY_EI_ABOVE = 1e-2
# No proposal lands closer than this (unit cube, numeric columns) to a pending point of the
# same categories: parallel workers evaluate distinct points, not near-copies.
MIN_DISTANCE = 1e-3


@dataclass(frozen=True)
class WarmStart:
    """The last re-estimated hyperparameters, where the next fit starts.

    Attributes:
        theta: `p` log hyperparameters (see `bopt.model`), or None before the first fit.
        num_observations: how many observations they were estimated on.
        fingerprint: a checksum of those observations (`data_fingerprint`), or None.
    """

    theta: Tensor | None = None
    num_observations: int = -1
    fingerprint: float | None = None

    def keeps(self, n: int, refit_growth: float, fingerprint: float | None = None) -> bool:
        """Whether a round on `n` observations keeps these hyperparameters as they are:
        the data grew by less than `refit_growth` (always on the same data, e.g. the
        2nd..nth point of suggest(n)); never when they were fitted on more data than `n`,
        nor on as many different ones (a training-budget study's rows can be replaced)."""
        if self.theta is None:
            return False
        grown = n - self.num_observations
        if grown == 0 and None not in (fingerprint, self.fingerprint) and (
                fingerprint != self.fingerprint):
            return False
        return 0 <= grown < max(1, int(refit_growth * self.num_observations))

    def suits(self, layout: Layout) -> bool:
        """Whether the hyperparameters are for a model of `layout`'s width (a study whose
        schedule was added or removed has a warm start of the other width)."""
        return self.theta is None or self.theta.numel() == num_hyperparameters(layout)

    def to_state(self) -> dict | None:
        """The JSON form stored with a study."""
        if self.theta is None:
            return None
        return {"theta": self.theta.tolist(), "theta_n": self.num_observations,
                "theta_fingerprint": self.fingerprint}

    @classmethod
    def from_state(cls, state: dict | None, device: torch.device) -> WarmStart:
        """The inverse of `to_state`; an empty warm start for None."""
        if not state or state.get("theta") is None:
            return cls()
        return cls(torch.tensor(state["theta"], dtype=torch.float64, device=device),
                   int(state["theta_n"]), state.get("theta_fingerprint"))


def data_fingerprint(X: Tensor, Y: Tensor) -> float:
    """A checksum of the `n x d` inputs and `n x 1` targets (one host sync per round)."""
    weights = torch.arange(1, X.shape[0] + 1, dtype=X.dtype, device=X.device)  # n
    return float(weights @ (X.sum(-1) + Y.sum(-1)))


@dataclass(frozen=True)
class RoundSettings:
    """The optimizer's settings a model round reads."""

    acquisition: str  # a key of bopt.acquisition.registry.ACQUISITIONS
    maximize: bool
    refit_growth: float = 0.0
    beta: float | None = None
    num_restarts: int = 10
    num_raw_samples: int = 512


@dataclass(frozen=True)
class RoundData:
    """The tensors a round starts from, on any device.

    Attributes:
        train_X: `n x d` encoded completed configurations (`n x (d + 1)` with
            `acquire_at`: the last column is where in the training budget the value was
            reported, 0 at the first rung to 1 at the full budget).
        values: `n` observed objective values (float64), in the same order.
        pending_X: `k x d` encoded pending configurations (`k` may be 0; `k x (d + 1)`,
            at `acquire_at`, with `acquire_at`).
        num_duplicates: how many of the `n` repeat an earlier configuration.
        sems: `n` standard errors the user reported with the values (0 where none), or
            None when no observation came with one.
        acquire_at: None, or the budget position (last column) at which the acquisition
            is taken when the data span budgets (`bopt.fidelity`).
        acquire_budget: that position's budget, for the round's diagnostics.
        promotion: None, or `(position, quantile)`: weigh the acquisition by the
            probability that a new trial's value at budget position `position` is at least
            the `quantile` of the values observed there (a schedule's first rung).
    """

    train_X: Tensor
    values: Tensor
    pending_X: Tensor
    num_duplicates: int = 0
    sems: Tensor | None = None
    acquire_at: float | None = None
    acquire_budget: float | None = None
    promotion: tuple[float, float] | None = None


@dataclass
class Surrogate:
    """The GP a round fitted, and how it got there.

    Attributes:
        model: the fitted GP, or None when no hyperparameters gave a usable factor.
        targets: `n x 1` model targets (see `bopt.warp.transform_outputs`).
        transform: the map from objective values to targets, invertible.
        warm_start: where the next round's fit starts.
        refit: the hyperparameters were re-estimated (not kept).
        fallback: "last-good-hyperparameters" when the fit failed and those served.
        warnings: what went wrong or was unusual, in order.
        log_marginal_likelihood: of the fitted hyperparameters, when a fit succeeded.
        num_outliers: poor values compressed before the fit.
        seconds: wall time of the fit.
    """

    model: BoptGP | None
    targets: Tensor
    transform: OutputTransform
    warm_start: WarmStart
    refit: bool = False
    fallback: str | None = None
    warnings: list[str] = field(default_factory=list)
    log_marginal_likelihood: float | None = None
    num_outliers: int = 0
    seconds: float = 0.0
    known_noise: Tensor | None = None  # `n` variances from reported standard errors


def reported_sems(sems: list[float | None], device: torch.device) -> Tensor | None:
    """Standard errors reported with `n` observations as an `n` float64 tensor (0 where
    none was given), or None when none was."""
    if all(s is None for s in sems):
        return None
    return torch.tensor([s or 0.0 for s in sems], dtype=torch.float64, device=device)


def _target_variances(transform: OutputTransform, values: Tensor, sems: Tensor) -> Tensor:
    """`n` standard errors in objective units -> `n` variances on the targets' scale, through
    the transform's local slope at each value (the delta method)."""
    with torch.enable_grad():
        y = values.detach().clone().requires_grad_(True)
        (slope,) = torch.autograd.grad(transform.forward(y).sum(), y)
    return (sems * slope.abs()) ** 2


@dataclass(frozen=True)
class Proposal:
    """What a model round produced: the configuration (None: fall back to a random unseen
    one), its diagnostics, and the warm start for the next round."""

    params: dict | None
    info: RoundInfo
    warm_start: WarmStart


def fit_surrogate(train_X: Tensor, values: Tensor, layout: Layout, *, maximize: bool,
                  warm_start: WarmStart, refit_growth: float = 0.0,
                  sems: Tensor | None = None) -> Surrogate:
    """Targets from values, then the GP with its fallbacks.

    The hyperparameters are re-estimated (warm started), or kept as they are when
    `warm_start.keeps(n, refit_growth)`; kept ones that fail or need jitter on grown data
    are re-estimated from the prior; a failed fit falls back to the warm start's
    hyperparameters unless those were the ones that failed.

    Args:
        train_X: `n x d` encoded inputs (float64) on the round's device.
        values: `n` objective values on the same device.
        layout: the space's layout.
        maximize: whether higher values are better.
        warm_start: the previous estimate.
        refit_growth: see `bopt.Optimizer`.
        sems: `n` standard errors of the values in objective units (0 where unknown), or
            None; they add known variance to each observation, on the targets' scale.

    Returns:
        The surrogate; its `model` is None when nothing factorised.
    """
    Y, transform, warnings, num_outliers = transform_outputs(values, maximize=maximize)
    start = time.perf_counter()
    surrogate = Surrogate(None, Y, transform, warm_start, warnings=warnings,
                          num_outliers=num_outliers,
                          known_noise=None if sems is None else _target_variances(
                              transform, values, sems))
    if not warm_start.suits(layout):
        warm_start = surrogate.warm_start = WarmStart()
    fingerprint = data_fingerprint(train_X, Y)
    kept = warm_start.keeps(train_X.shape[0], refit_growth, fingerprint)
    try:
        _estimate(surrogate, train_X, layout, kept=kept, fingerprint=fingerprint)
    except FitError as err:
        surrogate.warnings.append(f"GP fit failed ({err})")
        if warm_start.theta is not None and not kept:  # kept ones were tried: they failed
            try:
                surrogate.model, _, _ = fit_gp(train_X, Y, layout, max_iter=0,
                                               warm_start=warm_start.theta.to(train_X.device),
                                               known_noise=surrogate.known_noise)
                surrogate.fallback = "last-good-hyperparameters"
            except FitError as err2:
                surrogate.warnings.append(f"last good hyperparameters failed too ({err2})")
    surrogate.seconds = time.perf_counter() - start
    return surrogate


class SurrogateCache:
    """The GP `recommend` and `predict` query, refitted only when the observations change."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._surrogate: Surrogate | None = None

    def get(self, done: list, rows: list[Tensor], layout: Layout, device: torch.device, *,
            maximize: bool, warm_start: WarmStart, refit_growth: float) -> Surrogate:
        """The surrogate of the completed trials `done` (with `.id`, `.value`, `.sem`),
        encoded as the `d` rows `rows`."""
        key = tuple((t.id, t.value, t.sem) for t in done)
        if self._surrogate is None or self._key != key:
            values = torch.tensor([t.value for t in done], dtype=torch.float64, device=device)
            self._surrogate = fit_surrogate(
                torch.stack(rows).to(device), values, layout, maximize=maximize,
                warm_start=warm_start, refit_growth=refit_growth,
                sems=reported_sems([t.sem for t in done], device))
            self._key = key
        return self._surrogate


def posterior_in_objective_units(surrogate: Surrogate, X: Tensor) -> tuple[Tensor, Tensor]:
    """The latent function's posterior at `X`, mapped back to the objective's units.

    The GP models transformed values (`bopt.warp.OutputTransform`, monotone), so the mean
    of the objective is not the transform of the GP's mean; this returns the transform of
    the GP's mean (the posterior median, equal to the mean where the transform is linear)
    and half the width of the central 68% band (one standard deviation for a normal).

    Args:
        surrogate: a fitted surrogate (its `model` is not None).
        X: `n x d` encoded points on the model's device.

    Returns:
        `n` medians and `n` half-widths, in objective units.
    """
    with torch.no_grad():
        mean, std = surrogate.model.mean_std(X.unsqueeze(-2))  # n x 1 each
    mean, std = mean.squeeze(-1), std.squeeze(-1)
    ends = surrogate.transform.inverse(torch.stack([mean - std, mean + std]))  # 2 x n
    return surrogate.transform.inverse(mean), (ends[1] - ends[0]).abs() / 2


def _estimate(surrogate: Surrogate, X: Tensor, layout: Layout, *, kept: bool,
              fingerprint: float) -> None:
    """Fit `surrogate`'s targets, keeping the warm start's hyperparameters when `kept`
    (filled in place: this is `fit_surrogate`'s own record); a new estimate is stamped
    with the data's `fingerprint`."""
    warm, Y, n = surrogate.warm_start, surrogate.targets, X.shape[0]
    grown = kept and warm.num_observations != n  # kept across new data, not one batch
    theta0 = None if warm.theta is None else warm.theta.to(X.device)
    reuse = kept
    known = surrogate.known_noise
    try:
        model, theta, report = fit_gp(X, Y, layout, warm_start=theta0,
                                      max_iter=0 if reuse else None, known_noise=known)
        if grown and report.jitter:
            raise FitError(f"the covariance needed jitter {report.jitter:g}")
    except FitError as err:
        if not grown:  # a fresh fit, or the same data: it would fail again
            raise
        # The kept hyperparameters do not suit the grown data: re-estimate from the prior
        # (a warm start at a point that does not factorise cannot move).
        surrogate.warnings.append(f"kept hyperparameters failed on the new data ({err}); "
                                  "re-estimated them")
        reuse = False
        model, theta, report = fit_gp(X, Y, layout, known_noise=known)
    if not reuse:
        surrogate.warm_start = WarmStart(theta, n, fingerprint)
    surrogate.model, surrogate.refit = model, not reuse
    surrogate.warnings += report.warnings
    surrogate.log_marginal_likelihood = report.log_marginal_likelihood


def propose(space: Space, data: RoundData, settings: RoundSettings, *, warm_start: WarmStart,
            seed: int, round_id: int, seen: Collection[tuple],
            device: torch.device) -> Proposal:
    """One model round on `device`; on the CPU when `device` runs out of memory.

    Args:
        space: the search space (its layout, names and decoder).
        data: the round's tensors.
        settings: acquisition, direction and optimizer settings.
        warm_start: the previous hyperparameter estimate.
        seed: seeds the round's generator; equal seeds and data give equal proposals.
        round_id: the trial id being proposed (for diagnostics and log lines).
        seen: keys of every configuration in the study; the proposal is not among them.
        device: where to fit and optimise.

    Returns:
        The proposal; `params` is None after numerical trouble that left no model or no
        unseen candidate (the caller then proposes at random; `info.fallback` says why).
    """
    run = dict(space=space, data=data, settings=settings, warm_start=warm_start, seed=seed,
               round_id=round_id, seen=seen)
    try:
        return _propose_on(device, **run)
    except OUT_OF_MEMORY as err:
        if device.type == "cpu":
            return _failed(round_id, data, settings, device, warm_start, err)
        logger.warning("trial %d: out of memory on %s; running this round on the CPU",
                       round_id, device)
        note = f"out of memory on {device} ({err}); this round ran on the CPU"
        release_cached_memory(device)
        try:
            rerun = _propose_on(torch.device("cpu"), **run)
        except NUMERICAL_TROUBLE as err2:
            rerun = _failed(round_id, data, settings, torch.device("cpu"), warm_start, err2)
        info = replace(rerun.info, warnings=[note] + rerun.info.warnings,
                       fallback=rerun.info.fallback or "cpu")
        return replace(rerun, info=info)
    except NUMERICAL_TROUBLE as err:  # linalg failures and the like: degrade, don't crash
        return _failed(round_id, data, settings, device, warm_start, err)


def _failed(round_id: int, data: RoundData, settings: RoundSettings, device: torch.device,
            warm_start: WarmStart, err: BaseException) -> Proposal:
    logger.warning("trial %d: model round failed; proposing a random configuration",
                   round_id, exc_info=err)
    info = RoundInfo(trial_id=round_id, strategy=settings.acquisition,
                     num_observations=data.train_X.shape[0], device=str(device),
                     num_duplicates=data.num_duplicates, fallback="random",
                     warnings=[f"model round failed: {type(err).__name__}: {err}"])
    return Proposal(None, info, warm_start)


def _propose_on(device: torch.device, *, space: Space, data: RoundData,
                settings: RoundSettings, warm_start: WarmStart, seed: int, round_id: int,
                seen: Collection[tuple]) -> Proposal:
    """`propose` on one device, without the out-of-memory rerun."""
    layout = space.layout
    X = data.train_X.to(device)
    surrogate = fit_surrogate(X, data.values.to(device),
                              layout if data.acquire_at is None else fidelity_layout(layout),
                              maximize=settings.maximize, warm_start=warm_start,
                              refit_growth=settings.refit_growth,
                              sems=None if data.sems is None else data.sems.to(device))
    info = _round_info(space, data, settings, surrogate, round_id=round_id, device=device)
    if surrogate.model is None:
        logger.warning("trial %d: no usable GP (%s); proposing a random configuration",
                       round_id, "; ".join(info.warnings))
        return Proposal(None, replace(info, fallback="random"), surrogate.warm_start)
    start = time.perf_counter()
    pending_X = data.pending_X.to(device)
    model, num_pending = _believe_pending(surrogate.model, pending_X, info.warnings)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    Y = surrogate.targets
    acquisition = settings.acquisition
    at = data.acquire_at
    if at is not None and acquisition == "nei":  # its baseline would mix the budgets
        acquisition = "ei"  # whose incumbent is a posterior mean there: noise-robust too
    if (acquisition == "ei" and float(surrogate.model.noise) > NOISY_EI_ABOVE
            and at is None):  # across budgets the incumbent is a posterior mean
        acquisition = "nei"
    info = replace(info, noisy_ei=acquisition == "nei")
    best_f = Y.max() if at is None else _incumbent_at(surrogate.model, X, at)
    score = build_score(acquisition, model, ScoreContext(
        best_f=best_f, num_observations=Y.shape[0], d=layout.d, generator=generator,
        beta=settings.beta, num_pending=num_pending))
    if at is not None:  # from here on, configurations: `... x d`
        score = _promotion_weighted(AtBudget(score, at), model, X, Y, data.promotion)
        X, pending_X = X[:, :-1], pending_X[:, :-1]
    seeds = X[Y.squeeze(-1).argsort(descending=True)[:_NUM_SEEDS]]
    lengthscales = surrogate.model.hypers.lengthscale[:len(layout.continuous)]  # no budget
    cands, values = multistart_maximize(
        score, layout, generator=generator, num_restarts=settings.num_restarts,
        num_raw_samples=settings.num_raw_samples, seeds=seeds, seed_lengthscales=lengthscales,
        device=device)
    params, best = _first_unseen(space, cands, values, seen, pending_X, info.warnings)
    fallback = info.fallback
    if params is None and bool(torch.isfinite(values).any()):
        params, best = _best_unseen_neighbour(space, score, cands, seen, pending_X, generator)
        fallback = "neighbour" if params is not None else "random"
        logger.log(logging.INFO if params is not None else logging.WARNING,
                   "trial %d: every optimized candidate was already seen (or next to a "
                   "pending point); proposing %s", round_id,
                   "its best unseen neighbour" if params is not None else "at random")
    elif params is None:
        fallback = "random"
    info = replace(info, acquisition_seconds=time.perf_counter() - start,
                   num_starts=cands.shape[0], best_acquisition=best, fallback=fallback)
    return Proposal(params, info, surrogate.warm_start)


def _round_info(space: Space, data: RoundData, settings: RoundSettings, surrogate: Surrogate,
                *, round_id: int, device: torch.device) -> RoundInfo:
    """The diagnostics of a round up to its fit: data, transform and hyperparameters."""
    warnings = list(surrogate.warnings)
    if data.num_duplicates:
        warnings.append(f"{data.num_duplicates} observation(s) repeat an observed "
                        "configuration; the model treats them as noisy replicates")
    info = RoundInfo(
        trial_id=round_id, strategy=settings.acquisition,
        num_observations=data.train_X.shape[0], device=str(device),
        fit_seconds=surrogate.seconds, log_marginal_likelihood=surrogate.log_marginal_likelihood,
        warp_lambda=surrogate.transform.lam, num_outliers=surrogate.num_outliers,
        num_duplicates=data.num_duplicates, fallback=surrogate.fallback, refit=surrogate.refit,
        warnings=warnings, budget_level=data.acquire_budget)
    if surrogate.model is None:
        return info
    hypers, layout = surrogate.model.hypers, space.layout
    names = [space.names[c] for c in layout.continuous]
    names += ["budget"] * (data.acquire_at is not None)
    names += [space.names[c] for c in layout.categorical]
    scales = torch.cat([hypers.lengthscale, hypers.cat_lengthscale]).tolist()
    return replace(info, lengthscales=dict(zip(names, scales)),
                   outputscales=tuple(hypers.scales.tolist()),
                   noise=float(surrogate.model.noise))


def fidelity_layout(layout: Layout) -> Layout:
    """The layout with one more continuous column at the end: the training budget."""
    return replace(layout, d=layout.d + 1, continuous=layout.continuous + (layout.d,))


def _promotion_weighted(score: AtBudget, model: BoptGP, X: Tensor, Y: Tensor,
                        promotion: tuple[float, float] | None):
    """`score`, weighed by the chance of passing the first rung where `promotion` names
    one that holds at least two of the `n x (d + 1)` rows (targets `Y`, `n x 1`)."""
    if promotion is None:
        return score
    position, quantile = promotion
    there = Y[(X[:, -1] - position).abs() < 1e-9, 0]
    if there.numel() < 2:
        return score
    threshold = float(torch.quantile(there, quantile))
    return PromotionWeighted(score, model, position, threshold, float(model.noise))


def _incumbent_at(model: BoptGP, X: Tensor, at: float) -> Tensor:
    """The best posterior mean at budget position `at` among the `n x (d + 1)` training
    rows' configurations."""
    with torch.no_grad():
        mean, _ = model.mean_std(with_budget(X[:, :-1], at).unsqueeze(-2))  # n x 1
    return mean.max()


def _believe_pending(model: BoptGP, pending_X: Tensor, warnings: list[str]
                     ) -> tuple[BoptGP, int]:
    """Kriging believer: the `k x d` pending points join the data at their posterior mean
    (log EI then integrates over their outcomes instead; see the registry).

    Returns the model and how many points it believes (0 when they could not be added,
    with a warning appended to the round's own list)."""
    if pending_X.shape[0] == 0:
        return model, 0
    with torch.no_grad():
        mean, _ = model.mean_std(pending_X.unsqueeze(-2))  # k x 1
    try:
        return model.condition_on(pending_X, mean), pending_X.shape[0]
    except FitError as err:
        warnings.append(f"pending points ignored ({err})")
        return model, 0


def _first_unseen(space: Space, cands: Tensor, values: Tensor, seen: Collection[tuple],
                  pending_X: Tensor, warnings: list[str]) -> tuple[dict | None, float | None]:
    """The best of the `b x 1 x d` candidates (sorted best first) that is not in `seen` nor
    within `MIN_DISTANCE` of a `k x d` pending point, decoded, and its score; non-finite
    candidates are dropped with a warning."""
    finite = torch.isfinite(cands).all(-1).all(-1) & torch.isfinite(values)  # b
    if not bool(finite.all()):
        bad = int((~finite).sum())
        warnings.append(f"the acquisition optimizer returned {bad} of {finite.numel()} "
                        "candidates with non-finite entries or scores; they were dropped")
        cands, values = cands[finite], values[finite]
    found = _pick_unseen(space, cands[:, 0, :], values, seen, pending_X)
    if found[0] is None and cands.shape[0]:
        warnings.append("every optimized candidate was already seen or next to a pending point")
    return found


def _pick_unseen(space: Space, X: Tensor, values: Tensor, seen: Collection[tuple],
                 pending_X: Tensor) -> tuple[dict | None, float | None]:
    """The first of the `b x d` points (best first) that is new and not next to a pending
    point, decoded, with its score."""
    far = _far_from(X, pending_X, space.layout).tolist()  # b
    for config, value, ok in zip(space.decode(X.cpu()), values.tolist(), far):
        if ok and space.key(config, validated=True) not in seen:
            return config, value
    return None, None


def _far_from(X: Tensor, pending_X: Tensor, layout: Layout) -> Tensor:
    """`b` flags: each of the `b x d` points is at least `MIN_DISTANCE` (Euclidean, numeric
    columns in the unit cube) from every `k x d` pending point with the same categories."""
    if pending_X.shape[0] == 0:
        return torch.ones(X.shape[0], dtype=torch.bool, device=X.device)
    cont, cat = list(layout.continuous), list(layout.categorical)
    dist = torch.cdist(X[:, cont], pending_X[:, cont]) if cont else torch.zeros(
        X.shape[0], pending_X.shape[0], dtype=X.dtype, device=X.device)  # b x k
    same = (X[:, None, cat] == pending_X[None, :, cat]).all(-1)  # b x k
    return ~((dist < MIN_DISTANCE) & same).any(-1)


def _best_unseen_neighbour(space: Space, score, cands: Tensor, seen: Collection[tuple],
                           pending_X: Tensor, generator: torch.Generator
                           ) -> tuple[dict | None, float | None]:
    """When every candidate was seen: the best-scoring new neighbour of the candidates
    (random moves of every column, scored in one batch)."""
    layout = space.layout
    X = integer_grid_round(perturb(cands[:, 0, :], _NUM_NEIGHBOURS, layout, generator),
                           layout)  # m x d
    with torch.no_grad():
        values = torch.nan_to_num(score(X.unsqueeze(-2)), nan=-math.inf)  # m
    order = values.argsort(descending=True)
    return _pick_unseen(space, X[order], values[order], seen, pending_X)

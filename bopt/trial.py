"""What the loop hands out and records: `Trial` (one configuration and its outcome),
`RoundInfo` (what one suggestion round did) and `Recommendation` (the configuration the
model believes best). A leaf: imports nothing of bopt."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

STATUSES = ("pending", "complete", "failed", "stale", "pruned")


@dataclass(frozen=True)
class Trial:
    """One configuration to evaluate, and what became of it.

    Attributes:
        id: unique within the study, increasing in creation order.
        params: the configuration (inactive conditional parameters omitted).
        status: "pending", "complete", "failed", "stale" (pending longer than the
            optimizer's `pending_timeout`; a late `observe` still completes it) or "pruned"
            (stopped early by a training-budget schedule).
        value: the observed objective value once complete; a pruned trial's last report.
        source: how it was proposed: "sobol", "random", "ei", "ucb", "ts", "external"
            (observed without a suggestion), "retry" (a stale trial's configuration again)
            or "fallback-..." after numerical trouble.
        note: why it failed, or what it retries, when there is something to say.
        retry_of: the id of the stale trial this one retries.
        created: when it was suggested (seconds since the epoch); not compared.
        completed: when it was observed or failed; not compared.
        sem: the standard error reported with the value (`observe(..., sem=...)`), if any.
    """

    id: int
    params: dict
    status: str = "pending"
    value: float | None = None
    source: str = "sobol"
    note: str | None = None
    retry_of: int | None = None
    created: float | None = field(default=None, compare=False)
    completed: float | None = field(default=None, compare=False)
    sem: float | None = None


@dataclass
class RoundInfo:
    """Diagnostics of one suggestion round (one proposed trial)."""

    trial_id: int
    strategy: str
    num_observations: int
    device: str
    suggest_seconds: float = 0.0
    fit_seconds: float = 0.0
    acquisition_seconds: float = 0.0
    lengthscales: dict[str, float] = field(default_factory=dict)
    outputscales: tuple[float, ...] = ()
    noise: float | None = None
    log_marginal_likelihood: float | None = None
    warp_lambda: float | None = None
    best_acquisition: float | None = None
    num_starts: int = 0
    num_outliers: int = 0
    num_duplicates: int = 0
    fallback: str | None = None
    refit: bool = False
    noisy_ei: bool = False  # log EI took its noisy form (fitted noise not negligible)
    budget_level: float | None = None  # with a scheduler: the budget the acquisition targets
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """A JSON-ready dict (the form stored with each trial)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoundInfo:
        """The inverse of `to_dict`; keys this version does not know are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        info = cls(**{k: v for k, v in data.items() if k in known})
        info.outputscales = tuple(info.outputscales)
        return info


@dataclass(frozen=True)
class Recommendation:
    """The observed configuration the model believes best: what to deploy.

    Unlike `Optimizer.best` (the best *observed* value, which on a noisy objective is
    often a lucky draw), this ranks the completed trials by the GP's posterior mean of the
    noise-free objective.

    Attributes:
        trial_id: the completed trial that evaluated it.
        params: the configuration.
        mean: the posterior median of the objective there, in its units.
        std: half the width of the posterior's central 68% band there (one standard
            deviation for a normal); NaN when no model could be fitted.
        value: what that trial observed.
    """

    trial_id: int
    params: dict
    mean: float
    std: float
    value: float

"""`BoptSearchCV`: a scikit-learn hyperparameter search driven by bopt's GP.

A drop-in for `GridSearchCV` / `RandomizedSearchCV`: it subclasses scikit-learn's
`BaseSearchCV`, so `cv_results_`, `best_params_`, `best_score_`, `best_estimator_`,
`refit`, multi-metric scoring and the `predict` / `score` / `transform` delegation behave
exactly as there. Only the choice of candidates differs: a `bopt.Optimizer` proposes them,
a batch at a time, from the cross-validation scores seen so far.

Over bopt's public API only: `Optimizer` (`bopt.engine`), the parameter types and `Space`
(`bopt.space`) and the errors (`bopt.errors`), imported from the modules that define them
because no module of the library imports the lazy package root.
"""

from __future__ import annotations

import difflib
import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

try:
    from joblib import effective_n_jobs
    from sklearn.model_selection._search import BaseSearchCV
    from sklearn.utils import check_random_state
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "bopt.integrations.sklearn needs scikit-learn >= 1.3; install it with "
        'pip install "bopt[sklearn]".'
    ) from err

from bopt.engine import Optimizer
from bopt.errors import ArgumentError, SearchSpaceError, SpaceExhaustedError
from bopt.space import Categorical, Float, Int, Space

__all__ = ["BoptSearchCV"]

_PARAM_TYPES = (Float, Int, Categorical)
_PRIORS = {"uniform": False, "log-uniform": True}
_MAX_SEED = 2**31 - 1


# --------------------------------------------------------------------------- search spaces


def _shown(value: Any) -> str:
    """A short description of what arrived, for error messages."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 80 else text[:77] + '...'}"


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _range_param(name: str, bounds: tuple) -> Float | Int:
    """`Int` or `Float` from a skopt-style `(low, high)` or `(low, high, prior)` tuple."""
    prior = bounds[2] if len(bounds) == 3 else "uniform"
    if len(bounds) not in (2, 3) or not all(_is_number(b) for b in bounds[:2]) or (
            prior not in _PRIORS):
        raise SearchSpaceError(
            f"BoptSearchCV: search_spaces[{name!r}] = {bounds!r} is not a range; a tuple "
            "must be (low, high) or (low, high, 'uniform' | 'log-uniform') with numeric "
            "bounds. Pass a list for a set of choices."
        )
    low, high = bounds[:2]
    integral = all(isinstance(b, numbers.Integral) for b in (low, high))
    kind = Int if integral else Float
    return kind(name, low, high, log=_PRIORS[prior])


def _is_plain_choice(value: Any) -> bool:
    """Whether bopt's `Categorical` takes `value` itself (str, int, float, bool)."""
    if isinstance(value, np.generic):
        value = value.item()
    return isinstance(value, (str, int, float, bool))


def _choice_param(name: str, choices: Sequence) -> tuple[Categorical, dict | None]:
    """A `Categorical` for a list of choices, and the map from label back to object.

    Choices bopt cannot hold (None, estimators, arrays) become labels `"#i <repr>"`; the
    map returns the user's own object to the estimator. Plain choices need no map (None).
    """
    choices = list(choices)
    if all(_is_plain_choice(c) for c in choices):
        return Categorical(name, choices), None
    labels = [f"#{i} {c!r:.60}" for i, c in enumerate(choices)]
    return Categorical(name, labels), dict(zip(labels, choices))


def _entry_param(name: Any, value: Any) -> tuple[Any, dict | None]:
    """One `search_spaces` entry as a bopt parameter (named as given by a bopt one) and
    the label map of a categorical of objects."""
    if not isinstance(name, str) or not name:
        raise SearchSpaceError(
            f"BoptSearchCV: search_spaces keys must be parameter names (non-empty str), "
            f"got {_shown(name)}; use names such as 'C' or 'svc__C'."
        )
    if isinstance(value, _PARAM_TYPES):
        return value, None
    if isinstance(value, tuple):
        return _range_param(name, value), None
    if isinstance(value, list) or (isinstance(value, np.ndarray) and value.ndim == 1):
        return _choice_param(name, value)
    hint = ""
    if hasattr(value, "rvs"):
        hint = (" scipy.stats distributions are not taken: write loguniform(a, b) as "
                "(a, b, 'log-uniform'), uniform(loc, scale) as (loc, loc + scale) and "
                "randint(a, b) as (a, b - 1).")
    raise SearchSpaceError(
        f"BoptSearchCV: search_spaces[{name!r}] is {_shown(value)}; expected a bopt "
        "parameter (bopt.Float / Int / Categorical), a list of choices, or a "
        f"(low, high[, 'log-uniform']) tuple.{hint}"
    )


def _rename(param: Any, name: str, renamed: Mapping[str, str]) -> Any:
    """`param` under the search-space key `name`, its `when` parent renamed likewise."""
    when = param.when
    if when is not None:
        ((parent, allowed),) = when.items()
        when = {renamed.get(parent, parent): list(allowed)}
    if name == param.name and when == param.when:
        return param
    return replace(param, name=name, when=when)


def _build_space(search_spaces: Any) -> tuple[Space, dict[str, dict]]:
    """The bopt `Space` of a `search_spaces` argument, and the label maps of its
    categoricals of objects.

    Args:
        search_spaces: a `bopt.Space`, or a dict from estimator parameter name to a bopt
            parameter, a list of choices, or a `(low, high[, prior])` tuple. A bopt
            parameter is renamed to its key (so `{"svc__C": Float("C", ...)}` works), and
            a `when` may name its parent by key or by the parent's own name.

    Returns:
        The space, and `{parameter name: {label: choice}}` for categoricals of objects.

    Raises:
        SearchSpaceError: naming the entry that is not a valid parameter.
    """
    if isinstance(search_spaces, Space):
        return search_spaces, {}
    if not isinstance(search_spaces, Mapping):
        raise SearchSpaceError(
            f"BoptSearchCV: search_spaces must be a dict of name -> parameter or a "
            f"bopt.Space, got {_shown(search_spaces)}. For alternative sub-spaces, use a "
            "bopt.Categorical and make parameters conditional with when=..."
        )
    if not search_spaces:
        raise SearchSpaceError("BoptSearchCV: search_spaces is empty; name at least one "
                               "parameter to search, e.g. {'C': (1e-3, 1e3, 'log-uniform')}.")
    entries = {name: _entry_param(name, value) for name, value in search_spaces.items()}
    renamed = {p.name: name for name, (p, _) in entries.items()
               if isinstance(search_spaces[name], _PARAM_TYPES)}
    params = [_rename(p, name, renamed) for name, (p, _) in entries.items()]
    labels = {name: table for name, (_, table) in entries.items() if table is not None}
    return Space(params), labels


def _check_names(space: Space, estimator: Any) -> None:
    """Raise SearchSpaceError naming a searched parameter the estimator does not have.

    Below a searched parameter (`clf` when `clf` is itself searched), names are not
    checked: which estimator will be there is decided by the search.
    """
    valid = set(estimator.get_params(deep=True))
    for name in space.names:
        if name in valid or any(name.startswith(other + "__") for other in space.names):
            continue
        close = difflib.get_close_matches(name, sorted(valid), n=3)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise SearchSpaceError(
            f"BoptSearchCV: search_spaces names {name!r}, which {type(estimator).__name__} "
            f"has no parameter of that name.{hint} Nested names read 'step__param' "
            "(see estimator.get_params().keys())."
        )


def _estimator_params(config: Mapping[str, Any], labels: Mapping[str, dict]) -> dict:
    """A bopt configuration as `set_params` keywords (labels back to their objects)."""
    return {name: labels[name][value] if name in labels else value
            for name, value in config.items()}


# --------------------------------------------------------------------------- arguments


def _seed_from(random_state: Any) -> int:
    """A bopt seed from a scikit-learn `random_state`.

    Args:
        random_state: an int >= 0 (used as is), a `numpy.random.RandomState` or
            `numpy.random.Generator` (one draw, which advances it), or None (one draw from
            numpy's global generator, as scikit-learn does: runs differ).

    Raises:
        ArgumentError: for anything else.
    """
    if isinstance(random_state, numbers.Integral) and not isinstance(
            random_state, (bool, np.bool_)):
        if random_state < 0:
            raise ArgumentError(f"BoptSearchCV: random_state must be >= 0, got "
                                f"{random_state!r}.")
        return int(random_state)
    if random_state is None:
        return int(check_random_state(None).randint(_MAX_SEED))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(_MAX_SEED))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(_MAX_SEED))
    raise ArgumentError(
        f"BoptSearchCV: random_state must be None, an int >= 0, a numpy RandomState or "
        f"Generator, got {_shown(random_state)}."
    )


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or (
            value < 1):
        raise ArgumentError(f"BoptSearchCV: {what} must be an int >= 1, got {value!r}.")
    return int(value)


# --------------------------------------------------------------------------- the loop


class _FrozenSplits:
    """A cross-validator that yields its first `split` again on every call.

    `BaseSearchCV` splits anew on each call of `evaluate_candidates`; a shuffling splitter
    without a fixed seed would then score each batch on different folds. Freezing them
    compares every candidate on the same folds, as one `GridSearchCV` call does.
    """

    def __init__(self, cv: Any) -> None:
        self.cv = cv
        self._splits: list | None = None

    def split(self, X: Any, y: Any = None, groups: Any = None) -> list:
        if self._splits is None:
            self._splits = list(self.cv.split(X, y, groups))
        return self._splits

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.cv.get_n_splits(X, y, groups)


def _suggest_up_to(opt: Optimizer, count: int) -> list:
    """Up to `count` new trials: fewer when a finite space runs out, none when it has."""
    try:
        return opt.suggest(count)
    except SpaceExhaustedError:
        trials = []
        for _ in range(count):
            try:
                trials.append(opt.suggest())
            except SpaceExhaustedError:
                break
        return trials


def _objective_key(results: Mapping[str, Any], refit: Any) -> str:
    """The `cv_results_` column the search maximizes: the only score, the scorer `refit`
    names, or else the first scorer."""
    if "mean_test_score" in results:
        return "mean_test_score"
    if isinstance(refit, str) and f"mean_test_{refit}" in results:
        return f"mean_test_{refit}"
    return next(key for key in results if key.startswith("mean_test_"))


def _fold_sem(std: float, num_splits: int) -> float | None:
    """Standard error of a mean over `num_splits` folds, from their population `std`:
    the sample deviation (ddof=1) over sqrt(k), i.e. std / sqrt(k - 1)."""
    if num_splits < 2 or not math.isfinite(std):
        return None
    return float(std) / math.sqrt(num_splits - 1)


def _report(opt: Optimizer, trials: list, results: Mapping[str, Any], key: str,
            num_splits: int) -> None:
    """Observe each trial's mean CV score (with its fold standard error), or fail it.
    The trials are the last rows of `results`."""
    rows = range(len(results["params"]) - len(trials), len(results["params"]))
    means, stds = results[key], results["std" + key[len("mean"):]]
    for trial, row in zip(trials, rows):
        mean = float(means[row])
        if math.isfinite(mean):
            opt.observe(trial, mean, sem=_fold_sem(float(stds[row]), num_splits))
        else:
            opt.fail(trial, f"cross-validation gave {key} = {mean!r} (a fit or a score "
                            "failed; see error_score)")


class _Rounds:
    """One search's state between batches: the optimizer, the `cv_results_` row of each
    trial, and the candidates of batches scikit-learn refused to record.

    `evaluate_candidates` raises instead of recording a call in which every fit failed,
    which for a batch of one is any failing candidate. Those trials are failed in the
    optimizer, and their candidates evaluated again at the front of the next batch, so
    that `cv_results_` lists them with `error_score` as `RandomizedSearchCV` would.
    """

    def __init__(self, opt: Optimizer, evaluate: Any, cv: Any, labels: Mapping[str, dict],
                 search: BoptSearchCV) -> None:
        self.opt, self.evaluate, self.cv, self.labels = opt, evaluate, cv, labels
        self.refit, self.error_score, self.num_splits = (search.refit, search.error_score,
                                                         search.n_splits_)
        self.rows: dict[int, int] = {}  # trial id -> row of cv_results_
        self.carried: list[tuple[Any, dict]] = []  # (trial, params) not yet recorded
        self.error: ValueError | None = None

    def run(self, trials: list) -> None:
        """Cross-validate a batch (after any carried candidates) and report it."""
        batch = [(t, _estimator_params(t.params, self.labels)) for t in trials]
        pending = self.carried + batch
        try:
            results = self.evaluate([params for _, params in pending], cv=self.cv)
        except ValueError as err:
            if self.error_score == "raise" or "fits failed" not in str(err):
                raise
            for trial in trials:
                self.opt.fail(trial, "every fit of its batch failed")
            self.carried, self.error = pending, err
            return
        first = len(results["params"]) - len(pending)
        self.rows.update({t.id: first + i for i, (t, _) in enumerate(pending)})
        self.carried = []
        _report(self.opt, trials, results, _objective_key(results, self.refit),
                self.num_splits)

    def finish(self) -> None:
        """Raise scikit-learn's error when no fit ever succeeded; warn of candidates
        the last batches could not record."""
        if not self.rows and self.error is not None:
            raise self.error
        if self.carried:
            warnings.warn(
                f"BoptSearchCV: every fit failed for the last {len(self.carried)} "
                "candidate(s), which scikit-learn does not record; cv_results_ lacks them: "
                f"{[params for _, params in self.carried]!r:.300}", UserWarning, stacklevel=3)


class BoptSearchCV(BaseSearchCV):
    """Hyperparameter search over cross-validated scores, guided by a Gaussian process.

    Used like `RandomizedSearchCV`: `fit(X, y)` evaluates `n_iter` candidates by
    cross-validation and fills `cv_results_`, `best_params_`, `best_score_`,
    `best_index_` and (with `refit`) `best_estimator_`, in scikit-learn's own format.
    The candidates come from a `bopt.Optimizer` maximizing the mean CV score: a Sobol
    design first, then model rounds. With `n_points > 1` (by default, `n_jobs > 1`),
    each round proposes that many distinct candidates, evaluated in parallel.

    Each score is observed with its standard error across folds as `sem`. The folds
    disagree, so a CV score is a noisy measurement of the configuration's true score, and
    how noisy differs between configurations (an unstable, overfitting model swings from
    fold to fold; a stable one hardly). With the known error, the GP smooths over lucky
    fold draws instead of chasing them, and `recommended_params_` ranks the candidates by
    the GP's estimate. The error
    is std(ddof=1) / sqrt(folds); the folds share training data, so it understates the
    true uncertainty a little, and the GP still fits extra noise on top.

    No validation leakage: every cross-validation split is cut from the data passed to
    `fit`, and nothing else is looked at. Keep a test split out of `fit` and score it
    once, after the search:

        X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
        search = BoptSearchCV(SVC(), {"C": (1e-3, 1e3, "log-uniform")}).fit(X_train, y_train)
        test_accuracy = search.score(X_test, y_test)  # refitted best estimator

    Report `test_accuracy`, not `best_score_`: the best of many noisy CV scores is
    biased upwards (the winner's curse; Cawley & Talbot, JMLR 11, 2010), and more so the
    more candidates were tried. The test split was never used to choose, so its score is
    unbiased, provided it is scored once.

    Args:
        estimator: a scikit-learn estimator (or pipeline) to tune.
        search_spaces: a dict from parameter name (`"C"`, `"svc__C"`) to a bopt
            parameter (`bopt.Float("C", 1e-3, 1e3, log=True)`), a list of choices (any
            objects: None and estimators are mapped to labels), or a skopt-style tuple
            `(low, high)` / `(low, high, "log-uniform")` (an `Int` when both bounds are
            ints); or a `bopt.Space` whose names are parameter names.
        n_iter: candidates to evaluate (fewer when a finite space has fewer).
        scoring, refit, cv, verbose, pre_dispatch, error_score, return_train_score: as
            for `RandomizedSearchCV`. With several scorers, the search maximizes the one
            `refit` names (else the first).
        n_jobs: parallel fits, as for `RandomizedSearchCV`; also the default batch size.
        n_points: candidates proposed per round; default `effective_n_jobs(n_jobs)`.
        random_state: seeds the optimizer: an int >= 0, a numpy `RandomState` or
            `Generator`, or None (not reproducible).
        acquisition: bopt's acquisition, "ei", "ucb", "ts", "random" or "sobol".
        n_initial: Sobol candidates before the GP takes over (bopt's default if None).
        device: where the GP runs: "auto", "cpu", "cuda".

    Attributes:
        cv_results_, best_params_, best_score_, best_index_, best_estimator_, scorer_,
            n_splits_, refit_time_, multimetric_: as for `RandomizedSearchCV`.
        recommended_index_: the row of `cv_results_` whose configuration the GP believes
            best in expectation (None when every fit failed).
        recommended_params_: that row's parameters. `best_params_` follows scikit-learn
            (the highest mean CV score); this is the noise-aware alternative.

    Raises:
        SearchSpaceError: from `fit`, naming a bad `search_spaces` entry or a name the
            estimator does not have.
        ArgumentError: from `fit`, for a bad `n_iter`, `n_points` or `random_state`.
    """

    def __init__(self, estimator: Any, search_spaces: Any, n_iter: int = 50, *,
                 scoring: Any = None, n_jobs: int | None = None, n_points: int | None = None,
                 refit: Any = True, cv: Any = None, verbose: int = 0,
                 pre_dispatch: Any = "2*n_jobs", random_state: Any = None,
                 error_score: Any = np.nan, return_train_score: bool = False,
                 acquisition: str = "ei", n_initial: int | None = None,
                 device: str = "auto") -> None:
        super().__init__(estimator=estimator, scoring=scoring, n_jobs=n_jobs, refit=refit,
                         cv=cv, verbose=verbose, pre_dispatch=pre_dispatch,
                         error_score=error_score, return_train_score=return_train_score)
        self.search_spaces = search_spaces
        self.n_iter = n_iter
        self.n_points = n_points
        self.random_state = random_state
        self.acquisition = acquisition
        self.n_initial = n_initial
        self.device = device

    def _batch_size(self) -> int:
        if self.n_points is not None:
            return _positive_int(self.n_points, "n_points")
        return max(1, int(effective_n_jobs(self.n_jobs)))

    def _run_search(self, evaluate_candidates: Any) -> None:
        """Propose, cross-validate and observe batches until `n_iter` candidates ran."""
        n_iter = _positive_int(self.n_iter, "n_iter")
        batch = self._batch_size()
        space, labels = _build_space(self.search_spaces)
        _check_names(space, self.estimator)
        opt = Optimizer(space, self.acquisition, n_initial=self.n_initial,
                        seed=_seed_from(self.random_state), device=self.device,
                        direction="maximize")
        rounds = _Rounds(opt, evaluate_candidates, _FrozenSplits(self._checked_cv_orig),
                         labels, self)
        evaluated = 0
        while evaluated < n_iter:
            trials = _suggest_up_to(opt, min(batch, n_iter - evaluated))
            if not trials:
                warnings.warn(f"BoptSearchCV: the search space has only {evaluated} "
                              f"configurations; all were evaluated (n_iter={n_iter}).",
                              UserWarning, stacklevel=2)
                break
            rounds.run(trials)
            evaluated += len(trials)
        rounds.finish()
        self._store_recommendation(opt, rounds.rows, labels)

    def _store_recommendation(self, opt: Optimizer, rows: Mapping[int, int],
                              labels: Mapping[str, dict]) -> None:
        """Set `recommended_index_` and `recommended_params_` from `opt.recommend()`."""
        rec = opt.recommend()
        self.recommended_index_ = None if rec is None else rows[rec.trial_id]
        self.recommended_params_ = (None if rec is None
                                    else _estimator_params(rec.params, labels))

"""`BoptSearchCV` against scikit-learn's own searches, on scikit-learn's bundled data sets.

Every search is seeded (`random_state`) and runs the GP on the CPU; the estimators are
deterministic, so each run repeats exactly. The comparison with `RandomizedSearchCV` asserts
a margin over seeds, never a trajectory.
"""

from __future__ import annotations

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from scipy.stats import loguniform  # noqa: E402  (scipy comes with scikit-learn)
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits, load_iris  # noqa: E402
from sklearn.dummy import DummyClassifier  # noqa: E402
from sklearn.exceptions import FitFailedWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import (KFold, RandomizedSearchCV,  # noqa: E402
                                     train_test_split)
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

import bopt  # noqa: E402
from bopt.errors import ArgumentError, SearchSpaceError  # noqa: E402
from bopt.integrations import sklearn as bopt_sklearn  # noqa: E402
from bopt.integrations.sklearn import BoptSearchCV  # noqa: E402

FAST = dict(cv=3, device="cpu")  # three folds, the GP on the CPU


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X, y


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _svc_search(**kwargs) -> BoptSearchCV:
    space = {"C": bopt.Float("C", 1e-2, 1e2, log=True), "gamma": (1e-3, 1e1, "log-uniform")}
    return BoptSearchCV(SVC(), space, **{"n_iter": 6, "random_state": 0, **FAST, **kwargs})


# --------------------------------------------------------------------------- the format


@pytest.mark.parametrize("train_score", [False, True])
def test_cv_results_have_randomized_search_keys_and_shapes(iris, train_score):
    X, y = iris
    ours = _svc_search(return_train_score=train_score).fit(X, y)
    theirs = RandomizedSearchCV(
        SVC(), {"C": loguniform(1e-2, 1e2), "gamma": loguniform(1e-3, 1e1)}, n_iter=6, cv=3,
        random_state=0, return_train_score=train_score).fit(X, y)
    assert set(ours.cv_results_) == set(theirs.cv_results_)
    for key, value in theirs.cv_results_.items():
        assert np.shape(ours.cv_results_[key]) == np.shape(value), key
    assert ours.n_splits_ == 3 and len(ours.cv_results_["params"]) == 6
    assert ours.best_score_ == ours.cv_results_["mean_test_score"].max()
    assert ours.cv_results_["rank_test_score"][ours.best_index_] == 1


def test_best_params_lie_in_the_space_and_refit_delegates(cancer):
    X, y = cancer
    space = {"C": (1e-3, 1e2, "log-uniform"), "max_iter": (50, 300),
             "fit_intercept": [True, False]}
    search = BoptSearchCV(LogisticRegression(), space, n_iter=6, random_state=1, n_initial=5,
                          **FAST).fit(X, y)  # five design points: the GP proposes the last
    best = search.best_params_
    assert set(best) == set(space)
    assert 1e-3 <= best["C"] <= 1e2 and isinstance(best["C"], float)
    assert 50 <= best["max_iter"] <= 300 and isinstance(best["max_iter"], int)
    assert best["fit_intercept"] in (True, False)
    fitted = search.best_estimator_
    assert fitted.get_params()["C"] == best["C"]
    np.testing.assert_array_equal(search.predict(X), fitted.predict(X))
    np.testing.assert_array_equal(search.predict_proba(X), fitted.predict_proba(X))
    assert search.score(X, y) == fitted.score(X, y)
    assert search.recommended_params_ == search.cv_results_["params"][
        search.recommended_index_]


def test_equal_random_states_give_equal_searches(iris):
    X, y = iris
    first, again = (_svc_search(random_state=np.random.RandomState(3)).fit(X, y)
                    for _ in range(2))
    assert first.cv_results_["params"] == again.cv_results_["params"]
    other = _svc_search(random_state=4).fit(X, y)
    assert other.cv_results_["params"] != first.cv_results_["params"]
    twin = clone(_svc_search(random_state=4))  # an estimator: its parameters round-trip
    assert twin.fit(X, y).cv_results_["params"] == other.cv_results_["params"]


# --------------------------------------------------------------------------- search spaces


def test_a_pipeline_searches_step_names_with_renamed_and_conditional_parameters(iris):
    X, y = iris
    pipe = Pipeline([("scale", StandardScaler()), ("svc", SVC())])
    space = {
        "svc__C": bopt.Float("C", 1e-2, 1e2, log=True),  # renamed to its key
        "svc__kernel": bopt.Categorical("kernel", ["rbf", "linear"]),
        "svc__gamma": bopt.Float("gamma", 1e-3, 1e1, log=True, when={"kernel": "rbf"}),
    }
    # five design points (the default with a categorical is ten): the GP proposes three
    search = BoptSearchCV(pipe, space, n_iter=8, random_state=0, n_initial=5, **FAST).fit(X, y)
    assert set(search.best_params_) <= set(space)
    svc = search.best_estimator_.named_steps["svc"]
    assert svc.C == search.best_params_["svc__C"]
    gamma = search.cv_results_["param_svc__gamma"]
    linear = search.cv_results_["param_svc__kernel"] == "linear"
    assert linear.any() and np.all(np.ma.getmaskarray(gamma) == linear)


def test_a_space_lists_of_objects_and_integer_tuples(iris):
    X, y = iris
    space = bopt.Space([bopt.Int("max_depth", 1, 6), bopt.Categorical("criterion",
                                                                     ["gini", "entropy"])])
    search = BoptSearchCV(DecisionTreeClassifier(random_state=0), space, n_iter=5,
                          random_state=0, **FAST).fit(X, y)
    assert all(isinstance(p["max_depth"], int) for p in search.cv_results_["params"])
    choices = [None, 2, 4]
    search = BoptSearchCV(DecisionTreeClassifier(random_state=0),
                          {"max_depth": choices, "min_samples_leaf": (1, 20)}, n_iter=5,
                          random_state=0, **FAST).fit(X, y)
    depths = [p["max_depth"] for p in search.cv_results_["params"]]
    assert set(depths) <= set(choices) and None in depths
    assert all(isinstance(p["min_samples_leaf"], int) for p in search.cv_results_["params"])


def test_a_finite_space_stops_when_every_configuration_ran(iris):
    X, y = iris
    search = BoptSearchCV(SVC(), {"kernel": ["linear", "rbf"]}, n_iter=5, random_state=0,
                          **FAST)
    with pytest.warns(UserWarning, match="only 2 configurations; all were evaluated"):
        search.fit(*iris)
    assert sorted(p["kernel"] for p in search.cv_results_["params"]) == ["linear", "rbf"]


@pytest.mark.parametrize("space, match", [
    ([("C", 1.0)], "search_spaces must be a dict of name -> parameter or a bopt.Space"),
    ({}, "search_spaces is empty"),
    ({3: [1, 2]}, "keys must be parameter names"),
    ({"C": (1.0,)}, r"search_spaces\['C'\] = \(1.0,\) is not a range"),
    ({"C": (1e-3, 1e3, "log")}, r"search_spaces\['C'\].*'uniform' \| 'log-uniform'"),
    ({"C": ("a", "b")}, r"search_spaces\['C'\].*Pass a list for a set of choices"),
    ({"C": 1.0}, r"search_spaces\['C'\] is float 1.0; expected a bopt parameter"),
    ({"C": loguniform(1e-3, 1e3)}, r"write loguniform\(a, b\) as \(a, b, 'log-uniform'\)"),
    ({"C": (10.0, 1.0)}, r"Float\('C'\): need low < high"),
    ({"C": (0.0, 1.0, "log-uniform")}, r"Float\('C'\): log=True needs low > 0"),
    ({"kernel": []}, r"Categorical\('kernel'\): choices is empty"),
    ({"Cc": (1.0, 2.0)}, "names 'Cc', which SVC has no parameter of that name. Did you "
                         "mean 'C'"),
    ({"svc__C": (1.0, 2.0)}, r"Nested names read 'step__param'"),
])
def test_bad_spaces_name_the_parameter(iris, space, match):
    with pytest.raises(SearchSpaceError, match=match):
        BoptSearchCV(SVC(), space, n_iter=2, **FAST).fit(*iris)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_iter=0), "n_iter must be an int >= 1, got 0"),
    (dict(n_points=1.5), "n_points must be an int >= 1, got 1.5"),
    (dict(random_state=-1), "random_state must be >= 0, got -1"),
    (dict(random_state="seed"), "random_state must be None, an int >= 0, a numpy"),
])
def test_bad_arguments_name_the_argument(iris, kwargs, match):
    with pytest.raises(ArgumentError, match=match):
        BoptSearchCV(SVC(), {"C": (1.0, 2.0)}, **{**FAST, **kwargs}).fit(*iris)


# --------------------------------------------------------------------------- the loop


def test_multi_metric_scoring_refits_on_the_named_scorer(cancer):
    X, y = cancer
    search = BoptSearchCV(LogisticRegression(), {"C": (1e-4, 1e2, "log-uniform")}, n_iter=5,
                          scoring={"acc": "accuracy", "auc": "roc_auc"}, refit="auc",
                          random_state=0, **FAST).fit(X, y)
    results = search.cv_results_
    assert {"mean_test_acc", "rank_test_acc", "mean_test_auc", "rank_test_auc"} <= set(results)
    assert search.multimetric_ and set(search.scorer_) == {"acc", "auc"}
    assert search.best_score_ == results["mean_test_auc"].max()
    assert results["rank_test_auc"][search.best_index_] == 1
    assert search.score(X, y) == pytest.approx(search.scorer_["auc"](search.best_estimator_,
                                                                     X, y))
    unrefitted = BoptSearchCV(LogisticRegression(), {"C": (1e-4, 1e2, "log-uniform")},
                              n_iter=3, scoring=["accuracy", "f1"], refit=False,
                              random_state=0, **FAST).fit(X, y)
    assert not hasattr(unrefitted, "best_estimator_")
    assert len(unrefitted.cv_results_["mean_test_f1"]) == 3


def test_n_jobs_2_proposes_batches_of_two_and_matches_one_job(iris, capsys):
    X, y = iris
    # joblib's default process backend (loky): scikit-learn sends each fit the search
    # itself, so this also checks that a search in progress pickles. Starting the
    # workers is most of this test's time.
    parallel = _svc_search(n_iter=5, n_jobs=2, verbose=1).fit(X, y)
    printed = capsys.readouterr().out
    assert printed.count("for each of 2 candidates") == 2
    assert printed.count("for each of 1 candidates") == 1  # the last of n_iter=5
    serial = _svc_search(n_iter=5, n_points=2).fit(X, y)
    assert serial.cv_results_["params"] == parallel.cv_results_["params"]
    np.testing.assert_array_equal(serial.cv_results_["mean_test_score"],
                                  parallel.cv_results_["mean_test_score"])


def test_scores_are_observed_with_their_fold_standard_error(iris, monkeypatch):
    observed = []

    class Recording(bopt.Optimizer):
        def observe(self, trial, value, *, sem=None):
            observed.append((value, sem))
            return super().observe(trial, value, sem=sem)

    monkeypatch.setattr(bopt_sklearn, "Optimizer", Recording)
    search = _svc_search().fit(*iris)
    means = search.cv_results_["mean_test_score"]
    stds = search.cv_results_["std_test_score"]
    np.testing.assert_allclose([v for v, _ in observed], means, rtol=0, atol=0)
    # population std over 3 folds -> sample std / sqrt(3) = std / sqrt(2)
    np.testing.assert_allclose([s for _, s in observed], stds / np.sqrt(2), rtol=1e-12)


class _FailsForLargeC(LogisticRegression):
    """Raises in `fit` when C > 1, so that part of the space has no score."""

    def fit(self, X, y, sample_weight=None):
        if self.C > 1.0:
            raise ValueError("C > 1 is not allowed here")
        return super().fit(X, y, sample_weight)


def test_failed_fits_are_failed_trials_and_the_search_goes_on(iris):
    """A batch of one failing candidate makes scikit-learn raise "all fits failed"; the
    candidate is failed in bopt and recorded with the next batch, as NaN."""
    search = BoptSearchCV(_FailsForLargeC(), {"C": (1e-3, 1e3, "log-uniform")}, n_iter=8,
                          random_state=0, **FAST)
    with pytest.warns(FitFailedWarning, match="fits failed"):
        search.fit(*iris)
    scores = search.cv_results_["mean_test_score"]
    large = np.array([p["C"] > 1.0 for p in search.cv_results_["params"]])
    assert len(scores) == 8 and large.sum() >= 2 and (~large).any()
    assert np.all(np.isnan(scores[large])) and np.all(np.isfinite(scores[~large]))
    assert search.best_params_["C"] <= 1.0 and search.recommended_params_["C"] <= 1.0


def test_a_search_whose_every_fit_fails_raises_scikit_learns_error(iris):
    search = BoptSearchCV(_FailsForLargeC(), {"C": (2.0, 1e3, "log-uniform")}, n_iter=3,
                          random_state=0, **FAST)
    with pytest.raises(ValueError, match="All the 9 fits failed"):  # 3 candidates x 3 folds
        search.fit(*iris)


def test_candidates_failing_in_the_last_batch_are_named_in_a_warning(iris):
    search = BoptSearchCV(_FailsForLargeC(), {"C": [0.5, 5.0]}, n_iter=2, random_state=0,
                          **FAST)
    with pytest.warns(UserWarning, match=r"every fit failed for the last 1 candidate\(s\)"):
        search.fit(*iris)
    assert search.cv_results_["params"] == [{"C": 0.5}]


def test_every_batch_is_scored_on_the_same_folds(cancer):
    """A shuffling splitter without a seed would cut new folds for every batch."""
    X, y = cancer
    search = BoptSearchCV(DummyClassifier(strategy="prior"),
                          {"random_state": (0, 1000)},  # no effect on the prior strategy
                          n_iter=4, cv=KFold(3, shuffle=True), random_state=0,
                          device="cpu").fit(X, y)
    for split in range(3):
        scores = search.cv_results_[f"split{split}_test_score"]
        assert np.all(scores == scores[0])


# --------------------------------------------------------------------------- leakage


class _SeesIds(LogisticRegression):
    """Records the ids (column 0) of every row it is fitted on or predicts."""

    seen: set = set()

    def fit(self, X, y, sample_weight=None):
        _SeesIds.seen |= set(X[:, 0].astype(int))
        return super().fit(X[:, 1:], y, sample_weight)

    def predict(self, X):
        _SeesIds.seen |= set(X[:, 0].astype(int))
        return super().predict(X[:, 1:])


def test_the_search_never_touches_the_held_out_split(iris):
    X, y = iris
    X = np.column_stack([np.arange(len(X)), X])  # row ids in column 0
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3,
                                                        random_state=0, stratify=y)
    _SeesIds.seen = set()
    search = BoptSearchCV(_SeesIds(), {"C": (1e-2, 1e2, "log-uniform")}, n_iter=4,
                          random_state=0, **FAST).fit(X_train, y_train)
    assert _SeesIds.seen == set(X_train[:, 0].astype(int))
    assert 0.8 <= search.score(X_test, y_test) <= 1.0  # scored once, after the search
    assert _SeesIds.seen == set(X[:, 0].astype(int))


# --------------------------------------------------------------------------- against random


@pytest.mark.slow
def test_not_worse_than_randomized_search_with_the_same_budget():
    """SVC on 600 digits, C in [1e-3, 1e3] and gamma in [1e-5, 10] (log), 15 candidates,
    3 folds, seeds 0-3. Measured mean best CV accuracy: bopt 0.9050, random 0.8904 (per
    seed bopt 0.910 0.890 0.910 0.910, random 0.903 0.857 0.898 0.903). The tolerance,
    0.005, is three digits of 600; the runs are deterministic, so it only absorbs
    platform differences in the GP's arithmetic."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:600] / 16.0, y[:600]
    ours, theirs = [], []
    for seed in range(4):
        search = BoptSearchCV(SVC(), {"C": (1e-3, 1e3, "log-uniform"),
                                      "gamma": (1e-5, 1e1, "log-uniform")},
                              n_iter=15, random_state=seed, **FAST).fit(X, y)
        ours.append(search.best_score_)
        randomized = RandomizedSearchCV(SVC(), {"C": loguniform(1e-3, 1e3),
                                                "gamma": loguniform(1e-5, 1e1)},
                                        n_iter=15, cv=3, random_state=seed).fit(X, y)
        theirs.append(randomized.best_score_)
    assert np.mean(ours) >= np.mean(theirs) - 0.005, (ours, theirs)

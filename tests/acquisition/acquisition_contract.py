"""`AcquisitionContract`: the properties every acquisition score must have, as a test base.

A test class inherits `AcquisitionContract` and supplies, as fixtures that may use the
`problem` fixture (each fitted toy GP of tests/conftest.py in turn):

- `score`: the acquisition under test, a callable from `b x q x d` encoded points to `b`
  values (summed over `q`);
- `reference` (optional): its BoTorch twin on the same fitted model, a callable from
  `b x 1 x d` to `b`. The default skips the cross-check; a subclass without a twin calls
  `pytest.skip` with its reason.

Attributes: `single_shape`, what `q x d` maps to (BoTorch's convention `1`, by promoting it to
`1 x q x d`); `reference_atol` / `reference_rtol`, the cross-check tolerances;
`loop_atol` / `loop_rtol`, those of batch-versus-loop.

The contract checks, in float64 (the fitted models are float64):

- shapes: `b x q x d` -> `b`, `q x d` -> `single_shape`, two batch dims `2 x b x q x d` ->
  `2 x b`; finite float64 values;
- a batched call equals a loop of single `q x d` calls;
- `torch.autograd.gradcheck` w.r.t. the continuous input columns, the category indices held
  fixed (the overlap kernel is piecewise constant in them);
- the value equals the BoTorch twin's at `q = 1`.
"""

from __future__ import annotations

import pytest
import torch

B, Q = 4, 2  # candidate sets, points per set


def candidate_sets(problem, point_sampler, shape, seed):
    """`*shape x d` valid encoded points for the problem's layout."""
    n = 1
    for size in shape:
        n *= size
    X = point_sampler(problem.layout, n, torch.Generator().manual_seed(seed))
    return X.reshape(*shape, problem.layout.d)


class AcquisitionContract:
    """Inherit, provide the `score` (and `reference`) fixtures; see the module doc."""

    single_shape: tuple[int, ...] = (1,)
    reference_atol: float = 1e-8
    reference_rtol: float = 0.0
    # Batched and single posterior solves round differently; 1e-12 absolute is far below
    # any value's meaning, and values of log EI reach -1e4, hence a relative part.
    loop_atol: float = 1e-12
    # Deep in log EI's tail (|value| ~ 1e5-1e6 where the posterior std is tiny) the
    # variance k - v'v carries cancellation error: a batched and a single triangular solve
    # differ by ~1e-10 relatively there. A batching bug shows as O(1) differences.
    loop_rtol: float = 1e-9

    @pytest.fixture
    def score(self, problem):
        raise NotImplementedError("an AcquisitionContract subclass defines the `score` fixture")

    @pytest.fixture
    def reference(self, problem):
        pytest.skip("no BoTorch twin declared")

    def test_output_shapes(self, problem, score, point_sampler):
        X = candidate_sets(problem, point_sampler, (2, B, Q), seed=0)  # 2 x B x Q x d
        with torch.no_grad():
            batched, single, double = score(X[0]), score(X[0, 0]), score(X)
        assert batched.shape == (B,) and batched.dtype == torch.float64
        assert bool(torch.isfinite(batched).all())
        assert single.shape == self.single_shape
        assert double.shape == (2, B)

    def test_batched_equals_loop_of_single_calls(self, problem, score, point_sampler):
        X = candidate_sets(problem, point_sampler, (B, Q), seed=1)  # B x Q x d
        with torch.no_grad():
            batched = score(X)
            singles = torch.stack([score(X[i]).reshape(()) for i in range(B)])
        torch.testing.assert_close(batched, singles, atol=self.loop_atol, rtol=self.loop_rtol)

    def test_gradcheck_wrt_continuous_columns(self, problem, score, point_sampler):
        X = candidate_sets(problem, point_sampler, (3, Q), seed=2)  # 3 x Q x d
        idx = torch.tensor(problem.layout.continuous)
        Xc = X[..., idx].clone().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda Xc: score(X.index_copy(-1, idx, Xc)), (Xc,))

    def test_equals_botorch(self, problem, score, reference, point_sampler):
        X = candidate_sets(problem, point_sampler, (32, 1), seed=3)  # 32 x 1 x d
        with torch.no_grad():
            ours, theirs = score(X), reference(X)
        assert ours.shape == theirs.shape == (32,)
        torch.testing.assert_close(ours, theirs, atol=self.reference_atol,
                                   rtol=self.reference_rtol)

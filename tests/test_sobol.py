"""Tests for bopt.sobol.sobol_points against BoTorch's draw_sobol_samples."""

import pytest
import torch
from botorch.utils.sampling import draw_sobol_samples

from bopt.errors import SearchSpaceError
from bopt.sobol import sobol_points


@pytest.mark.parametrize("n, d, seed", [(1, 1, 0), (16, 3, 7), (50, 6, 123), (8, 40, 2)])
def test_matches_draw_sobol_samples_exactly(n, d, seed, dtype):
    bounds = torch.stack([torch.zeros(d, dtype=dtype), torch.ones(d, dtype=dtype)])  # 2 x d
    reference = draw_sobol_samples(bounds, n, q=1, seed=seed).squeeze(-2)  # n x d
    ours = sobol_points(n, d, seed, dtype=dtype)
    assert ours.dtype == dtype and ours.shape == (n, d)
    torch.testing.assert_close(ours, reference, atol=0.0, rtol=0.0)


def test_points_lie_in_the_half_open_unit_cube():
    X = sobol_points(256, 5, seed=3)
    assert X.dtype == torch.float64
    assert bool((X >= 0).all()) and bool((X < 1).all())


@pytest.mark.parametrize("m", [3, 6])
def test_each_coordinate_is_stratified(m):
    # A scrambled Sobol net of n = 2^m points puts exactly one point in each of the n
    # equal intervals of every coordinate.
    n = 2**m
    X = sobol_points(n, 4, seed=11)
    for j in range(4):
        counts = torch.bincount((X[:, j] * n).floor().long(), minlength=n)
        assert counts.tolist() == [1] * n


def test_equal_seeds_equal_points_different_seeds_differ():
    a, b, c = sobol_points(32, 3, 5), sobol_points(32, 3, 5), sobol_points(32, 3, 6)
    torch.testing.assert_close(a, b, atol=0.0, rtol=0.0)
    assert not torch.equal(a, c)


def test_global_rng_untouched():
    state = torch.random.get_rng_state()
    sobol_points(16, 3, seed=0)
    assert torch.equal(state, torch.random.get_rng_state())


def test_zero_points():
    assert sobol_points(0, 2, seed=0).shape == (0, 2)


@pytest.mark.parametrize("n, d, match", [
    (4, 0, r"need 1 <= d <= 21201 dimensions, got d=0"),
    (4, 30000, r"got d=30000"),
    (-1, 2, r"need n >= 0 points, got n=-1"),
])
def test_bad_arguments(n, d, match):
    with pytest.raises(SearchSpaceError, match=match):
        sobol_points(n, d, seed=0)

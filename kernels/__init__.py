"""GPyTorch kernels for mixed continuous and categorical inputs, and their random features."""

from bopt.kernels.features import MixedFeatures, draw_mixed_features
from bopt.kernels.functional import (CrossPlan, CrossSlope, MixedHypers, matern52, mixed,
                                     mixed_cross, mixed_diag, overlap)
from bopt.kernels.modules import CategoricalKernel, MixedKernel, make_mixed_kernel

__all__ = [
    "CategoricalKernel", "CrossPlan", "CrossSlope", "MixedFeatures", "MixedHypers",
    "MixedKernel", "draw_mixed_features", "make_mixed_kernel", "matern52", "mixed",
    "mixed_cross", "mixed_diag", "overlap",
]

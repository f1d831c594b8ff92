"""Adapters that put bopt's GP behind other tuning frameworks, over bopt's public API only.

- `bopt.integrations.optuna.BoptSampler`: an Optuna sampler (`pip install "bopt[optuna]"`).
- `bopt.integrations.ray.BoptSearch`: a Ray Tune searcher (`pip install "bopt[ray]"`).
- `bopt.integrations.sklearn.BoptSearchCV`: a scikit-learn search estimator
  (`pip install "bopt[sklearn]"`).

Each module imports its framework at import time and says how to install it when missing;
`import bopt` never loads them.
"""

"""Visual diagnostics of an optimisation run.

Each function draws one matplotlib figure and returns it; matplotlib is imported inside the
functions, so `import bopt` never needs it (`pip install matplotlib` to plot). Figures are
made with `matplotlib.pyplot`, so `plt.show()` shows them in a script; in a notebook end the
cell with `;` (or assign the result) to see a figure once.

- `plot_convergence`: best value so far (or regret) against trial number.
- `plot_diagnostics`: the GP's hyperparameters, likelihood and timings, round by round.
- `plot_importance`: relative importance from the lengthscales, and values per parameter.
- `plot_slice`: the GP's posterior and the acquisitions along one or two parameters.
"""

from bopt.plot.budget import plot_learning_curves, plot_rungs
from bopt.plot.history import plot_convergence, plot_diagnostics, plot_importance
from bopt.plot.slices import plot_slice

__all__ = ["plot_convergence", "plot_diagnostics", "plot_importance", "plot_learning_curves",
           "plot_rungs", "plot_slice"]

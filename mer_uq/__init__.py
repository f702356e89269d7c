"""mer_uq: the science of the study, free of any orchestration framework.

Nothing in this package imports Ray, Optuna or W&B: the sweep wraps one mer_uq call per
trial, and the analysis reads what those calls wrote.
"""

__version__ = "0.1.0"

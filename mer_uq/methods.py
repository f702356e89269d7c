"""The methods as data: the paper's Table 1 in code, plus the methods that go beyond it.

Two registries, because what is TRAINED and what is REPORTED differ:

* `TRAININGS`: a training key says which model is fitted (mean-only or two-output), on
  which targets, with which loss. `mean` is the mean-only FCN with MSE; it is trained once
  per seed and read two ways.
* `METHODS`: a reported method says which training it reads and how its uncertainty is
  obtained at inference (Table 1's last column). `seeds` and `mc_dropout` both read the
  `mean` training; every other method reads the training of the same name.

Loss objectives take the model's `DiagGaussian` and the target tensor [..., 2 * D] laid
out as (mean of each dimension, then SD of each dimension), and return the elementwise
loss [..., D]; training reduces it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING

from mer_uq.schema import DIMENSIONS

if TYPE_CHECKING:  # torch stays unimported until a loss runs: the CLIs validate names fast
    from torch import Tensor

    from mer_uq.distribution import DiagGaussian
    from mer_uq.heads import HeadOutput

N_DIMS = len(DIMENSIONS)


class Targets(StrEnum):
    """What a training key fits: the per-song mean, mean and SD, or every rating."""

    MEAN = "mu"
    MEAN_AND_SD = "mu, sigma"
    RATINGS = "individual ratings"


class Uncertainty(StrEnum):
    """How a method's predicted SD is read at inference (Table 1, last column)."""

    SEED_ENSEMBLE = "SD of the means of models trained with different seeds"
    MC_DROPOUT = "SD over stochastic forward passes with dropout on"
    SIGMA_HAT = "the spread head's sigma_hat"
    PREDICTIVE_SD = "the SD of the predicted distribution"
    CQR = "SD read from the predicted quantiles; intervals conformalised on validation (CQR)"
    LAST_LAYER_LAPLACE = "last-layer Laplace: sqrt(noise² + the output layer's posterior variance)"
    SWAG = "SD of the mean over SWAG weight samples (iterates after convergence)"


Objective = Callable[["DiagGaussian", "Tensor"], "Tensor"]
# (prediction, target, upstream gradient of the elementwise loss) -> the gradients with
# respect to the prediction's mu and sigma (None for a mean-only model).
ObjectiveBackward = Callable[
    ["DiagGaussian", "Tensor", "Tensor"], "tuple[Tensor, Tensor | None]"
]


def _mean(target: Tensor) -> Tensor:
    return target[..., :N_DIMS]


def _sd(target: Tensor) -> Tensor:
    return target[..., N_DIMS:]


def _objective_mean(pred: DiagGaussian, target: Tensor) -> Tensor:
    from mer_uq import losses

    return losses.mse_mean(pred.mu, _mean(target))


def _objective_mean_backward(
    pred: DiagGaussian, target: Tensor, grad: Tensor
) -> tuple[Tensor, None]:
    from mer_uq import losses

    return losses.mse_mean_backward(grad, pred.mu, _mean(target)), None


def _objective_nll_paper(pred: DiagGaussian, target: Tensor) -> Tensor:
    from mer_uq import losses

    return losses.nll_paper(pred.mu, pred.sigma, _mean(target))


def _objective_nll_paper_backward(
    pred: DiagGaussian, target: Tensor, grad: Tensor
) -> tuple[Tensor, Tensor]:
    from mer_uq import losses

    return losses.nll_paper_backward(grad, pred.mu, pred.sigma, _mean(target))


def _objective_mse_paper(pred: DiagGaussian, target: Tensor) -> Tensor:
    from mer_uq import losses

    return losses.mse_paper(pred.mu, pred.sigma, _mean(target), _sd(target))


def _objective_mse_paper_backward(
    pred: DiagGaussian, target: Tensor, grad: Tensor
) -> tuple[Tensor, Tensor]:
    from mer_uq import losses

    return losses.mse_paper_backward(grad, pred.mu, pred.sigma, _mean(target), _sd(target))


def _objective_kld_paper(pred: DiagGaussian, target: Tensor) -> Tensor:
    from mer_uq import losses

    return losses.kld_paper(pred.mu, pred.sigma, _mean(target), _sd(target))


def _objective_kld_paper_backward(
    pred: DiagGaussian, target: Tensor, grad: Tensor
) -> tuple[Tensor, Tensor]:
    from mer_uq import losses

    return losses.kld_paper_backward(grad, pred.mu, pred.sigma, _mean(target), _sd(target))


def _objective_nll_exact(pred: DiagGaussian, target: Tensor) -> Tensor:
    from mer_uq import losses

    return losses.gaussian_nll(pred.mu, pred.sigma, _mean(target))


def _objective_kld_exact(pred: DiagGaussian, target: Tensor) -> Tensor:
    from mer_uq import losses

    return losses.kl_gaussian(pred.mu, pred.sigma, _mean(target), _sd(target))


def _objective_beta_nll(pred: DiagGaussian, target: Tensor) -> Tensor:
    from mer_uq import losses

    return losses.beta_nll(pred.mu, pred.sigma, _mean(target), losses.DEFAULT_BETA)


def _objective_rater_nll(pred: DiagGaussian, target: Tensor) -> Tensor:
    from mer_uq import losses

    # For RATINGS trainings the target holds the ratings' mean and population SD.
    return losses.rater_nll_moments(pred.mu, pred.sigma, _mean(target), _sd(target) ** 2)


def rating_columns(target: Tensor) -> tuple[Tensor, Tensor]:
    """The individual ratings a family-head training on raters reads: target [..., 2D +
    R D + R] holds, after the means and SDs, the song's R (padded) ratings per dimension,
    rater-major, then R mask values (1 where a rating exists). Returns ratings [..., R, D]
    and mask [..., R] (bool). See `trial.training_targets`."""
    extra = target.shape[-1] - 2 * N_DIMS
    n_raters = extra // (N_DIMS + 1)
    if n_raters < 1 or extra != n_raters * (N_DIMS + 1):
        raise ValueError(f"targets of {target.shape[-1]} columns hold no individual ratings")
    end = 2 * N_DIMS + n_raters * N_DIMS
    ratings = target[..., 2 * N_DIMS:end].unflatten(-1, (n_raters, N_DIMS))
    return ratings, target[..., end:] > 0.5


def _family_on_ratings(family: str, pred: HeadOutput, target: Tensor) -> Tensor:
    from mer_uq import heads

    ratings, mask = rating_columns(target)
    return heads.per_rating_loss(family, pred, ratings, mask)


def _family_on_means(family: str, pred: HeadOutput, target: Tensor) -> Tensor:
    from mer_uq import heads

    return heads.LOSSES[family](pred, _mean(target))


@dataclass(frozen=True)
class TrainingSpec:
    """One model to fit: its outputs, its targets and its loss.

    `validation` is the criterion of the plateau schedule, early stopping and the trial's
    val_loss; None means the training objective. beta-NLL needs its own: its VALUE is
    sigma^(2 beta) x NLL, which grows as sigma shrinks even while the fit improves, so
    selecting on it keeps the first epoch. It is validated on the Gaussian NLL, the
    proper score Seitzer et al. (2022) report.

    `objective_backward`, where given, is the objective's gradient written out (see
    `mer_uq.losses`): training then skips autograd for the loss, with the same result.

    `head` names a distribution family of `mer_uq.heads` / `mer_uq.families` (None: the
    paper's Gaussian heads). A family head trained on RATINGS reads every individual
    rating (`rating_columns`): unlike the Gaussian's, its likelihood has no two-number
    summary of a song's ratings.

    `continues`, where given, is the key whose trained stack this one starts from: the
    trial trains that key's model exactly as that key would, then goes on (SWAG collects
    iterates after the `mean` model converged; mer_uq.swag).
    """

    key: str
    two_outputs: bool
    targets: Targets
    loss: str  # the function in mer_uq.losses, for reports
    objective: Objective
    validation: Objective | None = None
    objective_backward: ObjectiveBackward | None = None
    head: str | None = None
    continues: str | None = None

    @property
    def individual_ratings(self) -> bool:
        """Whether training needs each song's individual ratings in its targets."""
        return self.head is not None and self.targets is Targets.RATINGS

    @property
    def base(self) -> str:
        """The key whose recipe trains the converged model (this key's own, unless it
        continues another)."""
        return self.continues or self.key

    @property
    def validation_objective(self) -> Objective:
        return self.objective if self.validation is None else self.validation

    @property
    def outputs(self) -> str:
        if self.head is not None:
            return f"{self.head} parameters"
        return "mu_hat, sigma_hat" if self.two_outputs else "mu_hat"


@dataclass(frozen=True)
class MethodSpec:
    """One row of Table 1: which training it reads and how uncertainty is obtained. What
    the method trains on, with which loss, and its outputs are its training's (`spec`)."""

    name: str
    training: str
    uncertainty: Uncertainty
    in_paper: bool
    label: str  # the method's name in tables and figures
    description: str

    @property
    def spec(self) -> TrainingSpec:
        return TRAININGS[self.training]

    @property
    def trains_on(self) -> Targets:
        return self.spec.targets

    @property
    def loss(self) -> str:
        return self.spec.loss

    @property
    def outputs(self) -> str:
        return self.spec.outputs

    @property
    def sees_rater_spread(self) -> bool:
        """Whether its predicted SD is fitted to the raters' spread (their SD or every
        rating). Not so: seeds and MC dropout (model uncertainty) and the fits to song
        means (their SD is the error of the mean)."""
        model_spread = self.uncertainty in (Uncertainty.SEED_ENSEMBLE, Uncertainty.MC_DROPOUT)
        return not model_spread and self.trains_on is not Targets.MEAN


TRAININGS: dict[str, TrainingSpec] = {
    spec.key: spec
    for spec in (
        TrainingSpec("mean", False, Targets.MEAN, "mse_mean", _objective_mean,
                     objective_backward=_objective_mean_backward),
        TrainingSpec("nll", True, Targets.MEAN, "nll_paper (eq. 3)", _objective_nll_paper,
                     objective_backward=_objective_nll_paper_backward),
        TrainingSpec("mse", True, Targets.MEAN_AND_SD, "mse_paper (eq. 1)", _objective_mse_paper,
                     objective_backward=_objective_mse_paper_backward),
        TrainingSpec("kld", True, Targets.MEAN_AND_SD, "kld_paper (eq. 2)", _objective_kld_paper,
                     objective_backward=_objective_kld_paper_backward),
        TrainingSpec("nll_exact", True, Targets.MEAN, "gaussian_nll", _objective_nll_exact),
        TrainingSpec("kld_exact", True, Targets.MEAN_AND_SD, "kl_gaussian", _objective_kld_exact),
        TrainingSpec(
            "beta_nll",
            True,
            Targets.MEAN,
            "beta_nll (beta 0.5)",
            _objective_beta_nll,
            validation=_objective_nll_exact,
        ),
        TrainingSpec("rater_nll", True, Targets.RATINGS, "rater_nll", _objective_rater_nll),
        # Distribution families beyond the Gaussian (mer_uq.heads), through autograd.
        TrainingSpec("student_t", True, Targets.RATINGS, "student_t_nll",
                     partial(_family_on_ratings, "student_t"), head="student_t"),
        TrainingSpec("evidential", True, Targets.RATINGS, "evidential_loss (lambda 0.01)",
                     partial(_family_on_ratings, "nig"), head="nig"),
        TrainingSpec("evidential_mean", True, Targets.MEAN, "evidential_loss (lambda 0.01)",
                     partial(_family_on_means, "nig"), head="nig"),
        TrainingSpec("mixture", True, Targets.RATINGS, "mixture_nll",
                     partial(_family_on_ratings, "gaussian_mixture"), head="gaussian_mixture"),
        TrainingSpec("quantile", True, Targets.RATINGS, "pinball_loss",
                     partial(_family_on_ratings, "quantile"), head="quantile"),
        # Post-hoc model uncertainty: SWAG continues from the converged mean model.
        TrainingSpec("swag", False, Targets.MEAN, "mse_mean", _objective_mean,
                     objective_backward=_objective_mean_backward, continues="mean"),
    )
}

METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("seeds", "mean", Uncertainty.SEED_ENSEMBLE, True, "Random seeds",
                   "Random seeds: n mean-only models; SD of their means"),
        MethodSpec("mc_dropout", "mean", Uncertainty.MC_DROPOUT, True, "MC dropout",
                   "MC dropout (Gal & Ghahramani, 2016) on the mean-only model"),
        MethodSpec("nll", "nll", Uncertainty.SIGMA_HAT, True, "NLL",
                   "paper's NLL as printed (0.5 log sigma)"),
        MethodSpec("mse", "mse", Uncertainty.SIGMA_HAT, True, "MSE",
                   "paper's MSE on mean and variance"),
        MethodSpec("kld", "kld", Uncertainty.SIGMA_HAT, True, "KLD",
                   "paper's KLD as printed (r / sigma_hat)"),
        MethodSpec("nll_exact", "nll_exact", Uncertainty.SIGMA_HAT, False,
                   "NLL (exact Gaussian)", "exact Gaussian NLL of the song mean"),
        MethodSpec("kld_exact", "kld_exact", Uncertainty.SIGMA_HAT, False, "KLD (exact KL)",
                   "exact KL(prediction || raters' Gaussian)"),
        MethodSpec("beta_nll", "beta_nll", Uncertainty.SIGMA_HAT, False, "beta-NLL",
                   "beta-NLL (Seitzer et al., 2022)"),
        MethodSpec("rater_nll", "rater_nll", Uncertainty.SIGMA_HAT, False,
                   "NLL on individual ratings", "Gaussian NLL of every individual rating"),
        MethodSpec("student_t", "student_t", Uncertainty.PREDICTIVE_SD, False,
                   "Student-t on ratings", "Student-t NLL of every rating, learned df > 2"),
        MethodSpec("evidential", "evidential", Uncertainty.PREDICTIVE_SD, False,
                   "Evidential (DER) on ratings",
                   "deep evidential regression (Amini et al., 2020) on every rating"),
        MethodSpec("evidential_mean", "evidential_mean", Uncertainty.PREDICTIVE_SD, False,
                   "Evidential (DER) on means",
                   "deep evidential regression (Amini et al., 2020) on the song mean"),
        MethodSpec("mixture", "mixture", Uncertainty.PREDICTIVE_SD, False,
                   "Gaussian mixture (MDN) on ratings",
                   "2-component mixture density network (Bishop, 1994) on every rating"),
        MethodSpec("quantile", "quantile", Uncertainty.CQR, False,
                   "Quantile regression + CQR on ratings",
                   "pinball loss on every rating; CQR (Romano et al., 2019) on validation"),
        MethodSpec("laplace", "mean", Uncertainty.LAST_LAYER_LAPLACE, False,
                   "Last-layer Laplace",
                   "last-layer Laplace of the mean-only model (Daxberger et al., 2021)"),
        MethodSpec("swag", "swag", Uncertainty.SWAG, False, "SWAG",
                   "SWAG, diagonal + low rank (Maddox et al., 2019), on the mean-only model"),
    )
}
# The five methods of the paper's Table 1 in the paper's order, then the ones beyond it.
PAPER_METHODS: tuple[str, ...] = tuple(n for n, spec in METHODS.items() if spec.in_paper)
EXTRA_METHODS: tuple[str, ...] = tuple(n for n, spec in METHODS.items() if not spec.in_paper)


class UnknownMethodError(ValueError):
    """A method or training key that is not in the registry; the message lists the known."""


# ---------------------------------------------------------------- methods from other packages

PLUGIN_GROUP = "mer_uq.methods"


class PluginError(RuntimeError):
    """A package's `mer_uq.methods` entry point is broken; the message names it."""


def _register_plugin(name: str, provided: object) -> list[str]:
    """Add one entry point's trainings and methods; returns its method names."""
    items = provided() if callable(provided) else provided
    if not isinstance(items, list | tuple):
        raise PluginError(f"entry point {name!r} ({PLUGIN_GROUP}) must give a list of "
                          f"TrainingSpec and MethodSpec, got {type(items).__name__}")
    added: list[str] = []
    for item in items:
        if isinstance(item, TrainingSpec):
            if item.key in TRAININGS:
                raise PluginError(f"entry point {name!r}: training key {item.key!r} exists")
            TRAININGS[item.key] = item
        elif isinstance(item, MethodSpec):
            if item.name in METHODS:
                raise PluginError(f"entry point {name!r}: method {item.name!r} exists")
            if item.training not in TRAININGS:
                raise PluginError(f"entry point {name!r}: method {item.name!r} reads the "
                                  f"unknown training {item.training!r}")
            METHODS[item.name] = item
            added.append(item.name)
        else:
            raise PluginError(f"entry point {name!r}: {item!r} is neither a TrainingSpec nor "
                              "a MethodSpec")
    return added


def _load_plugins() -> tuple[str, ...]:
    """Methods that installed packages register through the `mer_uq.methods` entry-point
    group (see docs/methods.md, "Add a method"). Each entry point is a list of
    `TrainingSpec` and `MethodSpec`, or a callable returning one; its names must be new.
    Every process that imports this module (the sweep's driver, each Ray worker, the
    analysis) finds the same installed plugins, so a plugin method trains, predicts and
    is reported like a built-in one. A plugin module must import torch lazily (inside its
    objective), as this module does, so that the analysis stays torch-free."""
    from importlib.metadata import entry_points

    added: list[str] = []
    for point in entry_points(group=PLUGIN_GROUP):
        try:
            provided = point.load()
        except Exception as exc:
            raise PluginError(f"entry point {point.name!r} ({point.value}) of group "
                              f"{PLUGIN_GROUP} failed to load: {type(exc).__name__}: {exc}"
                              ) from exc
        added += _register_plugin(point.name, provided)
    return tuple(added)


# Methods of installed plugins: in METHODS (so --methods NAME runs them and the report
# shows them), not in `all+`, whose meaning stays this package's own list.
PLUGIN_METHODS: tuple[str, ...] = _load_plugins()


def method_spec(name: str) -> MethodSpec:
    if name not in METHODS:
        raise UnknownMethodError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]


def training_spec(key: str) -> TrainingSpec:
    if key not in TRAININGS:
        raise UnknownMethodError(f"unknown training key {key!r}; known: {', '.join(TRAININGS)}")
    return TRAININGS[key]


def methods_of_training(key: str) -> tuple[str, ...]:
    """The methods a training key reports, in registry order."""
    training_spec(key)
    return tuple(name for name, spec in METHODS.items() if spec.training == key)


def training_groups(methods: Iterable[str]) -> dict[str, list[str]]:
    """{training key: [requested methods it reports]}, in registry order of the keys, so
    that `seeds` and `mc_dropout` ask for one `mean` training, not two."""
    groups: dict[str, list[str]] = {}
    for name in dict.fromkeys(methods):
        groups.setdefault(method_spec(name).training, []).append(name)
    return {key: groups[key] for key in TRAININGS if key in groups}

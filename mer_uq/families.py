"""Predictive distribution families in numpy: the one home of their formulas.

A method's output per song and dimension is a distribution. The paper's methods predict a
Gaussian (mean mu, SD sigma); the methods beyond it predict a Student-t, a two-component
Gaussian mixture, the Student-t predictive of a Normal-Inverse-Gamma (deep evidential
regression) or a set of quantiles. Every consumer that scores a distribution (a trial's
test scores, the report's rating NLL, CRPS, coverage and calibration curve) builds one of
these objects from a prediction table and asks it for mean, SD, log-density, CDF,
quantiles and CRPS, closed form where one exists. The module imports numpy and scipy
only, so the analysis (which never imports torch) and mer_uq share the same formulas;
the torch heads that train them live in `mer_uq.heads`.

Storage: a prediction table keeps `<dim>_mu` and `<dim>_sigma` as the predictive mean and
SD of every family (so every reader of Tables 2 and 3 works unchanged) and, for a
non-Gaussian family, a `family` column naming it and one column per parameter,
`<dim>__<parameter>` (`param_column`). `from_frame` rebuilds the object from those
columns; the trial record repeats the description (`describe`).

Families (parameters per song and dimension):

* `gaussian`: loc, scale.
* `student_t`: df, loc, scale (SD = scale sqrt(df / (df - 2)), finite for df > 2).
  CRPS closed form: Jordan, Krueger & Lerch (2019), "Evaluating probabilistic forecasts
  with scoringRules", eq. for the t distribution.
* `gaussian_mixture`: w1, loc1, scale1, loc2, scale2 (weight of component 2 is 1 - w1).
  CRPS closed form: Grimit et al. (2006), via A(m, s^2) = 2 s phi(m/s) + m (2 Phi(m/s) - 1).
  Quantiles by bisection on the CDF.
* `nig`: gamma, nu, alpha, beta of a Normal-Inverse-Gamma (Amini et al., 2020); the
  predictive is Student-t(df 2 alpha, loc gamma, scale^2 = beta (1 + nu) / (nu alpha)).
  aleatoric variance E[sigma^2] = beta / (alpha - 1), epistemic Var[mu] =
  beta / (nu (alpha - 1)); their sum is the predictive variance.
* `quantile`: the quantiles q at the fixed levels `QUANTILE_LEVELS`, read as a
  distribution: uniform density between neighbouring quantiles (a piecewise-linear CDF)
  and exponential tails holding the mass below the first and above the last level, each
  tail's density continuous with its neighbouring segment. Mean, SD, log-density, CDF,
  quantiles and CRPS are closed form.

Coverage of the central `level` interval is the share of y with |2 F(y) - 1| <= level
(for a continuous, strictly increasing F the same event as y lying between the
(1 - level)/2 and (1 + level)/2 quantiles), so it needs the CDF only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy import special

_LOG_2PI = float(np.log(2.0 * np.pi))
FAMILY_COLUMN = "family"
GAUSSIAN = "gaussian"
# The fixed levels of the quantile family: the central 50/80/95 % intervals' ends, the
# median, and the 5/95 % points.
QUANTILE_LEVELS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975)


def param_column(dim: str, param: str) -> str:
    """The prediction-table column of one family parameter of one dimension."""
    return f"{dim}__{param}"


def _phi(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)


def _Phi(z: np.ndarray) -> np.ndarray:
    return special.ndtr(z)



def _t() -> Any:
    """scipy's Student-t, imported on first use: scipy.stats costs about a second to
    import, and a report of Gaussian methods alone never needs it."""
    from scipy import stats

    return stats.t

@dataclass(frozen=True)
class Predictive:
    """A family's distribution per element of its parameter arrays (all one shape)."""

    params: dict[str, np.ndarray]
    name: ClassVar[str] = ""
    param_names: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        missing = [p for p in self.param_names if p not in self.params]
        if missing:
            raise ValueError(f"{self.name}: missing parameter(s) {missing}")
        arrays = {p: np.asarray(self.params[p], dtype=np.float64) for p in self.param_names}
        shapes = {a.shape for a in arrays.values()}
        if len(shapes) != 1:
            raise ValueError(f"{self.name}: parameters differ in shape {sorted(shapes)}")
        object.__setattr__(self, "params", arrays)
        self._check()

    def _check(self) -> None:  # family-specific parameter constraints
        pass

    def __getattr__(self, item: str) -> np.ndarray:
        params = self.__dict__.get("params", {})
        if item in params:
            return params[item]
        raise AttributeError(item)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.params[self.param_names[0]].shape

    def take(self, index: np.ndarray) -> Predictive:
        """The distributions at `index` (e.g. each rating's song), along the last axis."""
        return type(self)({p: np.take(v, index, axis=-1) for p, v in self.params.items()})

    # every family defines these
    def mean(self) -> np.ndarray:
        raise NotImplementedError

    def sd(self) -> np.ndarray:
        raise NotImplementedError

    def logpdf(self, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def cdf(self, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def ppf(self, q: np.ndarray | float) -> np.ndarray:
        raise NotImplementedError

    def crps(self, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def interval(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        """The central `level` interval."""
        return self.ppf(0.5 - 0.5 * level), self.ppf(0.5 + 0.5 * level)

    def covered(self, y: np.ndarray, level: float) -> np.ndarray:
        """Whether y lies in the central `level` interval (from the CDF; see the module)."""
        return np.abs(2.0 * self.cdf(y) - 1.0) <= level

    def variance_parts(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(aleatoric, epistemic) variance where the family separates them, else None."""
        return None


class Gaussian(Predictive):
    name = GAUSSIAN
    param_names = ("loc", "scale")

    def _check(self) -> None:
        if not np.all(self.scale > 0):
            raise ValueError("gaussian: scale must be > 0")

    def mean(self) -> np.ndarray:
        return self.loc

    def sd(self) -> np.ndarray:
        return self.scale

    def logpdf(self, y: np.ndarray) -> np.ndarray:
        z = (y - self.loc) / self.scale
        return -0.5 * z * z - np.log(self.scale) - 0.5 * _LOG_2PI

    def cdf(self, y: np.ndarray) -> np.ndarray:
        return _Phi((y - self.loc) / self.scale)

    def ppf(self, q: np.ndarray | float) -> np.ndarray:
        return self.loc + self.scale * special.ndtri(q)

    def crps(self, y: np.ndarray) -> np.ndarray:
        z = (y - self.loc) / self.scale
        return self.scale * (z * (2.0 * _Phi(z) - 1.0) + 2.0 * _phi(z) - 1.0 / np.sqrt(np.pi))


class StudentT(Predictive):
    name = "student_t"
    param_names = ("df", "loc", "scale")

    def _check(self) -> None:
        if not (np.all(self.scale > 0) and np.all(self.df > 2)):
            raise ValueError("student_t: need scale > 0 and df > 2 (a finite SD)")

    def mean(self) -> np.ndarray:
        return self.loc

    def sd(self) -> np.ndarray:
        return self.scale * np.sqrt(self.df / (self.df - 2.0))

    def logpdf(self, y: np.ndarray) -> np.ndarray:
        return _t().logpdf(y, self.df, self.loc, self.scale)

    def cdf(self, y: np.ndarray) -> np.ndarray:
        return _t().cdf(y, self.df, self.loc, self.scale)

    def ppf(self, q: np.ndarray | float) -> np.ndarray:
        return _t().ppf(q, self.df, self.loc, self.scale)

    def crps(self, y: np.ndarray) -> np.ndarray:
        nu = self.df
        z = (y - self.loc) / self.scale
        pdf = _t().pdf(z, nu)
        cdf = _t().cdf(z, nu)
        log_ratio = special.betaln(0.5, nu - 0.5) - 2.0 * special.betaln(0.5, 0.5 * nu)
        last = 2.0 * np.sqrt(nu) / (nu - 1.0) * np.exp(log_ratio)
        return self.scale * (z * (2.0 * cdf - 1.0) + 2.0 * pdf * (nu + z * z) / (nu - 1.0)
                             - last)


class NormalInverseGamma(Predictive):
    """NIG(gamma, nu, alpha, beta) over (mu, sigma^2); scored by its Student-t predictive."""

    name = "nig"
    param_names = ("gamma", "nu", "alpha", "beta")

    def _check(self) -> None:
        if not (np.all(self.nu > 0) and np.all(self.alpha > 1) and np.all(self.beta > 0)):
            raise ValueError("nig: need nu > 0, alpha > 1 (a finite SD) and beta > 0")

    def predictive(self) -> StudentT:
        scale = np.sqrt(self.beta * (1.0 + self.nu) / (self.nu * self.alpha))
        return StudentT({"df": 2.0 * self.alpha, "loc": self.gamma, "scale": scale})

    def variance_parts(self) -> tuple[np.ndarray, np.ndarray]:
        aleatoric = self.beta / (self.alpha - 1.0)
        return aleatoric, aleatoric / self.nu

    def mean(self) -> np.ndarray:
        return self.gamma

    def sd(self) -> np.ndarray:
        return np.sqrt(sum(self.variance_parts()))

    def logpdf(self, y: np.ndarray) -> np.ndarray:
        return self.predictive().logpdf(y)

    def cdf(self, y: np.ndarray) -> np.ndarray:
        return self.predictive().cdf(y)

    def ppf(self, q: np.ndarray | float) -> np.ndarray:
        return self.predictive().ppf(q)

    def crps(self, y: np.ndarray) -> np.ndarray:
        return self.predictive().crps(y)


def _a(m: np.ndarray, var: np.ndarray) -> np.ndarray:
    """E|X| for X ~ N(m, var) (the A function of Grimit et al., 2006)."""
    s = np.sqrt(var)
    return 2.0 * s * _phi(m / s) + m * (2.0 * _Phi(m / s) - 1.0)


class GaussianMixture(Predictive):
    name = "gaussian_mixture"
    param_names = ("w1", "loc1", "scale1", "loc2", "scale2")

    def _check(self) -> None:
        if not (np.all(self.scale1 > 0) and np.all(self.scale2 > 0)
                and np.all((self.w1 >= 0) & (self.w1 <= 1))):
            raise ValueError("gaussian_mixture: need scales > 0 and w1 in [0, 1]")

    def _components(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return [(self.w1, self.loc1, self.scale1), (1.0 - self.w1, self.loc2, self.scale2)]

    def mean(self) -> np.ndarray:
        return sum(w * m for w, m, _ in self._components())

    def sd(self) -> np.ndarray:
        second = sum(w * (s * s + m * m) for w, m, s in self._components())
        return np.sqrt(np.maximum(second - self.mean() ** 2, 0.0))

    def logpdf(self, y: np.ndarray) -> np.ndarray:
        terms = [np.log(np.maximum(w, 1e-300)) + Gaussian({"loc": m, "scale": s}).logpdf(y)
                 for w, m, s in self._components()]
        return np.logaddexp(*terms)

    def cdf(self, y: np.ndarray) -> np.ndarray:
        return sum(w * _Phi((y - m) / s) for w, m, s in self._components())

    def ppf(self, q: np.ndarray | float) -> np.ndarray:
        q = np.broadcast_to(np.asarray(q, dtype=np.float64), self.shape)
        comps = self._components()
        lo = np.minimum(*(m - 12.0 * s for _, m, s in comps))
        hi = np.maximum(*(m + 12.0 * s for _, m, s in comps))
        for _ in range(80):  # bisection: the CDF is increasing; 80 halvings reach ulps
            mid = 0.5 * (lo + hi)
            below = self.cdf(mid) < q
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def crps(self, y: np.ndarray) -> np.ndarray:
        comps = self._components()
        first = sum(w * _a(y - m, s * s) for w, m, s in comps)
        second = sum(wi * wj * _a(mi - mj, si * si + sj * sj)
                     for wi, mi, si in comps for wj, mj, sj in comps)
        return first - 0.5 * second


def quantile_param(level: float) -> str:
    """The parameter name of the quantile at `level`: q025 for 2.5 %, q500 for 50 %."""
    return f"q{round(1000 * level):03d}"


class QuantileSpline(Predictive):
    """Quantiles at QUANTILE_LEVELS as a distribution (see the module docstring)."""

    name = "quantile"
    param_names = tuple(quantile_param(t) for t in QUANTILE_LEVELS)
    levels = np.asarray(QUANTILE_LEVELS)

    def _check(self) -> None:
        if not np.all(np.diff(self.knots(), axis=-1) > 0):
            raise ValueError("quantile: the quantiles must be strictly increasing")

    def knots(self) -> np.ndarray:
        """[..., m] quantile values in level order."""
        return np.stack([self.params[p] for p in self.param_names], axis=-1)

    def _tails(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(left mass, left rate, right mass, right rate) of the exponential tails."""
        q, t = self.knots(), self.levels
        density = np.diff(t) / np.diff(q, axis=-1)
        left_mass, right_mass = t[0], 1.0 - t[-1]
        return left_mass, density[..., 0] / left_mass, right_mass, density[..., -1] / right_mass

    def mean(self) -> np.ndarray:
        q, t = self.knots(), self.levels
        lm, lr, rm, rr = self._tails()
        body = np.sum(np.diff(t) * 0.5 * (q[..., 1:] + q[..., :-1]), axis=-1)
        return body + lm * (q[..., 0] - 1.0 / lr) + rm * (q[..., -1] + 1.0 / rr)

    def sd(self) -> np.ndarray:
        q, t = self.knots(), self.levels
        lm, lr, rm, rr = self._tails()
        a, b = q[..., :-1], q[..., 1:]
        second = np.sum(np.diff(t) * (a * a + a * b + b * b) / 3.0, axis=-1)
        q0, qm = q[..., 0], q[..., -1]
        second = second + lm * (q0 * q0 - 2.0 * q0 / lr + 2.0 / lr**2)
        second = second + rm * (qm * qm + 2.0 * qm / rr + 2.0 / rr**2)
        return np.sqrt(np.maximum(second - self.mean() ** 2, 0.0))

    def _segment(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q = self.knots()
        y = np.broadcast_to(y, q.shape[:-1])
        seg = np.clip(np.sum(q[..., 1:-1] <= y[..., None], axis=-1), 0, q.shape[-1] - 2)
        lo = np.take_along_axis(q, seg[..., None], -1)[..., 0]
        hi = np.take_along_axis(q, seg[..., None] + 1, -1)[..., 0]
        return seg, lo, hi

    def logpdf(self, y: np.ndarray) -> np.ndarray:
        q, t = self.knots(), self.levels
        lm, lr, rm, rr = self._tails()
        seg, lo, hi = self._segment(y)
        body = np.log(np.diff(t)[seg] / (hi - lo))
        left = np.log(lm * lr) + lr * (y - q[..., 0])
        right = np.log(rm * rr) - rr * (y - q[..., -1])
        return np.where(y < q[..., 0], left, np.where(y > q[..., -1], right, body))

    def cdf(self, y: np.ndarray) -> np.ndarray:
        q, t = self.knots(), self.levels
        lm, lr, rm, rr = self._tails()
        seg, lo, hi = self._segment(y)
        body = t[seg] + np.diff(t)[seg] * (y - lo) / (hi - lo)
        left = lm * np.exp(np.minimum(lr * (y - q[..., 0]), 0.0))
        right = 1.0 - rm * np.exp(np.minimum(-rr * (y - q[..., -1]), 0.0))
        return np.where(y < q[..., 0], left, np.where(y > q[..., -1], right, body))

    def ppf(self, p: np.ndarray | float) -> np.ndarray:
        q, t = self.knots(), self.levels
        lm, lr, rm, rr = self._tails()
        p = np.broadcast_to(np.asarray(p, dtype=np.float64), q.shape[:-1])
        seg = np.clip(np.searchsorted(t, p, side="right") - 1, 0, t.size - 2)
        lo = np.take_along_axis(q, seg[..., None], -1)[..., 0]
        hi = np.take_along_axis(q, seg[..., None] + 1, -1)[..., 0]
        body = lo + (hi - lo) * (p - t[seg]) / np.diff(t)[seg]
        with np.errstate(divide="ignore"):
            left = q[..., 0] + np.log(np.maximum(p, 1e-300) / lm) / lr
            right = q[..., -1] - np.log(np.maximum(1.0 - p, 1e-300) / rm) / rr
        return np.where(p < t[0], left, np.where(p > t[-1], right, body))

    def crps(self, y: np.ndarray) -> np.ndarray:
        """Closed form: the integral of F^2 below y plus (1 - F)^2 above y, piece by
        piece (F is linear on each segment and exponential in each tail)."""
        q, t = self.knots(), self.levels
        lm, lr, rm, rr = self._tails()
        y = np.broadcast_to(np.asarray(y, dtype=np.float64), q.shape[:-1])
        a, b, yc = q[..., :-1], q[..., 1:], y[..., None]
        slope = np.diff(t) / (b - a)
        fc = t[:-1] + slope * (np.clip(yc, a, b) - a)
        body = ((fc**3 - t[:-1] ** 3) + ((1.0 - fc) ** 3 - (1.0 - t[1:]) ** 3)) / (3.0 * slope)
        q0, qm = q[..., 0], q[..., -1]
        c = np.minimum(y, q0)
        f = lm * np.exp(lr * (c - q0))
        left = f * f / (2.0 * lr) + (q0 - c) - 2.0 * (lm - f) / lr + (lm**2 - f * f) / (2.0 * lr)
        c = np.maximum(y, qm)
        g = rm * np.exp(-rr * (c - qm))
        right = (c - qm) - 2.0 * (rm - g) / rr + (rm**2 - g * g) / (2.0 * rr) + g * g / (2.0 * rr)
        return body.sum(axis=-1) + left + right


FAMILIES: dict[str, type[Predictive]] = {
    cls.name: cls
    for cls in (Gaussian, StudentT, GaussianMixture, NormalInverseGamma, QuantileSpline)
}


def family(name: str) -> type[Predictive]:
    if name not in FAMILIES:
        raise ValueError(f"unknown distribution family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def describe(name: str, dims: Sequence[str]) -> dict[str, Any]:
    """The self-description a trial record carries: the family and its columns."""
    cls = family(name)
    return {"family": name,
            "columns": {d: {p: param_column(d, p) for p in cls.param_names} for d in dims}}


def describe_predictions(frame: Any, dims: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{method: `describe(...)`} of the methods of a prediction table that have a family
    column ({} when none has): what a trial record says about its distributions."""
    if FAMILY_COLUMN not in frame.columns:
        return {}
    named = frame.dropna(subset=[FAMILY_COLUMN]).drop_duplicates(["method", FAMILY_COLUMN])
    return {str(m): describe(str(f), dims)
            for m, f in zip(named["method"], named[FAMILY_COLUMN], strict=True)}


def to_columns(dist: Predictive, dim: str) -> dict[str, np.ndarray]:
    """The prediction-table columns of one dimension's distribution."""
    return {param_column(dim, p): v for p, v in dist.params.items()}


def from_columns(name: str, columns: Mapping[str, np.ndarray], dim: str) -> Predictive:
    """The distribution of one dimension from its `<dim>__<param>` columns (any mapping:
    a DataFrame, a dict of arrays)."""
    cls = family(name)
    missing = [param_column(dim, p) for p in cls.param_names
               if param_column(dim, p) not in columns]
    if missing:
        raise ValueError(f"family {name!r} needs column(s) {missing}")
    return cls({p: np.asarray(columns[param_column(dim, p)], dtype=np.float64)
                for p in cls.param_names})

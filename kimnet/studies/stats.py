"""Mean, standard deviation and Welch's t-test over a study's seeds, without SciPy.

:func:`welch` is the two-sided Welch (unequal-variance) t-test, the same figures as
``scipy.stats.ttest_ind(a, b, equal_var=False)``. Its p-value comes from the Student t
distribution, ``P(|T| > t) = I_x(df/2, 1/2)`` with ``x = df / (df + t^2)``, where
``I`` is the regularised incomplete beta function, evaluated by its continued
fraction (Numerical Recipes' ``betacf``, modified Lentz) to about 1e-12.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence

# A row differs from its baseline when Welch's two-sided p-value is below this.
ALPHA = 0.05
RULE = f"Welch's t-test over seeds, two-sided, p < {ALPHA:g} (needs at least 2 seeds per row)"
_EPSILON = 1e-15
_TINY = 1e-300
_MAX_TERMS = 500


@dataclasses.dataclass(frozen=True)
class Welch:
    t: float
    df: float
    p: float

    @property
    def differs(self) -> bool:
        return self.p < ALPHA


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (``n - 1``; 0 for one value)."""
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


def welch(a: Sequence[float], b: Sequence[float]) -> Welch | None:
    """Welch's two-sided t-test of ``a`` against ``b``; ``None`` below two values each.

    Two samples without any spread are equal (p = 1) or differ (p = 0) outright.
    """
    if len(a) < 2 or len(b) < 2:
        return None
    (mean_a, sd_a), (mean_b, sd_b) = mean_std(a), mean_std(b)
    va, vb = sd_a**2 / len(a), sd_b**2 / len(b)
    if va + vb == 0:
        same = mean_a == mean_b
        return Welch(
            0.0 if same else math.copysign(math.inf, mean_a - mean_b), math.nan, float(same)
        )
    t = (mean_a - mean_b) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return Welch(t, df, student_t_two_sided(t, df))


def student_t_two_sided(t: float, df: float) -> float:
    """``P(|T| >= |t|)`` for Student's t distribution with ``df`` degrees of freedom."""
    return regularized_beta(df / (df + t * t), df / 2, 0.5)


def regularized_beta(x: float, a: float, b: float) -> float:
    """The regularised incomplete beta function ``I_x(a, b)`` for ``0 <= x <= 1``."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    # The continued fraction converges fast for x < (a + 1) / (a + b + 2); use symmetry above.
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(x, a, b) / a
    return 1.0 - front * _beta_fraction(1.0 - x, b, a) / b


def _beta_fraction(x: float, a: float, b: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    result = d
    for m in range(1, _MAX_TERMS + 1):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            result *= c * d
        if abs(c * d - 1.0) < _EPSILON:
            return result
    raise ArithmeticError(f"The incomplete beta fraction did not converge (x={x}, a={a}, b={b}).")

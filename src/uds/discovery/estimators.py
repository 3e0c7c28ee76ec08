"""Estimating a column's distinct count from a page sample.

TABLESAMPLE SYSTEM picks whole pages, so values that sit together on disk (a session's
events, a day's orders) are sampled together, which breaks every row-level estimator:
the sample sees each such value several times and concludes there are few of them. We
therefore count each value at most once per page ("page-deduplicated frequencies") and
treat pages as the sampling unit, with q the share of the table's pages drawn. For
values spread at random over the table this changes almost nothing; for clustered ones
it turns "seen 6 times on one page" into "seen once", which is what it is.

On those frequencies (f_j = number of values seen on exactly j sampled pages) we use the
improved Chao estimator (iChao1, Chiu et al. 2014) on Chao and Lin's bound for sampling
without replacement (2012):

    D0 = d + f1^2 / (2 f2 n/(n-1) + f1 q/(1-q))
    D  = D0 + f3/(4 f4) * max(f1 - f2 f3 / (2 f4), 0)

D0 is exact for homogeneous frequencies and gives N when every value is unique (f2 = 0);
the second term corrects part of the downward bias that skewed frequencies cause. The
result is clamped to [d, non-null rows]. Known limit (measured by bench/discovery.py):
mid-cardinality columns with very uneven frequencies (a few values extremely common,
most very rare) are still underestimated when the sample is a small share of the table;
profiles.py re-estimates such columns from a larger second sample (docs/discovery.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


def chao_lin(d: float, fof: Mapping[int, float], q: float) -> float:
    """Chao-Lin lower bound for sampling fraction q (0 < q < 1)."""
    n = sum(j * m for j, m in fof.items())
    f1 = fof.get(1, 0)
    f2 = fof.get(2, 0)
    if n <= 1 or f1 == 0:
        return float(d)
    denominator = 2 * f2 * n / (n - 1) + f1 * q / (1 - q)
    return d + (f1 * f1 / denominator if denominator > 0 else 0.0)


def improved_chao(d: float, fof: Mapping[int, float], q: float) -> float:
    """Chao-Lin plus the iChao1 correction from f3 and f4."""
    base = chao_lin(d, fof, q)
    f1, f2, f3, f4 = (fof.get(j, 0) for j in (1, 2, 3, 4))
    if f4 == 0:
        return base
    return base + f3 / (4 * f4) * max(f1 - f2 * f3 / (2 * f4), 0.0)


def estimate_distinct(d: float, fof: Mapping[int, float], *, q: float, population: float) -> float:
    """Distinct values among `population` non-null rows, from a sample of fraction q.

    `d` is the number of distinct values in the sample and `fof` their page-deduplicated
    frequency-of-frequencies (both may be fractional, see profiles.page_edge_carryover).
    q >= 1 means the sample was the whole table.
    """
    if d == 0:
        return 0.0
    if q >= 1 or population <= d:
        return float(d)
    estimate = improved_chao(d, fof, max(q, 1e-9))
    return float(min(max(estimate, d), population))


def repeat_share(d: float, fof: Mapping[int, float], q: float) -> float:
    """How much of Chao-Lin's denominator comes from the values seen twice (0 to 1): near 0
    for a column of (nearly) unique values, whose estimate is pinned by the row count;
    larger when the estimate rests on a model of how often unseen values repeat, which
    skewed or mixed frequencies bend (the estimator is then a lower bound, not a fit)."""
    n = sum(j * m for j, m in fof.items())
    f1, f2 = fof.get(1, 0), fof.get(2, 0)
    if f2 <= 0 or n <= 1 or q >= 1:
        return 0.0
    f2_term = 2 * f2 * n / (n - 1)
    return f2_term / (f2_term + f1 * q / (1 - q))


def worth_recounting(d: float, fof: Mapping[int, float], *, q: float, population: float) -> bool:
    """Whether an exact count would likely differ from the estimate by more than noise:
    the estimate is mostly extrapolated (at least 1.3 times the values seen) and rests on
    how values repeat (repeat_share of 5 % or more), or it is unsteady. Example: a ZIP
    column, a third unique codes and the rest drawn about twice each, sampled at 12 %:
    steady by its counts, but 12 % under the truth."""
    return assess(d, fof, q=q, population=population).recount


# Relative standard error above which an estimate is "unsteady": 3 % makes a 10 % error a
# three-sigma event.
UNSTEADY_ERROR = 0.03


def is_unsteady(d: float, fof: Mapping[int, float], *, q: float, population: float) -> bool:
    """Whether the estimate hangs on a few sparse counts, so that another sample could give
    a quite different figure. The counts f2, f3 and f4 are treated as Poisson, and their
    relative noise is carried through the two terms that use them:

    * Chao-Lin's extrapolation f1^2 / (2 f2' + c): a share 2 f2' / (2 f2' + c) of its
      denominator is f2, noisy by 1/sqrt(f2);
    * the iChao correction f3/(4 f4) (...): noisy by sqrt(1/f3 + 1/f4).

    Example (bench/discovery.py, customers.zip_code: a third of the values unique, the rest
    seen about twice): f3 = 8 and f4 = 1 made the correction +30 % on its own, while the
    truth lay between the two estimates. A column of unique values (f2 = 0) or one whose
    rare counts are plentiful is steady.
    """
    return assess(d, fof, q=q, population=population).unsteady


@dataclass(frozen=True, slots=True)
class Assessment:
    estimate: float  # estimate_distinct
    unsteady: bool  # is_unsteady
    recount: bool  # worth_recounting


def assess(d: float, fof: Mapping[int, float], *, q: float, population: float) -> Assessment:
    """The estimate and both judgements on it, computed once."""
    estimate = estimate_distinct(d, fof, q=q, population=population)
    if d <= 0 or q >= 1 or population <= d or estimate <= 0:
        return Assessment(estimate, unsteady=False, recount=False)
    q = max(q, 1e-9)
    base = min(max(chao_lin(d, fof, q), d), population)
    share = repeat_share(d, fof, q)
    f2, f3, f4 = (fof.get(j, 0) for j in (2, 3, 4))
    variance = 0.0
    if f2 > 0:
        variance += (share * (base - d) / estimate) ** 2 / f2
    correction = estimate - base
    if correction > 0 and f3 > 0 and f4 > 0:
        variance += (correction / estimate) ** 2 * (1 / f3 + 1 / f4)
    unsteady = variance > UNSTEADY_ERROR**2
    recount = unsteady or (estimate >= 1.3 * d and share >= 0.05)
    return Assessment(estimate, unsteady=unsteady, recount=recount)

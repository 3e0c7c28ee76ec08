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


def chao_lin(d: int, fof: Mapping[int, int], q: float) -> float:
    """Chao-Lin lower bound for sampling fraction q (0 < q < 1)."""
    n = sum(j * m for j, m in fof.items())
    f1 = fof.get(1, 0)
    f2 = fof.get(2, 0)
    if n <= 1 or f1 == 0:
        return float(d)
    denominator = 2 * f2 * n / (n - 1) + f1 * q / (1 - q)
    return d + (f1 * f1 / denominator if denominator > 0 else 0.0)


def improved_chao(d: int, fof: Mapping[int, int], q: float) -> float:
    """Chao-Lin plus the iChao1 correction from f3 and f4."""
    base = chao_lin(d, fof, q)
    f1, f2, f3, f4 = (fof.get(j, 0) for j in (1, 2, 3, 4))
    if f4 == 0:
        return base
    return base + f3 / (4 * f4) * max(f1 - f2 * f3 / (2 * f4), 0.0)


def estimate_distinct(d: int, fof: Mapping[int, int], *, q: float, population: float) -> float:
    """Distinct values among `population` non-null rows, from a sample of fraction q.

    `d` is the number of distinct values in the sample and `fof` their page-deduplicated
    frequency-of-frequencies. q >= 1 means the sample was the whole table.
    """
    if d == 0:
        return 0.0
    if q >= 1 or population <= d:
        return float(d)
    estimate = improved_chao(d, fof, max(q, 1e-9))
    return float(min(max(estimate, d), population))

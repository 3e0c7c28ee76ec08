"""Column profiles: from pg_stats when fresh, else a TABLESAMPLE sample, else exact.

One query per table fetches the sample (or, for a small table, every row) with the page
each row sits on, selecting the columns by name with long values shortened to a digest;
UDS then computes, per column, the null fraction, distinct values (with page-deduplicated
frequencies for the estimator), top values, minimum and maximum, an equi-depth histogram
and a pseudo-random set of values for the semantic classifier. That costs the source the
sample's pages and little CPU: it was measured faster than doing the same aggregates in
SQL, and lighter on the server, which matters more than UDS's own CPU.

Text minimum and maximum are in code point order (collation "C"), whatever the column's
collation, so they mean the same on every server.
"""

from __future__ import annotations

import bisect
import decimal
import heapq
import itertools
import json
import math
import operator
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from uds.discovery import sampling
from uds.discovery.budget import Budget
from uds.discovery.estimators import assess, estimate_distinct
from uds.discovery.snapshot import (
    CATALOG,
    CONSTRAINT,
    ESTIMATE,
    EXACT,
    INDEX,
    SAMPLE,
    SKIPPED,
    STATS,
    ColumnProfile,
    ColumnSnapshot,
    Figure,
    TableSnapshot,
)
from uds.discovery.structure import CATALOG_QUERY, ROW_OVERHEAD, TableFacts

TOP_K = 10
HISTOGRAM_BINS = 10
VALUE_SAMPLE = 200
ORDERED = frozenset({"integer", "number", "date", "time", "text", "interval"})
HISTOGRAM = frozenset({"integer", "number", "date", "time"})


@dataclass(frozen=True, slots=True)
class ProfileOptions:
    """How hard to look."""

    sample_rows: int = 10_000
    # A table the budget cannot give this many rows is left unprofiled rather than guessed at.
    min_sample_rows: int = 200
    # Tables up to this many rows (and pages) are read in full: exact figures.
    exact_rows: int = 20_000
    exact_pages: int = 4_096
    # With fresh statistics only a small sample is taken, for semantics and validity.
    semantic_rows: int = 2_000
    use_stats: bool = True
    stats_max_age: timedelta = timedelta(days=30)
    stats_max_modified: float = 0.1
    # Views (and foreign tables) are read from their first rows, and only when the
    # planner expects that to be cheap: a view may hide any amount of work.
    view_rows: int = 1_000
    view_cost_limit: float = 20_000.0
    seed: int = 5_711
    # Second stage for distinct counts the first sample leaves uncertain (mid-cardinality,
    # mostly unseen values): a larger page sample of the table, aggregated in SQL, for
    # those columns only. 0 turns it off.
    refine_rows: int = 50_000
    refine_max_fraction: float = 0.25
    # Tables up to this many rows have the distinct counts an exact count would likely
    # change (estimators.worth_recounting) counted exactly instead: one aggregate over the
    # table, which the first sample has already drawn a good share of. 0 turns it off.
    recount_rows: int = 200_000


@dataclass(slots=True)
class ColumnValues:
    """Values one column showed, for the semantic classifier: the most frequent ones with
    their counts, a pseudo-random set of the others, and the totals they stand for."""

    top: list[tuple[str, int]] = field(default_factory=list)
    others: list[tuple[str, int]] = field(default_factory=list)
    distinct: int = 0
    non_null: int = 0
    # Page deduplication changed the singletons a lot: the values sit together on disk.
    clustered: bool = False
    # The distinct estimate hangs on sparse counts (see estimators.is_unsteady).
    unsteady: bool = False
    # An exact count would likely tell more than noise (see estimators.worth_recounting).
    recount: bool = False


@dataclass(slots=True)
class SampledValues:
    rows: int = 0
    by_column: dict[str, ColumnValues] = field(default_factory=dict)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified(table: TableSnapshot) -> str:
    return f"{quote_ident(table.schema)}.{quote_ident(table.name)}"


def own_rows(table: TableSnapshot) -> str:
    """The relation as a FROM item that reads the table's own rows: ONLY for a plain table,
    so an inheritance parent does not read its children's rows too (they are tables of
    their own and counted there); a partitioned table is read through its partitions."""
    return f"only {qualified(table)}" if table.kind == "table" else qualified(table)


LONG_TEXT = 200


# Timestamps are fetched as microseconds since 1970-01-01 (UTC for timestamptz), with the
# infinities at the ends of int8: decoding a datetime costs asyncpg about 0.7 us a value
# against 0.05 us for an int8, and ints hash and sort faster too. Values are turned back
# into text only for the few figures shown (see renderer).
INFINITY_MICROS = 2**63 - 1
_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)


def _as_micros(column: ColumnSnapshot) -> bool:
    # format_type names the real types; a domain over one keeps its native fetch.
    return column.family == "time" and column.data_type.startswith("timestamp")


def _expr(column: ColumnSnapshot) -> str:
    """How a column is fetched: natively where Python compares it correctly, else as text,
    with values over LONG_TEXT bytes replaced by a digest (same value, same digest)."""
    name = quote_ident(column.name)
    if column.data_type == "money":
        return f"{name}::numeric"
    if _as_micros(column):
        return (
            f"case when isfinite({name}) then (extract(epoch from {name}) * 1000000)::int8 "
            f"when {name} = 'infinity' then {INFINITY_MICROS} "
            f"when {name} = '-infinity' then {-INFINITY_MICROS} end"
        )
    if column.family in ("integer", "number", "date", "time", "bool", "interval", "uuid"):
        return name
    text = f"{name}::text"
    return f"case when octet_length({text}) > {LONG_TEXT} then 'md5:' || md5({text}) else {text} end"


def fetch_sql(table: TableSnapshot, source: str, *, paged: bool) -> str:
    """The sample query; its first column is the row's page (block number, and for a
    partitioned table the partition's oid in the high bits, so pages stay distinct)."""
    if not paged:
        page = "null::int8"
    elif table.kind == "partitioned_table":
        page = "(tableoid::oid::int8 << 32) + (ctid::text::point)[0]::int8"
    else:
        page = "(ctid::text::point)[0]::int8"
    columns = ", ".join(_expr(c) for c in table.columns)
    return f"select {page}, {columns} from {own_rows(table)} {source}"


STATS_SQL = (
    CATALOG_QUERY
    + """
select attname::text as name, null_frac::float8 as null_frac, n_distinct::float8 as n_distinct,
       most_common_vals::text::text[] as mcv, most_common_freqs::float8[] as mcf,
       histogram_bounds::text::text[] as hist
from pg_stats
where schemaname = $1 and tablename = $2 and inherited = $3
"""
)


@dataclass(slots=True)
class Plan:
    method: str  # exact | sample | stats | rows (first rows of a view)
    source: str
    target: int
    q: float  # page sampling fraction (1 for exact)
    percent: float = 100.0  # as written into TABLESAMPLE SYSTEM (...)
    limit: int | None = None  # the sample's row cap


def stats_fresh(table: TableSnapshot, facts: TableFacts, options: ProfileOptions) -> bool:
    """Analyzed recently, and not much changed since: pg_stats can be trusted."""
    if not options.use_stats or table.analyzed_at is None:
        return False
    if datetime.now(UTC) - table.analyzed_at > options.stats_max_age:
        return False
    live = facts.live_tuples or facts.reltuples or 0
    modified = facts.modified_since_analyze or 0
    return modified <= max(options.stats_max_modified * live, 1_000)


class TableGone(Exception):
    """The table was dropped after the structure was read."""


# Bytes on disk now: per leaf partition of a partitioned table (its oid keys its pages in
# a sample, see fetch_sql), else of the table itself (key 0).
SIZE_SQL = (
    CATALOG_QUERY
    + """
select t.relid::oid::int8 as rel, pg_relation_size(t.relid)::int8 as size
from pg_partition_tree($1::oid) t where $2 and t.isleaf
union all
select 0::int8, pg_relation_size($1::oid)::int8 where not $2
"""
)


async def estimate_rows(
    conn: asyncpg.Connection, table: TableSnapshot, facts: TableFacts, budget: Budget
) -> float:
    """Current rows: the catalog's density times today's pages, or a guess from row width.

    Reads the table's size now (which waits for its lock, bounded by lock_timeout), so the
    estimate follows what was inserted since the last ANALYZE.
    """
    partitioned = table.kind == "partitioned_table"
    if facts.sizes is not None:
        found = facts.sizes
        facts.sizes = None  # read once: a retried table reads its size again
    else:
        found = [(int(r["rel"]), r["size"]) for r in await conn.fetch(SIZE_SQL, facts.oid, partitioned)]
    if not partitioned and (not found or found[0][1] is None):
        raise TableGone(table.qualified)
    facts.blocks = {rel: int(size or 0) // facts.block_size for rel, size in found}
    size = sum(int(size or 0) for _, size in found)
    facts.pages = size // facts.block_size
    table.size_bytes = size
    if facts.pages == 0:
        return 0.0
    if facts.reltuples >= 0 and facts.relpages > 0:
        # The planner's own method: the density seen at the last ANALYZE/VACUUM times
        # today's size on disk.
        rows = facts.reltuples / facts.relpages * facts.pages
        if facts.pages != facts.relpages:
            table.row_estimate = Figure(round(rows), CATALOG)
        return rows
    # Never analyzed: guess the density from the column types. The guess only sizes the
    # sample; the row estimate then comes from what the sample finds.
    per_page = (facts.block_size - 24) / (facts.row_width + ROW_OVERHEAD)
    return facts.pages * per_page


async def plan_cost(conn: asyncpg.Connection, sql: str) -> float:
    """The planner's total cost for a statement (EXPLAIN only: nothing runs)."""
    plan = await conn.fetchval(f"explain (format json) {sql}")
    data = json.loads(plan) if isinstance(plan, str) else plan
    return float(data[0]["Plan"]["Total Cost"])


def choose_plan(
    table: TableSnapshot,
    facts: TableFacts | None,
    rows: float,
    allowance: int,
    options: ProfileOptions,
    fresh: bool,
) -> Plan:
    """Decide how to profile: exact for small tables, else a sample sized to the allowance."""
    if table.kind in ("view", "foreign_table") or facts is None:
        target = max(1, min(options.view_rows, allowance))
        return Plan("rows", f"limit {target}", target, 1.0)
    pages = facts.pages
    if rows <= options.exact_rows and pages <= options.exact_pages and rows <= allowance:
        return Plan(EXACT, "", int(rows), 1.0)
    wanted = options.semantic_rows if fresh else options.sample_rows
    target = max(1, min(wanted, allowance))
    percent = float(f"{min(100.0, 100.0 * target / max(rows, 1.0)):.6f}")
    if percent >= 100.0:
        return Plan(EXACT, "", int(rows), 1.0)
    # The cap only matters when the page guess was far off; it keeps the budget a budget.
    limit = int(target * 1.25) + 10
    source = f"tablesample system ({percent:.6f}) repeatable ({options.seed}) limit {limit}"
    return Plan(STATS if fresh else SAMPLE, source, target, percent / 100.0, percent, limit)


async def profile_table(
    conn: asyncpg.Connection,
    table: TableSnapshot,
    facts: TableFacts | None,
    *,
    budget: Budget,
    allowance: int,
    options: ProfileOptions,
) -> SampledValues:
    """Fill in `table`'s column profiles and row estimate; return the values it saw.

    Raises asyncpg errors for the caller to classify (timeouts, privileges, a dropped
    table); a partial result is never left on `table`.
    """
    values = SampledValues()
    if not table.columns:
        table.profile_method, table.profiled = SKIPPED, True
        return values
    fresh = facts is not None and stats_fresh(table, facts, options)
    spent = budget.expired or allowance <= 0
    if spent and not fresh:
        table.warnings.append("not profiled: the run's row or time budget was used up")
        table.profile_method, table.profiled = SKIPPED, True
        return values
    rows = await estimate_rows(conn, table, facts, budget) if facts is not None else 0.0
    if not spent and allowance < min(options.min_sample_rows, rows):
        spent = True  # too few rows left to say anything about this table
        if not fresh:
            table.warnings.append("not profiled: the run's row or time budget was used up")
            table.profile_method, table.profiled = SKIPPED, True
            return values
    plan = Plan(STATS, "", 0, 0.0) if spent else choose_plan(table, facts, rows, allowance, options, fresh)

    if plan.method == "rows":
        cost = await plan_cost(conn, fetch_sql(table, plan.source, paged=False))
        if cost > options.view_cost_limit:
            table.warnings.append(
                f"not profiled: reading this {table.kind.replace('_', ' ')} is expected to be expensive "
                f"(planner cost {cost:.0f} > {options.view_cost_limit:.0f})"
            )
            table.profile_method, table.profiled = SKIPPED, True
            return values

    profiles: dict[str, ColumnProfile] = {}
    n = 0
    if plan.target > 0:
        paged = plan.method in (SAMPLE, STATS, EXACT) and table.kind not in ("view", "foreign_table")
        if plan.method == EXACT:
            # Guard against a density guess that was far off: never more than twice the rows
            # planned, nor more than the allowance. Hitting it means the table is larger:
            # sample it instead.
            guard = min(max(2 * plan.target, 1_000), allowance)
            records = await conn.fetch(fetch_sql(table, f"limit {guard + 1}", paged=True))
            budget.charge(len(records))
            if len(records) > guard and facts is not None and facts.pages > 0:
                seen_pages = max(r[0] & 0xFFFFFFFF for r in records) + 1
                rows = len(records) / seen_pages * facts.pages
                # A random sample beats the first rows, even if it costs the allowance twice.
                left = max(allowance - len(records), options.min_sample_rows)
                plan = choose_plan(table, facts, rows, left, options, fresh)
                records = await conn.fetch(fetch_sql(table, plan.source, paged=True))
                budget.charge(len(records))
        else:
            records = await conn.fetch(fetch_sql(table, plan.source, paged=paged))
            budget.charge(len(records))
        n = len(records)
        values.rows = n
        exact = plan.method == EXACT or (plan.method == "rows" and n < plan.target)
        pages = [r[0] for r in records] if paged and not exact else None
        q = 1.0 if exact else plan.q
        drawn: tuple[float, int, int] | None = None
        if pages and facts is not None and facts.pages > 0:
            q, drawn = _drawn_share(table, facts, pages, plan, options, truncated=n >= (plan.limit or n + 1))
        runs = page_runs(pages) if pages else None
        population = float(n) if exact else (n / q if q > 0 else rows)
        counted: int | None = None
        if plan.method == SAMPLE and facts is not None and _patchy(drawn, pages):
            counted = await _count_live_rows(
                conn, table, population, budget=budget, allowance=allowance - n, options=options
            )
            if counted is not None:
                # The share of live rows seen is now known exactly; it stands in for the
                # share of pages drawn, which empty pages make a poor guide to rows.
                population = float(counted)
                q = min(1.0, n / population) if population > 0 else 1.0
        by_column = list(zip(*records, strict=True))[1:] if records else [() for _ in table.columns]
        for column, column_values in zip(table.columns, by_column, strict=True):
            profile, seen = profile_values(column, column_values, runs, q=q, rows=population, exact=exact)
            profiles[column.name] = profile
            values.by_column[column.name] = seen
        if exact:
            table.row_estimate = Figure(float(n), EXACT, n)
            if facts is not None and table.kind not in ("view", "foreign_table"):
                table.row_estimate_basis = f"counted: every one of the {n:,} live rows was read"
                _dead_share(table, facts, n)
        elif plan.method == SAMPLE:
            table.row_estimate = Figure(round(population), ESTIMATE, n)
            rows = population
            if facts is not None:
                _cross_check(table, facts, population, n, drawn)
            if counted is not None:
                table.row_estimate = Figure(float(counted), EXACT, counted)
                table.row_estimate_basis = (
                    f"counted: {counted:,} live rows, because "
                    f"{1 - len(set(pages or [])) / max(drawn[1] if drawn else 1, 1):.0%} of the pages the "
                    "sample drew held no live row (dead row versions or emptied pages), which makes a page "
                    f"sample a poor guide to rows; {table.row_estimate_basis}"
                )
            if facts is not None and pages:
                await _recount_distinct(
                    conn,
                    table,
                    profiles,
                    values,
                    rows=population,
                    budget=budget,
                    allowance=allowance - n,
                    options=options,
                )
                await _refine_distinct(
                    conn,
                    table,
                    facts,
                    profiles,
                    values,
                    q=q,
                    rows=population,
                    budget=budget,
                    allowance=allowance - n,
                    options=options,
                )
        elif plan.method == "rows":
            table.warnings.append(f"{table.kind.replace('_', ' ')}: profiled from its first {n} rows")
    if plan.method == STATS:
        await _apply_stats(conn, table, facts, profiles, values, rows)
        if table.row_estimate is None:
            table.row_estimate = Figure(round(rows), ESTIMATE)
        if facts is not None:
            basis = [
                f"pg_class.reltuples {facts.reltuples:,.0f} at the last ANALYZE, scaled to today's "
                f"{facts.pages:,} pages = {rows:,.0f} (believed: statistics are fresh)"
            ]
            if facts.live_tuples is not None and (facts.live_tuples or facts.dead_tuples):
                basis.append(
                    f"pg_stat n_live_tup: {facts.live_tuples:,} ({_versus(facts.live_tuples, rows)})"
                )
            table.row_estimate_basis = "; ".join(basis)
            _dead_share(table, facts, rows)
    _apply_constraints(table, profiles)
    if facts is not None and plan.method in (SAMPLE, STATS):
        await _apply_index_extremes(conn, table, facts, profiles, budget)
    for column in table.columns:
        column.profile = profiles.get(column.name)
    table.profile_method = "rows" if plan.method == "rows" else plan.method
    table.sample_size = n or None
    table.profiled = True
    return values


def _drawn_share(
    table: TableSnapshot,
    facts: TableFacts,
    pages: Sequence[int],
    plan: Plan,
    options: ProfileOptions,
    *,
    truncated: bool,
) -> tuple[float, tuple[float, int, int] | None]:
    """The share of the table's pages the sample drew: (q, (q, drawn, pages) when the
    drawn pages were counted). SYSTEM draws each page independently, so the count it
    happens to draw varies by several percent; the pages that returned rows are exactly
    the pages drawn unless some drawn pages hold no live row (dead row versions only).
    On a small table, or when the sample came back with clearly fewer pages than asked
    for, or pg_stat reports dead rows, the drawn pages are worked out
    (sampling.drawn_pages); where that is not possible, the share asked for stands in.
    When many drawn pages held no live row, q is the share of live rows seen, the live
    rows estimated region by region (sampling.rows_by_region)."""
    seen = set(pages)
    q = min(1.0, len(seen) / facts.pages)
    suspicious = sampling.empties_likely(len(seen), facts.pages, plan.percent)
    dead = facts.dead_tuples or 0
    cheap = facts.pages <= sampling.ALWAYS_COUNTED_BLOCKS
    if not (cheap or suspicious or dead > 0.05 * max(facts.live_tuples or 0, 1)):
        return q, None
    upto = None
    if truncated:
        # The row cap stopped the scan early: pages past it were never looked at. A plain
        # table is scanned in block order, so the blocks up to the last one seen were.
        if table.kind != "table":
            return q, None
        upto = max(seen)
    blocks = facts.blocks or {0: facts.pages}
    if upto is not None:
        blocks = {0: min(facts.pages, upto + 1)}
    found = sampling.drawn_pages(blocks, seen, percent=plan.percent, seed=options.seed)
    if found is None:
        return (plan.percent / 100.0 if suspicious else q), None
    drawn, _ = found
    share = len(drawn) / max(facts.pages, 1)
    if drawn and 1 - len(seen) / len(drawn) > PATCHY_PAGES and upto is None:
        # Live rows in some stretches of the table and not in others: estimate them region
        # by region, and give q as the share of live rows that implies.
        rows_on = Counter(pages)
        live = sampling.rows_by_region(drawn, rows_on, blocks)
        if live > 0:
            share = len(pages) / live
    return min(1.0, max(share, 1e-12)), (share, len(drawn), facts.pages)


# Share of drawn pages without a live row above which the live rows are counted, if the
# table is modest (ProfileOptions.recount_rows): live rows packed into some pages and not
# others make a page sample's row count as noisy as the number of live pages it drew.
PATCHY_PAGES = 0.1


def _patchy(drawn: tuple[float, int, int] | None, pages: Sequence[int] | None) -> bool:
    if drawn is None or not pages or drawn[1] <= 0:
        return False
    return 1 - len(set(pages)) / drawn[1] > PATCHY_PAGES


async def _count_live_rows(
    conn: asyncpg.Connection,
    table: TableSnapshot,
    rows: float,
    *,
    budget: Budget,
    allowance: int,
    options: ProfileOptions,
) -> int | None:
    """count(*) of a modest table (at most recount_rows rows, within the table's allowance
    or a quarter of the run's unreserved rows), or None when it is not worth it or timed out."""
    if options.recount_rows <= 0 or rows > options.recount_rows or budget.expired:
        return None
    spare = max(0, budget.remaining_rows - budget.reserved) // 4
    if rows > max(allowance, spare):
        return None
    found = await _optional(conn, table, "count of live rows", f"select count(*) from {own_rows(table)}")
    if not found:
        return None
    total = int(found[0][0])
    budget.charge(total)
    return total


def _cross_check(
    table: TableSnapshot, facts: TableFacts, rows: float, n: int, drawn: tuple[float, int, int] | None
) -> None:
    """Compare the sample's live-row estimate with pg_class.reltuples (scaled to today's
    pages) and pg_stat's n_live_tup; record which was believed and why, and the dead share."""
    if drawn is not None:
        _, drawn_pages, total = drawn
        basis = [f"sample: {n:,} live rows on {drawn_pages:,} drawn pages of {total:,} (empty ones included)"]
    else:
        basis = [f"sample: {n:,} live rows over {facts.pages:,} pages"]
    basis[0] += f" = {rows:,.0f} rows (believed: it counts what a reader sees today)"
    if facts.reltuples >= 0 and facts.relpages > 0:
        scaled = facts.reltuples / facts.relpages * facts.pages
        basis.append(f"pg_class.reltuples scaled to today's pages: {scaled:,.0f} ({_versus(scaled, rows)})")
    elif facts.reltuples < 0:
        basis.append("pg_class.reltuples: never analyzed or vacuumed")
    if facts.live_tuples is not None and (facts.live_tuples or facts.dead_tuples):
        basis.append(f"pg_stat n_live_tup: {facts.live_tuples:,} ({_versus(facts.live_tuples, rows)})")
    _dead_share(table, facts, rows)
    table.row_estimate_basis = "; ".join(basis)


def _versus(other: float, believed: float) -> str:
    if believed <= 0:
        return "disagrees" if other > 0 else "agrees"
    gap = other / believed - 1
    if abs(gap) <= 0.1:
        return "agrees"
    return f"{gap:+.0%}: stale since the last VACUUM/ANALYZE, or dead rows counted"


def _dead_share(table: TableSnapshot, facts: TableFacts, live: float) -> None:
    """Dead row versions as a share of all, from pg_stat's n_dead_tup against the live
    estimate (None when the statistics collector has nothing on the table)."""
    if facts.dead_tuples is None:
        return
    dead = max(0, facts.dead_tuples)
    total = dead + max(live, 0.0)
    table.dead_row_share = round(dead / total, 4) if total > 0 else 0.0


def _uncertain(
    column: ColumnSnapshot, profile: ColumnProfile, seen: ColumnValues | None, rows: float
) -> bool:
    """A distinct count worth a second look: estimated (not exact, not a key), mid-cardinality
    (under half the non-null rows), and mostly unseen (estimate well above the values seen),
    or unsteady (see estimators.is_unsteady) on a table too large to recount.
    Near-unique columns (no repeats) and few-valued ones are settled by the first sample;
    values clustered on disk are left to page deduplication (a larger page sample of a
    clustered column does not help the estimator)."""
    figure = profile.distinct_count
    if figure is None or figure.method != ESTIMATE or seen is None or seen.clustered:
        return False
    if column.family in ("bool", "uuid") or seen.distinct < 50:
        return False
    if seen.unsteady:
        return True
    null_fraction = profile.null_fraction.value if profile.null_fraction else 0.0
    non_null_rows = rows * (1 - float(null_fraction))
    return float(figure.value) >= 1.3 * seen.distinct and float(figure.value) <= 0.5 * non_null_rows


async def _optional(
    conn: asyncpg.Connection, table: TableSnapshot, what: str, sql: str
) -> list[asyncpg.Record] | None:
    """Run a query the profile can do without under a savepoint: if it overruns the
    statement or lock timeout, only it is lost (None, and a warning on the table), not the
    figures the first sample gave."""
    try:
        async with conn.transaction():
            return await conn.fetch(sql)
    except (asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError) as exc:
        reason = "lock timeout" if isinstance(exc, asyncpg.LockNotAvailableError) else "statement timeout"
        table.warnings.append(f"{what} skipped ({reason}): the sample's estimates are kept")
        return None


async def _recount_distinct(
    conn: asyncpg.Connection,
    table: TableSnapshot,
    profiles: dict[str, ColumnProfile],
    values: SampledValues,
    *,
    rows: float,
    budget: Budget,
    allowance: int,
    options: ProfileOptions,
) -> None:
    """Exact distinct counts for the columns worth recounting, on a table of at most
    `recount_rows` rows: one aggregate over the table for all of them. Text-like values
    are compared by a 64-bit hash of their text (the sample compares them by code points
    too, and hashing spares the server a sort by collation). The recount takes the table's
    allowance or a quarter of the run's unreserved rows, whichever is more."""
    if options.recount_rows <= 0 or rows > options.recount_rows or budget.expired:
        return
    columns = [
        c
        for c in table.columns
        if c.name in profiles
        and (seen := values.by_column.get(c.name)) is not None
        and seen.recount
        and (figure := profiles[c.name].distinct_count) is not None
        and figure.method == ESTIMATE
    ]
    if not columns:
        return
    spare = max(0, budget.remaining_rows - budget.reserved) // 4
    if rows > max(allowance, spare):
        return
    counts = ", ".join(
        f"count(distinct hashtextextended({quote_ident(c.name)}::text, 0))"
        if c.family in ("text", "other")
        else f"count(distinct {quote_ident(c.name)})"
        for c in columns
    )
    found = await _optional(
        conn, table, "exact recount of distinct values", f"select count(*), {counts} from {own_rows(table)}"
    )
    if not found:
        return
    record = found[0]
    total = int(record[0])
    budget.charge(total)
    for column, distinct in zip(columns, list(record)[1:], strict=True):
        profiles[column.name].distinct_count = Figure(float(distinct), EXACT, total)


async def _refine_distinct(
    conn: asyncpg.Connection,
    table: TableSnapshot,
    facts: TableFacts,
    profiles: dict[str, ColumnProfile],
    values: SampledValues,
    *,
    q: float,
    rows: float,
    budget: Budget,
    allowance: int,
    options: ProfileOptions,
) -> None:
    """Second-stage distinct counts: one query reads a larger TABLESAMPLE SYSTEM sample and
    returns, for each uncertain column, its page-deduplicated frequency-of-frequencies,
    which the same estimator then extrapolates. The figure records the larger sample."""
    if options.refine_rows <= 0 or facts.pages <= 0 or budget.expired:
        return
    columns = [
        c
        for c in table.columns
        if c.name in profiles and _uncertain(c, profiles[c.name], values.by_column.get(c.name), rows)
    ]
    if not columns:
        return
    # Rows beyond the table's allowance: at most a quarter of what the run has left and no
    # other table has reserved, so a tight budget still reaches every table.
    spare = max(0, budget.remaining_rows - budget.reserved) // 4
    target = min(options.refine_rows, max(allowance, spare))
    fraction = min(options.refine_max_fraction, target / max(rows, 1.0))
    if fraction < 2 * q or target < options.sample_rows:
        return  # not enough larger to matter
    picked = ", ".join(f"{_expr(c)} as v{i}" for i, c in enumerate(columns))
    parts = ["select -1 as k, 0::int8 as j, count(*)::int8 as m from s"]
    for i in range(len(columns)):
        parts.append(f"select {i}, -1, count(v{i}) from s")
        parts.append(
            f"select {i}, j, count(*) from (select count(*)::int8 as j from s "
            f"where v{i} is not null group by v{i}) g group by j"
        )
    sql = (
        f"with s as materialized (select {picked} from {own_rows(table)} "
        f"tablesample system ({100 * fraction:.6f}) repeatable ({options.seed + 1})) "
        + " union all ".join(parts)
    )
    records = await _optional(conn, table, "second sample for distinct values", sql)
    if records is None:
        return
    n = 0
    fofs: dict[int, dict[int, int]] = {i: {} for i in range(len(columns))}
    non_null: dict[int, int] = {}
    for k, j, m in records:
        if k == -1:
            n = int(m)
        elif j == -1:
            non_null[k] = int(m)
        else:
            fofs[k][int(j)] = int(m)
    budget.charge(n)
    if n == 0:
        return
    # Row frequencies, not page-deduplicated: these columns are not clustered on disk (the
    # first sample showed it), so pages and rows tell the same story, and rows are cheaper
    # to count. q is the share of the (first-stage estimated) rows drawn.
    q2 = min(1.0, n / max(rows, 1.0))
    population = max(rows, float(n))
    for i, column in enumerate(columns):
        fof = fofs[i]
        d = sum(fof.values())
        non_null_rows = population * non_null.get(i, 0) / n
        distinct = estimate_distinct(d, fof, q=q2, population=non_null_rows)
        profiles[column.name].distinct_count = Figure(round(distinct), ESTIMATE, n)


def page_runs(pages: Sequence[int]) -> list[tuple[int, int]]:
    """The sample's rows as (start, end) index ranges of one page each. A SYSTEM sample
    returns pages in block order and each page's rows together, in item order."""
    if not pages:
        return []
    # Where the page changes, found in C: the sample has tens of thousands of rows.
    changes = list(itertools.compress(range(1, len(pages)), map(operator.ne, pages[1:], pages[:-1])))
    starts = [0, *changes]
    return list(zip(starts, [*changes, len(pages)], strict=True))


def profile_values(
    column: ColumnSnapshot,
    values: Sequence[Any],
    runs: Sequence[tuple[int, int]] | None,
    *,
    q: float,
    rows: float,
    exact: bool,
    sample_method: str = SAMPLE,
) -> tuple[ColumnProfile, ColumnValues]:
    """Figures for one column from the values of n sampled (or all) rows.

    `runs` splits the rows by page (see page_runs) when the sample was taken by page;
    `q` is the page sampling fraction and `rows` the table's (estimated) rows.
    """
    method = EXACT if exact else sample_method
    n = len(values)
    profile = ColumnProfile(method=method, sample_size=n)
    if n == 0:
        return profile, ColumnValues()
    counts = Counter(values)
    counts.pop(None, None)
    nn = sum(counts.values())
    d = len(counts)
    null_fraction = 1 - nn / n
    profile.null_fraction = Figure(
        round(null_fraction, 6), method, n, None if exact else _margin(null_fraction, n)
    )
    clustered = unsteady = recount = False
    if exact:
        profile.distinct_count = Figure(float(d), EXACT, n)
    else:
        fof: dict[int, float] = Counter(counts.values())
        seen_distinct: float = d
        # Page deduplication changes nothing when every value is unique, nor when there are
        # far fewer values than sampled pages (each is then seen across many pages anyway).
        if runs is not None and d < nn and d > len(runs) / 4:
            per_page: Counter[Any] = Counter()
            for start, end in runs:
                per_page.update(set(values[start:end]))
            per_page.pop(None, None)
            page_fof = Counter(per_page.values())
            clustered = page_fof.get(1, 0) > 1.5 * fof.get(1, 0) + 10
            fof = dict(page_fof)
            if clustered:
                carried = page_edge_carryover(runs, values, per_page)
                seen_distinct -= carried
                fof[1] = fof.get(1, 0) - carried
        non_null_rows = rows * (1 - null_fraction)
        found = assess(seen_distinct, fof, q=q, population=non_null_rows)
        distinct, unsteady, recount = found.estimate, found.unsteady, found.recount
        profile.distinct_count = Figure(round(distinct), ESTIMATE, n)
    render = renderer(column)
    top = _top(counts, render)
    if top and column.family != "uuid":
        profile.top_values = Figure([[v, round(k / n, 6)] for v, k in top], method, n)
    if column.family in ORDERED and counts:
        keys: Any = counts.keys()
        if column.family == "number":
            keys = [v for v in keys if v == v]  # NaN is the one value not equal to itself
        try:
            if column.family in HISTOGRAM:
                ordered = sorted(keys)
                low, high = (ordered[0], ordered[-1]) if ordered else (None, None)
            else:
                low, high = min(keys), max(keys)
        except (TypeError, ValueError, decimal.InvalidOperation):
            low = high = None
        if low is not None:
            profile.min = Figure(render(low), method, n)
            profile.max = Figure(render(high), method, n)
            if column.family in HISTOGRAM:
                profile.histogram = Figure(_histogram(ordered, counts, render), method, nn)
    others: list[tuple[str, int]] = []
    if column.family in ("text", "other"):
        # A uniform pseudo-random set of distinct values; seeded, so the same sample gives
        # the same set on every run.
        items = list(counts.items())
        picked = (
            items if len(items) <= VALUE_SAMPLE else random.Random(len(items)).sample(items, VALUE_SAMPLE)
        )
        others = [(str(v), k) for v, k in picked]
    return profile, ColumnValues(
        top=top,
        others=others,
        distinct=d,
        non_null=nn,
        clustered=clustered,
        unsteady=unsteady,
        recount=recount,
    )


def page_edge_carryover(
    runs: Sequence[tuple[int, int]], values: Sequence[Any], per_page: Counter[Any]
) -> float:
    """How many of the sample's values are likely the tail of a run that began on the page
    before, which was not drawn: counted once per page they are still counted twice over
    the table (once on each page they straddle), and the estimator would extrapolate that.

    A drawn page's first value continues the previous page's last one with probability
    1 - w, where w is the share of neighbouring rows within drawn pages that differ. So
    each first value seen on no other drawn page counts as w rather than 1. Rows arrive in
    physical order (a SYSTEM sample scans pages in block order, rows in item order).
    """
    neighbours = differ = candidates = 0
    for start, end in runs:
        first = values[start]
        if first is not None and per_page.get(first) == 1:
            candidates += 1
        for a, b in itertools.pairwise(values[start:end]):
            if a is not None and b is not None:
                neighbours += 1
                differ += a != b
    if neighbours == 0:
        return 0.0
    return candidates * (1 - differ / neighbours)


def _top(counts: Counter[Any], render: Callable[[Any], str]) -> list[tuple[str, int]]:
    """The TOP_K most frequent values, ties broken by their text. Values seen once are not
    "top" (a list of them says nothing), so a unique column has no top values."""
    if not counts:
        return []
    threshold = max(2, heapq.nlargest(TOP_K, counts.values())[-1])
    # Filtered in C: most columns have thousands of values and only a few qualify. Fewer
    # than TOP_K values are counted more often than the threshold (it is the TOP_K-th
    # count); the ties at it are ranked by their text.
    above = [
        (render(v), counts[v])
        for v in itertools.compress(counts.keys(), map(threshold.__lt__, counts.values()))
    ]
    if len(above) < TOP_K:
        tied = itertools.compress(counts.keys(), map(threshold.__eq__, counts.values()))
        above.extend((text, threshold) for text in heapq.nsmallest(TOP_K - len(above), map(render, tied)))
    above.sort(key=lambda item: (-item[1], item[0]))
    return above[:TOP_K]


def _histogram(ordered: list[Any], counts: Counter[Any], render: Callable[[Any], str]) -> dict[str, Any]:
    """Equi-depth bounds (percentile_disc at 0, 0.1, ..., 1) over the non-null rows."""
    running = list(itertools.accumulate(map(counts.__getitem__, ordered)))
    total = running[-1]
    bounds: list[str] = []
    for step in range(HISTOGRAM_BINS + 1):
        wanted = max(1, math.ceil(step / HISTOGRAM_BINS * total))
        index = min(bisect.bisect_left(running, wanted), len(ordered) - 1)
        bounds.append(render(ordered[index]))
    return _equi_depth(bounds)


def renderer(column: ColumnSnapshot) -> Callable[[Any], str]:
    """How the values fetched for `column` (see _expr) are shown: as PostgreSQL prints
    them, timestamps in UTC."""
    if _as_micros(column):
        return _micros_text_utc if "with time zone" in column.data_type else _micros_text
    if column.family in ("integer", "text", "other", "network", "uuid"):
        return str  # fetched as int, str or UUID: str() is what _text would do
    return _text


def _micros_text(value: int, epoch: datetime = _EPOCH) -> str:
    if value >= INFINITY_MICROS:
        return "infinity"
    if value <= -INFINITY_MICROS:
        return "-infinity"
    try:
        return _text(epoch + timedelta(microseconds=value))
    except OverflowError:  # beyond Python's years 1-9999 (PostgreSQL goes further)
        return f"{value / 31_556_952_000_000 + 1970:.0f} (year, approximately)"


def _micros_text_utc(value: int) -> str:
    return _micros_text(value, _EPOCH_UTC)


def _text(value: Any) -> str:
    """A value as PostgreSQL would print it (timestamps in UTC, ISO 8601)."""
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        if value.microsecond:
            text += "." + f"{value.microsecond:06d}".rstrip("0")
        offset = value.utcoffset()
        if offset is not None:
            minutes = int(offset.total_seconds() // 60)
            sign = "-" if minutes < 0 else "+"
            hours, rest = divmod(abs(minutes), 60)
            text += f"{sign}{hours:02d}" + (f":{rest:02d}" if rest else "")
        return text
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _equi_depth(bounds: list[str]) -> dict[str, Any]:
    """Histogram from quantile bounds; equal bounds are merged (their mass adds up)."""
    merged: list[str] = []
    fractions: list[float] = []
    step = 1.0 / (len(bounds) - 1)
    for i, bound in enumerate(bounds):
        if i == 0:
            merged.append(bound)
            continue
        if bound == merged[-1] and fractions:
            fractions[-1] += step
        else:
            merged.append(bound)
            fractions.append(step)
    if len(merged) == 1:
        merged.append(merged[0])
        fractions = [1.0]
    return {"bounds": merged, "fractions": [round(f, 6) for f in fractions]}


def _margin(fraction: float, n: int) -> float:
    """Half-width of a 99.7 % interval for a fraction seen in n rows."""
    return round(3 * math.sqrt(max(fraction * (1 - fraction), 1.0 / n) / n), 6)


async def _apply_stats(
    conn: asyncpg.Connection,
    table: TableSnapshot,
    facts: TableFacts | None,
    profiles: dict[str, ColumnProfile],
    values: SampledValues,
    rows: float,
) -> None:
    """Replace figures with pg_stats ones where PostgreSQL has them."""
    if facts is not None and facts.stats is not None:
        records = facts.stats
    else:
        records = await conn.fetch(STATS_SQL, table.schema, table.name, table.kind == "partitioned_table")
    target = facts.stats_target if facts is not None else 100
    analyzed = int(min(300 * target, max(rows, 0))) or None
    by_name = {r["name"]: r for r in records}
    for column in table.columns:
        stat = by_name.get(column.name)
        if stat is None:
            continue
        profile = profiles.get(column.name) or ColumnProfile(method=STATS)
        profile.method, profile.sample_size = STATS, analyzed
        null_frac = float(stat["null_frac"])
        profile.null_fraction = Figure(round(null_frac, 6), STATS, analyzed)
        n_distinct = float(stat["n_distinct"])
        distinct = -n_distinct * rows if n_distinct < 0 else n_distinct
        profile.distinct_count = Figure(round(distinct), STATS, analyzed)
        mcv = [_BOOL_TEXT.get(v, v) if column.family == "bool" else v for v in stat["mcv"] or []]
        mcf = list(stat["mcf"] or [])
        if mcv:
            profile.top_values = Figure(
                [[v, round(f, 6)] for v, f in list(zip(mcv, mcf, strict=False))[:TOP_K]], STATS, analyzed
            )
        hist = list(stat["hist"] or [])
        if column.family in ORDERED and (hist or mcv):
            candidates = hist + mcv
            ordered = sorted(candidates, key=_sort_key(column.family))
            profile.min = Figure(ordered[0], STATS, analyzed)
            profile.max = Figure(ordered[-1], STATS, analyzed)
        if column.family in HISTOGRAM and len(hist) >= 2:
            profile.histogram = Figure(
                _stats_histogram(hist, mcv, mcf, null_frac, column.family), STATS, analyzed
            )
        profiles[column.name] = profile
        seen = values.by_column.get(column.name)
        if (seen is None or seen.non_null == 0) and mcv:
            # No sample of our own: the MCVs stand in (counts per 100 000 rows).
            top = [(v, max(1, round(f * 100_000))) for v, f in zip(mcv, mcf, strict=False)]
            values.by_column[column.name] = ColumnValues(
                top=top, distinct=len(top), non_null=sum(k for _, k in top)
            )


_BOOL_TEXT = {"t": "true", "f": "false"}


def _sort_key(family: str) -> Any:
    if family in ("integer", "number"):
        return lambda v: float(v)
    return lambda v: v


def _stats_histogram(
    bounds: list[str], mcv: list[str], mcf: list[float], null_frac: float, family: str
) -> dict[str, Any]:
    """pg_stats bounds describe the non-MCV values; add the MCV mass to the bins holding them."""
    key = _sort_key(family)
    bins = len(bounds) - 1
    rest = max(0.0, 1 - null_frac - sum(mcf))
    mass = [rest / bins] * bins
    keys = [key(b) for b in bounds]
    for value, freq in zip(mcv, mcf, strict=False):
        try:
            k = key(value)
        except ValueError:
            continue
        index = next((i for i in range(bins) if k <= keys[i + 1]), bins - 1)
        if k >= keys[0]:
            mass[index] += freq
    total = sum(mass) or 1.0
    return {"bounds": bounds, "fractions": [round(m / total, 6) for m in mass]}


def _apply_constraints(table: TableSnapshot, profiles: dict[str, ColumnProfile]) -> None:
    """What the schema guarantees beats any estimate."""
    rows = table.rows
    single_keys = {cols[0] for cols in table.unique_constraints if len(cols) == 1}
    if len(table.primary_key) == 1:
        single_keys.add(table.primary_key[0])
    for column in table.columns:
        profile = profiles.get(column.name)
        if profile is None:
            continue
        if not column.nullable and profile.null_fraction is not None and profile.method != EXACT:
            profile.null_fraction = Figure(0.0, CONSTRAINT)
        if column.name in single_keys and rows is not None and profile.method != EXACT:
            null_fraction = profile.null_fraction.value if profile.null_fraction else 0.0
            profile.distinct_count = Figure(round(rows * (1 - null_fraction)), CONSTRAINT)


async def _apply_index_extremes(
    conn: asyncpg.Connection,
    table: TableSnapshot,
    facts: TableFacts,
    profiles: dict[str, ColumnProfile],
    budget: Budget,
) -> None:
    """Exact min and max of btree-indexed columns: two index probes each, all columns in
    one statement."""
    columns = [
        c
        for c in table.columns
        if profiles.get(c.name) is not None and c.name in facts.btree_leading and c.family in ORDERED
    ]
    if not columns:
        return
    parts = ", ".join(f"min({quote_ident(c.name)})::text, max({quote_ident(c.name)})::text" for c in columns)
    record = await conn.fetchrow(f"select {parts} from {own_rows(table)}")
    budget.charge(2 * len(columns))
    if record is None:
        return
    for i, column in enumerate(columns):
        low, high = record[2 * i], record[2 * i + 1]
        if low is not None:
            profiles[column.name].min = Figure(low, INDEX)
            profiles[column.name].max = Figure(high, INDEX)

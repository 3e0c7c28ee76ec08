"""Inferred relationships: candidates by name and type, confirmed by value containment.

Candidates. A column `c` of table C may reference a single-column key `k` (primary key or
unique, not partial) of table T when their type families match (integer, text, uuid) and
the name says so:

    0.90  c is <T singular>_<k>, <T>_<k> or <T singular><k>      customer_id -> customers.id
    0.80  c has the key's own name, and that name is not just "id"   sku -> products.sku
    0.70  c ends in _<T singular>_<k> (a role)                      billing_customer_id
    0.60  c is parent_<k> / parent_id in T itself                   categories.parent_id

Without a name match there is no candidate: values alone would tie every small integer
column to every serial key. Declared foreign keys are taken as they are (confidence 1).

Confirmation. Up to 1 000 distinct non-null values of `c`, from a small page sample of C,
are probed against T's key index: containment f = found / probed. A candidate with
f < 0.9 is dropped. Confidence:

    name x g(f) x s(probes) + (1 - name) x g(f) x s(probes) x (1 - density)

with g(f) = sqrt((f - 0.9) / 0.1) (orphans cost confidence), s = probes / (probes + 5)
(three values prove little), and density = how much of the key's value range the key
fills (dense serial keys contain almost any small number, so containment adds little for
them; sparse keys, text and uuid keys contain a random value by chance almost never).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import asyncpg

from uds.discovery.budget import Budget
from uds.discovery.profiles import qualified, quote_ident
from uds.discovery.snapshot import Relationship, TableSnapshot

KEY_FAMILIES = frozenset({"integer", "text", "uuid"})
PROBES = 1_000
MIN_CONTAINMENT = 0.9
SAMPLE_ROWS = 5_000
MIN_SAMPLE = 100


def singular(word: str) -> str:
    w = word.lower()
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("sses", "xes", "ches", "shes", "zes")):
        return w[:-2]
    if w.endswith("ses") and len(w) > 4:
        return w[:-2]
    if w == "people":
        return "person"
    if w.endswith("s") and not w.endswith("ss") and len(w) > 2:
        return w[:-1]
    return w


def name_score(
    column: str, child: TableSnapshot, target: TableSnapshot, key: str
) -> tuple[float, str] | None:
    c, k, t = column.lower(), key.lower(), target.name.lower()
    s = singular(t)
    if target.key == child.key:
        if c in (f"parent_{k}", "parent_id", f"parent_{s}_{k}", f"parent{k}"):
            return 0.6, f"{column} names a parent row of the same table"
        return None
    exact = {f"{s}_{k}", f"{t}_{k}", f"{s}{k}", f"{t}{k}"}
    if c in exact:
        return 0.9, f"{column} names {target.name}.{key}"
    if k != "id" and c == k:
        return 0.8, f"{column} has the name of the key {target.name}.{key}"
    if c.endswith(f"_{s}_{k}") or c.endswith(f"_{t}_{k}"):
        return 0.7, f"{column} names {target.name}.{key} with a role prefix"
    return None


@dataclass(slots=True)
class Candidate:
    child: TableSnapshot
    column: str
    target: TableSnapshot
    key: str
    score: float
    reason: str


def candidates(tables: list[TableSnapshot], declared: list[Relationship]) -> list[Candidate]:
    """Name-and-type candidate pairs, excluding columns already covered by a declared FK."""
    covered = {(r.from_schema, r.from_table, r.from_columns[0]) for r in declared if len(r.from_columns) == 1}
    keys: list[tuple[TableSnapshot, str, str]] = []
    for table in tables:
        if table.kind not in ("table", "partitioned_table", "materialized_view"):
            continue
        singles = [cols[0] for cols in table.unique_constraints if len(cols) == 1]
        if len(table.primary_key) == 1:
            singles.insert(0, table.primary_key[0])
        for key in dict.fromkeys(singles):
            column = table.column(key)
            if column is not None and column.family in KEY_FAMILIES:
                keys.append((table, key, column.family))
    found: dict[tuple[str, str, str], list[Candidate]] = {}
    for child in tables:
        if child.kind not in ("table", "partitioned_table", "materialized_view"):
            continue
        for column in child.columns:
            if column.family not in KEY_FAMILIES or (child.schema, child.name, column.name) in covered:
                continue
            for target, key, family in keys:
                if family != column.family or (target.key == child.key and column.name == key):
                    continue
                named = name_score(column.name, child, target, key)
                if named is None:
                    continue
                score, reason = named
                if target.schema == child.schema:
                    score = min(0.95, score + 0.02)
                slot = (child.schema, child.name, column.name)
                best = found.get(slot)
                candidate = Candidate(child, column.name, target, key, score, reason)
                if not best or score > best[0].score:
                    found[slot] = [candidate]
                elif score == best[0].score:
                    # Equally good names (same table name in two schemas): containment decides.
                    best.append(candidate)
    return [c for group in found.values() for c in group]


CONTAINMENT_SQL = """
select count(*) as probes,
       count(*) filter (where exists (select 1 from {target} p where p.{key} = v.x)) as found
from (select distinct {column} as x from {child} {sample} where {column} is not null limit {probes}) v
"""


async def containment(
    conn: asyncpg.Connection,
    candidate: Candidate,
    *,
    budget: Budget,
    sample_rows: int = SAMPLE_ROWS,
    seed: int = 7,
) -> tuple[int, int]:
    """(probed, found): distinct sampled child values, and how many the key holds."""
    rows = candidate.child.rows or 0.0
    percent = 100.0 * sample_rows / rows if rows > 0 else 100.0
    sample = "" if percent >= 100 else f"tablesample system ({percent:.6f}) repeatable ({seed})"
    sql = CONTAINMENT_SQL.format(
        target=qualified(candidate.target),
        key=quote_ident(candidate.key),
        column=quote_ident(candidate.column),
        child=qualified(candidate.child),
        sample=sample,
        probes=min(PROBES, sample_rows),
    )
    record = await conn.fetchrow(sql)
    assert record is not None
    probes, found = int(record["probes"]), int(record["found"])
    budget.charge(min(rows, sample_rows) + probes)
    return probes, found


def key_density(target: TableSnapshot, key: str) -> float:
    """Share of the key's value range that is filled (1 for a gapless serial; 0 for text)."""
    column = target.column(key)
    if column is None or column.family != "integer" or column.profile is None:
        return 0.0
    profile = column.profile
    try:
        low = float(profile.min.value) if profile.min else None
        high = float(profile.max.value) if profile.max else None
    except (TypeError, ValueError):
        return 1.0
    count = target.rows
    if low is None or high is None or not count:
        return 1.0
    return max(0.0, min(1.0, count / max(high - low + 1, 1)))


def confidence(score: float, probes: int, found: int, density: float) -> float:
    if probes == 0:
        return 0.0
    f = found / probes
    if f < MIN_CONTAINMENT:
        return 0.0
    g = math.sqrt((f - MIN_CONTAINMENT) / (1 - MIN_CONTAINMENT))
    s = probes / (probes + 5)
    evidence = g * s
    return round(score * evidence + (1 - score) * evidence * (1 - density), 3)


async def infer(
    conn: asyncpg.Connection,
    tables: list[TableSnapshot],
    declared: list[Relationship],
    *,
    budget: Budget,
) -> tuple[list[Relationship], list[str]]:
    """Inferred relationships (confirmed ones only) and warnings for probes that failed."""
    inferred: dict[tuple[str, str, str], Relationship] = {}
    warnings: list[str] = []
    pending = candidates(tables, declared)
    for index, candidate in enumerate(pending):
        # What is left of the budget, shared by the candidates still to check.
        share = budget.remaining_rows // (2 * (len(pending) - index))
        sample_rows = min(SAMPLE_ROWS, share)
        if budget.expired or sample_rows < MIN_SAMPLE:
            warnings.append("relationship inference stopped: the run's budget was used up")
            break
        try:
            async with conn.transaction(readonly=True):
                probes, found = await containment(conn, candidate, budget=budget, sample_rows=sample_rows)
        except (
            asyncpg.QueryCanceledError,
            asyncpg.LockNotAvailableError,
            asyncpg.InsufficientPrivilegeError,
            asyncpg.UndefinedTableError,
            asyncpg.UndefinedColumnError,
        ) as exc:
            warnings.append(
                f"could not check {candidate.child.qualified}.{candidate.column} -> "
                f"{candidate.target.qualified}.{candidate.key}: {type(exc).__name__}"
            )
            continue
        density = key_density(candidate.target, candidate.key)
        score = confidence(candidate.score, probes, found, density)
        if score <= 0:
            continue
        relationship = Relationship(
            from_schema=candidate.child.schema,
            from_table=candidate.child.name,
            from_columns=[candidate.column],
            to_schema=candidate.target.schema,
            to_table=candidate.target.name,
            to_columns=[candidate.key],
            declared=False,
            confidence=score,
            reasons=[
                candidate.reason,
                f"{found} of {probes} sampled distinct values found in "
                f"{candidate.target.name}.{candidate.key}",
                f"key density {density:.2f}",
            ],
            containment=round(found / probes, 6),
            sample_size=probes,
        )
        slot = (candidate.child.schema, candidate.child.name, candidate.column)
        if slot not in inferred or inferred[slot].confidence < score:
            inferred[slot] = relationship
    return list(inferred.values()), warnings

"""Inferred relationships: values first, names second.

Targets are the keys of tables, materialized views and partitioned tables: primary keys
and unique constraints or indexes (not partial), single-column or composite, whose columns
are integers, text or uuids (a composite key may also hold dates and times).

Candidates. Every column of a compatible type (same family: integer, text, uuid) may
reference every single-column key of another or the same table; the set is pruned
cheaply, from the profiles already taken, before anything is read:

- type: the same family (integer with integer, text with text ...);
- range: an integer column whose sampled [min, max] does not overlap the key's;
- distinct count: a column with more distinct values than 1.5 x the key's rows + 10;
- prior: the confidence the pair could reach if every sampled value were found (below
  MIN_KEEP, no probe). This is what keeps a wide schema cheap: a column whose values a
  dense key would contain by chance, and whose name says nothing, cannot reach it.

Dense integer keys, and every key of a family with more than VALUE_POOL keys that values
could confirm, are not even paired with every column: they are looked up by the column's
name words, so candidate generation grows with the columns, not columns x keys.

A composite key (k1, k2, ...) is a candidate for a table holding a column of the same
family for each component whose name is the component's own name or names it (see
`name_evidence`).

Containment is measured on a sample: up to 1 000 distinct non-null values (tuples, for a
composite) from a page sample of up to 5 000 rows of the referencing table, each looked up
in the key's index: f = found / probed. Under 0.9 the candidate is dropped (real
references have orphans, but not that many).

Confidence. Two pieces of evidence, combined as independent ones
(1 - (1 - names)(1 - values)), times a type factor (1 for the same type, 0.95 for the
same family, int4 against int8), at most 0.99:

- names = name_evidence x g(f) x s, with g(f) = sqrt((f - 0.9) / 0.1) (orphans cost
  confidence) and s = sqrt(min(1, probes / min(20, key rows))) (a few values prove little,
  unless they are all a small key has);
- values = g(f) x (1 - chance) x card x cover: chance is the probability that the probed
  values would all be found if they fell at random in the key's range (density^probes for
  integer keys, where density = key rows / (max - min + 1); 0 for text and uuid keys);
  for an integer key filling over half its range (a serial), chance is taken as 1:
  amounts, counts and years fall into such a key as easily as references do, so values
  alone prove nothing there. card = min(1, probes / min(20, max(5, key rows))) (five
  values of a text column prove little, unless the key has about that many);
  cover = 0.8 + 0.2 x min(1, 5 x distinct / key rows) (a reference usually uses a fair
  share of its target's keys).

Name evidence (0..1): the column's words without the reference affixes (id, ref, fk, key,
no, nr, num, number), split on "_" and case ("CustomerID" = customer id), singular:

    0.90  the words name the target entity or its key's stem     customer_ref, fk_customer,
                                                                  CustomerID, owner -> owners.owner_id
    0.85  the column has the key's own name (not just "id")      sku -> products.sku
    0.80  a self-reference role in the same table                 parent, manager, supervisor
          (or a stem naming the table itself)
    0.75  the words end with the entity (a role prefix)           billing_customer_id
    0.75  an abbreviation of the entity (4+ letters) plus an affix  custno, cust_id -> customers
          (0.60 for three letters: "cus")

Calibration: with the demo shop and the logistics test database (tests/discovery), every
planted reference scores >= 0.7 and every trap (integer columns inside a dense key's
range, small lookup keys) stays under MIN_KEEP or is not probed at all; bench/discovery.py
measures precision and recall at the 0.7 threshold on the logistics database. A
reference into a dense integer key with a name that says nothing ("picker" into
employees.id 1..N) is not found: values cannot tell it from a counter.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field

import asyncpg

from uds.discovery.budget import Budget
from uds.discovery.profiles import own_rows, quote_ident
from uds.discovery.snapshot import ColumnSnapshot, Relationship, TableSnapshot

KEY_FAMILIES = frozenset({"integer", "text", "uuid"})
COMPOSITE_FAMILIES = KEY_FAMILIES | {"date", "time"}
TARGET_KINDS = ("table", "partitioned_table", "materialized_view")
PROBES = 1_000
MIN_CONTAINMENT = 0.9
SAMPLE_ROWS = 5_000
MIN_SAMPLE = 100
# Relationships scoring under this are not kept; candidates that could not reach it even
# if every value were found are not probed.
MIN_KEEP = 0.5
# Integer keys filling more than this share of their range contain small numbers by chance.
DENSE = 0.5
# Errors that mean the session is gone: the engine ends the run (any other error costs
# only the candidate).
LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)
# Keys of one family that values alone may confirm are paired with every column of that
# family only up to this many; beyond (a wide schema of uuid keys), they are looked up by
# name words like dense integer keys, so candidates stay linear in the columns.
VALUE_POOL = 64
# Probes per run, at most (the candidates with the best prior first).
MAX_PROBES = 3_000

AFFIXES = frozenset({"id", "ids", "ref", "fk", "key", "no", "nr", "num", "number", "pk"})
SELF_ROLES = frozenset(
    {
        "parent",
        "manager",
        "supervisor",
        "boss",
        "reports_to",
        "mentor",
        "predecessor",
        "successor",
        "previous",
        "prev",
        "next",
        "root",
        "master",
        "replaced_by",
        "duplicate_of",
        "merged_into",
    }
)
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z0-9]+|[A-Z]+[0-9]*")


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
    if w.endswith("s") and not w.endswith(("ss", "us", "is")) and len(w) > 2:
        return w[:-1]
    return w


def words(name: str) -> list[str]:
    """Lower-case words of an identifier: split on non-letters and on case changes."""
    out: list[str] = []
    for part in re.split(r"[^A-Za-z0-9]+", name):
        out.extend(m.lower() for m in _CAMEL.findall(part))
    return out


GLUED = ("no", "nr", "id", "num", "ref", "key", "fk")


def _unglue(word: str) -> list[str]:
    """ "custno" -> ["cust", "no"]: an affix written onto the word (at least 3 letters kept)."""
    for affix in GLUED:
        if word.endswith(affix) and len(word) - len(affix) >= 3:
            return [word[: -len(affix)], affix]
    return [word]


@functools.lru_cache(maxsize=65_536)
def stem(name: str) -> tuple[str, bool]:
    """The name's words without reference affixes, singular, joined by "_"; and whether
    an affix was there."""
    ws = [part for w in words(name) for part in _unglue(w)]
    kept = [w for w in ws if w not in AFFIXES]
    if not kept:
        return "", bool(ws)
    kept[-1] = singular(kept[-1])
    return "_".join(kept), len(kept) < len(ws)


def entity(table: TableSnapshot) -> str:
    return _entity(table.name)


@functools.lru_cache(maxsize=65_536)
def _entity(name: str) -> str:
    ws = words(name)
    if not ws:
        return ""
    ws[-1] = singular(ws[-1])
    return "_".join(ws)


def name_evidence(column: str, child: TableSnapshot, target: TableSnapshot, key: str) -> tuple[float, str]:
    """How strongly the column's name says it references target.key (0..1), and why."""
    own, affixed = stem(column)
    if not own:
        return 0.0, ""
    ent = entity(target)
    key_stem, _ = stem(key)
    if target.key == child.key:
        if own in SELF_ROLES or own.split("_")[-1] in SELF_ROLES:
            return 0.8, f"self-reference role {own!r}"
        if own in (ent, key_stem) and column.lower() != key.lower():
            return 0.8, f"name stem {own!r} (same table)"
        return 0.0, ""
    if column.lower() == key.lower() and key_stem not in ("", "id"):
        return 0.85, f"the key's own name {key!r}"
    if own == ent or (own == key_stem and key_stem != ""):
        return 0.9, f"name stem {own!r}"
    if own == singular(target.name.lower()).replace(" ", "_"):
        return 0.9, f"name stem {own!r}"
    if ent and (own.endswith("_" + ent) or (key_stem and own.endswith("_" + key_stem))):
        return 0.75, f"name {own!r} ends with {ent!r} (a role)"
    first = own.split("_")[0]
    if (
        affixed
        and len(first) >= 3
        and first.isalpha()
        and ent.startswith(first)
        and first != ent
        and "_" not in own
    ):
        return (0.75 if len(first) >= 4 else 0.6), f"abbreviation {first!r} of {ent!r}"
    return 0.0, ""


@dataclass(slots=True)
class Key:
    table: TableSnapshot
    columns: list[str]
    families: list[str]
    rows: float
    # For a single integer key: its range and how much of it the key fills.
    low: float | None = None
    high: float | None = None
    density: float = 0.0


@dataclass(slots=True)
class Candidate:
    child: TableSnapshot
    columns: list[str]
    key: Key
    name: float
    name_reason: str
    type_factor: float
    prior: float
    reasons: list[str] = field(default_factory=list)

    @property
    def slot(self) -> tuple[str, str, tuple[str, ...]]:
        return (self.child.schema, self.child.name, tuple(self.columns))


def _number(value: object) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _range(column: ColumnSnapshot) -> tuple[float, float] | None:
    profile = column.profile
    if profile is None or profile.min is None or profile.max is None:
        return None
    low, high = _number(profile.min.value), _number(profile.max.value)
    return (low, high) if low is not None and high is not None else None


def _distinct(column: ColumnSnapshot) -> float | None:
    profile = column.profile
    if profile is None or profile.distinct_count is None:
        return None
    return _number(profile.distinct_count.value)


def keys_of(tables: list[TableSnapshot]) -> list[Key]:
    keys: list[Key] = []
    for table in tables:
        if table.kind not in TARGET_KINDS:
            continue
        sets = [list(table.primary_key)] if table.primary_key else []
        sets += [list(u) for u in table.unique_constraints if list(u) not in sets]
        for columns in sets:
            found = [table.column(c) for c in columns]
            if not columns or any(c is None for c in found):
                continue
            families = [c.family for c in found if c is not None]
            allowed = KEY_FAMILIES if len(columns) == 1 else COMPOSITE_FAMILIES
            if any(f not in allowed for f in families):
                continue
            key = Key(table, columns, families, float(table.rows or 0.0))
            if len(columns) == 1 and families[0] == "integer" and found[0] is not None:
                span = _range(found[0])
                if span is not None:
                    key.low, key.high = span
                    key.density = min(1.0, key.rows / max(span[1] - span[0] + 1, 1.0))
                else:
                    key.density = 1.0
            keys.append(key)
    return keys


def _type_factor(a: ColumnSnapshot, b: ColumnSnapshot) -> float:
    return 1.0 if a.data_type == b.data_type else 0.95


def _s(probes: float, key_rows: float) -> float:
    return math.sqrt(min(1.0, probes / max(1.0, min(20.0, key_rows))))


def _g(f: float) -> float:
    return math.sqrt(max(0.0, (f - MIN_CONTAINMENT) / (1 - MIN_CONTAINMENT))) if f >= MIN_CONTAINMENT else 0.0


def value_evidence(key: Key, probes: float, distinct: float | None, f: float) -> float:
    """What containment alone says (see the module docstring)."""
    if len(key.columns) == 1 and key.families[0] == "integer":
        if key.density > DENSE:
            return 0.0
        chance = key.density ** max(probes, 1.0)
    else:
        chance = 0.0
    card = min(1.0, probes / min(20.0, max(key.rows, 5.0)))
    share = (distinct if distinct is not None else probes) / max(key.rows, 1.0)
    cover = 0.8 + 0.2 * min(1.0, 5 * share)
    return _g(f) * (1 - chance) * card * cover


def combine(name: float, values: float, type_factor: float) -> float:
    return round(min(0.99, type_factor * (1 - (1 - name) * (1 - values))), 3)


def candidates(tables: list[TableSnapshot], declared: list[Relationship]) -> list[Candidate]:
    """Pruned candidate pairs (single and composite), best prior first, excluding columns
    a declared foreign key already covers.

    Only keys that values alone could confirm (text, uuid, sparse integer keys) are paired
    with every column of their family, and only while a family has at most VALUE_POOL of
    them; other keys (dense integer keys always) are paired only with columns whose name
    could name them (looked up by word), so the work grows with the columns, not with
    columns x keys."""
    covered = {(r.from_schema, r.from_table, tuple(r.from_columns)) for r in declared}
    covered_single = {
        (r.from_schema, r.from_table, r.from_columns[0]) for r in declared if len(r.from_columns) == 1
    }
    keys = keys_of(tables)
    by_values: dict[str, list[Key]] = {}
    by_word: dict[tuple[str, str], list[Key]] = {}
    by_prefix: dict[tuple[str, str], list[Key]] = {}
    by_table: dict[tuple[str, str], list[Key]] = {}
    singles = [k for k in keys if len(k.columns) == 1]
    composites = [k for k in keys if len(k.columns) > 1]
    capable: dict[str, int] = {}
    for key in singles:
        if key.families[0] != "integer" or key.density <= DENSE:
            capable[key.families[0]] = capable.get(key.families[0], 0) + 1
    for key in singles:
        family = key.families[0]
        by_table.setdefault(key.table.key, []).append(key)
        if (family != "integer" or key.density <= DENSE) and capable[family] <= VALUE_POOL:
            by_values.setdefault(family, []).append(key)
            continue
        ent, key_stem = entity(key.table), stem(key.columns[0])[0]
        tokens = {ent, key_stem, key.columns[0].lower(), singular(key.table.name.lower())} - {"", "id"}
        for token in tokens:
            by_word.setdefault((family, token), []).append(key)
        for size in range(3, len(ent)):
            if not ent[:size].isalpha():
                break
            by_prefix.setdefault((family, ent[:size]), []).append(key)
    found: list[Candidate] = []
    for child in tables:
        if child.kind not in TARGET_KINDS:
            continue
        for column in child.columns:
            family = column.family
            if family not in KEY_FAMILIES or (child.schema, child.name, column.name) in covered_single:
                continue
            own, _ = stem(column.name)
            ws = own.split("_") if own else []
            pool: dict[int, Key] = {id(k): k for k in by_values.get(family, ())}
            lookups = [own, column.name.lower(), *("_".join(ws[i:]) for i in range(1, len(ws)))]
            for token in lookups:
                for key in by_word.get((family, token), ()):
                    pool[id(key)] = key
            if len(ws) == 1:
                for key in by_prefix.get((family, ws[0]), ()):
                    pool[id(key)] = key
            for key in by_table.get(child.key, ()):
                if key.families[0] == family:
                    pool[id(key)] = key
            distinct = _distinct(column)
            span = _range(column) if family == "integer" else None
            for key in pool.values():
                candidate = _single(child, column, key, distinct, span)
                if candidate is not None:
                    found.append(candidate)
        found.extend(_composite_candidates(child, composites, covered))
    found.sort(key=lambda c: (-c.prior, c.child.qualified, c.columns, c.key.table.qualified))
    return found


def _single(
    child: TableSnapshot,
    column: ColumnSnapshot,
    key: Key,
    distinct: float | None,
    span: tuple[float, float] | None,
) -> Candidate | None:
    target = key.table
    if target.key == child.key and column.name == key.columns[0]:
        return None
    if distinct is not None and distinct > 1.5 * key.rows + 10:
        return None
    if span is not None and key.low is not None and key.high is not None:
        if span[1] < key.low or span[0] > key.high:
            return None
    target_column = target.column(key.columns[0])
    if target_column is None:
        return None
    name, reason = name_evidence(column.name, child, target, key.columns[0])
    type_factor = _type_factor(column, target_column)
    probes = min(distinct or PROBES, PROBES)
    prior = combine(name * _s(probes, key.rows), value_evidence(key, probes, distinct, 1.0), type_factor)
    if prior < MIN_KEEP:
        return None
    return Candidate(child, [column.name], key, name, reason, type_factor, prior)


def _composite_candidates(
    child: TableSnapshot, keys: list[Key], covered: set[tuple[str, str, tuple[str, ...]]]
) -> list[Candidate]:
    out: list[Candidate] = []
    for key in keys:
        if len(key.columns) < 2 or key.table.key == child.key:
            continue
        picked: list[str] = []
        names: list[float] = []
        for key_column, family in zip(key.columns, key.families, strict=True):
            best: tuple[float, str] | None = None
            for column in child.columns:
                if column.family != family or column.name in picked:
                    continue
                if column.name.lower() == key_column.lower():
                    score = 1.0
                else:
                    score, _ = name_evidence(column.name, child, key.table, key_column)
                    if stem(column.name)[0] and stem(column.name)[0] == stem(key_column)[0]:
                        score = max(score, 0.9)
                if score > 0 and (best is None or score > best[0]):
                    best = (score, column.name)
            if best is None:
                break
            names.append(best[0])
            picked.append(best[1])
        if len(picked) != len(key.columns):
            continue
        if (child.schema, child.name, tuple(picked)) in covered:
            continue
        name = min(names)
        reason = f"columns ({', '.join(picked)}) name the key ({', '.join(key.columns)})"
        prior = combine(name, value_evidence(key, PROBES, None, 1.0), 1.0)
        if prior >= MIN_KEEP:
            out.append(Candidate(child, picked, key, name, reason, 1.0, prior))
    return out


CONTAINMENT_SQL = """
select count(*) as probes,
       count(*) filter (where exists (select 1 from {target} p where {match})) as found
from (select distinct {columns} from {child} {sample} where {not_null} limit {probes}) v
"""


async def containment(
    conn: asyncpg.Connection,
    candidate: Candidate,
    *,
    budget: Budget,
    sample_rows: int = SAMPLE_ROWS,
    seed: int = 7,
) -> tuple[int, int]:
    """(probed, found): distinct sampled child values (tuples), and how many the key holds."""
    rows = candidate.child.rows or 0.0
    percent = 100.0 * sample_rows / rows if rows > 0 else 100.0
    sample = "" if percent >= 100 else f"tablesample system ({percent:.6f}) repeatable ({seed})"
    names = [f"x{i}" for i in range(len(candidate.columns))]
    matches = []
    for key_column, column, x in zip(candidate.key.columns, candidate.columns, names, strict=True):
        target = candidate.key.table.column(key_column)
        child = candidate.child.column(column)
        assert target is not None and child is not None
        matches.append(_match(f"p.{quote_ident(key_column)}", target, f"v.{x}", child))
    sql = CONTAINMENT_SQL.format(
        target=own_rows(candidate.key.table),
        match=" and ".join(matches),
        columns=", ".join(f"{quote_ident(c)} as {x}" for c, x in zip(candidate.columns, names, strict=True)),
        child=own_rows(candidate.child),
        sample=sample,
        not_null=" and ".join(f"{quote_ident(c)} is not null" for c in candidate.columns),
        probes=min(PROBES, sample_rows),
    )
    record = await conn.fetchrow(sql)
    assert record is not None
    probes, found = int(record["probes"]), int(record["found"])
    budget.charge(min(rows, sample_rows) + probes)
    return probes, found


TEXT_TYPES = re.compile(r"^(text|character varying|character|varchar|char|bpchar|name|citext)\b")


def _match(key: str, target: ColumnSnapshot, value: str, child: ColumnSnapshot) -> str:
    """key = value, with the value cast to the key's type so the key's index serves the
    lookup; enums and other text-like types of different kinds are compared as text."""
    if target.data_type == child.data_type:
        return f"{key} = {value}"
    if target.family == "text" and not TEXT_TYPES.match(target.data_type):
        return f"{key}::text = {value}::text"  # an enum key: its values are few
    if target.family == "text":
        return f"{key} = {value}::text"
    return f"{key} = {value}::{target.data_type}"


def score(candidate: Candidate, probes: int, found: int) -> tuple[float, list[str]]:
    """The confidence and its reasons, once containment is measured."""
    if probes == 0:
        return 0.0, []
    f = found / probes
    if f < MIN_CONTAINMENT:
        return 0.0, []
    key = candidate.key
    distinct = (
        _distinct(candidate.child.column(candidate.columns[0])) if len(candidate.columns) == 1 else None
    )  # type: ignore[arg-type]
    names = candidate.name * _g(f) * _s(probes, key.rows)
    values = value_evidence(key, probes, distinct, f)
    confidence = combine(names, values, candidate.type_factor)
    target = f"{key.table.name}.{','.join(key.columns)}"
    reasons = [f"{f:.0%} of {probes:,} sampled distinct values found in {target}"]
    if candidate.name_reason:
        reasons.append(candidate.name_reason)
    if len(key.columns) == 1 and key.families[0] == "integer":
        if key.density > DENSE:
            reasons.append(
                f"{target} fills {key.density:.0%} of its range: values alone prove little, the name decides"
            )
        else:
            reasons.append(f"{target} fills {key.density:.1%} of its range: chance containment unlikely")
    elif values > 0:
        reasons.append(f"{key.families[0]} key: chance containment unlikely")
    if candidate.type_factor < 1:
        reasons.append("types differ within their family")
    reasons.append(f"confidence {confidence:.2f} (names {names:.2f}, values {values:.2f})")
    return confidence, reasons


async def infer(
    conn: asyncpg.Connection,
    tables: list[TableSnapshot],
    declared: list[Relationship],
    *,
    budget: Budget,
) -> tuple[list[Relationship], list[str]]:
    """Inferred relationships (confirmed ones only) and warnings for probes that failed."""
    inferred: dict[tuple[str, str, tuple[str, ...]], Relationship] = {}
    warnings: list[str] = []
    pending = candidates(tables, declared)
    if len(pending) > MAX_PROBES:
        warnings.append(
            f"relationship inference checked the {MAX_PROBES} most likely of {len(pending)} candidate pairs"
        )
        pending = pending[:MAX_PROBES]
    for index, candidate in enumerate(pending):
        slot = candidate.slot
        best = inferred.get(slot)
        if best is not None and best.confidence >= candidate.prior:
            continue  # already found something this candidate cannot beat
        # What is left of the budget, shared by the candidates still to check.
        share = budget.remaining_rows // (2 * (len(pending) - index))
        sample_rows = min(SAMPLE_ROWS, share)
        if budget.expired or sample_rows < MIN_SAMPLE:
            warnings.append("relationship inference stopped: the run's budget was used up")
            break
        try:
            async with conn.transaction(readonly=True):
                probes, found = await containment(conn, candidate, budget=budget, sample_rows=sample_rows)
        except asyncpg.PostgresError as exc:
            if isinstance(exc, LOST):
                raise
            warnings.append(
                f"could not check {candidate.child.qualified}({', '.join(candidate.columns)}) -> "
                f"{candidate.key.table.qualified}({', '.join(candidate.key.columns)}): {type(exc).__name__}"
            )
            continue
        confidence, reasons = score(candidate, probes, found)
        if confidence < MIN_KEEP:
            continue
        relationship = Relationship(
            from_schema=candidate.child.schema,
            from_table=candidate.child.name,
            from_columns=list(candidate.columns),
            to_schema=candidate.key.table.schema,
            to_table=candidate.key.table.name,
            to_columns=list(candidate.key.columns),
            declared=False,
            confidence=confidence,
            reasons=reasons,
            containment=round(found / probes, 6),
            sample_size=probes,
        )
        if best is None or best.confidence < confidence:
            inferred[slot] = relationship
    return list(inferred.values()), warnings

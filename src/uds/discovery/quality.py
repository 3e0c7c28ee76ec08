"""Quality per column and per table: completeness, key uniqueness, validity, references.

A table starts at 1.0 and loses points for what is wrong, each with a reason a person can
act on; the score is never below 0. Penalties (capped per kind so one wide sparse table
does not read as broken):

- no primary key (tables only): 0.15
- a column that carries no information (all null, or one constant value, as measured; the
  reason gives the sample size when sampled): 0.03 each, at most 0.1
- a nullable column mostly empty (over half null): 0.05 each, at most 0.15
- typed values that are invalid (e-mail, phone, card, URL, IP, country, currency,
  postal code): twice the invalid share, at most 0.15 per column
- a key that is not unique (identifier columns and person e-mail addresses expected to be
  unique, but not declared so): 0.1 x duplicate share x 10, at most 0.1
- dead row versions (updated or deleted, not yet vacuumed) at 20 % or more: 0.05, the
  reason saying "about 50 % dead rows: vacuum pending"
- references with orphans (inferred relationships whose sampled values are not all in
  the referenced key): three times the orphan share, at most 0.1 each
"""

from __future__ import annotations

from uds.discovery.snapshot import ColumnQuality, ColumnSnapshot, Quality, Relationship, TableSnapshot

# Dead row versions (pg_stat n_dead_tup against the live estimate) worth telling the user.
DEAD_SHARE = 0.2

VALIDATED = frozenset(
    {
        "email",
        "phone",
        "card_number",
        "url",
        "ip_address",
        "country",
        "currency",
        "postal_code",
        "person_name",
    }
)


def column_quality(table: TableSnapshot, column: ColumnSnapshot, validity: float | None) -> ColumnQuality:
    quality = ColumnQuality(validity=validity)
    profile = column.profile
    if profile is None:
        return quality
    if profile.null_fraction is not None:
        quality.completeness = round(1 - float(profile.null_fraction.value), 6)
    if _expected_unique(table, column) and profile.distinct_count is not None and table.rows:
        non_null = table.rows * (quality.completeness if quality.completeness is not None else 1.0)
        if non_null > 0:
            quality.uniqueness = round(min(1.0, float(profile.distinct_count.value) / non_null), 6)
    return quality


def _expected_unique(table: TableSnapshot, column: ColumnSnapshot) -> bool:
    if column.name in table.primary_key or [column.name] in table.unique_constraints:
        return True
    if column.semantic_type == "email":
        return any(c.semantic_type == "person_name" for c in table.columns)
    return False


def _no_information(column: ColumnSnapshot) -> str | None:
    """ "x is empty (all null in 4,000 sampled rows)" or "x holds one value ('a') in all
    1,200 rows": a column that tells nothing, as measured."""
    profile = column.profile
    if profile is None or profile.null_fraction is None:
        return None
    sampled = profile.method != "exact" and profile.sample_size
    rows = profile.sample_size
    where = f"{rows:,} sampled rows" if sampled else (f"all {rows:,} rows" if rows else "every row")
    if float(profile.null_fraction.value) >= 1.0 and profile.null_fraction.method in (
        "exact",
        "sample",
        "stats",
    ):
        return f"{column.name} is empty (all null in {where.removeprefix('all ')}): it carries no information"
    distinct = profile.distinct_count
    if (
        distinct is not None
        and distinct.method in ("exact", "sample", "estimate", "stats")
        and distinct.value == 1
    ):
        top = profile.top_values.value if profile.top_values and profile.top_values.value else []
        shown = f" ({top[0][0]!r})" if top and not column.pii else ""
        nulls = float(profile.null_fraction.value)
        tail = f", null in {nulls:.0%} of them" if nulls > 0 else ""
        return f"{column.name} holds one value{shown} in {where}{tail}: it carries no information"
    return None


def table_quality(table: TableSnapshot, relationships: list[Relationship]) -> Quality:
    penalties: list[tuple[float, str]] = []
    if table.kind in ("table", "partitioned_table") and not table.primary_key:
        penalties.append((0.15, "no primary key"))
    sparse = 0.0
    empty = 0.0
    for column in table.columns:
        q = column.quality
        if q is None:
            continue
        blank = _no_information(column)
        if blank is not None:
            if empty < 0.1:
                empty += 0.03
                penalties.append((0.03, blank))
            else:
                penalties.append((0.0, blank))
            continue
        if column.nullable and q.completeness is not None and q.completeness < 0.5 and sparse < 0.15:
            sparse += 0.05
            penalties.append((0.05, f"{column.name} is {1 - q.completeness:.0%} empty"))
        if column.semantic_type in VALIDATED and q.validity is not None and q.validity < 0.995:
            invalid = 1 - q.validity
            what = column.semantic_type.replace("_", " ")
            penalties.append(
                (min(0.15, 2 * invalid), f"{column.name}: {invalid:.1%} of values are not a valid {what}")
            )
        declared_unique = column.name in table.primary_key or [column.name] in table.unique_constraints
        if not declared_unique and q.uniqueness is not None and q.uniqueness < 0.999:
            duplicated = 1 - q.uniqueness
            penalties.append(
                (min(0.1, duplicated), f"{column.name} should be unique but {duplicated:.1%} are repeats")
            )
    for rel in relationships:
        if rel.declared or (rel.from_schema, rel.from_table) != table.key or rel.containment is None:
            continue
        orphans = 1 - rel.containment
        if orphans > 0:
            penalties.append(
                (
                    min(0.1, 3 * orphans),
                    f"{', '.join(rel.from_columns)}: {orphans:.1%} of sampled values have no match in "
                    f"{rel.to_schema}.{rel.to_table}({', '.join(rel.to_columns)})",
                )
            )
    if table.dead_row_share is not None and table.dead_row_share >= DEAD_SHARE:
        penalties.append((0.05, f"about {round(100 * table.dead_row_share)} % dead rows: vacuum pending"))
    if not table.profiled or table.profile_method == "skipped":
        penalties.append((0.0, "not profiled: quality is judged on structure only"))
    score = max(0.0, 1.0 - sum(p for p, _ in penalties))
    reasons = [reason for _, reason in penalties] or ["no issues found"]
    return Quality(score=round(score, 3), reasons=reasons)

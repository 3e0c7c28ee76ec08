"""Discovery: map a tenant's database (structure, profiles, relationships, semantics, quality).

engine.py        discover(): the whole run over one guarded, read-only connection
structure.py     schemas, tables, columns, keys, indexes, row estimates from pg_catalog
profiles.py      per-column figures from pg_stats, a TABLESAMPLE sample, or every row
estimators.py    distinct counts from page samples
semantics.py     semantic types, PII, validity; masking of PII values
relationships.py inferred foreign keys (names + containment) beside declared ones
quality.py       column and table quality with reasons
drift.py         what changed between two runs
snapshot.py      the catalog model (dataclasses, JSON round trip)
models.py        runs and stored catalogs (tenant tables); service.py reads and writes them
jobs.py          the `discovery` job kind: one resumable step per table
"""

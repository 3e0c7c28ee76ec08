"""Dashboards: from a catalog and a goal to widgets (the engine is pure: no database, no I/O).

goal.py        read_goal(): the goal's words into intents, aggregates, a chart type, fields
catalogfacts.py what each column can be in a chart (measure, time, category, label, PII)
dimensions.py  the measures, time axes, categories and entities one table offers
candidates.py  find_candidates(): widgets the catalog supports, each with its SQL and reason
querybuild.py  the SQL of a widget: quoted, schema-qualified, aggregated, ordered, limited
generator.py   choose() and generate_dashboard(): score, dedupe, lay out (12-column grid)
draft.py       DashboardDraft, WidgetDraft, GridPos (JSON-safe, deterministic)
sqlcheck.py    check_widget_sql(): one read-only SELECT over allowed schemas (pglast)
vegalite.py    Vega-Lite specs, validate_spec() against the vendored schema, inline_data()
insights.py    compute_insights(): plain statistics on fetched rows, as sentences
grafana.py     grafana_dashboard(): a Grafana dashboard model that imports as-is
grafana_model.py the fields the export writes, as strict pydantic models
names.py       word rules shared by goal reading and titles (split, singular, synonyms)
"""

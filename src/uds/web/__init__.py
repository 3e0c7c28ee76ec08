"""Browser-facing routes: the dashboard page, widget and dashboard pictures, static files
and GraphiQL served from local files (docs/dashboards.md, "The page and pictures")."""

"""GraphiQL served from UDS's own files: `GET /graphql` from a browser, in dev mode.

Strawberry's own GraphiQL page loads React and GraphiQL from a CDN, so without internet
it shows only "Loading...". This page loads the same kind of files from
`/static/vendor/` (fetched at setup time by `uds.web.vendor`) and starts GraphiQL with
`/static/graphiql-start.js`: no inline script, no third-party host. When the files are
missing it answers 503 and says how to get them.
"""

from __future__ import annotations

from starlette.responses import HTMLResponse, Response

from uds.web import vendor
from uds.web.security import graphiql_headers

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>UDS GraphiQL</title>
<link rel="stylesheet" href="/static/vendor/graphiql.min.css">
<link rel="stylesheet" href="/static/graphiql.css">
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script src="/static/vendor/react.production.min.js"></script>
<script src="/static/vendor/react-dom.production.min.js"></script>
<script src="/static/vendor/graphiql.min.js"></script>
<script src="/static/graphiql-start.js"></script>
</body>
</html>
"""

MISSING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>GraphiQL is not installed · UDS</title>
<link rel="stylesheet" href="/static/uds.css"></head>
<body><main class="error-page"><h1>503</h1><p class="code">GRAPHIQL_ASSETS_MISSING</p>
<p>{hint}.</p><p>GraphQL itself works: POST your queries to this URL.</p></main></body></html>
"""


def graphiql_response() -> Response:
    missing = vendor.missing(vendor.VENDOR_DIR)
    if missing:
        return HTMLResponse(
            MISSING.format(hint=vendor.SETUP_HINT), status_code=503, headers=graphiql_headers()
        )
    return HTMLResponse(PAGE, headers=graphiql_headers())

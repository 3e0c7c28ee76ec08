"""`GET /static/<name>`: UDS's own stylesheets and scripts, and GraphiQL's vendored files.

Only the files listed here are served (no directory walking), with their content type,
`nosniff` and a public cache lifetime: they hold no tenant data.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

from uds.web import vendor
from uds.web.security import static_headers

STATIC_DIR = Path(__file__).resolve().parent / "static"
TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".LICENSE": "text/plain; charset=utf-8",
}
OWN = ("uds.css", "graphiql.css", "graphiql-start.js")


def _files() -> dict[str, Path]:
    files = {name: STATIC_DIR / name for name in OWN}
    files.update({f"vendor/{f.name}": vendor.VENDOR_DIR / f.name for f in vendor.FILES})
    return files


FILES = _files()


async def static_file(request: Request) -> Response:
    name = request.path_params["name"]
    path = FILES.get(name)
    if path is None or not path.is_file():
        hint = f" ({vendor.SETUP_HINT})" if name.startswith("vendor/") and path is not None else ""
        message = f"not found: /static/{name}{hint}"
        return PlainTextResponse(message, status_code=404, headers=static_headers())
    media_type = TYPES.get(path.suffix, "application/octet-stream")
    return FileResponse(path, media_type=media_type, headers=static_headers())

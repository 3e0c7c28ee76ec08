"""Response headers of the browser-facing routes: strict CSP and friends.

The dashboard page runs no script and loads only UDS's own stylesheet: its policy allows
nothing else (`default-src 'none'`), its one inline style block by hash, no framing
(`frame-ancestors 'none'`), no referrer (a signed link must not leak in a Referer header)
and no caching (the page shows tenant data).
"""

from __future__ import annotations

COMMON = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}

SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


def page_csp(style_hash: str) -> str:
    styles = "'self'" + (f" '{style_hash}'" if style_hash else "")
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'none'",
            f"style-src {styles}",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def page_headers(style_hash: str) -> dict[str, str]:
    """Headers of the dashboard page (and of its error pages)."""
    return {**COMMON, "content-security-policy": page_csp(style_hash), "cache-control": "no-store"}


def picture_headers(media_type: str) -> dict[str, str]:
    """Headers of a widget or dashboard picture: private, and an SVG can run nothing."""
    headers = {**COMMON, "cache-control": "private, max-age=60"}
    if media_type == "image/svg+xml":
        # Opened on its own, an SVG is a document: this one may not script or load anything.
        headers["content-security-policy"] = SVG_CSP
    return headers


def graphiql_headers() -> dict[str, str]:
    """GraphiQL: scripts and styles from UDS only; its editor sets inline styles and
    its fonts are data: URLs; it talks to this origin only (HTTP and WebSocket)."""
    csp = "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return {**COMMON, "content-security-policy": csp, "cache-control": "no-store"}


def static_headers() -> dict[str, str]:
    return {"x-content-type-options": "nosniff", "cache-control": "public, max-age=3600"}

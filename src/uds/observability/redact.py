"""Secrets out of log text: bearer tokens, JWTs, passwords, DSN passwords, client secrets.

Applied to every formatted log line (uds.observability.logging), whoever logged it, so a
library that prints a connection URL or a header dict cannot leak through. It works on
shapes, not on known values: `Authorization: ...`, `Bearer <token>`, anything that looks
like a JWT, `scheme://user:password@`, and `key=value` / `"key": "value"` pairs whose key
names a secret (password, secret, token, api key, private key, secret keys). The query
string of a full URL is dropped: it may hold anything, URL-encoded where no shape shows.
"""

from __future__ import annotations

import re

MASK = "[REDACTED]"

# A line without any of these cannot match a pattern below: most lines skip the regexes.
_TRIGGERS = ("pass", "pwd", "secret", "token", "bearer", "basic", "authori", "eyj", "://", "key")

_SECRET_KEY = (
    r"(?:[a-z0-9_-]*(?:password|passwd|secret|token|api[_-]?key|private[_-]?key|secret[_-]?keys?)"
    r"|pwd|authorization|proxy-authorization|cookie|set-cookie)"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "key": "value", 'key': 'value', key=value, key: value (headers, dict reprs, libpq DSNs)
    (
        re.compile(
            rf"""(?ix)
            (?P<key>["']?\b{_SECRET_KEY}\b["']?\s*[:=]\s*)
            (?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|(?:bearer|basic)\s+\S+|[^\s;&}}\]\)]+)
            """
        ),
        rf"\g<key>{MASK}",
    ),
    # (b'authorization', b'Bearer ...') in ASGI header lists
    (re.compile(r"(?i)(b?['\"]authorization['\"],\s*b?['\"])[^'\"]*"), rf"\g<1>{MASK}"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\g<1> {MASK}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), MASK),
    # scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@'\"]*):[^@\s/'\"]*@"), rf"\g<1>:{MASK}@"),
    # A URL's query string, whatever it holds (a GraphQL GET's variables, URL-encoded).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s?#'\"]+)\?[^\s#'\"]+"), "\\g<1>?…"),
)


def redact(text: str) -> str:
    """The text with everything that looks like a secret replaced by [REDACTED]."""
    lowered = text.lower()
    if not any(trigger in lowered for trigger in _TRIGGERS):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text

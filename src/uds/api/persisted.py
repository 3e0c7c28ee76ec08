"""Persisted operations: Apollo's automatic persisted queries, and a safelist for production.

A request names its document by hash in `extensions.persistedQuery`
(`{"version": 1, "sha256Hash": "<hex>"}`), by POST or by GET. The first time, the server
does not know the hash and answers PERSISTED_QUERY_NOT_FOUND; the client sends the hash
with the document, the server checks that the hash is the document's SHA-256, keeps it
(in this process and in Redis, for every API process) and runs it. Later requests send
the hash alone. See docs/performance.md.

`UDS_PERSISTED_QUERIES=safelist` runs only the documents of UDS_PERSISTED_QUERIES_FILE
(an Apollo persisted-query manifest, or a JSON object of hash -> document): anything
else is refused with PERSISTED_QUERY_NOT_IN_LIST, sent by hash or in full, and nothing is
registered. `off` refuses hashes with PERSISTED_QUERY_NOT_SUPPORTED.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from uds.errors import (
    BadUserInput,
    ConfigError,
    PersistedQueryNotFound,
    PersistedQueryNotInList,
    PersistedQueryNotSupported,
)
from uds.settings import Settings

log = logging.getLogger(__name__)

_HASH = re.compile(r"[0-9a-f]{64}")
LOCAL_SIZE = 5000


def document_hash(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


def load_manifest(path: Path) -> dict[str, str]:
    """hash -> document from an Apollo manifest or a plain JSON object; checked on load."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"UDS_PERSISTED_QUERIES_FILE {path}: {exc}") from None
    if isinstance(raw, dict) and isinstance(raw.get("operations"), list):
        pairs = [(op.get("id"), op.get("body")) for op in raw["operations"] if isinstance(op, dict)]
    elif isinstance(raw, dict):
        pairs = list(raw.items())
    else:
        raise ConfigError(f"UDS_PERSISTED_QUERIES_FILE {path}: expected a manifest or an object")
    found: dict[str, str] = {}
    for key, body in pairs:
        if not isinstance(key, str) or not isinstance(body, str) or document_hash(body) != key:
            raise ConfigError(f"UDS_PERSISTED_QUERIES_FILE {path}: {key!r} is not the SHA-256 of its body")
        found[key] = body
    return found


class PersistedQueries:
    """Resolves a request's document from its query text and persisted-query extension."""

    def __init__(self, settings: Settings, redis: Redis | None) -> None:
        self.mode = settings.persisted_queries
        self._redis = redis
        self._prefix = f"{settings.redis_prefix}apq:"
        self._ttl = settings.apq_ttl_seconds
        self._listed: dict[str, str] = (
            load_manifest(settings.persisted_queries_file) if settings.persisted_queries_file else {}
        )
        self._allowed = set(self._listed)  # safelist mode: exactly these
        self._local: OrderedDict[str, str] = OrderedDict()

    async def document(self, query: Any, extensions: Any) -> str | None:
        """The document to run (None: the request named none; the caller reports it).

        Raises PersistedQueryNotFound / NotSupported / NotInList, or BadUserInput for a
        malformed extension or a hash that is not the document's.
        """
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        if persisted is None:
            if isinstance(query, str) and not self.allowed(query):
                raise PersistedQueryNotInList("this operation is not on the server's safelist")
            return query if isinstance(query, str) else None
        if self.mode == "off":
            raise PersistedQueryNotSupported("PersistedQueryNotSupported")
        if not isinstance(persisted, dict) or persisted.get("version") != 1:
            raise BadUserInput("extensions.persistedQuery must be {version: 1, sha256Hash}")
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str) or not _HASH.fullmatch(digest):
            raise BadUserInput("extensions.persistedQuery.sha256Hash must be 64 lower-case hex digits")
        if isinstance(query, str):
            if document_hash(query) != digest:
                raise BadUserInput("provided sha does not match query")
            if self.mode == "safelist":
                if digest not in self._allowed:
                    raise PersistedQueryNotInList("this operation is not on the server's safelist")
                return query
            await self._remember(digest, query)
            return query
        if query is not None:
            raise BadUserInput("query must be a string")
        found = await self._lookup(digest)
        if found is None:
            raise PersistedQueryNotFound("PersistedQueryNotFound")
        return found

    async def _lookup(self, digest: str) -> str | None:
        found = self._listed.get(digest) or self._local.get(digest)
        if found is not None:
            if digest in self._local:
                self._local.move_to_end(digest)
            return found
        if self.mode != "apq" or self._redis is None:
            return None
        try:
            raw = await self._redis.get(self._prefix + digest)
        except Exception:  # Redis away: the client resends the document
            log.warning("persisted query lookup failed", exc_info=True)
            return None
        if raw is None:
            return None
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        if document_hash(text) != digest:  # never trust storage for what we run
            return None
        self._keep(digest, text)
        return text

    async def _remember(self, digest: str, query: str) -> None:
        if digest in self._local or digest in self._listed:
            return
        self._keep(digest, query)
        if self._redis is not None:
            try:
                await self._redis.set(self._prefix + digest, query, ex=self._ttl)
            except Exception:
                log.warning("could not store a persisted query", exc_info=True)

    def _keep(self, digest: str, query: str) -> None:
        self._local[digest] = query
        self._local.move_to_end(digest)
        while len(self._local) > LOCAL_SIZE:
            self._local.popitem(last=False)

    def allowed(self, query: str) -> bool:
        """Safelist mode: whether a document may run (WebSocket subscriptions ask this)."""
        return self.mode != "safelist" or document_hash(query) in self._allowed

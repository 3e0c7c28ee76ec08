"""The database pool, counted: connections in use, and tasks waiting for one.

SQLAlchemy's async queue pool with two gauges moved where a connection leaves and comes
back (`_do_get` / `_do_return_conn`, the pool's own extension points). A task counts as
waiting only when the pool is exhausted as it asks, so the gauge reads zero on a healthy
server and the number of stuck requests on a starved one.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.pool import AsyncAdaptedQueuePool

from uds.observability.metrics import DB_IN_USE, DB_WAITING

# SQLAlchemy names a pool's logger after its class, so this pool logs as
# uds.observability.dbpool.ObservedPool. SQLAlchemy keeps its own loggers at WARNING unless
# asked (echo_pool); do the same here, or every dispose would be an INFO line.
_logger = logging.getLogger(f"{__name__}.ObservedPool")
if _logger.level == logging.NOTSET:
    _logger.setLevel(logging.WARNING)


class ObservedPool(AsyncAdaptedQueuePool):
    def _do_get(self) -> Any:
        exhausted = self._pool.empty() and 0 <= self._max_overflow <= self._overflow
        if exhausted:
            DB_WAITING.inc()
            try:
                record = super()._do_get()
            finally:
                DB_WAITING.dec()
        else:
            record = super()._do_get()
        DB_IN_USE.inc()
        return record

    def _do_return_conn(self, record: Any) -> None:
        DB_IN_USE.dec()
        super()._do_return_conn(record)

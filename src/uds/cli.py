"""The `uds` command: up, serve, worker, jobs, dashboards, migrate, tenants, token, schema."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from uds.errors import UdsError
from uds.settings import Settings

DEMO_TENANT = "demo"
DEV_SUBJECT = "dev@uds.local"
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result: int = args.func(args)
        return result
    except UdsError as exc:
        print(f"uds: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uds", description="UDS control plane")
    sub = parser.add_subparsers(metavar="COMMAND")

    up = sub.add_parser("up", help="run everything (embedded servers when none are configured)")
    _host_port(up)
    up.set_defaults(func=_up)

    serve = sub.add_parser("serve", help="run the API server")
    _host_port(serve)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=_serve)

    worker = sub.add_parser("worker", help="run a job worker (arq); Ctrl-C stops it")
    worker.add_argument("--concurrency", type=int, help="jobs run at once (default: UDS_WORKER_CONCURRENCY)")
    worker.set_defaults(func=_worker)

    jobs = sub.add_parser("jobs", help="follow background jobs")
    jsub = jobs.add_subparsers(metavar="ACTION", required=True)
    watch = jsub.add_parser("watch", help="show a job's progress until it ends; exit 0 if it succeeded")
    watch.add_argument("id", help="job id")
    watch.add_argument("--tenant", required=True, help="the job's tenant (slug)")
    watch.set_defaults(func=_jobs_watch)

    dashboards = sub.add_parser("dashboards", help="generate dashboards")
    dsub = dashboards.add_subparsers(metavar="ACTION", required=True)
    dgen = dsub.add_parser("generate", help="generate a dashboard, show its progress, print its URL")
    dgen.add_argument("--source", required=True, help="data source name")
    dgen.add_argument("--goal", default="", help="what to show, in plain words")
    dgen.add_argument("--tenant", default=DEMO_TENANT, help=f"tenant slug (default {DEMO_TENANT})")
    dgen.add_argument("--table", action="append", default=[], help="only this table (repeatable)")
    dgen.add_argument("--max-widgets", type=int, default=8, help="1 to 12 (default 8)")
    dgen.add_argument("--png", type=Path, help="also write the dashboard's picture to this file")
    dgen.add_argument("--as", dest="actor", default=DEV_SUBJECT, help=f"on behalf of (default {DEV_SUBJECT})")
    dgen.set_defaults(func=_dashboards_generate)

    events = sub.add_parser("events", help="domain events (CloudEvents) on the Redis stream")
    esub = events.add_subparsers(dest="events_command", required=True)
    tail = esub.add_parser("tail", help="print events as they arrive, one JSON per line; Ctrl-C stops")
    tail.add_argument("--from-start", action="store_true", help="first every event the stream still holds")
    tail.add_argument("--type", action="append", default=[], help="only this type (repeatable)")
    tail.add_argument("--tenant", help="only events of this tenant (slug)")
    tail.add_argument("--count", type=int, help="stop after this many events")
    tail.set_defaults(func=_events_tail)

    migrate = sub.add_parser("migrate", help="migrate the shared schema (and tenant schemas)")
    migrate.add_argument("--all-tenants", action="store_true", help="also roll out tenant migrations")
    migrate.set_defaults(func=_migrate)

    tenants = sub.add_parser("tenants", help="create, list, suspend, resume, delete tenants")
    tsub = tenants.add_subparsers(metavar="ACTION", required=True)
    create = tsub.add_parser("create")
    create.add_argument("slug")
    create.add_argument("--name")
    create.add_argument("--plan", default="free")
    create.set_defaults(func=_tenants_create)
    tsub.add_parser("list").set_defaults(func=_tenants_list)
    for action in ("suspend", "resume"):
        p = tsub.add_parser(action)
        p.add_argument("slug")
        p.set_defaults(func=_tenants_status, status="suspended" if action == "suspend" else "active")
    delete = tsub.add_parser("delete")
    delete.add_argument("slug")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(func=_tenants_delete)
    member = tsub.add_parser("add-member")
    member.add_argument("slug")
    member.add_argument("subject")
    member.add_argument("role", choices=["VIEWER", "EDITOR", "ADMIN"])
    member.set_defaults(func=_tenants_member)

    token = sub.add_parser("token", help="sign tokens with UDS's own key")
    toksub = token.add_subparsers(metavar="ACTION", required=True)
    tcreate = toksub.add_parser("create", help="print a signed token (and record the membership)")
    tcreate.add_argument("--sub", required=True)
    tcreate.add_argument("--tenant")
    tcreate.add_argument("--role", choices=["VIEWER", "EDITOR", "ADMIN"])
    tcreate.add_argument("--platform-admin", action="store_true")
    tcreate.add_argument("--ttl", type=int, default=3600, help="seconds")
    tcreate.set_defaults(func=_token_create)

    demo = sub.add_parser("demo", help="build the demo shop database and register it in the demo tenant")
    demo.add_argument("--rows", type=int, default=1_000_000, help="rows of the big table (events)")
    demo.set_defaults(func=_demo)

    secrets_ = sub.add_parser("secrets", help="credential encryption keys (UDS_SECRET_KEYS)")
    ssub = secrets_.add_subparsers(metavar="ACTION", required=True)
    generate = ssub.add_parser("generate", help="print a new key for UDS_SECRET_KEYS")
    generate.set_defaults(func=_secrets_generate)
    ssub.add_parser(
        "rotate", help="re-encrypt every tenant's data source passwords with the newest key"
    ).set_defaults(func=_secrets_rotate)

    mcp = sub.add_parser("mcp", help="the MCP server for AI assistants (docs/mcp.md)")
    mcp.add_argument(
        "--transport",
        choices=("stdio", "http"),
        default="stdio",
        help="stdio: a client of the UDS at UDS_URL (UDS_TOKEN, UDS_TENANT); "
        "http: `uds serve`, which serves POST /mcp",
    )
    _host_port(mcp)
    mcp.set_defaults(func=_mcp)

    schema = sub.add_parser("schema", help="print the GraphQL schema, or check schema.graphql")
    schema.add_argument("--check", action="store_true")
    schema.add_argument("--write", action="store_true", help="write schema.graphql")
    schema.set_defaults(func=_schema)
    return parser


def _host_port(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _with_servers(work: Callable[[Settings], Awaitable[int]]) -> int:
    """Resolve servers (embedded if needed), make sure the shared schema is migrated, run."""
    from uds.db import make_engine
    from uds.runtime import migrate_core, resolve_servers

    servers = resolve_servers(Settings.from_env(), progress=_say)
    try:

        async def run() -> int:
            engine = make_engine(servers.settings, pool_size=2)
            try:
                await migrate_core(engine)
            finally:
                await engine.dispose()
            return await work(servers.settings)

        return asyncio.run(run())
    finally:
        servers.stop()


def _in_transaction(work: Callable[[Any], Awaitable[int]]) -> int:
    from uds.db import make_engine, transaction

    async def run(settings: Settings) -> int:
        engine = make_engine(settings, pool_size=2)
        try:
            async with transaction(engine) as tx:
                result = await work(await tx.core())
            await _relay_events(engine, settings)
            from redis.asyncio import Redis

            from uds.tenants.registry import ALL, changes_channel

            redis = Redis.from_url(settings.redis_url or "")
            try:
                await redis.publish(changes_channel(settings.redis_prefix), ALL)
            except Exception:  # the servers' cache TTL still bounds staleness
                _say("warning: could not announce the change on Redis; servers see it within 30 s")
            finally:
                await redis.aclose()
            return result
        finally:
            await engine.dispose()

    return _with_servers(run)


async def _relay_events(engine: Any, settings: Settings) -> None:
    """Send the command's domain events to the stream now (else the next server or worker does)."""
    from uds.observability.relay import EventRelay

    if not settings.events_relay:
        return
    relay = EventRelay(engine, settings)
    try:
        await relay.drain()
    except Exception:
        _say("warning: events stay in the outbox until a server or worker relays them (Redis unreachable)")
    finally:
        await relay.stop()


def _migrate(args: argparse.Namespace) -> int:
    from uds.db import make_engine
    from uds.runtime import migrate_all_tenants, progress_bar, tenant_slugs

    async def run(settings: Settings) -> int:
        _say("shared schema is up to date")
        if not args.all_tenants:
            return 0
        engine = make_engine(settings, pool_size=5)
        try:
            total = len(await tenant_slugs(engine))
            await migrate_all_tenants(engine, on_done=progress_bar(total, "tenants"))
            _say(f"{total} tenant schemas are up to date")
        finally:
            await engine.dispose()
        return 0

    return _with_servers(run)


def _tenants_create(args: argparse.Namespace) -> int:
    from uds.tenants import service

    async def work(session: Any) -> int:
        tenant = await service.create_tenant(
            session, slug=args.slug, name=args.name or args.slug, plan=args.plan, actor="cli"
        )
        print(f"created tenant {tenant.slug}")
        return 0

    return _in_transaction(work)


def _tenants_list(args: argparse.Namespace) -> int:
    from uds.tenants import service

    async def work(session: Any) -> int:
        rows = await service.list_tenants(session, after_slug=None, limit=100_000)
        print(f"{'SLUG':<40} {'STATUS':<10} {'PLAN':<10} NAME")
        for t in rows:
            print(f"{t.slug:<40} {t.status:<10} {t.plan:<10} {t.name}")
        return 0

    return _in_transaction(work)


def _tenants_status(args: argparse.Namespace) -> int:
    from uds.tenants import service

    async def work(session: Any) -> int:
        tenant = await service.set_status(session, slug=args.slug, status=args.status, actor="cli")
        print(f"tenant {tenant.slug} is {tenant.status}")
        return 0

    return _in_transaction(work)


def _tenants_delete(args: argparse.Namespace) -> int:
    from uds.tenants import service

    confirm = args.slug
    if not args.yes:
        confirm = input(f"This drops every table of tenant {args.slug!r}. Type the slug to confirm: ")

    async def work(session: Any) -> int:
        await service.delete_tenant(session, slug=args.slug, confirm=confirm.strip(), actor="cli")
        print(f"deleted tenant {args.slug}")
        return 0

    return _in_transaction(work)


def _tenants_member(args: argparse.Namespace) -> int:
    from uds.tenants import service

    async def work(session: Any) -> int:
        await service.set_member(session, slug=args.slug, subject=args.subject, role=args.role, actor="cli")
        print(f"{args.subject} is {args.role} of {args.slug}")
        return 0

    return _in_transaction(work)


def _token_create(args: argparse.Namespace) -> int:
    from uds.auth.keys import SigningKey

    if bool(args.tenant) != bool(args.role):
        raise UdsError("--tenant and --role go together")
    settings = Settings.from_env()
    if args.tenant:
        from uds.tenants import service

        async def work(session: Any) -> int:
            await service.set_member(session, slug=args.tenant, subject=args.sub, role=args.role, actor="cli")
            return 0

        _in_transaction(work)
    key = SigningKey.load_or_create(settings.data_dir)
    roles = ["platform-admin"] if args.platform_admin else []
    print(
        key.issue(args.sub, issuer=settings.own_issuer, audience=settings.audience, ttl=args.ttl, roles=roles)
    )
    return 0


def _schema(args: argparse.Namespace) -> int:
    from uds.api.schema import schema_sdl

    sdl = schema_sdl()
    if args.check:
        current = SCHEMA_FILE.read_text() if SCHEMA_FILE.exists() else ""
        if current != sdl:
            _say(f"{SCHEMA_FILE.name} is out of date: run `uds schema --write`")
            return 1
        _say(f"{SCHEMA_FILE.name} matches the code")
        return 0
    if args.write:
        SCHEMA_FILE.write_text(sdl)
        _say(f"wrote {SCHEMA_FILE}")
        return 0
    sys.stdout.write(sdl)
    return 0


def _observe_process(*, shared_metrics: bool) -> Settings:
    """A server or worker process's logging, before anything else runs: JSON or text lines
    (uds.observability.logging), and with `shared_metrics` prometheus-client's multiprocess
    directory (before prometheus-client is first imported; uds.observability.multiprocess)."""
    from uds.observability.logging import configure_logging
    from uds.observability.multiprocess import use_directory

    settings = Settings.from_env()
    if shared_metrics:
        use_directory(settings.data_dir / "metrics")
    configure_logging(settings)
    return settings


def _serve(args: argparse.Namespace) -> int:
    _observe_process(shared_metrics=args.workers > 1)
    servers = _resolved()
    try:
        _run_uvicorn(servers.settings, args.host, args.port, workers=args.workers)
    finally:
        servers.stop()
    return 0


def _mcp(args: argparse.Namespace) -> int:
    if args.transport == "http":
        _say(f"MCP over streamable HTTP: http://{args.host}:{args.port}/mcp (served by the API)")
        args.workers = 1
        return _serve(args)
    from uds.mcp.stdio import run_stdio

    return run_stdio()


def _worker(args: argparse.Namespace) -> int:
    from uds.observability.multiprocess import directory
    from uds.observability.tracing import setup_tracing
    from uds.runtime import collect_less_often
    from uds.workers.settings import serve

    # Metrics go to the API's multiprocess directory when one is set (same host), else
    # to this worker's own /metrics port (UDS_WORKER_METRICS_PORT): docs/observability.md.
    settings = _observe_process(shared_metrics=directory() is not None)
    setup_tracing(settings, service_name="uds-worker")
    servers = _resolved()
    collect_less_often()  # this process is a worker: see uds.runtime
    try:
        asyncio.run(serve(servers.settings, concurrency=args.concurrency))
    finally:
        servers.stop()
    return 0


def _dashboards_generate(args: argparse.Namespace) -> int:
    from uds.dashboards.command import generate

    servers = _resolved()
    try:
        return asyncio.run(
            generate(
                servers.settings,
                tenant=args.tenant,
                source=args.source,
                goal=args.goal,
                tables=args.table,
                max_widgets=args.max_widgets,
                png=args.png,
                actor=args.actor,
            )
        )
    finally:
        servers.stop()


def _jobs_watch(args: argparse.Namespace) -> int:
    from uds.jobs.watch import watch

    servers = _resolved()
    try:
        return asyncio.run(watch(servers.settings, tenant=args.tenant, job_id=args.id))
    finally:
        servers.stop()


def _events_tail(args: argparse.Namespace) -> int:
    from uds.observability.tail import tail

    servers = _resolved()
    try:
        return asyncio.run(
            tail(
                servers.settings,
                out=sys.stdout,
                from_start=args.from_start,
                types=args.type,
                tenant=args.tenant,
                count=args.count,
            )
        )
    except KeyboardInterrupt:
        return 0
    finally:
        servers.stop()


def _spawn_worker(settings: Settings) -> Any:
    """`uds worker` as a child process on the same servers (its output goes to stderr)."""
    import os
    import subprocess

    env = dict(os.environ)
    env["UDS_DATABASE_URL"] = settings.database_url or ""
    env["UDS_REDIS_URL"] = settings.redis_url or ""
    env["UDS_DATA_DIR"] = str(settings.data_dir)
    return subprocess.Popen([sys.executable, "-m", "uds.cli", "worker"], env=env, stdout=sys.stderr)


def _stop_worker(proc: Any) -> None:
    """SIGTERM (arq stops and hands its running jobs back to the queue), then wait."""
    import subprocess

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _resolved() -> Any:
    from uds.runtime import resolve_servers

    return resolve_servers(Settings.from_env(), progress=_say)


def _up(args: argparse.Namespace) -> int:
    from uds.auth.keys import SigningKey

    # One metrics directory for the API and the worker it spawns: /metrics shows both.
    _observe_process(shared_metrics=True)
    servers = _resolved()
    settings = servers.settings
    try:
        asyncio.run(_bootstrap(settings))
        key = SigningKey.load_or_create(settings.data_dir)
        token = key.issue(
            DEV_SUBJECT,
            issuer=settings.own_issuer,
            audience=settings.audience,
            ttl=7 * 24 * 3600,
            roles=["platform-admin"],
        )
        url = f"http://{args.host}:{args.port}/graphql"
        _say("")
        _say(f"UDS is up. GraphiQL: {url}")
        _say(f"Tenant: {DEMO_TENANT} (send header X-Tenant-ID: {DEMO_TENANT})")
        _say(f"Dev token ({DEV_SUBJECT}, platform admin, ADMIN of {DEMO_TENANT}, valid 7 days):")
        print(token, flush=True)
        _say(f'Header: {{"Authorization": "Bearer <token>", "X-Tenant-ID": "{DEMO_TENANT}"}}')
        _say(f"MCP (streamable HTTP, same headers): http://{args.host}:{args.port}/mcp")
        _say("Ctrl-C stops everything.")
        worker = _spawn_worker(settings)
        try:
            _run_uvicorn(settings, args.host, args.port)
        finally:
            _stop_worker(worker)
    finally:
        servers.stop()
    return 0


async def _bootstrap(settings: Settings, *, demo: bool = True) -> None:
    """Migrate, make sure the demo tenant and the dev admin's membership exist, and (with
    `demo`) that the demo database exists and is registered (built once, then reused)."""
    from uds.db import make_engine, transaction
    from uds.errors import NotFound
    from uds.runtime import migrate_all_tenants, migrate_core
    from uds.tenants import service

    engine = make_engine(settings, pool_size=2)
    try:
        await migrate_core(engine)
        await migrate_all_tenants(engine)
        async with transaction(engine) as tx:
            session = await tx.core()
            try:
                await service.get_tenant(session, slug=DEMO_TENANT)
            except NotFound:
                await service.create_tenant(session, slug=DEMO_TENANT, name="Demo", actor="uds up")
            await service.set_member(
                session, slug=DEMO_TENANT, subject=DEV_SUBJECT, role="ADMIN", actor="uds up"
            )
    finally:
        await engine.dispose()
    if demo:
        from uds.demo import UP_ROWS, setup_demo

        try:
            await setup_demo(
                settings, tenant=DEMO_TENANT, rows=UP_ROWS, rebuild=False, actor="uds up", progress=_say
            )
        except UdsError as exc:
            _say(f"uds: the demo data source was not set up: {exc.message}")


def _demo(args: argparse.Namespace) -> int:
    from uds.demo import DEMO_DATABASE, setup_demo

    if args.rows < 1_000:
        raise UdsError("--rows must be at least 1000")

    async def run(settings: Settings) -> int:
        await _bootstrap(settings, demo=False)
        found = await setup_demo(settings, tenant=DEMO_TENANT, rows=args.rows, progress=_say)
        _say(f"demo database {DEMO_DATABASE} is data source {found.source_id} of tenant {found.tenant}")
        return 0

    return _with_servers(run)


def _secrets_generate(args: argparse.Namespace) -> int:
    from uds.datasources.credentials import generate_key

    print(generate_key())
    return 0


def _secrets_rotate(args: argparse.Namespace) -> int:
    from sqlalchemy import text

    from uds.datasources.credentials import load_cipher
    from uds.datasources.service import rotate_credentials
    from uds.db import make_engine, transaction
    from uds.runtime import tenant_slugs
    from uds.tenants.slugs import tenant_schema

    async def run(settings: Settings) -> int:
        cipher = load_cipher(settings)
        engine = make_engine(settings, pool_size=2)
        total = failed = 0
        try:
            for slug in await tenant_slugs(engine):
                async with transaction(engine, slug) as tx:
                    conn = await tx.connection()
                    table = f"{tenant_schema(slug)}.data_sources"
                    if not await conn.scalar(text("select to_regclass(:t) is not null"), {"t": table}):
                        _say(f"{slug}: not migrated to data sources yet (uds migrate --all-tenants); skipped")
                        continue
                    result = await rotate_credentials(await tx.tenant(), tenant=slug, cipher=cipher)
                total += result.rotated
                if result.rotated:
                    _say(f"{slug}: {result.rotated} data source(s) re-encrypted")
                for name, why in result.failed:
                    failed += 1
                    _say(f"{slug}: data source {name!r} left as it was: {why}")
        finally:
            await engine.dispose()
        _say(f"{total} data source credential(s) re-encrypted with key {cipher.current_kid}")
        if failed:
            _say(f"{failed} could not be opened with the configured keys: keep the key that sealed them")
        return 1 if failed else 0

    return _with_servers(run)


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so the `finally` that stops embedded servers runs.

    uvicorn restores the previous handler after its graceful shutdown and re-raises the
    signal; with the default handler the process would die before cleaning up.
    """

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def _run_uvicorn(settings: Settings, host: str, port: int, *, workers: int = 1) -> None:
    import os

    import uvicorn

    _exit_on_sigterm()
    from uds.api.wsframes import UdsWebSocketProtocol
    from uds.app import create_app
    from uds.observability.tracing import setup_tracing
    from uds.runtime import collect_less_often

    if workers > 1:
        # Each worker process builds its own app from the environment.
        os.environ["UDS_DATABASE_URL"] = settings.database_url or ""
        os.environ["UDS_REDIS_URL"] = settings.redis_url or ""
        uvicorn.run(
            "uds.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http="httptools",
            log_level="info",
            log_config=None,  # keep the handler of uds.observability.logging
            ws_per_message_deflate=False,
            ws=UdsWebSocketProtocol,  # live subscription events as frames (uds.api.wsframes)
        )
        return
    collect_less_often()  # this process is a server: see uds.runtime
    setup_tracing(settings, service_name="uds-api")
    # No per-message deflate: job events are small, and a thousand subscribers of one job
    # would have the same message compressed a thousand times.
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="info",
        log_config=None,  # keep the handler of uds.observability.logging
        ws_per_message_deflate=False,
        ws=UdsWebSocketProtocol,  # live subscription events as frames (uds.api.wsframes)
    )


if __name__ == "__main__":
    sys.exit(main())

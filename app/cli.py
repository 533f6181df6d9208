"""The ``backprop`` command: serve, worker, migrate, keys, gc, backup, restore; the client's
(:mod:`app.client`).

Server commands read their settings (the database first of all) from ``BACKPROP_*``
environment variables; see :mod:`app.config`. ``main(argv)`` returns the exit status.

Each server command imports the server modules it uses when it runs: ``backprop --help``
and the client's commands (HTTP only) never load SQLAlchemy, FastAPI, the engine or
NumPy (``backprop worker`` sets BLAS's thread count before NumPy loads).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from app.client.entry import add_client_commands, run_client

if TYPE_CHECKING:
    from app.config import Settings
    from app.storage.database import Database

log = logging.getLogger("backprop")

MIGRATIONS_WAIT_LOG_SECONDS = 10.0


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class CliError(Exception):
    """A refusal: printed as ``error: ...`` on stderr, exit status 1."""


def _require_migrated(database: Database) -> None:
    from app.storage.migrations import is_current

    if not is_current(database):
        raise CliError(
            f"the database {_safe_url(database.url)} is not migrated; "
            "run `backprop migrate` (or start `backprop serve`, which migrates)"
        )


# --- commands -----------------------------------------------------------------------


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from app.storage.migrations import upgrade

    upgrade(settings.database_url, settings=settings)
    print(f"database {_safe_url(settings.database_url)} is at the latest schema")
    return 0


def _ready(database: Database) -> bool:
    from sqlalchemy.exc import OperationalError

    from app.storage.migrations import is_current

    try:
        return is_current(database)
    except OperationalError:
        return False


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from app.jobs.supervisor import BLAS_THREAD_VARIABLES

    if settings.blas_threads:  # before NumPy loads: BLAS reads these once
        for name in BLAS_THREAD_VARIABLES:
            os.environ.setdefault(name, str(settings.blas_threads))
    from app.jobs.worker import Worker  # the engine loads only for commands that train
    from app.process_heap import freeze_startup_heap
    from app.storage.database import Database

    _configure_logging(settings)
    database = Database(settings.database_url)
    worker = Worker(database, settings)
    worker.install_signal_handlers()
    frozen = freeze_startup_heap()  # the modules loaded: out of the collector's full passes
    log.debug("worker startup: %d objects frozen out of full garbage collections", frozen)
    # In docker compose a worker may start before the database is up or before `serve`
    # has migrated it: wait for both.
    last_note = 0.0
    while not _ready(database):
        if worker.stopping.is_set():
            return 0
        if time.monotonic() - last_note >= MIGRATIONS_WAIT_LOG_SECONDS:
            log.info("waiting for the database %s to be up and migrated", _safe_url(database.url))
            last_note = time.monotonic()
        worker.stopping.wait(1.0)
    try:
        worker.run(burst=args.burst)
    except KeyboardInterrupt:  # Ctrl+C twice: stop now; the job's lease will lapse
        return 130
    finally:
        database.dispose()
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from app.jobs.supervisor import Supervisor, announce_new_key
    from app.services.keys import BOOTSTRAP_OWNER, prepare_keys
    from app.storage.database import Database
    from app.storage.migrations import upgrade

    _configure_logging(settings)
    print(
        f"Backprop data directory: {settings.data_dir}\n"
        f"  database:   {_safe_url(settings.database_url)}\n"
        f"  blob store: {settings.blob_url}",
        flush=True,
    )
    upgrade(settings.database_url, settings=settings)
    database = Database(settings.database_url)
    try:
        new_key = prepare_keys(database, settings)
    finally:
        database.dispose()
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    if new_key is not None:
        announce_new_key(new_key, owner=BOOTSTRAP_OWNER, host=host, port=port)
    workers = args.workers if args.workers is not None else settings.workers
    return Supervisor(settings, host=host, port=port, workers=workers).run()


def cmd_gc(settings: Settings, args: argparse.Namespace) -> int:
    from app.storage.blobs import open_blob_store
    from app.storage.database import Database
    from app.storage.gc import collect_garbage

    grace = settings.gc_grace_seconds if args.grace is None else args.grace
    database = Database(settings.database_url)
    try:
        _require_migrated(database)
        report = collect_garbage(database, open_blob_store(settings), grace_seconds=grace)
    finally:
        database.dispose()
    for sha, size in report.removed:
        print(f"removed {sha} ({size} bytes)")
    print(
        f"gc of {settings.blob_url}: removed {len(report.removed)} blob(s), "
        f"{report.removed_bytes} bytes; kept {report.referenced} referenced and "
        f"{report.young} younger than {grace:g} s; {report.temp_removed} stale temp file(s)"
    )
    return 0


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    from app.storage.backup import backup
    from app.storage.blobs import open_blob_store
    from app.storage.database import Database

    database = Database(settings.database_url)
    try:
        if database.is_sqlite:  # PostgreSQL: backup() refuses it, saying what to use
            _require_migrated(database)
    finally:
        database.dispose()
    manifest = backup(settings.database_url, open_blob_store(settings), Path(args.dest))
    counts = manifest.counts
    print(
        f"backup of {_safe_url(settings.database_url)} and {settings.blob_url} in {args.dest}: "
        f"{counts['datasets']} dataset(s), {counts['networks']} network(s), "
        f"{counts['jobs']} job(s), {counts['models']} model(s), {counts['blobs']} blob(s) "
        f"({counts['blob_bytes']} bytes); manifest {args.dest}/manifest.json"
    )
    return 0


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    from app.storage.blobs import open_blob_store
    from app.storage.restore import restore

    report = restore(
        Path(args.src),
        data_dir=settings.data_dir,
        database_url=settings.database_url,
        store=open_blob_store(settings),
    )
    counts = report.manifest.counts
    print(
        f"restored the backup of {report.manifest.created_at} into {settings.data_dir}: "
        f"{counts['datasets']} dataset(s), {counts['networks']} network(s), "
        f"{counts['jobs']} job(s) ({report.requeued} running then, queued again), "
        f"{counts['models']} model(s), {report.blobs} blob(s) into {settings.blob_url}. "
        "Start it with `backprop serve`."
    )
    return 0


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    from app.services import keys
    from app.storage.database import Database

    database = Database(settings.database_url)
    try:
        _require_migrated(database)
        with database.session() as session:
            key = keys.create_key(session, key_name=args.name, owner_name=args.owner)
    finally:
        database.dispose()
    owner = args.owner or args.name
    print(f"Created key {args.name!r} for owner {owner!r}. It is shown only this once:")
    print(key)
    return 0


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "-"


def cmd_keys_list(settings: Settings, _args: argparse.Namespace) -> int:
    from app.services import keys
    from app.storage.database import Database

    database = Database(settings.database_url)
    try:
        _require_migrated(database)
        with database.read_session() as session:
            rows = [
                (
                    key.name,
                    owner,
                    key.prefix + "…",
                    _when(key.created_at),
                    _when(key.last_used_at),
                    _when(key.revoked_at),
                )
                for key, owner in keys.list_keys(session)
            ]
    finally:
        database.dispose()
    header = ("NAME", "OWNER", "PREFIX", "CREATED", "LAST USED", "REVOKED")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    if not rows:
        print("(no keys: create one with `backprop keys create NAME`)")
    return 0


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from app.services import keys
    from app.storage.database import Database

    database = Database(settings.database_url)
    try:
        _require_migrated(database)
        with database.session() as session:
            revoked = keys.revoke_key(session, key_name=args.name)
    finally:
        database.dispose()
    if not revoked:
        print(f"error: there is no live key named {args.name!r}", file=sys.stderr)
        return 1
    print(f"Revoked key {args.name!r}.")
    return 0


# --- parsing ------------------------------------------------------------------------

Command: TypeAlias = "Callable[[Settings, argparse.Namespace], int]"


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backprop",
        description="Train and serve neural networks. Settings come from BACKPROP_* "
        "environment variables (BACKPROP_DATABASE_URL selects the database).",
    )
    # Also before the command (`backprop --url URL --key KEY jobs list`), as after it.
    server = parser.add_argument_group("server of the client commands (before or after one)")
    server.add_argument("--url", dest="server_url", metavar="URL", help="(env BACKPROP_URL)")
    server.add_argument("--key", dest="server_key", metavar="KEY", help="(env BACKPROP_KEY)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="migrate, then run the HTTP API and N worker processes, restarting any that exits",
    )
    serve.add_argument("--host", default=None, help="address to bind (BACKPROP_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (BACKPROP_PORT, 8000)")
    serve.add_argument(
        "--workers",
        type=_count,
        default=None,
        help="worker processes (BACKPROP_WORKERS, default: number of cores; 0 = API only)",
    )
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser("worker", help="run one worker process")
    worker.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    worker.set_defaults(handler=cmd_worker)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.set_defaults(handler=cmd_migrate)

    gc = commands.add_parser(
        "gc", help="remove blobs no dataset, model or job references (older than the grace)"
    )
    gc.add_argument(
        "--grace",
        type=float,
        default=None,
        help="keep blobs younger than this many seconds (BACKPROP_GC_GRACE_SECONDS, 3600)",
    )
    gc.set_defaults(handler=cmd_gc)

    backup = commands.add_parser(
        "backup",
        help="copy the SQLite database (online, consistent) and every blob it references "
        "into DEST, with a manifest",
    )
    backup.add_argument("dest", help="a new or empty folder")
    backup.set_defaults(handler=cmd_backup)

    restore = commands.add_parser(
        "restore", help="restore a backup folder into an empty BACKPROP_DATA_DIR"
    )
    restore.add_argument("src", help="a folder written by `backprop backup`")
    restore.set_defaults(handler=cmd_restore)

    key_commands = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )
    create = key_commands.add_parser("create", help="create a key; prints it once, last line")
    create.add_argument("name", help="a unique name for the key")
    create.add_argument("--owner", default=None, help="owner of the key (default: NAME)")
    create.set_defaults(handler=cmd_keys_create)
    listing = key_commands.add_parser("list", help="list keys (never the keys themselves)")
    listing.set_defaults(handler=cmd_keys_list)
    revoke = key_commands.add_parser("revoke", help="revoke the key named NAME")
    revoke.add_argument("name")
    revoke.set_defaults(handler=cmd_keys_revoke)
    add_client_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``backprop`` command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if "client_command" in args:
        return run_client(args)
    if args.server_url is not None or args.server_key is not None:
        parser.error(f"--url and --key are for the client commands, not `{args.command}`")
    return _run_server_command(args)


def _run_server_command(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import OperationalError

    from app.config import get_settings
    from app.services.keys import KeyError_
    from app.storage.backup import BackupError
    from app.storage.blobs import BlobError

    settings = get_settings()
    settings.make_data_dir()
    handler: Command = args.handler
    try:
        return handler(settings, args)
    except (CliError, KeyError_, BackupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BlobError as exc:
        print(f"error: blob store {settings.blob_url}: {exc.message}", file=sys.stderr)
        return 1
    except OperationalError as exc:
        print(
            f"error: cannot use the database {_safe_url(settings.database_url)}: {exc.orig}",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The client's commands inside the ``backprop`` parser, and running one of them.

Each resource module has ``register(commands, common)``: it adds its sub-commands, each
built with ``parents=[common]`` (``--url``, ``--key``, ``--json``) and
``set_defaults(client_command=<function(api, args) -> exit status>)``. A new command is a
module with such a function, plus its name in :data:`RESOURCES`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from types import ModuleType

from app.client import batch, datasets, export, jobs, models, networks, predict, sweeps, train
from app.client.http import DEFAULT_URL, Api, ClientError
from app.client.output import note
from app.client.reads import Subparsers

ClientCommand = Callable[[Api, argparse.Namespace], int]

RESOURCES: tuple[ModuleType, ...] = (
    *(datasets, networks, train, jobs, sweeps),
    *(predict, batch, models, export),
)


def common_options() -> argparse.ArgumentParser:
    """Options every client command takes (read when the command runs, not at import)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("server")
    group.add_argument(
        "--url", default=None, help=f"the server (env BACKPROP_URL, default {DEFAULT_URL})"
    )
    group.add_argument("--key", default=None, help="an API key (env BACKPROP_KEY)")
    group.add_argument(
        "--json", action="store_true", help="print the server's JSON answer instead of a table"
    )
    return common


def add_client_commands(commands: Subparsers) -> None:
    """Add every client command to the ``backprop`` sub-command parser ``commands``."""
    common = common_options()
    for resource in RESOURCES:
        resource.register(commands, common)


def server_of(args: argparse.Namespace) -> tuple[str, str | None]:
    """The server's URL and the key: ``--url``/``--key`` after the command, else before
    it, else ``BACKPROP_URL``/``BACKPROP_KEY``, else the default URL and no key."""
    url = args.url or getattr(args, "server_url", None) or os.environ.get("BACKPROP_URL")
    key = args.key or getattr(args, "server_key", None) or os.environ.get("BACKPROP_KEY")
    return url or DEFAULT_URL, key or None


def run_client(args: argparse.Namespace) -> int:
    """Run the parsed client command; print a failure as ``error: ...``; the exit status."""
    url, key = server_of(args)
    command: ClientCommand = args.client_command
    try:
        with Api(url, key) as api:
            return command(api, args)
    except ClientError as exc:
        note(f"error: {exc}")
        return exc.exit_code

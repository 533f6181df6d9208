"""``list`` and ``show``: the same two read commands for every resource."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from functools import partial
from typing import TypeAlias
from urllib.parse import quote

from app.client.http import Api
from app.client.output import Column, page, print_json, record

# The type of ArgumentParser.add_subparsers() (argparse names it privately).
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_actions(commands: Subparsers, name: str, help: str) -> Subparsers:
    """``backprop NAME ACTION ...``: the parser of NAME's actions."""
    parser = commands.add_parser(name, help=help)
    actions: Subparsers = parser.add_subparsers(
        dest=f"{name}_command", required=True, metavar="ACTION"
    )
    return actions


def add_list(
    actions: Subparsers,
    common: argparse.ArgumentParser,
    *,
    path: str,
    columns: Sequence[Column],
    empty: str,
    filters: Sequence[str] = (),
) -> argparse.ArgumentParser:
    """``list [--limit N] [--offset N] [--FILTER VALUE ...]``: a page of GET ``path``;
    each filter option becomes the query parameter of the same name."""
    parser: argparse.ArgumentParser = actions.add_parser(
        "list", parents=[common], help="newest first, one page (--limit, --offset)"
    )
    parser.add_argument("--limit", type=int, default=None, help="items per page (server: 50)")
    parser.add_argument("--offset", type=int, default=None, help="items to skip")
    for option in filters:
        words = option.replace("_", " ")
        parser.add_argument(
            f"--{option.replace('_', '-')}", dest=option, help=f"only those with this {words}"
        )
    parser.set_defaults(
        client_command=partial(_list, path=path, columns=columns, empty=empty, filters=filters)
    )
    return parser


def add_show(
    actions: Subparsers, common: argparse.ArgumentParser, *, path: str, noun: str
) -> argparse.ArgumentParser:
    """``show ID``: GET ``path/ID`` as ``key: value`` lines."""
    parser: argparse.ArgumentParser = actions.add_parser(
        "show", parents=[common], help=f"one {noun}, every field"
    )
    parser.add_argument("id", metavar=noun.upper())
    parser.set_defaults(client_command=partial(_show, path=path))
    return parser


def _list(
    api: Api,
    args: argparse.Namespace,
    *,
    path: str,
    columns: Sequence[Column],
    empty: str,
    filters: Sequence[str],
) -> int:
    params = {"limit": args.limit, "offset": args.offset}
    params.update({name: getattr(args, name) for name in filters})
    body = api.get(path, params)
    if args.json:
        print_json(body)
    else:
        page(body, columns, empty=empty)
    return 0


def _show(api: Api, args: argparse.Namespace, *, path: str) -> int:
    body = api.get(f"{path}/{quote(args.id, safe='')}")
    if args.json:
        print_json(body)
    else:
        record(body)
    return 0

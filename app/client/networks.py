"""``backprop networks create|list|show``."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from app.client.http import Api
from app.client.output import Column, note, print_json, when
from app.client.reads import Subparsers, add_actions, add_list, add_show

PATH = "/v1/networks"


def parse_layers(text: str) -> list[dict[str, Any]]:
    """``64:relu,10:softmax`` -> ``[{"units": 64, "activation": "relu"}, ...]``."""
    layers = []
    for part in text.split(","):
        units, sep, activation = part.strip().partition(":")
        if not sep or not units.strip().isdigit() or not activation.strip():
            raise argparse.ArgumentTypeError(
                f"{part.strip()!r} is not UNITS:ACTIVATION (e.g. 64:relu,10:softmax)"
            )
        layers.append({"units": int(units), "activation": activation.strip()})
    return layers


def layers_text(network: Mapping[str, Any]) -> str:
    """The inverse of :func:`parse_layers`."""
    return ",".join(f"{layer['units']}:{layer['activation']}" for layer in network["layers"])


COLUMNS: list[Column] = [
    ("ID", lambda n: n["id"]),
    ("NAME", lambda n: n["name"]),
    ("INPUT", lambda n: str(n["input_size"])),
    ("LAYERS", layers_text),
    ("LOSS", lambda n: n["loss"]),
    ("PARAMETERS", lambda n: str(n["parameter_count"])),
    ("CREATED", lambda n: when(n["created_at"])),
]


def create(api: Api, args: argparse.Namespace) -> int:
    layers: list[dict[str, Any]] = args.layers
    name = args.name or "-".join([str(args.input_size), *(str(la["units"]) for la in layers)])
    body: dict[str, Any] = {"name": name, "input_size": args.input_size, "layers": layers}
    body.update({k: v for k in ("loss", "init", "seed") if (v := getattr(args, k)) is not None})
    network = api.post(PATH, body)
    if args.json:
        print_json(network)
        return 0
    note(
        f"created network {network['id']} {network['name']!r}: {network['input_size']} -> "
        f"{layers_text(network)}, loss {network['loss']}, "
        f"{network['parameter_count']} parameters"
    )
    print(network["id"])
    return 0


def register(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    actions = add_actions(commands, "networks", "define and inspect network architectures")
    parser = actions.add_parser("create", parents=[common], help="a dense network")
    parser.add_argument("--input-size", type=int, required=True, help="features per sample")
    parser.add_argument(
        "--layers",
        type=parse_layers,
        required=True,
        metavar="UNITS:ACTIVATION,...",
        help="e.g. 64:relu,10:softmax (the last layer is the output)",
    )
    parser.add_argument("--name", help="default: the sizes, e.g. 4-64-10")
    parser.add_argument("--loss", help="default: the loss that fits the output layer")
    parser.add_argument("--init", help="weight initialisation (server default: auto)")
    parser.add_argument("--seed", type=int, help="initialisation seed (server default: 0)")
    parser.set_defaults(client_command=create)
    empty = "(no networks: create one with `backprop networks create`)"
    add_list(actions, common, path=PATH, columns=COLUMNS, empty=empty)
    add_show(actions, common, path=PATH, noun="network")

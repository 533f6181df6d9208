"""``backprop jobs list|show|follow|cancel``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from rich.console import Console

from app.client.follow import follow
from app.client.http import Api
from app.client.output import Column, note, number, print_json, when
from app.client.reads import Subparsers, add_actions, add_list, add_show

PATH = "/v1/jobs"


def metric(name: str) -> Callable[[Mapping[str, Any]], str]:
    """A column of the job's latest value of the metric ``name``."""
    return lambda job: number((job["metrics"] or {}).get(name))


def status(job: Mapping[str, Any]) -> str:
    stopping = job["status"] == "running" and job["cancel_requested"]
    return f"{job['status']}{' (stopping)' if stopping else ''}"


def trial(job: Mapping[str, Any]) -> str:
    """``swp_x#3`` for trial 3 of a sweep, ``-`` for a job of its own."""
    sweep_id = job.get("sweep_id")
    return f"{sweep_id}#{job.get('trial_index')}" if sweep_id else "-"


COLUMNS: list[Column] = [
    ("ID", lambda j: j["id"]),
    ("STATUS", status),
    ("EPOCH", lambda j: f"{j['epoch']}/{j['epochs']}"),
    ("LOSS", metric("loss")),
    ("VAL_LOSS", metric("val_loss")),
    ("MODEL", lambda j: j["model_id"] or "-"),
    ("SWEEP#TRIAL", trial),
    ("CREATED", lambda j: when(j["created_at"])),
]


def job_path(job_id: str) -> str:
    return f"{PATH}/{quote(job_id, safe='')}"


def follow_job(api: Api, args: argparse.Namespace) -> int:
    job = api.get(job_path(args.id))
    if job["status"] in ("queued", "running"):
        note(f"following job {job['id']}; Ctrl-C asks whether to cancel it")
    return follow(api, job, Console(stderr=True))


def cancel(api: Api, args: argparse.Namespace) -> int:
    job = api.post(f"{job_path(args.id)}/cancel", {"keep_model": args.keep_model})
    if args.json:
        print_json(job)
    elif job["status"] == "cancelled":
        note(f"job {job['id']} cancelled at epoch {job['epoch']}/{job['epochs']}")
    else:
        note(f"job {job['id']} is {job['status']}: asked to stop, it stops within a batch")
    return 0


def register(commands: Subparsers, common: argparse.ArgumentParser) -> None:
    actions = add_actions(commands, "jobs", "inspect, follow and cancel training jobs")
    add_list(
        actions,
        common,
        path=PATH,
        columns=COLUMNS,
        empty="(no jobs: start one with `backprop train`)",
        filters=("status", "network_id", "dataset_id", "sweep_id"),
    )
    add_show(actions, common, path=PATH, noun="job")
    parser = actions.add_parser(
        "follow", parents=[common], help="a live progress bar until the job ends"
    )
    parser.add_argument("id", metavar="JOB")
    parser.set_defaults(client_command=follow_job)
    parser = actions.add_parser("cancel", parents=[common], help="cancel or stop a job")
    parser.add_argument("id", metavar="JOB")
    parser.add_argument(
        "--keep-model", action="store_true", help="a running job keeps its best-so-far model"
    )
    parser.set_defaults(client_command=cancel)

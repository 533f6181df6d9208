"""The soak's figures and its verdict: predict latency per minute, memory between the
early mark (minute 5 of 20) and the end, 5xx, job end states, kills; printed as Markdown."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import numpy as np
from _service import parse_time
from _soak_record import CancelRecord, Recorder, Sample, Tallies
from _soak_sweeps import summary as sweep_summary

MIB = 1024 * 1024
RSS_LIMIT = 1.10  # late / early RSS
P99_LIMIT = 1.5  # p99 of the last quarter / p99 of the second quarter


@dataclass
class Minute:
    minute: int
    requests: int
    p50_ms: float
    p99_ms: float
    not_ok: int
    load1: float


def per_minute(rec: Recorder, minutes: int) -> list[Minute]:
    """Predict latency of each minute of the soak (by the time a request was sent)."""
    rows = []
    for m in range(minutes):
        inside = [(s, status) for t, s, status in rec.predicts if m * 60 <= t < (m + 1) * 60]
        seconds = np.array([s for s, _ in inside]) * 1000
        loads = [x.load1 for x in rec.samples if m * 60 <= x.t < (m + 1) * 60]
        rows.append(
            Minute(
                m + 1,
                len(inside),
                float(np.percentile(seconds, 50)) if len(seconds) else float("nan"),
                float(np.percentile(seconds, 99)) if len(seconds) else float("nan"),
                sum(status != 200 for _, status in inside),
                float(np.mean(loads)) if loads else float("nan"),
            )
        )
    return rows


def p99_between(rec: Recorder, start_s: float, end_s: float) -> float:
    seconds = [s for t, s, _ in rec.predicts if start_s <= t < end_s]
    return float(np.percentile(seconds, 99)) * 1000 if seconds else float("nan")


def early_mark(minutes: float) -> float:
    """The minute memory is first compared at: 5 of 20 (a quarter of the run, at least 1)."""
    return max(1.0, minutes / 4)


def window(samples: list[Sample], centre_s: float, half_s: float = 30.0) -> list[Sample]:
    return [s for s in samples if centre_s - half_s <= s.t <= centre_s + half_s]


def rss_figures(samples: list[Sample], minutes: float) -> dict[str, float]:
    """Median API RSS and median largest-worker RSS in the minute around the early mark and
    in the last minute (MiB), with their ratios."""
    early = window(samples, early_mark(minutes) * 60)
    late = [s for s in samples if s.t >= (minutes - 1) * 60]
    out: dict[str, float] = {}
    for name, pick in (
        ("api", lambda s: s.api_rss),
        ("worker", lambda s: max(s.worker_rss.values()) if s.worker_rss else None),
    ):
        values = {}
        for label, group in (("early", early), ("late", late)):
            found = [v for s in group if (v := pick(s)) is not None]
            values[label] = median(found) / MIB if found else float("nan")
        out[f"{name}_early_mib"] = values["early"]
        out[f"{name}_late_mib"] = values["late"]
        out[f"{name}_ratio"] = values["late"] / values["early"]
    return out


@dataclass
class Ending:
    """The state of every job after draining, from the API and the tables."""

    statuses: Counter[str] = field(default_factory=Counter)
    not_terminal: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    most_models_per_job: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    attempts: Counter[int] = field(default_factory=Counter)
    log_errors: list[str] = field(default_factory=list)
    log_warnings: Counter[str] = field(default_factory=Counter)  # by message, ids masked
    trials: int = 0  # of the jobs, sweep trials
    sweep_checks: list[tuple[str, bool, str]] = field(default_factory=list)


@dataclass
class Verdict:
    checks: list[tuple[str, bool, str]]

    @property
    def passed(self) -> bool:
        return all(ok for _, ok, _ in self.checks)


def verdict(
    rec: Recorder, tallies: Tallies, ending: Ending, minutes: int, expected_kills: int
) -> Verdict:
    rss = rss_figures(rec.samples, minutes)
    quarter = minutes * 60 / 4
    p99_mid = p99_between(rec, quarter, 2 * quarter)
    p99_end = p99_between(rec, 3 * quarter, 4 * quarter)
    api_pids = {s.api_pid for s in rec.samples if s.api_pid is not None}
    restarted = sum(k.restarted_after is not None for k in tallies.kills)
    checks = [
        ("no 5xx", not rec.server_errors, f"{len(rec.server_errors)} answers >= 500"),
        (
            "no transport error",
            not rec.transport_errors,
            f"{len(rec.transport_errors)} refused / reset / timed-out requests",
        ),
        (
            "every job terminal after draining",
            not ending.not_terminal,
            f"{sum(ending.statuses.values())} jobs ({ending.trials} sweep trials): "
            + ", ".join(f"{k} {v}" for k, v in sorted(ending.statuses.items())),
        ),
        (
            "at most one model per job, tables consistent",
            not ending.violations and ending.most_models_per_job <= 1,
            f"most models of one job: {ending.most_models_per_job}; "
            f"violations: {len(ending.violations)}",
        ),
        (
            f"API RSS flat (<= +{RSS_LIMIT - 1:.0%})",
            rss["api_ratio"] <= RSS_LIMIT,
            f"{rss['api_early_mib']:.1f} MiB at minute {early_mark(minutes):g} -> "
            f"{rss['api_late_mib']:.1f} MiB at the end: x{rss['api_ratio']:.3f}",
        ),
        (
            f"worker RSS flat (<= +{RSS_LIMIT - 1:.0%})",
            rss["worker_ratio"] <= RSS_LIMIT,
            f"{rss['worker_early_mib']:.1f} MiB -> {rss['worker_late_mib']:.1f} MiB: "
            f"x{rss['worker_ratio']:.3f} (largest worker)",
        ),
        (
            f"predict p99 stable (last quarter <= {P99_LIMIT:g} x second quarter)",
            p99_end <= P99_LIMIT * p99_mid,
            f"{p99_mid:.1f} ms -> {p99_end:.1f} ms: x{p99_end / p99_mid:.2f}",
        ),
        (
            "every SIGKILLed worker restarted by the supervisor",
            len(tallies.kills) >= expected_kills and restarted == len(tallies.kills),
            f"{len(tallies.kills)} kills (expected {expected_kills}), {restarted} restarts",
        ),
        ("the API process never replaced", len(api_pids) == 1, f"API pids seen: {len(api_pids)}"),
        cancels_honoured(tallies),
        *ending.sweep_checks,
    ]
    return Verdict(checks)


def print_report(
    title: str,
    rec: Recorder,
    tallies: Tallies,
    ending: Ending,
    minutes: int,
    result: Verdict,
    conditions: str,
) -> None:
    print(f"\n## Soak: {title}\n\n{conditions}\n")
    print("| minute | predicts | p50 ms | p99 ms | non-200 | load (1 min) |")
    print("|---|---|---|---|---|---|")
    for m in per_minute(rec, minutes):
        print(
            f"| {m.minute} | {m.requests} | {m.p50_ms:.1f} | {m.p99_ms:.1f} | {m.not_ok} | "
            f"{m.load1:.1f} |"
        )
    statuses = Counter[str]()
    for (kind, status), n in rec.statuses.items():
        statuses[f"{kind} {status}"] += n
    print("\nAnswers: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    kills = ", ".join(
        f"{k.t / 60:.1f} min ({'busy' if k.had_job else 'idle'}, back in "
        + (f"{k.restarted_after:.1f} s)" if k.restarted_after is not None else "never)")
        for k in tallies.kills
    )
    print(f"SIGKILLs: {len(tallies.kills)}: {kills or '-'}")
    print("Uploads: " + (", ".join(f"{k}: {v}" for k, v in sorted(tallies.uploads.items())) or "-"))
    print(
        "Dataset deletes: "
        + (", ".join(f"{k}: {v}" for k, v in sorted(tallies.deletes.items())) or "-")
    )
    print(cancel_summary(tallies))
    print(sweep_summary(tallies.sweeps))
    print(training_times(rec))
    print("Job attempts: " + ", ".join(f"{k}: {v}" for k, v in sorted(ending.attempts.items())))
    print(
        "WARNING log lines: "
        + ("; ".join(f"{k} (x{v})" for k, v in ending.log_warnings.most_common()) or "none")
    )
    if ending.failures:
        print(
            "Failed jobs' errors: " + "; ".join(f"{k} (x{v})" for k, v in ending.failures.items())
        )
    for label, items in (
        ("5xx", rec.server_errors),
        ("transport errors", rec.transport_errors),
        ("jobs not terminal", ending.not_terminal),
        ("table violations", ending.violations),
        ("ERROR/traceback log lines", ending.log_errors),
        ("notes", rec.notes),
    ):
        if items:
            print(f"{label} ({len(items)}):")
            for item in items[:15]:
                print(f"    {item}")
    samples = rec.samples
    print(
        f"Memory samples: {len(samples)}; API RSS MiB first/max/last "
        f"{_mib(samples[0].api_rss)}/{_mib(max(s.api_rss or 0 for s in samples))}/"
        f"{_mib(samples[-1].api_rss)}; API threads first/max/last {samples[0].api_threads}/"
        f"{max(s.api_threads or 0 for s in samples)}/{samples[-1].api_threads}"
    )
    print(f"\n### Verdict ({title}): {'PASS' if result.passed else 'FAIL'}\n")
    for name, ok, detail in result.checks:
        print(f"- {'PASS' if ok else 'FAIL'} {name}: {detail}")


def training_times(rec: Recorder) -> str:
    """started_at -> finished_at of the soak's succeeded jobs (retries included)."""
    seconds = [
        parse_time(j["finished_at"]) - parse_time(j["started_at"])
        for j in rec.tracked("succeeded")
        if j.get("started_at") and j.get("finished_at")
    ]
    if not seconds:
        return "Training time of succeeded jobs: -"
    p50, p90 = np.percentile(seconds, [50, 90])
    return (
        f"Training time of the {len(seconds)} succeeded jobs (started -> finished): "
        f"p50 {p50:.1f} s, p90 {p90:.1f} s, min {min(seconds):.1f} s, max {max(seconds):.1f} s"
    )


def _nothing_to_keep(c: CancelRecord) -> bool:
    """A keep_model cancel of a job whose killed worker had saved no checkpoint: the
    trained weights died with that worker, so the job ends cancelled without a model (and
    says so in its error)."""
    return c.keep_model and not c.has_model and c.worker_killed and c.checkpoint_epoch is None


def cancels_honoured(tallies: Tallies) -> tuple[str, bool, str]:
    """An accepted cancel of a job past epoch 1 ends it cancelled with a model exactly when
    it asked keep_model (unless the worker holding it was killed before any checkpoint)."""
    wrong = [
        c
        for c in tallies.cancels
        if c.answer == 202
        and (
            c.final_status != "cancelled"
            or (c.has_model != c.keep_model and not _nothing_to_keep(c))
        )
    ]
    detail = "; ".join(
        f"{c.job_id} (keep_model={c.keep_model}) ended {c.final_status}, "
        f"{'a' if c.has_model else 'no'} model, checkpoint at epoch {c.checkpoint_epoch}"
        for c in wrong
    )
    accepted = sum(c.answer == 202 for c in tallies.cancels)
    return (
        "every accepted cancel ended cancelled, with a model iff keep_model (and a "
        "checkpoint survived a killed worker)",
        not wrong,
        f"{accepted - len(wrong)}/{accepted}" + (f"; wrong: {detail}" if wrong else ""),
    )


def cancel_summary(tallies: Tallies) -> str:
    outcomes = Counter[str]()
    for c in tallies.cancels:
        model = "with a model" if c.has_model else "no model"
        outcomes[f"keep_model={c.keep_model}: {c.answer} -> {c.final_status}, {model}"] += 1
    detail = "; ".join(f"{k} (x{v})" for k, v in sorted(outcomes.items()))
    return f"Cancels: {len(tallies.cancels)}: {detail or '-'}"


def _mib(value: int | None) -> str:
    return f"{value / MIB:.1f}" if value else "-"


def as_json(rec: Recorder, tallies: Tallies, ending: Ending, minutes: int) -> dict[str, Any]:
    return {
        "minutes": [m.__dict__ for m in per_minute(rec, minutes)],
        "rss": rss_figures(rec.samples, minutes),
        "samples": [s.__dict__ for s in rec.samples],
        "statuses": {f"{k} {s}": n for (k, s), n in rec.statuses.items()},
        "server_errors": rec.server_errors,
        "transport_errors": rec.transport_errors,
        "jobs": dict(ending.statuses),
        "violations": ending.violations,
        "kills": [k.__dict__ for k in tallies.kills],
        "cancels": [c.__dict__ for c in tallies.cancels],
        "sweeps": [r.__dict__ for r in tallies.sweeps.all()],
        "log_errors": ending.log_errors,
    }

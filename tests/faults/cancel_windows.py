"""The narrow cancel windows of issue 18, opened deterministically in real workers.

A cancel request recorded before a job's final commit wins: the job ends ``cancelled``,
with its best-so-far model when ``keep_model`` and none otherwise. The worker itself
files the request at a named point (``BACKPROP_TEST_CANCEL_AT``, :mod:`app.jobs.faults`),
exactly as a client's request landing at that moment would:

- ``last_epoch``: after the last epoch's batches, where no ``should_stop`` asks again;
- ``before_final_commit``: after the trained model was stored, before the commit;
- ``before_release``: a worker stopping gracefully (SIGTERM) has checked its lease and
  found no cancel; the keep_model request lands before its release;
- ``before_time_limit``: the job reached BACKPROP_MAX_JOB_SECONDS, its worker checked
  the lease and found no cancel; the request lands before the failure's commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.faults.harness import ApiClient, Cluster, Workload, wait_for_epoch
from tests.faults.scenarios import CANCELLED

ENV = "BACKPROP_TEST_CANCEL_AT"


@dataclass
class CancelWindowReport:
    outcomes: dict[str, tuple[str, bool]] = field(default_factory=dict)  # case: status, model
    problems_: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return self.problems_


def _check_kept_model(api: ApiClient, job: dict[str, Any], report: CancelWindowReport) -> None:
    """The kept model is the best epoch's (lowest val_loss), not the last one's."""
    model = api.expect(200, "GET", f"/v1/models/{job['model_id']}")
    best = min(job["history"], key=lambda entry: entry["val_loss"])
    if model["metrics"]["val_loss"] != best["val_loss"]:
        report.problems_.append(f"{job['id']}: kept model {model['metrics']} is not the best")


def cancel_windows(cluster: Cluster, api: ApiClient, *, workload: Workload) -> CancelWindowReport:
    """Each window with and without keep_model; the report has each case's outcome."""
    report = CancelWindowReport()
    network_id, dataset_id = workload.create(api)
    cases = [(point, keep) for point in ("last_epoch", "before_final_commit") for keep in (0, 1)]
    for point, keep in cases:
        job_id = api.submit_job(network_id, dataset_id, **workload.options())
        spec = f"{point}:keep" if keep else point
        worker = cluster.worker(burst=True, **{ENV: spec})
        if worker.wait(timeout=300) != 0:
            report.problems_.append(f"{spec}: the worker failed:\n{worker.tail()}")
        _record(api, report, spec, api.wait_terminal([job_id], timeout=60)[job_id], workload)
    # A graceful stop: the cancel lands between the last lease check and the release.
    long_run = workload.options(epochs=workload.epochs * 1000)
    job_id = api.submit_job(network_id, dataset_id, **long_run)
    worker = cluster.worker(**{ENV: "before_release:keep"})
    wait_for_epoch(cluster.probe, job_id, 3, timeout=120)
    if worker.terminate() != 0:
        report.problems_.append(f"before_release: the worker failed:\n{worker.tail()}")
    job = api.wait_terminal([job_id], timeout=60)[job_id]
    _record(api, report, "before_release:keep", job, None)
    # The time limit: the cancel lands after the last lease check, before the failure.
    for keep in (0, 1):
        job_id = api.submit_job(network_id, dataset_id, **long_run)
        spec = "before_time_limit:keep" if keep else "before_time_limit"
        worker = cluster.worker(burst=True, BACKPROP_MAX_JOB_SECONDS="1", **{ENV: spec})
        if worker.wait(timeout=300) != 0:
            report.problems_.append(f"{spec}: the worker failed:\n{worker.tail()}")
        _record(api, report, spec, api.wait_terminal([job_id], timeout=60)[job_id], None)
    report.problems_.extend(cluster.probe.invariant_violations())
    return report


def _record(
    api: ApiClient,
    report: CancelWindowReport,
    case: str,
    job: dict[str, Any],
    workload: Workload | None,
) -> None:
    report.outcomes[case] = (job["status"], job["model_id"] is not None)
    if job["status"] != CANCELLED:
        report.problems_.append(f"{case}: {job['id']} ended {job['status']} ({job['error']})")
    if workload is not None and job["epoch"] != workload.epochs:
        report.problems_.append(f"{case}: cancelled at epoch {job['epoch']}, not the last")
    if job["model_id"] is not None:
        _check_kept_model(api, job, report)

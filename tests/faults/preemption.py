"""Preemption scenario: a job whose worker is killed again and again, each time after
saving checkpoints, must end ``succeeded`` and bit-identical to an uninterrupted run,
however many kills exceed BACKPROP_MAX_ATTEMPTS (a kill after progress is not a failure).

Each worker in turn carries ``BACKPROP_TEST_CRASH_AT=epoch:<k>``: it dies with exit code
137 (no ``finally``, no release, as under SIGKILL) at the end of epoch k, after the
checkpoints of the epochs before k. The kill epochs are fixed, so the run is
deterministic; the next worker finds the lease expired, requeues the job and resumes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.jobs.faults import EXIT_CODE
from tests.faults.harness import ApiClient, Cluster, Workload, weights_equal
from tests.faults.scenarios import SUCCEEDED, reference_weights


@dataclass
class PreemptionReport:
    status: str = ""
    attempts: int = 0
    attempts_without_progress: int = -1
    error: str | None = None
    identical: bool = False
    history_epochs: list[int] = field(default_factory=list)
    worker_exits: list[int] = field(default_factory=list)
    problems_: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return self.problems_


def preempt_repeatedly(
    cluster: Cluster, api: ApiClient, *, kill_epochs: list[int], workload: Workload
) -> PreemptionReport:
    """Run one job through ``len(kill_epochs)`` killed workers and then a last one."""
    report = PreemptionReport()
    network_id, dataset_id = workload.create(api)
    options = workload.options()
    reference_worker = cluster.worker()
    reference = reference_weights(cluster, api, network_id, dataset_id, options)
    reference_worker.terminate()
    job_id = api.submit_job(network_id, dataset_id, **options)
    for epoch in kill_epochs:
        victim = cluster.worker(crash_at=f"epoch:{epoch}")
        report.worker_exits.append(victim.wait(timeout=300))
    finisher = cluster.worker()
    job = api.wait_terminal([job_id], timeout=300)[job_id]
    finisher.terminate()
    report.status, report.error = job["status"], job["error"]
    report.attempts = job["attempts"]
    report.attempts_without_progress = job["attempts_without_progress"]
    report.history_epochs = [entry["epoch"] for entry in job["history"]]
    if report.worker_exits != [EXIT_CODE] * len(kill_epochs):
        report.problems_.append(f"the killed workers exited {report.worker_exits}")
    if job["status"] == SUCCEEDED:
        report.identical = weights_equal(api.weights(job["model_id"]), reference)
    report.problems_.extend(cluster.probe.invariant_violations())
    return report

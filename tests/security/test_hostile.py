"""Issue 19's attacks against a real ``backprop serve`` (API only, SQLite): each gets
its expected answer, /healthz answers during each (while it runs, for the long ones),
the API's peak RSS stays under the attack's bound, and the log holds no traceback."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.security.attacks import ATTACKS, Attack
from tests.security.harness import ATTACK_SETTINGS, TRACEBACK, Target, run_attack, serve

pytestmark = pytest.mark.slow  # a real server; the attacks take about a minute together


def _noteworthy(logs: str) -> str:
    """The log without the probe's /healthz lines (the end of it)."""
    return "\n".join(line for line in logs.splitlines() if "/healthz" not in line)[-4000:]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with serve(tmp_path_factory.mktemp("hostile"), **ATTACK_SETTINGS) as started:
        yield started
    assert TRACEBACK not in started.logs(), started.logs()


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_is_bounded(target: Target, attack: Attack) -> None:
    outcome = run_attack(target, attack.name, attack.run)
    assert outcome.result == attack.expected, (outcome, _noteworthy(target.logs()))
    assert outcome.peak_mib < attack.peak_mib, outcome
    if attack.long:
        assert outcome.health_during >= 1, outcome  # answered while the attack ran
    assert TRACEBACK not in target.logs(), target.logs()


def test_health_answers_after_the_attacks(target: Target) -> None:
    assert httpx.get(f"{target.url}/healthz", timeout=10).status_code == 200

"""Issue 19's attacks against a real ``backprop serve`` (API only, SQLite, no worker):
each attack's answer, duration, the API's peak RSS during it (VmHWM, reset before each)
and the slowest /healthz answer while it ran (probed every 50 ms).

    python bench/hostile.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.security.attacks import ATTACKS
from tests.security.harness import ATTACK_SETTINGS, TRACEBACK, run_attack, serve


def main() -> int:
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    print(f"settings: {ATTACK_SETTINGS}, others default")
    header = f"{'attack':<52} {'answer':>12} {'ok':>3} {'s':>6} {'peak MiB':>9} {'health ms':>10}"
    print(header)
    failed = 0
    with tempfile.TemporaryDirectory() as folder, serve(Path(folder), **ATTACK_SETTINGS) as target:
        print(f"{'(idle API)':<52} {'':>12} {'':>3} {'':>6} {target.peak_mib():>9.0f}")
        for attack in ATTACKS:
            outcome = run_attack(target, attack.name, attack.run)
            ok = outcome.result == attack.expected
            failed += not ok
            answer = outcome.result if len(outcome.result) <= 12 else outcome.result[:9] + "..."
            print(
                f"{attack.name:<52} {answer:>12} {'yes' if ok else 'NO':>3} "
                f"{outcome.seconds:>6.2f} {outcome.peak_mib:>9.0f} {outcome.health_worst_ms:>10.0f}"
            )
        tracebacks = target.logs().count(TRACEBACK)
    print(f"tracebacks in the server log: {tracebacks}")
    return 1 if failed or tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())

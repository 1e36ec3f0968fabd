"""`make soak`: the kill loop of test_kill9.py with 25 kills of a bigger job, figures printed.

Not part of `make test` (it takes minutes). Exits 1 if any promise was broken: a chat not in its
desired state, a write made twice, a write accepted but not recorded applied (or the reverse),
the limited account over its daily limit, or `report` counting other than what was done.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from bulkgroups.model import parse_rate
from bulkgroups.recent_sends import STATE_DIR_ENV
from bulkgroups.simulator import SimConfig, run_in_thread

from helpers.killloop import RATE, figures, kill_loop, problems

KILLS = 25
SEED = 20250101


def main() -> int:
    config = SimConfig(rate=parse_rate(RATE), write_rate=parse_rate(RATE))
    with tempfile.TemporaryDirectory() as directory, run_in_thread(config) as sim:
        # The runs' hand-over (`recent_sends`) in the soak's own directory, not the user's.
        os.environ[STATE_DIR_ENV] = str(Path(directory) / "state")
        loop = kill_loop(
            sim, Path(directory), kills=KILLS, seed=SEED, accounts=10, chats=10, daily_limit=20
        )
        for name, value in figures(sim, loop).items():
            print(f"{name:>34}: {value}")
        found = problems(sim, loop) + [
            f"rate limit broken: {v}" for v in sim.violations_by_account().items()
        ]
    for problem in found:
        print(f"PROBLEM: {problem}")
    print("soak: OK" if not found else f"soak: {len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

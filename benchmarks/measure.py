"""A command's own peak RSS and CPU, measured as `/usr/bin/time -v` does: from the kernel's
accounting of that one process (`wait4`), printed as one JSON line.

    python -m benchmarks.measure FIGURES.json COMMAND [ARG ...]

Why a wrapper of its own rather than `wait4` in the benchmark itself: Linux carries the peak RSS
of the process that forks across `exec` (`ru_maxrss` of a child is at least its parent's peak
at the fork), so a child of a benchmark that holds a large job in memory would report the
benchmark's peak. This wrapper imports nothing but the standard library's few modules, so its own
peak (about 10 MB) is below any command's. The command's stdout and stderr are this process's;
the figures (exit code, wall, user and system seconds, peak MB) go to FIGURES.json.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(figures_path: str, command: list[str]) -> int:
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: becomes the command
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    figures = {
        "exit_code": os.waitstatus_to_exitcode(status),
        "wall_s": wall,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "peak_mb": usage.ru_maxrss / 1024,  # KiB on Linux
    }
    with open(figures_path, "w", encoding="utf-8") as out:
        json.dump(figures, out)
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2:]))

#!/usr/bin/env python3
"""Start-up of a portal process (``manage.py check``) with and without compiled bytecode.

Run from the project root with the project's virtualenv::

    .venv/bin/python benchmarks/bench_startup.py            # 5 runs per case
    .venv/bin/python benchmarks/bench_startup.py --runs 9

The project is copied (without ``__pycache__``, ``.venv``, ``node_modules``, ``data``) to a temporary
folder and started from there with this virtualenv and ``PYTHONDONTWRITEBYTECODE=1`` (as on the
machines), in three cases: nothing compiled (``PYTHONPYCACHEPREFIX`` pointed at an empty folder, so
not even the venv's bytecode is used), the venv's dependencies compiled (``make venv``) but not the
project, and both (``compileall`` as ``make bytecode`` and ``scripts/test.sh`` run it). Prints the
median wall time and the median CPU time (user + system) of the process next to the target; on a
loaded machine the CPU time is the figure to compare.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 1.0  # an idle machine, both compiled (issue #14)
SKIP = shutil.ignore_patterns("__pycache__", ".venv", "node_modules", "data", ".git", "test-artifacts",
                              ".mypy_cache", ".ruff_cache", ".pytest_cache")


def timed(cwd: Path, runs: int, extra: dict[str, str]) -> tuple[list[float], list[float]]:
    env = {**os.environ, "DJANGO_DEBUG": "true", "PYTHONDONTWRITEBYTECODE": "1", **extra}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([sys.executable, "manage.py", "check"], cwd=cwd, env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        copy, empty = Path(tmp) / "project", Path(tmp) / "empty-pycache"
        shutil.copytree(ROOT, copy, ignore=SKIP, symlinks=True)
        empty.mkdir()
        rows = [("nothing compiled", timed(copy, args.runs, {"PYTHONPYCACHEPREFIX": str(empty)}))]
        rows.append(("dependencies compiled, project not", timed(copy, args.runs, {})))
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(copy)], check=True)
        rows.append(("dependencies and project compiled", timed(copy, args.runs, {})))
    print(f"manage.py check, median of {args.runs}; {os.cpu_count()} CPU; load average start "
          f"{[round(x, 2) for x in load_start]}, end {[round(x, 2) for x in os.getloadavg()]}")
    print(f"{'case':<36} {'wall':>7} {'CPU':>7} {'target':>7}")
    for name, (walls, cpus) in rows:
        print(f"{name:<36} {statistics.median(walls):>6.2f}s {statistics.median(cpus):>6.2f}s "
              f"{'<' + str(TARGET_S) + 's' if name.startswith('dependencies and') else '':>7}")
    both = statistics.median(rows[-1][1][0])
    return 0 if both < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())

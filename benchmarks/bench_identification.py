#!/usr/bin/env python3
"""Benchmark of CM identification: indexing a large synthetic repository and serving it.

Run from the project root with the project's virtualenv::

    .venv/bin/python benchmarks/bench_identification.py            # full size (100,000 app files)
    .venv/bin/python benchmarks/bench_identification.py --small    # quick run (a few seconds)
    .venv/bin/python benchmarks/bench_identification.py --json results.json --profile index.prof
    DATABASE_URL=postgres://... .venv/bin/python benchmarks/bench_identification.py

What it measures, in one process (no server, no subprocess for Django):

1. generation of the synthetic repository (``benchmarks/synthrepo.py``) in a temporary directory;
2. the Git floor: ``git ls-tree -r -l main`` and reading every README blob (and every blob) through
   one ``git cat-file --batch``;
3. the full sync ``services.repo_sync`` into an empty index (fetch and index phases timed apart);
4. one-file incremental syncs (``add_commit`` on origin, then ``repo_sync``), repeated;
5. latency and DB queries of pages and list APIs through Django's test ``Client`` as a staff user.

The database is SQLite in the temporary data directory unless ``DATABASE_URL`` is set; then that
database is used and its index tables are REPLACED (use a throw-away database). Django's settings
are bootstrapped with ``DJANGO_DEBUG=true`` (no secret key needed), then ``settings.DEBUG`` is turned
off before anything is timed so that SQL is not logged (production-like); ``--django-debug`` keeps it.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import json
import math
import os
import platform
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Issue #14 asks more of PostgreSQL, the production database; TARGETS is set once the database is known.
TARGETS_BY_VENDOR = {
    "sqlite": {"full_sync_s": 15.0, "reindex_s": 15.0, "incremental_s": 1.0, "page_p95_ms": 100.0},
    "postgresql": {"full_sync_s": 15.0, "reindex_s": 12.0, "incremental_s": 0.6, "page_p95_ms": 100.0},
}
TARGETS = dict(TARGETS_BY_VENDOR["sqlite"])
FULL = {"envs": 5, "machines": 1000, "apps": 4, "files": 5}
SMALL = {"envs": 2, "machines": 50, "apps": 3, "files": 4}


# ====================================================================================================
# Helpers
# ====================================================================================================


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine_description() -> dict:
    cpu_model = ""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        nproc = os.cpu_count() or 0
    git = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "nproc": nproc,
        "cpu_model": cpu_model or platform.processor() or "?",
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "git": git.removeprefix("git version "),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def git(bare: Path, *args: str, input: bytes | None = None) -> bytes:
    proc = subprocess.run(
        ["git", "--git-dir", str(bare), *args], input=input, capture_output=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def cpu_seconds() -> float:
    """CPU time of this process and of the children it waited for (git): contention does not inflate it
    the way it inflates wall time (a PostgreSQL server's CPU is not included)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def db_server_cpu_seconds() -> float | None:
    """CPU time of this connection's PostgreSQL backend, when the server runs on this machine and its
    /proc entry is readable (the same user, or root); None otherwise (SQLite works inside this process)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _minus(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


class PhaseTimer:
    """Wraps functions of the indexer (module attributes or methods) and sums their wall time per sync."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._depth = 0

    def wrap(self, owner, attr: str, label: str) -> None:
        original = getattr(owner, attr)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.calls[label] += 1

        setattr(owner, attr, wrapper)

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def snapshot(self) -> dict[str, dict]:
        return {k: {"s": round(v, 4), "calls": self.calls[k]} for k, v in self.seconds.items()}


# Phases of services._sync_once, in call order: (owner, attribute, label, nesting level). Level 0 add up
# to the sync; level 1 to index_commit (the rest of it is deleting the previous index); level 2 are
# parts of the level-1 phase above them. "cross-cutting" ones are called from several phases.
PHASES = [
    ("services", "get_repo", "open clone (GitPython)", 0),
    ("gitrepo.ConfigRepo", "fetch", "git fetch", 0),
    ("gitrepo.ConfigRepo", "reset_branch", "update-ref", 0),
    ("services", "index_commit", "index_commit (in transaction)", 0),
    ("gitrepo.ConfigRepo", "ls_tree", "git ls-tree + parse", 1),
    ("gitrepo.ConfigRepo", "changed_paths", "git diff-tree", 1),
    ("indexer", "_group_by_ci", "group entries by CI", 1),
    ("gitrepo.ConfigRepo", "read_blobs", "README/symlink blobs (cat-file)", 1),
    ("indexer", "_last_commits", "git log + last commit per CI", 1),
    ("indexer", "ensure_commit_rows", "commit rows", 1),
    ("indexer", "secret_patterns", "secret patterns", 1),
    ("indexer", "_write", "write CIs/artifacts/warnings/search", 1),
    ("indexer", "lint_ci", "lint CIs", 2),
    ("indexer", "lint_artifact", "lint artifacts", 2),
    ("indexer", "insert_rows", "row inserts (COPY on PostgreSQL)", 2),
    ("search", "add_documents", "search documents", 2),
    ("indexer", "_recompute_duplicates", "duplicate-content lint", 1),
    ("indexer", "_lint_manifests", "manifest lint (fleet.declared)", 1),
    ("indexer", "_refresh_warning_counts", "refresh warning counts", 2),
    ("services", "_record_success", "record success", 0),
    ("QuerySet", "bulk_create", "ORM bulk_create (all models)", -1),
    ("QuerySet", "bulk_update", "ORM bulk_update (all models)", -1),
    ("QuerySet", "delete", "ORM delete (all models)", -1),
]


# ====================================================================================================
# Steps
# ====================================================================================================


def step_generate(workdir: Path, sizes: dict, commits: int) -> tuple[Path, float, dict]:
    from benchmarks import synthrepo

    started = time.perf_counter()
    if hasattr(synthrepo, "generate_with_stats"):
        bare, stats = synthrepo.generate_with_stats(workdir, commits=commits, **sizes)
        counts = {
            k: getattr(stats, k) for k in ("files", "readmes", "bytes", "machines", "applications", "commits")
        }
    else:  # pragma: no cover - older synthrepo
        bare = synthrepo.generate(workdir, commits=commits, **sizes)
        counts = {}
    return Path(bare), time.perf_counter() - started, counts


def step_git_floor(bare: Path, repeat: int = 3) -> dict:
    """Wall time of the Git work the indexer cannot avoid, measured on the generated origin."""
    ls_times = []
    listing = b""
    for _ in range(repeat):
        seconds, listing = timed(git, bare, "ls-tree", "-r", "-l", "-z", "--full-tree", "main")
        ls_times.append(seconds)
    readmes, small = [], []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, name = record.partition(b"\t")
        mode, kind, sha, size = meta.split()
        if kind != b"blob":
            continue
        if name == b"README.md" or name.endswith(b"/README.md"):
            readmes.append(sha)
        if size != b"-" and int(size) <= 1024 * 1024:
            small.append(sha)

    def cat(shas: list[bytes]) -> float:
        payload = b"\n".join(shas) + b"\n"
        started = time.perf_counter()
        proc = subprocess.Popen(
            ["git", "--git-dir", str(bare), "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        out, _ = proc.communicate(payload)
        elapsed = time.perf_counter() - started
        if proc.returncode != 0 or not out:
            raise RuntimeError("git cat-file --batch failed")
        return elapsed

    readme_times = [cat(readmes) for _ in range(repeat)]
    all_times = [cat(small) for _ in range(repeat)]
    return {
        "entries": listing.count(b"\0"),
        "ls_tree_s": statistics.median(ls_times),
        "readme_blobs": len(readmes),
        "cat_readmes_s": statistics.median(readme_times),
        "all_blobs": len(small),
        "cat_all_blobs_s": statistics.median(all_times),
    }


def setup_django(data_dir: Path, bare: Path, *, keep_debug: bool) -> dict:
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    os.environ["DJANGO_DEBUG"] = "true"
    os.environ["CMDB_DATA_DIR"] = str(data_dir)
    os.environ["CMDB_REPO_URL"] = str(bare)
    os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")
    # DATABASE_URL, when set, is passed through as it is (PostgreSQL).
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
    if not keep_debug:
        settings.DEBUG = False  # no SQL logging on every query; templates without debug info
    migrate_s, _ = timed(call_command, "migrate", verbosity=0, interactive=False)
    if connection.vendor == "sqlite":
        import sqlite3

        db = f"SQLite {sqlite3.sqlite_version}"
    else:
        with connection.cursor() as cur:
            cur.execute("SELECT version()")
            db = cur.fetchone()[0].split(" on ")[0]
    return {
        "django": django.get_version(),
        "database": db,
        "vendor": connection.vendor,
        "migrate_s": migrate_s,
        "django_debug": bool(settings.DEBUG),
    }


def reset_index() -> None:
    """Start from an empty index even on a reused database (DATABASE_URL): the generator is deterministic,
    so a previous run's SyncState could name the very same commit and turn the full sync into a no-op."""
    from cmdb import search
    from cmdb.models import Artifact, ConfigItem, LintWarning, SyncState

    LintWarning.objects.all().delete()
    Artifact.objects.all().delete()
    ConfigItem.objects.all().delete()
    SyncState.objects.all().delete()
    search.clear()


def install_phase_timer() -> PhaseTimer:
    from django.db.models.query import QuerySet

    from cmdb import gitrepo, indexer, search, services

    modules = {
        "services": services,
        "indexer": indexer,
        "search": search,
        "gitrepo.ConfigRepo": gitrepo.ConfigRepo,
        "QuerySet": QuerySet,
    }
    timer = PhaseTimer()
    for owner, attr, label, _ in PHASES:
        timer.wrap(modules[owner], attr, label)
    return timer


def run_sync(timer: PhaseTimer, profile: cProfile.Profile | None = None) -> dict:
    from cmdb import services

    timer.reset()
    cpu, db_cpu = cpu_seconds(), db_server_cpu_seconds()
    if profile is not None:
        profile.enable()
    try:
        seconds, run = timed(services.repo_sync, trigger="bench")
    finally:
        if profile is not None:
            profile.disable()
    if run is None:
        raise RuntimeError("repo_sync returned None (another sync is marked running)")
    return {
        "wall_s": seconds,
        "cpu_s": cpu_seconds() - cpu,
        "db_cpu_s": _minus(db_server_cpu_seconds(), db_cpu),
        "mode": run.mode,
        "paths_changed": run.paths_changed,
        "duration_ms": run.duration_ms,
        "phases": timer.snapshot(),
    }


def step_incremental(bare: Path, timer: PhaseTimer, runs: int) -> dict:
    from benchmarks import synthrepo
    from cmdb.models import Artifact

    # Real application files spread over the repository, one per run.
    candidates = list(
        Artifact.objects.filter(ci__kind="application", path__endswith=".conf")
        .order_by("path")
        .values_list("path", flat=True)[:: max(1, Artifact.objects.count() // (runs * 4 + 1))]
    )
    if not candidates:
        candidates = list(Artifact.objects.order_by("path").values_list("path", flat=True)[:runs])
    results = []
    connectivity = []
    for i in range(runs):
        path = candidates[i % len(candidates)]
        content = f"# bench change {i}\nworker_processes {i + 2};\n"
        parent = git(bare, "rev-parse", "main").decode().strip()
        commit_s, new = timed(synthrepo.add_commit, bare, path, content, f"bench: change {path} ({i})")
        # What `git fetch` runs after receiving the commit (its connectivity check): a walk of every
        # tree of the old tip, whatever the size of the change.
        connectivity.append(timed(git, bare, "rev-list", "--objects", "--quiet", new, "--not", parent)[0])
        result = run_sync(timer)
        result.update({"path": path, "add_commit_s": commit_s})
        results.append(result)
    walls = [r["wall_s"] for r in results]
    return {
        "runs": results,
        "median_s": statistics.median(walls),
        "max_s": max(walls),
        "modes": sorted({r["mode"] for r in results}),
        "connectivity_check_s": statistics.median(connectivity),
        "fetch_median_s": statistics.median(r["phases"].get("git fetch", {}).get("s", 0.0) for r in results),
    }


def pick_urls(query: str) -> list[tuple[str, str]]:
    from cmdb.models import ConfigItem

    env = ConfigItem.objects.filter(kind="environment").order_by("path").first()
    env_name = env.path if env else "production"
    machine = (
        ConfigItem.objects.filter(
            kind="machine", path__startswith=env_name + "/", children__kind="application"
        )
        .order_by("path")
        .first()
    )
    machine_path = machine.path if machine else f"{env_name}/none"
    app = (
        ConfigItem.objects.filter(kind="application", parent=machine).order_by("path").first()
        if machine
        else None
    )
    app_path = app.path if app else f"{machine_path}/none"
    machine_name = machine_path.split("/")[-1]
    return [
        ("home", "/"),
        ("environment page", f"/ci/{env_name}/"),
        ("machine page", f"/ci/{machine_path}/"),
        ("application page", f"/ci/{app_path}/"),
        ("lint page", "/lint/"),
        ("search page", f"/search/?q={query}"),
        ("API environments", "/api/environments/"),
        ("API machines of env", f"/api/machines/?environment={env_name}"),
        ("API applications of machine", f"/api/applications/?environment={env_name}&machine={machine_name}"),
        ("API lint", "/api/lint/"),
        ("API search", f"/api/search/?q={query}"),
    ]


def step_pages(query: str, requests: int, warmups: int, extra_urls: tuple[str, ...] | list[str] = ()) -> list[dict]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    User = get_user_model()
    user, _ = User.objects.get_or_create(username="bench-staff", defaults={"is_staff": True})
    user.is_staff = True
    user.save()
    client = Client(raise_request_exception=True)
    client.force_login(user)

    out = []
    for label, url in [*pick_urls(query), *((u, u) for u in extra_urls)]:
        row: dict = {"label": label, "url": url}
        try:
            response = None
            for _ in range(warmups):
                response = client.get(url)
            if response is None or response.status_code != 200:
                status = response.status_code if response is not None else "-"
                where = (
                    f" -> {response.get('Location')}"
                    if response is not None and response.has_header("Location")
                    else ""
                )
                row["error"] = f"HTTP {status}{where}"
                out.append(row)
                continue
            with CaptureQueriesContext(connection) as captured:
                response = client.get(url)
            row["queries"] = len(captured.captured_queries)
            row["bytes"] = len(response.content)
            times, cpu = [], []
            for _ in range(requests):
                cpu_start = time.process_time()
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - cpu_start) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code} during the timed requests")
            row.update(
                {
                    "median_ms": statistics.median(times),
                    "p95_ms": p95(times),
                    "max_ms": max(times),
                    "cpu_median_ms": statistics.median(cpu),
                }
            )
        except Exception as exc:  # noqa: BLE001 - report per URL, keep going
            row["error"] = f"{exc.__class__.__name__}: {exc}".splitlines()[0][:160]
            row["traceback"] = traceback.format_exc(limit=4)
        out.append(row)
    return out


def index_counts() -> dict:
    from cmdb.models import Artifact, ConfigItem, LintWarning

    return {
        "config_items": ConfigItem.objects.count(),
        "artifacts": Artifact.objects.count(),
        "lint_warnings": LintWarning.objects.count(),
        "with_readme": ConfigItem.objects.filter(has_readme=True).count(),
    }


# ====================================================================================================
# Report
# ====================================================================================================


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "n/a"
    return "OK" if value < target else "MISSED"


def print_report(res: dict) -> None:
    m, s = res["machine"], res["sizes"]
    print()
    print("=" * 100)
    print("CM identification benchmark")
    print(
        f"machine : {m['nproc']} CPU(s) ({m['cpu_model']}), {m['ram_gb']} GB RAM, {m['os']}; load average "
        f"{m['loadavg_start'][0]} at start, {m.get('loadavg_end', ['?'])[0]} at end (other work slows every figure)"
    )
    print(
        f"software: Python {m['python']}, Django {res['django']['django']}, {res['django']['database']}, "
        f"git {m['git']}; settings.DEBUG={res['django']['django_debug']}"
    )
    c = res.get("generated", {})
    print(
        f"repo    : {s['envs']} envs x {s['machines']} machines x {s['apps']} apps x {s['files']} files"
        + (
            f" = {c.get('files', 0):,} files ({c.get('bytes', 0) / 1e6:.0f} MB), {c.get('readmes', 0):,} READMEs, "
            f"{c.get('commits', 0)} commit(s)"
            if c
            else ""
        )
    )
    if "index" in res:
        i = res["index"]
        print(
            f"index   : {i['config_items']:,} CIs, {i['artifacts']:,} artifacts, {i['lint_warnings']:,} lint warnings"
        )
    print("-" * 100)
    print(f"{'measure':<56}{'wall':>11}{'CPU':>10}{'DB CPU':>10}{'target':>11}  verdict")

    def seconds(value: float | None) -> str:
        return "" if value is None else (f"{value:.2f} s" if value >= 10 else f"{value * 1000:.0f} ms")

    def line(name: str, value: str, target: str = "", ok: str = "", cpu: float | None = None,
             db_cpu: float | None = None) -> None:
        print(f"{name:<56}{value:>11}{seconds(cpu):>10}{seconds(db_cpu):>10}{target:>11}  {ok}")

    line("generate synthetic repo (fast-import)", f"{res['generate_s']:.2f} s")
    g = res["git_floor"]
    line(f"git ls-tree -r -l main ({g['entries']:,} entries)", f"{g['ls_tree_s'] * 1000:.0f} ms")
    line(f"git cat-file --batch, {g['readme_blobs']:,} READMEs", f"{g['cat_readmes_s'] * 1000:.0f} ms")
    line(f"git cat-file --batch, all {g['all_blobs']:,} blobs", f"{g['cat_all_blobs_s'] * 1000:.0f} ms")
    line("migrate (empty database)", f"{res['django']['migrate_s']:.2f} s")

    full, reidx, noop, inc = res.get("full"), res.get("reindex"), res.get("noop"), res.get("incremental")
    t = TARGETS["full_sync_s"]
    if full:
        line(
            f"FULL sync, empty index (repo_sync, mode={full['mode']})",
            f"{full['wall_s']:.2f} s",
            f"< {t:.0f} s",
            verdict(full["wall_s"], t),
            full.get("cpu_s"),
            full.get("db_cpu_s"),
        )
        fetch = full["phases"].get("git fetch", {}).get("s", 0.0)
        line("  of which git fetch (first fetch of the clone)", f"{fetch:.2f} s")
        line(
            "  of which everything but the fetch",
            f"{full['wall_s'] - fetch:.2f} s",
            f"< {t:.0f} s",
            verdict(full["wall_s"] - fetch, t),
        )
    if reidx:
        if reidx.get("profiled"):
            line("full RE-index, clone up to date (UNDER cProfile)", f"{reidx['wall_s']:.2f} s")
        else:
            t = TARGETS["reindex_s"]
            line(
                "full RE-index, clone up to date (index_commit)",
                f"{reidx['wall_s']:.2f} s",
                f"< {t:.0f} s",
                verdict(reidx["wall_s"], t),
                reidx.get("cpu_s"),
                reidx.get("db_cpu_s"),
            )
    if noop:
        line(f"no-op sync (mode={noop['mode']})", f"{noop['wall_s'] * 1000:.0f} ms", cpu=noop.get("cpu_s"),
             db_cpu=noop.get("db_cpu_s"))
    if inc:
        t = TARGETS["incremental_s"]
        n = len(inc["runs"])
        line(
            f"incremental sync, 1 file (median of {n}, {'/'.join(inc['modes'])})",
            f"{inc['median_s'] * 1000:.0f} ms",
            f"< {t * 1000:.0f} ms",
            verdict(inc["median_s"], t),
            statistics.median(r.get("cpu_s", 0.0) for r in inc["runs"]),
            None if inc["runs"][0].get("db_cpu_s") is None else statistics.median(r["db_cpu_s"] for r in inc["runs"]),
        )
        line(
            "incremental sync, 1 file (max)",
            f"{inc['max_s'] * 1000:.0f} ms",
            f"< {t * 1000:.0f} ms",
            verdict(inc["max_s"], t),
        )
        line("  of which git fetch (median)", f"{inc['fetch_median_s'] * 1000:.0f} ms")
        line(
            "  git floor: rev-list --objects new --not old (median)",
            f"{inc['connectivity_check_s'] * 1000:.0f} ms",
        )
    columns = [(name, r) for name, r in (("full sync", full), ("re-index", reidx)) if r]
    if inc:
        columns.append(("slowest incr.", max(inc["runs"], key=lambda r: r["wall_s"])))
    if columns:
        print("-" * 100)
        print(
            f"{'where the sync time goes (wall s; xN = calls)':<52}" + "".join(f"{c:>16}" for c, _ in columns)
        )

        def cell(r: dict, label: str) -> str:
            ph = r["phases"].get(label)
            if not ph:
                return ""
            return f"{ph['s']:.3f}" + (f" x{ph['calls']}" if ph["calls"] > 1 else "")

        def rest(r: dict, level: int) -> str:
            if level == 0:
                total = r["wall_s"]
            else:
                total = r["phases"].get("index_commit (in transaction)", {}).get("s", 0.0)
            known = sum(r["phases"].get(lbl, {}).get("s", 0.0) for _, _, lbl, lvl in PHASES if lvl == level)
            return f"{total - known:.3f}"

        for _, _, label, level in PHASES:
            if level < 0:
                continue
            if label == "record success":
                print(
                    f"{'  rest of index_commit (reading/deleting the old)':<52}"
                    + "".join(f"{rest(r, 1):>16}" for _, r in columns)
                )
            if any(r["phases"].get(label) for _, r in columns):
                print(f"{'  ' * level + label:<52}" + "".join(f"{cell(r, label):>16}" for _, r in columns))
        print(
            f"{'rest of the sync (SyncRun rows, locks, COMMIT)':<52}"
            + "".join(f"{rest(r, 0):>16}" for _, r in columns)
        )
        for _, _, label, level in PHASES:
            if level < 0:
                print(
                    f"{'(cross-cutting) ' + label:<52}" + "".join(f"{cell(r, label):>16}" for _, r in columns)
                )
    pages = res.get("pages")
    if pages:
        print("-" * 100)
        n = res["requests"]
        t = TARGETS["page_p95_ms"]
        print(
            f"{'page / API (' + str(n) + ' requests after warm-up)':<40}{'median':>9}{'p95':>9}{'max':>9}"
            f"{'CPU med':>9}{'queries':>8}{'KB':>6}   target   verdict"
        )
        for row in pages:
            if "error" in row:
                print(f"{row['label']:<40}  ERROR {row['error']}   ({row['url']})")
                continue
            print(
                f"{row['label']:<40}{row['median_ms']:>7.1f}ms{row['p95_ms']:>7.1f}ms{row['max_ms']:>7.1f}ms"
                f"{row['cpu_median_ms']:>7.1f}ms{row['queries']:>8}{row['bytes'] / 1024:>6.0f}   p95<{t:.0f}"
                f"  {verdict(row['p95_ms'], t)}"
            )
        print("urls: " + ", ".join(r["url"] for r in pages))
    print("-" * 100)
    print(f"peak RSS of this process: {res['peak_rss_mb']:.0f} MB; total run {res['total_s']:.0f} s")
    if res.get("profile"):
        print(
            f"cProfile of the full RE-index (its time above includes profiler overhead) written to {res['profile']} "
            f"(python -m pstats {res['profile']}, then sort cumtime / stats 30)"
        )
    print("=" * 100)


def print_profile(path: str, limit: int) -> None:
    stats = pstats.Stats(path)
    stats.strip_dirs().sort_stats("tottime")
    print(f"\n--- full re-index under cProfile: top {limit} functions by own time (tottime) ---")
    stats.print_stats(limit)


# ====================================================================================================
# Main
# ====================================================================================================


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--small", action="store_true", help="quick preset: 2 envs x 50 machines x 3 apps x 4 files"
    )
    p.add_argument("--envs", type=int, help=f"environments (default {FULL['envs']})")
    p.add_argument("--machines", type=int, help=f"machines per environment (default {FULL['machines']})")
    p.add_argument("--apps", type=int, help=f"applications per machine (default {FULL['apps']})")
    p.add_argument("--files", type=int, help=f"files per application (default {FULL['files']})")
    p.add_argument(
        "--commits", type=int, default=0, help="extra history commits in the generated repo (default 0)"
    )
    p.add_argument("--incremental-runs", type=int, default=5, help="one-file incremental syncs (default 5)")
    p.add_argument("--requests", type=int, default=50, help="timed requests per URL (default 50)")
    p.add_argument("--warmups", type=int, default=5, help="warm-up requests per URL (default 5)")
    p.add_argument("--query", default="nginx", help="search term for the search page and API (default nginx)")
    p.add_argument(
        "--url", action="append", default=[], metavar="URL", help="also time this URL (repeatable)"
    )
    p.add_argument("--no-reindex", action="store_true", help="skip the second full index (clone up to date)")
    p.add_argument("--no-pages", action="store_true", help="skip the page and API latencies")
    p.add_argument(
        "--profile",
        metavar="FILE",
        help="profile the full RE-index (the 2nd full index) with cProfile into FILE and print its top; "
        "the re-index figure then includes the profiler's overhead (about 2x)",
    )
    p.add_argument("--profile-top", type=int, default=30, help="lines of the profile to print (default 30)")
    p.add_argument(
        "--django-debug", action="store_true", help="keep settings.DEBUG=True (SQL logged: slower)"
    )
    p.add_argument("--workdir", type=Path, help="parent of the temporary directory (default $TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (repo, clone, SQLite)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = p.parse_args(argv)
    base = SMALL if args.small else FULL
    args.sizes = {k: getattr(args, k) if getattr(args, k) is not None else base[k] for k in FULL}
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ident-", dir=args.workdir))
    res: dict = {
        "machine": machine_description(),
        "sizes": args.sizes,
        "requests": args.requests,
        "targets": TARGETS,
        "workdir": str(tmp),
    }
    say = functools.partial(print, flush=True, file=sys.stderr)
    try:
        say(f"[bench] working in {tmp}")
        say(f"[bench] generating {args.sizes} ...")
        bare, res["generate_s"], res["generated"] = step_generate(tmp / "origin", args.sizes, args.commits)
        say(f"[bench]   {res['generate_s']:.1f} s: {res['generated']}")
        say("[bench] git floor ...")
        res["git_floor"] = step_git_floor(bare)
        say("[bench] django setup + migrate ...")
        res["django"] = setup_django(tmp / "data", bare, keep_debug=args.django_debug)
        TARGETS.update(TARGETS_BY_VENDOR.get(res["django"]["vendor"], TARGETS))
        if res["django"]["vendor"] != "sqlite":
            say(f"[bench]   using DATABASE_URL ({res['django']['database']}): its index tables are replaced")
        timer = install_phase_timer()

        say("[bench] full sync ...")
        reset_index()
        res["full"] = run_sync(timer)
        if res["full"]["mode"] != "full":
            say(f"[bench]   WARNING: the first sync ran as {res['full']['mode']!r}, not 'full'")
        say(f"[bench]   {res['full']['wall_s']:.1f} s ({res['full']['mode']})")
        res["index"] = index_counts()

        if not args.no_reindex:
            say("[bench] full re-index with the clone up to date ...")
            from django.db import transaction

            from cmdb import services

            repo = services.get_repo()
            sha = repo.resolve("refs/heads/main")
            timer.reset()
            profile = cProfile.Profile() if args.profile else None
            t0, cpu0, db0 = time.perf_counter(), cpu_seconds(), db_server_cpu_seconds()
            with transaction.atomic():
                if profile is not None:
                    profile.enable()
                services.index_commit(repo, sha, previous=None)
                if profile is not None:
                    profile.disable()
            res["reindex"] = {
                "wall_s": time.perf_counter() - t0,
                "cpu_s": cpu_seconds() - cpu0,
                "db_cpu_s": _minus(db_server_cpu_seconds(), db0),
                "phases": timer.snapshot(),
            }
            if profile is not None:
                profile.dump_stats(args.profile)
                res["profile"] = args.profile
                res["reindex"]["profiled"] = True
            say(f"[bench]   {res['reindex']['wall_s']:.1f} s")

        say("[bench] no-op sync ...")
        res["noop"] = run_sync(timer)
        if args.incremental_runs > 0:
            say(f"[bench] {args.incremental_runs} one-file incremental syncs ...")
            res["incremental"] = step_incremental(bare, timer, args.incremental_runs)
            say(f"[bench]   median {res['incremental']['median_s'] * 1000:.0f} ms")
        if not args.no_pages:
            say(f"[bench] pages and APIs ({args.warmups} warm-ups + {args.requests} requests each) ...")
            res["pages"] = step_pages(args.query, args.requests, args.warmups, args.url)
    finally:
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        res["total_s"] = time.perf_counter() - started
        res["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        if args.keep:
            say(f"[bench] kept {tmp}")
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)
    print_report(res)
    if args.profile:
        print_profile(args.profile, args.profile_top)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=str))
        print(f"results written to {args.json}")
    pages_ok = all("error" not in r and r["p95_ms"] < TARGETS["page_p95_ms"] for r in res.get("pages", []))
    ok = (
        res["full"]["wall_s"] < TARGETS["full_sync_s"]
        and res.get("reindex", {}).get("wall_s", 0) < TARGETS["reindex_s"]
        and res.get("incremental", {}).get("max_s", 0) < TARGETS["incremental_s"]
        and pages_ok
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

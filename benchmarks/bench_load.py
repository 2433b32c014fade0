#!/usr/bin/env python3
"""The portal under concurrent users: gunicorn + PostgreSQL + Redis + a Celery worker, locust on loopback.

Run from the project root with the project's virtualenv (as root: PostgreSQL runs as user postgres)::

    .venv/bin/python benchmarks/bench_load.py --machines 200 --run-time 15 --repeat-audits 2   # quick check
    .venv/bin/python benchmarks/bench_load.py                                   # 5,000 machines, 60 s of load
    .venv/bin/python benchmarks/bench_load.py --gunicorn gthread:2:4 --gunicorn sync:5:1 --json benchmarks/out/load.json

What it does, in a temporary directory (removed at exit with every process it started):

1. services: a throw-away PostgreSQL 15 cluster (initdb, ``--pg-port``, 5452 by default) and a
   redis-server with the compose file's append-only persistence (``--redis-port``, 6391), both on
   127.0.0.1;
2. the repository of ``bench_audit.py`` (one ``git fast-import`` stream): ``--machines`` local machines
   (5,000) in ``--envs`` environments (5) x 4 applications x 20 declared files, and their live trees
   with 1 % drift; Django in-process (migrate) and the production worker command read from
   docker-compose.yml (``celery -A portal worker -l info``: prefork, one process per core);
3. **index phase**: the full index of that repository runs in the worker (``cmdb.tasks.sync_repository``,
   as the periodic sync does), while the RSS of the worker's and the web server's processes is sampled
   from ``/proc/<pid>/status`` every 0.2 s;
4. users: ``--browsers-users`` people with session cookies (made with the session engine, as a sign-in
   makes them) and ``--api-users`` service accounts with a token each (``manage.py token_create USER
   --name bench``); change requests on ``change/load-NN`` branches (``change_create``, submitted) and
   dry-run jobs of a few machines each, run by the worker (the jobs the API clients poll);
5. per ``--gunicorn CLASS:WORKERS:THREADS`` (default: the compose file's command as it is): gunicorn
   with exactly the compose file's command line (``collectstatic``, then ``gunicorn portal.wsgi ...``),
   bound to 127.0.0.1 and with the workers/threads under test; warm-ups; then ``locust --headless
   --users 50 --spawn-rate 10 --run-time 60s`` (benchmarks/locustfile.py: browsers with a think time
   of ``--wait`` seconds, API clients polling every ``--api-wait``) WHILE audits of every machine run
   back to back in the worker (``audits.services.audit_start``, as the monthly beat task); then, unless
   ``--saturate-time 0``, the same clients without think time (the throughput this machine gives);
6. **runs kept**: ``--repeat-audits`` more full audits, one after the other; after each, the worker's
   RSS and the web processes' RSS after the home and audit pages were read (they must not grow).

Printed: per page kind and overall, requests, failures (must be 0), p50/p95/p99 (locust's percentiles)
and requests/s, next to the target (p95 < 200 ms at 50 clients); the audits' durations under load;
peak RSS per phase; the machine and its load average. Exit status 0 when the targets are met.
Every loop is bounded in count and time; all traffic is to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_audit import Machine, fast_import, file_plan, repo_files, wait_worker_ready, write_trees  # noqa: E402
from benchmarks.bench_dryrun import run, setup_env, stop_process_group  # noqa: E402
from benchmarks.bench_identification import machine_description  # noqa: E402
from benchmarks.synthrepo import _git_init, add_commit, env_names  # noqa: E402

TARGETS = {"p95_ms": 200.0, "errors": 0}
VENV_BIN = Path(sys.executable).parent


# ====================================================================================================
# Processes and their memory
# ====================================================================================================


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(raw[raw.rindex(")") + 2:].split()[2]) == pgid:
            pids.append(int(entry))
    return pids


def status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def group_cpu_s(pgid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in group_pids(pgid):
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        f = raw[raw.rindex(")") + 2:].split()
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / ticks


class RssSampler:
    """Every ``interval`` s, the RSS of each process of the named process groups: per label, the largest
    single process and the largest sum over the group, in MB. Bounded by ``limit_s``."""

    def __init__(self, groups: dict[str, int], interval: float = 0.2, limit_s: float = 1800) -> None:
        self.groups, self.interval, self.limit_s = groups, interval, limit_s
        self.peak: dict[str, dict[str, float]] = {name: {"process_mb": 0.0, "total_mb": 0.0} for name in groups}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()

    def sample(self) -> None:
        for name, pgid in self.groups.items():
            sizes = [status_kb(pid, "VmRSS") / 1024 for pid in group_pids(pgid)]
            if sizes:
                peak = self.peak[name]
                peak["process_mb"] = max(peak["process_mb"], max(sizes))
                peak["total_mb"] = max(peak["total_mb"], sum(sizes))
                peak["processes"] = len(sizes)

    def _loop(self) -> None:
        deadline = time.monotonic() + self.limit_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.sample()
            self._stop.wait(self.interval)


def current_rss(pgid: int) -> dict:
    sizes = [status_kb(pid, "VmRSS") / 1024 for pid in group_pids(pgid)]
    return {"total_mb": sum(sizes), "process_mb": max(sizes, default=0), "processes": len(sizes)}


# ====================================================================================================
# Services
# ====================================================================================================


def start_services(work: Path, pg_port: int, redis_port: int):
    from tests.production import Postgres, Redis

    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not bins:
        raise RuntimeError("no PostgreSQL server binaries (make system-packages)")
    pg = Postgres(root=Path(tempfile.mkdtemp(prefix="cmportal-loadpg-")), port=pg_port, bin=bins[-1])
    if os.geteuid() == 0:
        pg.as_pg = ["runuser", "-u", "postgres", "--"]
        subprocess.run(["chown", "-R", "postgres:", str(pg.root)], check=True)
    subprocess.run([*pg.as_pg, str(pg.bin / "initdb"), "-D", str(pg.root / "data"), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"], cwd="/", check=True, capture_output=True,
                   timeout=120)
    pg.start()
    subprocess.run([str(pg.bin / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(pg_port), "-U", "postgres",
                    "-d", "postgres", "-c", "CREATE DATABASE cmportal"], check=True, capture_output=True, timeout=60)
    (work / "redis").mkdir()
    redis = Redis(work / "redis", port=redis_port)
    redis.start()
    return pg, redis


def gunicorn_argv(spec: str, port: int) -> tuple[list[list[str]], str]:
    """The compose file's web command (collectstatic, gunicorn) on 127.0.0.1:port, with ``spec``
    ("CLASS:WORKERS:THREADS", or "compose" for the file's own settings)."""
    from tests.production import compose_commands

    argvs = [a for a in compose_commands()["web"] if "migrate" not in a]  # migrated in-process already
    gunicorn = argvs[-1]
    i = gunicorn.index("--bind")
    gunicorn[i + 1] = f"127.0.0.1:{port}"
    if spec != "compose":
        klass, workers, threads = spec.split(":")
        for flag in ("--workers", "--threads", "--worker-class", "-w", "-k"):
            while flag in gunicorn:
                j = gunicorn.index(flag)
                del gunicorn[j:j + 2]
        gunicorn += ["--worker-class", klass, "--workers", workers, "--threads", threads]
    return argvs, " ".join(gunicorn[gunicorn.index("portal.wsgi:application") + 1:])


def start_web(spec: str, port: int, log: Path) -> tuple[subprocess.Popen, str]:
    argvs, shown = gunicorn_argv(spec, port)
    for argv in argvs[:-1]:
        subprocess.run(argv, cwd=ROOT, env=os.environ.copy(), check=True, capture_output=True, timeout=300)
    proc = subprocess.Popen(argvs[-1], cwd=ROOT, env=os.environ.copy(), stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2)
            return proc, shown
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer within 60 s")


def fetch(port: int, url: str, cookie: str = "", token: str = "") -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{url}")
    if cookie:
        req.add_header("Cookie", cookie)
    if token:
        req.add_header("Authorization", f"Token {token}")
    with urllib.request.urlopen(req, timeout=30) as response:
        response.read()
        return response.status


# ====================================================================================================
# Data: users, sessions, tokens, change requests, jobs
# ====================================================================================================


def make_users(browsers: int, api_users: int) -> dict:
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.core.management import call_command

    User = get_user_model()
    engine = import_module(settings.SESSION_ENGINE)
    sessions, tokens = [], []
    staff = None
    for i in range(browsers):
        user, _ = User.objects.get_or_create(username=f"browser{i:02d}", defaults={"email": f"b{i}@example.com"})
        user.is_staff = i % 2 == 0  # half staff (every action shown), half plain signed-in users
        user.save()
        staff = staff or user
        store = engine.SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.save()
        sessions.append(store.session_key)
    for i in range(api_users):
        User.objects.get_or_create(username=f"pipeline{i:02d}", defaults={"email": f"p{i}@example.com"})
        out = _Capture()
        call_command("token_create", f"pipeline{i:02d}", name="bench", stdout=out)
        tokens.append(out.text.strip().splitlines()[-1])
    return {"sessions": sessions, "tokens": tokens, "cookie_name": settings.SESSION_COOKIE_NAME, "staff": staff}


class _Capture:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> None:
        self.text += s

    def flush(self) -> None:
        pass


def make_changes(bare: Path, machines: list[Machine], plan, n: int, staff) -> list[int]:
    from changes import services as change_services

    ids = []
    for i in range(n):
        m = machines[(i * 37) % len(machines)]
        spec = plan[(i * 3) % len(plan)]
        branch = f"change/load-{i:02d}"
        run(["git", "--git-dir", str(bare), "branch", "-f", branch, "main"])
        add_commit(bare, f"{m.path}/{spec.app}/files/{spec.rel}", f"# changed by load change {i}\n", f"Load change {i}",
                   branch=branch)
        cr = change_services.change_create(acting_user=staff, branch=branch, title=f"Load change {i}: {spec.rel}",
                                           description="A change request made by benchmarks/bench_load.py.",
                                           risk="low")
        change_services.change_submit(change=cr, acting_user=staff)
        ids.append(cr.pk)
    return ids


def make_jobs(machines: list[Machine], n: int, per_job: int, staff, timeout: float) -> list[int]:
    from deploys import services as deploy_services
    from deploys.models import Job

    ids = []
    for i in range(n):
        chosen = [machines[(i * per_job + k) * 7 % len(machines)].path for k in range(per_job)]
        ids.append(deploy_services.dryrun_start(acting_user=staff, revision="main", machines=chosen).pk)
    deadline = time.monotonic() + timeout
    finished = {"succeeded", "failed", "incomplete", "cancelled", "halted"}
    while time.monotonic() < deadline:
        states = list(Job.objects.filter(pk__in=ids).values_list("state", flat=True))
        if all(s in finished for s in states):
            break
        time.sleep(0.5)
    return ids


def page_urls(machines: list[Machine], plan, change_ids: list[int], job_ids: list[int]) -> dict:
    from cmdb.models import ConfigItem

    envs = sorted({m.env for m in machines})
    picked = machines[:: max(1, len(machines) // 200)][:200]
    apps = sorted({s.app for s in plan})
    files = [f"/files/{m.path}/{plan[k % len(plan)].app}/files/{plan[k % len(plan)].rel}" for k, m in enumerate(picked)]
    assert ConfigItem.objects.filter(path=picked[0].path).exists(), "machines not indexed"
    return {
        "environment": [f"/ci/{e}/" for e in envs],
        "machine": [f"/ci/{m.path}/" for m in picked],
        "application": [f"/ci/{m.path}/{apps[k % len(apps)]}/" for k, m in enumerate(picked)],
        "file": files,
        "change": [f"/changes/{pk}/" for pk in change_ids],
        "job": [f"/api/jobs/{pk}/" for pk in job_ids],
    }


def profile_pages(urls: dict, users: dict, n: int, work: Path) -> dict:
    """N requests per page kind through Django's test client in this process, then N more under cProfile.

    The figures are the page's own cost on an idle machine (no gunicorn, no other clients): what each
    request adds to the web CPU under load (``git`` processes a page starts are wall time, not this
    process's CPU). The profiles (internal and cumulative time) say where it goes.
    """
    import cProfile
    import io
    import pstats

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    staff = get_user_model().objects.get(pk=users["staff"].pk)
    browser = Client(HTTP_HOST="127.0.0.1")
    browser.force_login(staff)
    api = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {users['tokens'][0]}", HTTP_ACCEPT="application/json")
    out: dict = {}
    kinds = {**urls, "home": ["/"], "change list": ["/changes/"], "api jobs list": ["/api/jobs/"]}
    for kind, some in kinds.items():
        client = api if kind.startswith("api") or kind == "job" else browser
        for url in some[:2]:  # warm the caches this process keeps (templates, URL resolvers)
            client.get(url)
        times, cpu, queries = [], [], []
        for i in range(n):  # timed without the profiler, which slows Python code down about twofold
            url = some[i % len(some)]
            with CaptureQueriesContext(connection) as ctx:
                t, c = time.perf_counter(), time.process_time()
                response = client.get(url)
                times.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            assert response.status_code == 200, (url, response.status_code)
            queries.append(len(ctx.captured_queries))
        profiler = cProfile.Profile()
        for i in range(n):
            profiler.enable()
            client.get(some[i % len(some)])
            profiler.disable()
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(60)
        name = work.parent / f"profile-{kind.replace(' ', '-')}"
        name.with_suffix(".txt").write_text(text.getvalue())
        stats.dump_stats(name.with_suffix(".pstats"))
        times.sort()
        out[kind] = {"n": n, "mean_ms": 1000 * sum(times) / n, "p95_ms": 1000 * times[int(0.95 * (n - 1))],
                     "cpu_ms": 1000 * sum(cpu) / n, "queries": max(queries), "bytes": len(response.content)}
        print(f"page {kind:<16} mean {out[kind]['mean_ms']:6.1f} ms (this process's CPU {out[kind]['cpu_ms']:5.1f} ms), "
              f"p95 {out[kind]['p95_ms']:6.1f} ms, {out[kind]['queries']} queries, {out[kind]['bytes'] // 1024} KiB",
              flush=True)
    print(f"profiles written next to {work} (profile-<kind>.txt and .pstats)")
    return out


# ====================================================================================================
# Audits in the background
# ====================================================================================================


class AuditLoop:
    """Full audits back to back in the worker until stopped (at most ``max_runs``, ``limit_s``)."""

    def __init__(self, max_runs: int = 30, limit_s: float = 900) -> None:
        self.max_runs, self.limit_s = max_runs, limit_s
        self.runs: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> AuditLoop:
        self._thread.start()
        return self

    def stop(self, wait_s: float) -> None:
        """Start no more; wait up to ``wait_s`` for the one running."""
        self._stop.set()
        self._thread.join(timeout=wait_s)

    def _loop(self) -> None:
        from django.db import connection

        deadline = time.monotonic() + self.limit_s
        try:
            while not self._stop.is_set() and len(self.runs) < self.max_runs and time.monotonic() < deadline:
                self.runs.append(one_audit(deadline - time.monotonic()))
        except Exception:  # noqa: BLE001
            self.runs.append({"error": traceback.format_exc()})
        finally:
            connection.close()


def one_audit(timeout: float) -> dict:
    from audits import services
    from audits.models import AuditRun, Finding

    started = time.perf_counter()
    run_ = services.audit_start(acting_user=None, scope="", trigger=AuditRun.Trigger.SCHEDULE)
    state = "queued"
    while time.perf_counter() - started < timeout:
        state = AuditRun.objects.filter(pk=run_.pk).values_list("state", flat=True).first()
        if state in AuditRun.FINISHED_STATES:
            break
        time.sleep(0.05)
    run_.refresh_from_db()
    return {"run": run_.pk, "state": state, "wall_s": time.perf_counter() - started, "machines": run_.machines_total,
            "machines_done": run_.machines_done, "findings": Finding.objects.filter(run=run_).count()}


# ====================================================================================================
# Locust
# ====================================================================================================


def run_locust(work: Path, label: str, port: int, users: int, spawn_rate: int, run_time: int, wait: str,
               api_wait: str) -> dict:
    prefix = work / f"locust-{label}"
    env = {**os.environ, "LOAD_PLAN": str(work / "plan.json"), "LOAD_WAIT": wait, "LOAD_API_WAIT": api_wait}
    argv = [str(VENV_BIN / "locust"), "-f", str(ROOT / "benchmarks" / "locustfile.py"), "--headless",
            "--host", f"http://127.0.0.1:{port}", "--users", str(users), "--spawn-rate", str(spawn_rate),
            "--run-time", f"{run_time}s", "--stop-timeout", "10", "--csv", str(prefix), "--only-summary",
            "--loglevel", "WARNING", "--exit-code-on-error", "0"]
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=run_time + 120)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # locust is the only child reaped meanwhile
    locust_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    rows = list(csv.DictReader((prefix.parent / f"{prefix.name}_stats.csv").open()))
    failures = list(csv.DictReader((prefix.parent / f"{prefix.name}_failures.csv").open()))
    kinds = []
    for row in rows:
        if not row["Name"]:
            continue
        kinds.append({
            "name": row["Name"], "requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
            "p50": _num(row["50%"]), "p95": _num(row["95%"]), "p99": _num(row["99%"]), "max": _num(row["Max Response Time"]),
            "rps": float(row["Requests/s"]),
        })
    return {"label": label, "wait": wait, "api_wait": api_wait, "users": users, "run_time_s": run_time, "wall_s": wall,
            "kinds": kinds, "failures": failures[:10], "locust_rc": proc.returncode, "locust_cpu_s": locust_cpu,
            "locust_stderr": proc.stderr[-1500:] if proc.returncode else ""}


def _num(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def load_phase(work: Path, args, label: str, port: int, web, worker, wait: str) -> dict:
    """Locust for ``args.run_time`` while audits run back to back; RSS sampled."""
    cpu0 = (group_cpu_s(web.pid), group_cpu_s(worker.pid))
    load0 = os.getloadavg()
    loop = AuditLoop(max_runs=30, limit_s=args.run_time + 600).start() if not args.no_audit else None
    with RssSampler({"web": web.pid, "worker": worker.pid}) as rss:
        result = run_locust(work, label, port, args.users, args.spawn_rate, args.run_time, wait, args.api_wait)
        if loop:
            loop.stop(wait_s=600)  # the audit running when the load ends is finished and timed too
    result["audits"] = loop.runs if loop else []
    result["rss"] = rss.peak
    result["cpu_s"] = {"web": group_cpu_s(web.pid) - cpu0[0], "worker": group_cpu_s(worker.pid) - cpu0[1]}
    result["loadavg"] = [round(x, 2) for x in load0] + [round(os.getloadavg()[0], 2)]
    return result


# ====================================================================================================
# Main
# ====================================================================================================


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", type=int, default=5000)
    parser.add_argument("--envs", type=int, default=5)
    parser.add_argument("--files-per-machine", type=int, default=20)
    parser.add_argument("--apps", type=int, default=4)
    parser.add_argument("--gunicorn", action="append", default=[],
                        help="CLASS:WORKERS:THREADS, e.g. gthread:2:4 or sync:5:1 (repeatable); default: the compose "
                             "file's command as it is")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=int, default=10)
    parser.add_argument("--run-time", type=int, default=60, help="seconds of load per phase (default 60)")
    parser.add_argument("--wait", default="1,3", help="browsers' think time between pages, 'min,max' s (default 1,3)")
    parser.add_argument("--api-wait", default="1,2", help="API clients' poll interval, 'min,max' s (default 1,2)")
    parser.add_argument("--saturate-time", type=int, default=30,
                        help="seconds of the same clients with no think time (0: skip)")
    parser.add_argument("--browsers", type=int, default=40, help="distinct signed-in sessions (default 40)")
    parser.add_argument("--api-users", type=int, default=10, help="service accounts with a token each (default 10)")
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--repeat-audits", type=int, default=5, help="audits after the load (RSS per run kept)")
    parser.add_argument("--no-audit", action="store_true", help="no audits during the load")
    parser.add_argument("--pg-port", type=int, default=5452)
    parser.add_argument("--redis-port", type=int, default=6391)
    parser.add_argument("--web-port", type=int, default=0, help="gunicorn's port (default: a free one)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="before the load: N requests per page kind in this process under cProfile, each kind's "
                             "mean time, queries and costliest functions printed (0: skip)")
    parser.add_argument("--profile-only", action="store_true", help="stop after --profile (no load phases)")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--workdir")
    args = parser.parse_args(argv)
    args.gunicorn = args.gunicorn or ["compose"]
    for spec in args.gunicorn:
        if spec != "compose" and not re.fullmatch(r"(sync|gthread):[1-9][0-9]?:[1-9][0-9]?", spec):
            parser.error(f"--gunicorn {spec!r}: expected sync|gthread:WORKERS:THREADS")
    return args


def main(argv: list[str] | None = None) -> int:
    script_started = time.perf_counter()
    args = parse_args(argv)
    from tests.production import compose_commands
    from tests.services import free_port

    info = machine_description()
    results: dict = {"machine": info, "targets": TARGETS, "args": vars(args), "setup": {}, "phases": []}
    setup = results["setup"]
    work = Path(tempfile.mkdtemp(prefix="bench-load-", dir=args.workdir))
    pg = redis = worker = web = None
    try:
        t = time.perf_counter()
        pg, redis = start_services(work, args.pg_port, args.redis_port)
        setup["services_s"] = time.perf_counter() - t

        plan = file_plan(args.files_per_machine, args.apps)
        live, staging, bare = work / "live", work / "staging", work / "origin.git"
        envs = env_names(args.envs)
        per_env = -(-args.machines // args.envs)
        machines = [Machine(envs[i // per_env], f"{envs[i // per_env]}/m{i:04d}", live / envs[i // per_env] / f"m{i:04d}",
                            staging / envs[i // per_env] / f"m{i:04d}", "") for i in range(args.machines)]
        t = time.perf_counter()
        _git_init(bare)
        readme = [("README.md", b"# Load benchmark\n\nSynthetic fleet for benchmarks/bench_load.py.\n", False)]
        fast_import(bare, f"Import {len(machines)} machines\n",
                    [*readme, *repo_files(machines, plan, '[machine]\ntransport = "local"\nroot = "{path}"\n',
                                          sorted({m.env for m in machines}))])
        planted = write_trees(machines, plan)
        setup["repo_trees_s"] = time.perf_counter() - t
        print(f"repository and live trees {setup['repo_trees_s']:.1f}s ({planted['files']} files)", flush=True)

        os.environ |= {"DATABASE_URL": pg.url, "DJANGO_SECURE_COOKIES": "false", "DJANGO_SECURE_SSL_REDIRECT": "false",
                       "DJANGO_SECURE_HSTS_SECONDS": "0", "DJANGO_SECURE_PROXY_SSL_HEADER": "false",
                       "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}
        setup |= setup_env(SimpleNamespace(work=work, bare=bare, live=live), redis.url, None)
        from cmdb.models import SyncRun
        from cmdb.tasks import sync_repository

        worker_argv = compose_commands()["worker"][0]
        worker = subprocess.Popen(worker_argv, cwd=ROOT, env=os.environ.copy(), stdout=(work / "worker.log").open("wb"),
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        setup["worker"] = " ".join(worker_argv[1:])
        wait_worker_ready(worker, 180)
        port = args.web_port or free_port()
        # the web process idles through the index: its RSS is measured against the compose file's command
        web, _ = start_web("compose", port, work / "web.log")

        # --- index phase: the full index in the worker ----------------------------------------------
        t = time.perf_counter()
        with RssSampler({"web": web.pid, "worker": worker.pid}) as rss:
            sync_repository.delay(trigger="bench")
            deadline = time.monotonic() + 1200
            while time.monotonic() < deadline:
                last = SyncRun.objects.order_by("-pk").first()
                if last is not None and last.finished_at is not None:
                    break
                time.sleep(0.2)
        last = SyncRun.objects.order_by("-pk").first()
        results["index"] = {"wall_s": time.perf_counter() - t, "state": getattr(last, "status", "?"),
                            "files": planted["files"], "rss": rss.peak}
        print(f"index in the worker {results['index']['wall_s']:.1f}s ({results['index']['state']}), "
              f"peak RSS {rss.peak}", flush=True)

        users = make_users(args.browsers, args.api_users)
        t = time.perf_counter()
        change_ids = make_changes(bare, machines, plan, args.changes, users["staff"])
        job_ids = make_jobs(machines, args.jobs, 5, users["staff"], 300)
        setup["changes_jobs_s"] = time.perf_counter() - t
        urls = page_urls(machines, plan, change_ids, job_ids)
        (work / "plan.json").write_text(json.dumps({"sessions": users["sessions"], "tokens": users["tokens"],
                                                    "cookie_name": users["cookie_name"], "urls": urls}))
        stop_process_group(web)
        web = None
        if args.profile:
            results["profile"] = profile_pages(urls, users, args.profile, work)
        if args.profile_only:
            args.gunicorn, args.repeat_audits = [], 0

        # --- load phases, per gunicorn setting -------------------------------------------------------
        cookie = f"{users['cookie_name']}={users['sessions'][0]}"
        for spec in args.gunicorn:
            web, shown = start_web(spec, port, work / "web.log")
            for kind, some in urls.items():  # warm-ups: every worker process and page kind
                for url in some[:4]:
                    fetch(port, url, token=users["tokens"][0]) if kind == "job" else fetch(port, url, cookie=cookie)
            for url in ("/", "/changes/", "/api/jobs/"):
                fetch(port, url, token=users["tokens"][0]) if url.startswith("/api") else fetch(port, url, cookie=cookie)
            phase = load_phase(work, args, f"{spec}-think", port, web, worker, args.wait)
            phase |= {"gunicorn": shown, "spec": spec, "mode": f"think {args.wait} s"}
            results["phases"].append(phase)
            print_phase(phase)
            if args.saturate_time:
                sat_args = SimpleNamespace(**{**vars(args), "run_time": args.saturate_time})
                phase = load_phase(work, sat_args, f"{spec}-saturate", port, web, worker, "0")
                phase |= {"gunicorn": shown, "spec": spec, "mode": "no think time"}
                results["phases"].append(phase)
                print_phase(phase)
            if spec != args.gunicorn[-1]:
                stop_process_group(web)
                web = None

        # --- runs kept: RSS after each further audit --------------------------------------------------
        kept = []
        for _ in range(args.repeat_audits):
            audit = one_audit(900)
            for url in ("/", "/audits/", f"/audits/{audit['run']}/", "/audits/machines/"):
                for _ in range(3):
                    fetch(port, url, cookie=cookie)
            from audits.models import AuditRun

            kept.append({**audit, "runs_kept": AuditRun.objects.count(), "worker": current_rss(worker.pid),
                         "web": current_rss(web.pid)})
            print(f"audit {audit['run']}: {audit['wall_s']:.1f}s, runs kept {kept[-1]['runs_kept']}, worker RSS "
                  f"{kept[-1]['worker']['total_mb']:.0f} MB (largest process {kept[-1]['worker']['process_mb']:.0f}), "
                  f"web {kept[-1]['web']['total_mb']:.0f} MB", flush=True)
        results["kept"] = kept
        results["hwm"] = {name: {pid: status_kb(pid, "VmHWM") // 1024 for pid in group_pids(proc.pid)}
                          for name, proc in (("web", web), ("worker", worker)) if proc is not None}
    except Exception:
        traceback.print_exc()
        results["error"] = traceback.format_exc()
        for name in ("worker.log", "web.log"):
            if (work / name).exists():
                print(f"--- {name} (tail) ---\n" + "".join((work / name).read_text().splitlines(True)[-30:]))
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001, S110
            pass
        for proc in (web, worker):
            stop_process_group(proc)
        if redis is not None:
            redis.stop()
        if pg is not None:
            pg.remove()
        shutil.rmtree(work, ignore_errors=True)
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["script_s"] = time.perf_counter() - script_started
    return report(results, args.json)


def print_phase(phase: dict) -> None:
    total = next((k for k in phase["kinds"] if k["name"] == "Aggregated"), None)
    if total:
        audits = ", ".join(f"{a['wall_s']:.1f}s" for a in phase["audits"] if "wall_s" in a)
        print(f"[{phase['spec']} {phase['mode']}] {total['requests']} requests, {total['failures']} failures, "
              f"p95 {total['p95']:.0f} ms, {total['rps']:.1f} req/s; audits {audits or '-'}", flush=True)


def report(results: dict, json_path: str | None) -> int:
    info, setup = results["machine"], results["setup"]
    args = results["args"]
    print()
    print(f"Machine: {info['nproc']} CPU ({info['cpu_model']}), {info['ram_gb']} GB RAM, {info['os']}, "
          f"Python {info['python']}")
    print(f"Load average: start {info['loadavg_start']}, end {info.get('loadavg_end')}")
    print(f"Django {setup.get('django')}, {setup.get('database')}, worker `{setup.get('worker')}`")
    print(f"Size: {args['machines']} local machines x {args['files_per_machine']} files in {args['envs']} environments; "
          f"{args['users']} clients (browsers:API 4:1, {args['browsers']} sessions, {args['api_users']} tokens), "
          f"spawn {args['spawn_rate']}/s")
    ok = "error" not in results
    if "index" in results:
        ix = results["index"]
        print(f"\nIndex in the worker: {ix['wall_s']:.1f}s ({ix['state']}, {ix['files']} declared files); peak RSS "
              f"worker {ix['rss']['worker']['total_mb']:.0f} MB in all, largest process "
              f"{ix['rss']['worker']['process_mb']:.0f} MB; web {ix['rss']['web']['total_mb']:.0f} MB")
    for phase in results["phases"]:
        print(f"\n== gunicorn {phase['gunicorn']} -- {phase['mode']}, {phase['run_time_s']} s, load average "
              f"{phase['loadavg']} (1/5/15 min at start, 1 min at end)")
        header = f"{'page kind':<16} {'requests':>8} {'fail':>5} {'p50':>6} {'p95':>6} {'p99':>6} {'max':>6} {'req/s':>7}"
        print(header)
        print("-" * len(header))
        for k in phase["kinds"]:
            print(f"{k['name']:<16} {k['requests']:>8} {k['failures']:>5} {_ms(k['p50'])} {_ms(k['p95'])} "
                  f"{_ms(k['p99'])} {_ms(k['max'])} {k['rps']:>7.1f}")
        total = next((k for k in phase["kinds"] if k["name"] == "Aggregated"), None)
        if total is None:
            ok = False
            print(f"no figures: locust rc {phase['locust_rc']} {phase['locust_stderr']}")
            continue
        met = total["failures"] == 0 and (total["p95"] or 1e9) < TARGETS["p95_ms"]
        if phase["mode"].startswith("think"):
            ok &= met
        print(f"target: 0 failures and p95 < {TARGETS['p95_ms']:.0f} ms at {phase['users']} clients -> "
              f"{'OK' if met else 'MISSED'}{'' if phase['mode'].startswith('think') else ' (saturation: not a target)'}")
        for f in phase["failures"]:
            print(f"  failure: {f}")
        audits = [a for a in phase["audits"] if "wall_s" in a]
        errors = [a for a in phase["audits"] if "error" in a]
        print(f"audits during the load: {len(audits)}: " + ", ".join(
            f"#{a['run']} {a['state']} {a['wall_s']:.1f}s ({a['machines_done']}/{a['machines']}, {a['findings']} findings)"
            for a in audits))
        for e in errors:
            print(f"  audit loop error: {e['error']}")
        rss = phase["rss"]
        print(f"peak RSS: web {rss['web']['total_mb']:.0f} MB in {rss['web'].get('processes')} processes (largest "
              f"{rss['web']['process_mb']:.0f} MB); worker {rss['worker']['total_mb']:.0f} MB in "
              f"{rss['worker'].get('processes')} (largest {rss['worker']['process_mb']:.0f} MB); CPU s web "
              f"{phase['cpu_s']['web']:.0f} ({1000 * phase['cpu_s']['web'] / max(1, total['requests']):.0f} ms per "
              f"request), worker {phase['cpu_s']['worker']:.0f}, locust {phase['locust_cpu_s']:.0f}")
    if results.get("kept"):
        print("\nRuns kept (audits one after the other, no load): RSS after each")
        for k in results["kept"]:
            print(f"  run #{k['run']} {k['state']} {k['wall_s']:.1f}s, {k['runs_kept']} runs kept: worker "
                  f"{k['worker']['total_mb']:.0f} MB ({k['worker']['processes']} processes, largest "
                  f"{k['worker']['process_mb']:.0f}), web {k['web']['total_mb']:.0f} MB (largest "
                  f"{k['web']['process_mb']:.0f})")
    if results.get("hwm"):
        print(f"VmHWM at the end (MB per process): {results['hwm']}")
    print(f"\nScript run time: {results['script_s']:.0f}s")
    if "error" in results:
        print("RUN FAILED (see the traceback above)")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(results, indent=2, default=str))
        print(f"JSON written to {json_path}")
    return 0 if ok else 1


def _ms(value: float | None) -> str:
    return f"{'-':>6}" if value is None else f"{value:>6.0f}"


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())

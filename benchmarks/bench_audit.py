#!/usr/bin/env python3
"""Benchmark of the monthly audit: audit_start -> real Redis broker -> real Celery worker -> finished run.

Run from the project root with the project's virtualenv, as root (the loopback sshd needs it)::

    .venv/bin/python benchmarks/bench_audit.py --machines 200            # quick check
    .venv/bin/python benchmarks/bench_audit.py                           # 5,000 local x 20 files, 50 SSH
    .venv/bin/python benchmarks/bench_audit.py --skip-ssh --skip-home --json benchmarks/out/audit.json
    .venv/bin/python benchmarks/bench_audit.py --database-url postgres://postgres@127.0.0.1:5447/bench
    .venv/bin/python benchmarks/bench_audit.py --postgres --skip-ssh --skip-home   # a throw-away cluster

What it does, in a temporary directory (removed at exit with every process it started, unless --keep):

1. one ``git fast-import`` stream writes a bare origin: ``--envs`` environments of local machines
   (``<env>/mNNNN/manifest.toml`` with ``transport = "local"`` and ``root = "<env>/mNNNN"`` relative
   to ``CMDB_LOCAL_ROOT_BASE``), each with ``--apps`` applications sharing ``--files-per-machine``
   files (``files/etc/<app>/...``, every tenth one an executable script under ``/usr/local/bin``;
   files of even index are identical across an environment, the others differ per machine);
2. the live trees (``CMDB_LOCAL_ROOT_BASE/<env>/mNNNN/``) hold the declared files with 1 % drift,
   exactly one file in a hundred: half of them changed content, a quarter a mode difference
   (0600/0700), a quarter missing; plus a staging tree of exactly what is declared (rsync's source);
3. Django in-process (``bench_dryrun.setup_env``: no debug, file SQLite in ``CMDB_DATA_DIR`` unless
   ``--database-url``/``DATABASE_URL``), ``migrate``, the portal's clone and (unless ``--no-sync``)
   a full ``repo_sync``, a real ``redis-server`` and a ``celery -A portal worker`` subprocess (prefork,
   ``--concurrency``, 2 by default) with the same environment; mail goes to Django's locmem backend;
4. one warm-up audit of a single machine (then deleted), the floors (``rsync -anc --itemize-changes``
   from the staging tree to all live trees in one invocation; ``sha256sum`` of every live file,
   serial and with ``xargs -P nproc``), then the timed full audit: ``audits.services.audit_start``
   (scope "", trigger schedule, as the monthly beat task does) until ``AuditRun.state`` is finished,
   polled every 10 ms;
5. SSH: a second commit on main adds ``ssh/sNN`` machines reached over a loopback sshd
   (``tests.services.start_sshd``; targets are absolute paths under ``/tmp/cmbench-ssh-XXXX/sNN/``,
   owned by the ssh user), with the same 1 % drift; timed ``audit_start(scope="ssh")``; the floors
   are rsync over the same sshd and ``sha256sum`` run through one ssh connection;
6. home page: a year of monthly history (12 succeeded runs with summaries, one MachineResult per
   machine and run, their findings) is bulk-inserted behind the real run, then ``GET /`` (and
   ``/api/status/`` and ``/audits/machines/``) with the test ``Client`` as a staff
   user: warm-ups, one request under ``CaptureQueriesContext``, then ``--requests`` timed ones.

When the local audit misses its target (or with ``--profile``), one batch of ``CMDB_AUDIT_BATCH``
machines is audited again in-process with ``audits.services._audit_machines``: once plain, once under
cProfile (``run_in_executor`` is also made synchronous, for transports that use threads).

Exit status 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_dryrun import rsync_floor, run, setup_env, start_worker, stop_process_group  # noqa: E402
from benchmarks.bench_identification import machine_description, p95  # noqa: E402
from benchmarks.synthrepo import Stream, _git_env, _git_init, env_names  # noqa: E402

TARGETS = {"local_s": 10.0, "local_x_sha256": 3.0, "home_p95_ms": 100.0}
APP_NAMES = ["nginx", "app", "logrotate", "node-exporter", "filebeat", "chrony", "rsyslog", "backup"]
DRIFT_KINDS = ("content", "content", "mode", "missing")  # one file in 100 drifts; kinds rotate
HISTORY_MONTHS = 12


# ====================================================================================================
# Declared files, drift
# ====================================================================================================


class FileSpec(NamedTuple):
    app: str
    rel: str  # target relative to the machine's root, no leading slash
    executable: bool
    shared: bool  # identical on every machine of an environment
    template: str  # "@M@" is replaced by the environment (shared) or the machine path


def file_plan(files: int, apps: int) -> list[FileSpec]:
    names = [APP_NAMES[i] if i < len(APP_NAMES) else f"app{i:02d}" for i in range(apps)]
    plan = []
    for j in range(files):
        app = names[j % apps]
        if j % 10 == 9:
            lines = ["#!/bin/sh", f"# {app} task {j:02d} on @M@ (managed by the CMDB)", "set -eu"]
            lines += [f'echo "step {n:02d} for @M@: {app} value-{(n * 31 + j) % 97}"' for n in range(8 + (j * 5) % 20)]
            plan.append(FileSpec(app, f"usr/local/bin/{app}-task{j:02d}.sh", True, j % 2 == 0, "\n".join(lines) + "\n"))
        else:
            lines = [f"# {app} configuration {j:02d} for @M@ (managed by the CMDB, do not edit)"]
            lines += [f"option_{n:02d} = {app}-value-{(n * 31 + j) % 97}  # @M@" for n in range(12 + (j * 7) % 30)]
            plan.append(FileSpec(app, f"etc/{app}/{app}-{j:02d}.conf", False, j % 2 == 0, "\n".join(lines) + "\n"))
    return plan


def declared(spec: FileSpec, env: str, machine_path: str) -> bytes:
    return spec.template.replace("@M@", env if spec.shared else machine_path).encode()


def drift_of(k: int) -> str | None:
    return DRIFT_KINDS[(k // 100) % len(DRIFT_KINDS)] if k % 100 == 37 else None


class Machine(NamedTuple):
    env: str
    path: str  # "<env>/<name>"
    live: Path  # the live root (local machines; SSH ones have their files under target_base)
    staging: Path
    target_base: str  # "" for local machines; "/tmp/cmbench-ssh-XXXX/sNN" for SSH ones


def write_trees(machines: list[Machine], plan: list[FileSpec]) -> Counter:
    """Live files (declared, with 1 % drift) and the staging tree (declared); the drift kinds written."""
    os.umask(0o022)
    kinds: Counter = Counter()
    dirs = sorted({posixpath_dir(s.rel) for s in plan})
    k = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    times = (1_790_000_000, 1_790_000_000)
    for m in machines:
        live_base = Path(m.target_base) if m.target_base else m.live
        for d in dirs:
            os.makedirs(live_base / d, exist_ok=True)
            os.makedirs(m.staging / d, exist_ok=True)
        for spec in plan:
            data = declared(spec, m.env, m.path)
            mode = 0o755 if spec.executable else 0o644
            fd = os.open(m.staging / spec.rel, flags, mode)
            os.write(fd, data)
            os.utime(fd, times)  # one mtime everywhere: rsync then itemizes only real differences
            os.close(fd)
            drift = drift_of(k)
            k += 1
            if drift:
                kinds[drift] += 1
            if drift == "missing":
                continue
            path = live_base / spec.rel
            fd = os.open(path, flags, mode)
            os.write(fd, data + b"# edited by hand during an incident\n" if drift == "content" else data)
            os.utime(fd, times)
            os.close(fd)
            if drift == "mode":
                os.chmod(path, 0o700 if spec.executable else 0o600)
    kinds["files"] = k
    return kinds


def posixpath_dir(rel: str) -> str:
    return rel.rsplit("/", 1)[0]


# ====================================================================================================
# Repository (git fast-import)
# ====================================================================================================


def repo_files(machines: list[Machine], plan: list[FileSpec], manifest: str, envs: Iterable[str],
               ) -> Iterator[tuple[str, bytes, bool]]:
    """(repository path, content, executable) of every file of ``machines``; ``manifest`` is a format
    string of the machine manifest (``{path}`` is the machine path)."""
    for env in envs:
        yield f"{env}/README.md", f"# {env}\n\nMachines of the {env} environment (audit benchmark).\n".encode(), False
    apps = sorted({s.app for s in plan})
    for m in machines:
        yield f"{m.path}/manifest.toml", manifest.format(path=m.path).encode(), False
        for app in apps:
            yield f"{m.path}/{app}/manifest.toml", f'[deploy]\nreload = ["systemctl reload {app}"]\n'.encode(), False
        for spec in plan:
            target = f"{m.target_base}/{spec.rel}".lstrip("/")
            yield f"{m.path}/{spec.app}/files/{target}", declared(spec, m.env, m.path), spec.executable


def fast_import(bare: Path, message: str, files: Iterable[tuple[str, bytes, bool]], parent: str | None = None) -> str:
    """One commit on main with ``files`` (on top of ``parent`` when given); returns its sha."""
    proc = subprocess.Popen(
        ["git", "--git-dir", str(bare), "-c", "pack.compression=1", "fast-import", "--quiet", "--done", "--depth=0"],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=_git_env(), bufsize=1 << 20,
    )
    assert proc.stdin is not None and proc.stderr is not None
    out = Stream(proc.stdin)
    ident = b"Bench Bot <bench@example.com> %d +0000" % int(time.time())
    try:
        out.raw(b"commit refs/heads/main\nauthor %s\ncommitter %s\n" % (ident, ident))
        out.data(message.encode())
        if parent:
            out.raw(b"from %s\n" % parent.encode())
        for path, data, executable in files:
            out.raw(b"M %s inline %s\n" % (b"100755" if executable else b"100644", path.encode()))
            out.data(data)
        out.raw(b"done\n")
        out.flush()
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode("utf-8", "replace")
    if proc.wait() != 0:
        raise RuntimeError(f"git fast-import failed: {err.strip()}")
    return run(["git", "--git-dir", str(bare), "rev-parse", "main"]).stdout.strip()


# ====================================================================================================
# Measuring
# ====================================================================================================

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def group_cpu(pgid: int) -> tuple[float, float]:
    """CPU seconds of every process in a group: (their own user + system, their reaped children's,
    i.e. git commands run by the worker's pool processes)."""
    own = children = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        if int(fields[2]) == pgid:
            own += int(fields[11]) + int(fields[12])
            children += int(fields[13]) + int(fields[14])
    return own / _CLK_TCK, children / _CLK_TCK


def timed_shell(command: str, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise RuntimeError(f"{command} failed ({proc.returncode}): {proc.stderr.strip()[:500]}")
    return {"median_s": statistics.median(times), "min_s": min(times), "command": command}


def local_floors(staging: Path, live: Path, repeat: int, nproc: int) -> dict:
    return {
        "rsync": rsync_floor(staging, f"{live}/", repeat=repeat),
        "sha256": timed_shell(f"find {shlex.quote(str(live))} -type f -print0 | xargs -0 sha256sum > /dev/null", repeat),
        "sha256_par": timed_shell(f"find {shlex.quote(str(live))} -type f -print0 | "
                                  f"xargs -0 -P {nproc} -n 1000 sha256sum > /dev/null", repeat),
    }


def ssh_floors(staging: Path, sshd, ssh_root: Path, repeat: int) -> dict:
    ssh_cmd = ["ssh", *sshd.ssh_options, "-p", str(sshd.port)]
    remote = f"find {shlex.quote(str(ssh_root))} -type f -print0 | xargs -0 sha256sum > /dev/null"
    return {
        "rsync": rsync_floor(staging, f"{sshd.user}@{sshd.host}:{ssh_root}/", ssh=ssh_cmd, repeat=repeat),
        "sha256": timed_shell(shlex.join([*sshd.ssh_args(), remote]), repeat),
    }


def process_states(pgid: int) -> str:
    """State and kernel wait channel of every process of a group (diagnosis of a stuck worker)."""
    rows = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
            fields = raw[raw.rindex(")") + 2:].split()
            if int(fields[2]) != pgid:
                continue
            wchan = Path(f"/proc/{entry}/wchan").read_text().strip()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
        except (OSError, ValueError):
            continue
        rows.append(f"pid {entry} state {fields[0]} wchan {wchan or '-'}: {cmd}")
    return "; ".join(rows) or f"no process left in group {pgid}"


def wait_worker_ready(worker, timeout: float) -> float:
    """Seconds until the worker answers a control ping."""
    from portal.celery import app

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with status {worker.returncode}")
        try:
            if app.control.ping(timeout=0.5):
                return time.perf_counter() - started
        except Exception:  # noqa: BLE001, S110 - not connected yet
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the worker did not answer a ping within {timeout:.0f}s: {process_states(worker.pid)}")


def wait_run(run_id: int, timeout: float, started: float):
    from audits.models import AuditRun

    state = "queued"
    while time.perf_counter() - started < timeout:
        state = AuditRun.objects.filter(pk=run_id).values_list("state", flat=True).first()
        if state in AuditRun.FINISHED_STATES:
            return time.perf_counter() - started
        time.sleep(0.01)
    raise RuntimeError(f"audit {run_id} still {state} after {timeout:.0f}s")


def worker_diagnosis(worker) -> str:
    if worker.poll() is not None:
        return f"the worker exited with status {worker.returncode}"
    return process_states(worker.pid)


def audit_scenario(scope: str, expected: Counter, worker_pgid: int, timeout: float) -> dict:
    """Time one audit from audit_start to a finished run; its figures next to what was planted."""
    from django.conf import settings
    from django.db.models import Count

    from audits import services
    from audits.models import AuditRun, Finding, MachineResult
    from fleet.look import batches

    cpu0 = group_cpu(worker_pgid)
    started = time.perf_counter()
    run = services.audit_start(acting_user=None, scope=scope, trigger=AuditRun.Trigger.SCHEDULE)
    start_call_s = time.perf_counter() - started
    wall = wait_run(run.pk, timeout, started)
    cpu1 = group_cpu(worker_pgid)
    worker_cpu, git_cpu = cpu1[0] - cpu0[0] + cpu1[1] - cpu0[1], cpu1[1] - cpu0[1]
    run.refresh_from_db()
    kinds = dict(Finding.objects.filter(run=run).order_by().values_list("kind").annotate(n=Count("id")))
    stored = sorted(set(MachineResult.objects.filter(run=run).values_list("finished_at", flat=True)))
    n = run.machines_total
    planted = {k: v for k, v in expected.items() if k != "files"}
    return {
        "run": run.pk, "scope": scope or "(everything)", "state": run.state, "machines": n,
        "machines_done": run.machines_done, "files": expected["files"], "wall_s": wall,
        "machines_per_s": n / wall if wall else None, "start_call_s": start_call_s,
        "queue_s": (run.started_at - run.created_at).total_seconds() if run.started_at else None,
        "worker_s": (run.finished_at - run.started_at).total_seconds() if run.finished_at and run.started_at else None,
        "first_batch_stored_s": (stored[0] - run.started_at).total_seconds() if stored and run.started_at else None,
        "batches": len(batches(list(run.machines), settings.CMDB_AUDIT_BATCH)), "batch_commits": len(stored),
        "worker_cpu_s": worker_cpu, "worker_git_cpu_s": git_cpu, "findings": sum(kinds.values()), "findings_by_kind": kinds,
        "planted": planted, "planted_total": sum(planted.values()),
        "statuses": run.summary.get("statuses", {}), "compliance": run.summary.get("compliance"),
        "error": run.error, "main_sha": run.main_sha, "machine_paths": list(run.machines),
    }


# ====================================================================================================
# Home page: a year of history, then latencies
# ====================================================================================================


def insert_history(latest_run_id: int, plan: list[FileSpec], months: int, seed: int = 7) -> dict:
    """``months`` succeeded monthly runs before the real one, with a MachineResult per machine of the
    real run and the findings of the drifted ones, summaries in the shape of ``services.summarize``."""
    from django.db import transaction

    from audits.models import AuditRun, Finding, MachineResult, MachineStatus, percent

    started = time.perf_counter()
    rng = random.Random(seed)
    latest = AuditRun.objects.get(pk=latest_run_id)
    machines = list(latest.machines)
    per_app = Counter(s.app for s in plan)
    kinds = ["content", "content", "content", "mode", "missing", "owner"]
    counts = {"runs": 0, "results": 0, "findings": 0}
    with transaction.atomic():
        for month in range(months, 0, -1):  # oldest first, so ids grow with time as in production
            created = latest.created_at - timedelta(days=round(30.44 * month))
            finished = created + timedelta(seconds=rng.uniform(8, 40))
            run = AuditRun.objects.create(
                scope="", state=AuditRun.State.SUCCEEDED, trigger=AuditRun.Trigger.SCHEDULE, main_sha=latest.main_sha,
                machines=machines, machines_total=len(machines), machines_done=len(machines), created_at=created,
                started_at=created + timedelta(seconds=1), finished_at=finished, summary_mailed_at=finished,
            )
            drift_rate = 0.05 + 0.20 * month / months  # compliance improves over the year
            results, bad_files = [], []
            for path in machines:
                env = path.split("/", 1)[0]
                r = rng.random()
                if r < 0.005:
                    results.append(MachineResult(run=run, machine_path=path, environment=env, status="unreachable",
                                                 reason=f"{path}: connection timed out after 10 s", finished_at=finished))
                    bad_files.append([])
                    continue
                if r < 0.007:
                    results.append(MachineResult(run=run, machine_path=path, environment=env, status="error",
                                                 reason=f"{path}/manifest.toml:2: unknown transport", finished_at=finished))
                    bad_files.append([])
                    continue
                bad = rng.sample(range(len(plan)), rng.randint(1, 3)) if rng.random() < drift_rate else []
                apps = {f"{path}/{app}": [n, n] for app, n in per_app.items()}
                for j in bad:
                    apps[f"{path}/{plan[j].app}"][0] -= 1
                total = len(plan)
                results.append(MachineResult(
                    run=run, machine_path=path, environment=env, status="drifted" if bad else "compliant",
                    files_total=total, files_in_sync=total - len(bad), compliance=percent(total - len(bad), total),
                    applications=apps, finished_at=finished))
                bad_files.append(bad)
            MachineResult.objects.bulk_create(results, batch_size=1000)
            if any(r.pk is None for r in results):
                ids = dict(MachineResult.objects.filter(run=run).values_list("machine_path", "id"))
                for r in results:
                    r.pk = r.id = ids[r.machine_path]
            findings = []
            for result, bad in zip(results, bad_files, strict=True):
                for j in bad:
                    spec, kind = plan[j], rng.choice(kinds)
                    target = f"/{spec.rel}"
                    live_sha = f"{rng.getrandbits(256):064x}"
                    live = {"mode": "0600", "owner": "root:adm"}.get(kind, "")
                    findings.append(Finding(
                        run=run, result=result, machine_path=result.machine_path, environment=result.environment,
                        app_path=f"{result.machine_path}/{spec.app}",
                        source_path=f"{result.machine_path}/{spec.app}/files/{spec.rel}", target=target, kind=kind,
                        declared={"mode": "0644", "owner": "*:*"}.get(kind, ""), live=live,
                        live_sha256=live_sha if kind != "missing" else "",
                        diff="--- live\n+++ declared\n@@ -1,3 +1,3 @@\n-option_01 = old\n+option_01 = new\n"
                        if kind == "content" else "",
                        fingerprint=Finding.fingerprint_of(result.machine_path, target, kind, live_sha),
                        state=rng.choice(["acknowledged", "acknowledged", "open"]) if month > 1 else "open",
                    ))
            Finding.objects.bulk_create(findings, batch_size=1000)
            run.summary = _summary(results, findings)
            run.save(update_fields=["summary"])
            counts["runs"] += 1
            counts["results"] += len(results)
            counts["findings"] += len(findings)
    counts["machine_status_rows"] = MachineStatus.objects.count()
    counts["audit_runs_total"] = AuditRun.objects.count()
    counts["insert_s"] = time.perf_counter() - started
    return counts


def _summary(results: list, findings: list) -> dict:
    """What ``audits.services.summarize`` stores, computed in memory."""
    from audits.models import percent

    def bucket() -> dict:
        return {"machines": 0, "files": 0, "in_sync": 0, "statuses": {}}

    envs: dict[str, dict] = {}
    total = bucket()
    for r in results:
        env = envs.setdefault(r.environment, bucket())
        for b in (env, total):
            b["machines"] += 1
            b["statuses"][r.status] = b["statuses"].get(r.status, 0) + 1
            if r.status in ("compliant", "drifted"):
                b["files"] += r.files_total
                b["in_sync"] += r.files_in_sync
    per_env = Counter(f.environment for f in findings)
    for name, b in envs.items():
        b["compliance"] = percent(b["in_sync"], b["files"])
        b["findings"] = per_env.get(name, 0)
    total["compliance"] = percent(total["in_sync"], total["files"])
    total["findings"] = len(findings)
    return {**total, "environments": dict(sorted(envs.items()))}


def time_pages(user, requests: int, warmups: int, extra_urls: Iterable[str] = ()) -> list[dict]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import Resolver404, resolve

    client = Client(raise_request_exception=True)
    client.force_login(user)
    out = []
    for url in ("/", "/api/status/", "/audits/machines/", *extra_urls):
        row: dict = {"url": url}
        try:
            resolve(url)
        except Resolver404:
            row["error"] = "not available (no such URL)"
            out.append(row)
            continue
        try:
            response = None
            for _ in range(warmups):
                response = client.get(url)
            if response is None or response.status_code != 200:
                row["error"] = f"not available (HTTP {response.status_code if response is not None else '-'})"
                out.append(row)
                continue
            with CaptureQueriesContext(connection) as captured:
                response = client.get(url)
            row["queries"] = len(captured.captured_queries)
            row["audit_status_read"] = any("audits_machinestatus" in q["sql"] for q in captured.captured_queries)
            row["bytes"] = len(response.content)
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code} during the timed requests")
            row |= {"p50_ms": statistics.median(times), "p95_ms": p95(times), "max_ms": max(times)}
        except Exception as exc:  # noqa: BLE001 - report it, keep going
            row["error"] = f"{exc.__class__.__name__}: {exc}".splitlines()[0][:160]
            row["traceback"] = traceback.format_exc(limit=6)
        out.append(row)
    return out


# ====================================================================================================
# Profile of one batch, in-process
# ====================================================================================================


def profile_batch(sha: str, machines: list[str], top: int) -> dict:
    """``_audit_machines`` on one batch: plain (threads as in the worker), then under cProfile with
    ``run_in_executor`` run inline so that the local transport's work is in the profile."""
    import resource

    from django.db import transaction

    from audits import services
    from audits.models import AuditRun, MachineStatus

    started = time.perf_counter()
    cpu = time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    outcomes = services._audit_machines(sha, machines)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    plain = {"wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu,
             "children_cpu_s": after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime,
             "statuses": {str(k): v for k, v in Counter(o.status for o in outcomes).items()}}
    # The store phase, into a scratch run (deleted after; the machines' status rows are put back).
    fields = ["last_result", "last_audit_at", "status", "reason", "compliance", "files_total", "files_in_sync",
              "open_findings"]
    saved = list(MachineStatus.objects.filter(machine_path__in=machines))
    scratch = AuditRun.objects.create(scope="bench-profile", state=AuditRun.State.RUNNING, main_sha=sha,
                                      machines=machines, machines_total=len(machines) + 1)
    started = time.perf_counter()
    services._store(scratch, outcomes)
    plain["store_s"] = time.perf_counter() - started
    started = time.perf_counter()
    services._finish(scratch.pk)  # not all done (machines_total + 1): the check only
    plain["finish_check_s"] = time.perf_counter() - started
    with transaction.atomic():
        scratch.delete()
        MachineStatus.objects.bulk_update(saved, fields)
    base = asyncio.base_events.BaseEventLoop
    original = base.run_in_executor

    def inline(self, executor, func, *args):  # noqa: ANN001
        future = self.create_future()
        try:
            future.set_result(func(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            future.set_exception(exc)
        return future

    profiler = cProfile.Profile()
    base.run_in_executor = inline
    try:
        started = time.perf_counter()
        profiler.enable()
        services._audit_machines(sha, machines)
        profiler.disable()
        profiled_s = time.perf_counter() - started
    finally:
        base.run_in_executor = original
    stats = pstats.Stats(profiler)
    spawns = sum(v[1] for k, v in stats.stats.items() if "fork_exec" in k[2])  # type: ignore[attr-defined]
    texts = {}
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).strip_dirs().sort_stats(key).print_stats(top)
        texts[key] = buf.getvalue()
    return {"machines": len(machines), "plain": plain, "profiled_s": profiled_s, "subprocesses": spawns, "stats": texts}


# ====================================================================================================
# Main
# ====================================================================================================


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", type=int, default=5000, help="local machines (default 5000)")
    parser.add_argument("--files-per-machine", type=int, default=20, help="declared files per machine (default 20)")
    parser.add_argument("--apps", type=int, default=4, help="applications per machine (default 4)")
    parser.add_argument("--envs", type=int, default=5, help="environments the local machines are spread over")
    parser.add_argument("--ssh-machines", type=int, default=50, help="SSH machines (default 50)")
    parser.add_argument("--skip-ssh", action="store_true", help="no sshd, no SSH audit")
    parser.add_argument("--skip-home", action="store_true", help="no history, no page latencies")
    parser.add_argument("--no-sync", action="store_true", help="do not index the repository (the home page then "
                                                                "computes its figures from an empty index)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--batch", type=int, default=0, help="CMDB_AUDIT_BATCH (default: the portal's)")
    parser.add_argument("--postgres", action="store_true", help="a throw-away PostgreSQL cluster of its own "
                        "(initdb, started on a free port, removed at exit; tests.production.start_postgres)")
    parser.add_argument("--database-url", help="e.g. postgres://postgres@127.0.0.1:5447/bench (a throw-away "
                                               "database: its audit tables are emptied)")
    parser.add_argument("--floor-runs", type=int, default=3, help="runs of each floor command (median reported)")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per URL (default 50)")
    parser.add_argument("--warmups", type=int, default=5, help="warm-up requests per URL (default 5)")
    parser.add_argument("--url", action="append", default=[], help="also time this URL after the history "
                                                                   "(repeatable), e.g. /audits/machines/")
    parser.add_argument("--profile", action="store_true", help="profile one batch even when the target is met")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--timeout", type=float, default=900.0, help="per-audit timeout, seconds")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--workdir", help="parent directory of the temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = parser.parse_args(argv)
    if args.machines < 1 or args.files_per_machine < 1 or args.apps < 1 or args.envs < 1:
        parser.error("--machines, --files-per-machine, --apps and --envs must be at least 1")
    args.apps = min(args.apps, args.files_per_machine)
    if args.skip_ssh:
        args.ssh_machines = 0
    if args.ssh_machines and os.geteuid() != 0:
        parser.error("the SSH scenario needs root (start_sshd); use --skip-ssh")
    return args


def main(argv: list[str] | None = None) -> int:
    script_started = time.perf_counter()
    args = parse_args(argv)
    if args.batch:
        os.environ["CMDB_AUDIT_BATCH"] = str(args.batch)
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    os.environ["DJANGO_EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"

    from tests.services import start_redis, start_sshd

    info = machine_description()
    results: dict = {"machine": info, "targets": TARGETS, "sizes": {
        "machines": args.machines, "files_per_machine": args.files_per_machine, "apps": args.apps,
        "envs": args.envs, "ssh_machines": args.ssh_machines}, "setup": {}}
    work = Path(tempfile.mkdtemp(prefix="bench-audit-", dir=args.workdir))
    ssh_root = Path(tempfile.mkdtemp(prefix="cmbench-ssh-", dir="/tmp"))
    ssh_root.chmod(0o755)
    handles: list = []
    worker = None
    setup = results["setup"]
    try:
        t = time.perf_counter()
        if args.postgres:
            from tests.production import start_postgres

            pg = start_postgres(work)
            handles.append(SimpleNamespace(stop=pg.remove))
            os.environ["DATABASE_URL"] = pg.url
        redis_url, redis = start_redis(work / "redis")
        handles.append(redis)
        sshd = None
        if args.ssh_machines:
            sshd = start_sshd(work / "sshd")
            handles.append(sshd)
        setup["services_s"] = time.perf_counter() - t

        # --- repository and live trees -------------------------------------------------------------
        plan = file_plan(args.files_per_machine, args.apps)
        live, staging, bare = work / "live", work / "staging", work / "origin.git"
        envs = env_names(args.envs)
        per_env = -(-args.machines // args.envs)
        local = [Machine(envs[i // per_env], f"{envs[i // per_env]}/m{i:04d}", live / envs[i // per_env] / f"m{i:04d}",
                         staging / envs[i // per_env] / f"m{i:04d}", "") for i in range(args.machines)]
        used_envs = sorted({m.env for m in local})
        t = time.perf_counter()
        _git_init(bare)
        readme = [("README.md", b"# Audit benchmark\n\nSynthetic fleet for benchmarks/bench_audit.py.\n", False)]
        manifest = '[machine]\ntransport = "local"\nroot = "{path}"\n'
        fast_import(bare, f"Import {len(local)} machines\n",
                    [*readme, *repo_files(local, plan, manifest, used_envs)])
        setup["repo_s"] = time.perf_counter() - t
        setup["pack_mb"] = round(sum(p.stat().st_size for p in (bare / "objects").rglob("*") if p.is_file()) / 1e6, 1)
        t = time.perf_counter()
        planted_local = write_trees(local, plan)
        setup["trees_s"] = time.perf_counter() - t
        print(f"repository {setup['repo_s']:.1f}s ({setup['pack_mb']} MB), live + staging trees "
              f"{setup['trees_s']:.1f}s ({planted_local['files']} files, drift {dict(planted_local)})", flush=True)

        # --- Django, clone, index, worker -----------------------------------------------------------
        t = time.perf_counter()
        setup |= setup_env(SimpleNamespace(work=work, bare=bare, live=live), redis_url, sshd)
        from django.conf import settings
        from django.contrib.auth import get_user_model

        from audits.models import AuditRun, MachineStatus
        from cmdb import services as cmdb_services
        from fleet.look import batches

        if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
            AuditRun.objects.all().delete()  # a throw-away database: start from no audits
            MachineStatus.objects.all().delete()
        cmdb_services.get_repo()  # the clone (in production it exists long before an audit)
        setup["django_clone_s"] = time.perf_counter() - t
        worker = start_worker(args.concurrency, work / "worker.log")  # starts while the index is built
        worker_started = time.perf_counter()
        if not args.no_sync:
            t = time.perf_counter()
            cmdb_services.repo_sync(trigger="bench")
            setup["sync_s"] = time.perf_counter() - t
            print(f"repo_sync (full index) {setup['sync_s']:.1f}s", flush=True)
        User = get_user_model()
        user, _ = User.objects.get_or_create(username="bench-staff", defaults={"email": "bench@example.com"})
        user.is_staff, user.email = True, "bench@example.com"
        user.save()
        setup |= {"worker": f"celery prefork x{args.concurrency}", "batch": settings.CMDB_AUDIT_BATCH,
                  "concurrency": args.concurrency}
        wait_worker_ready(worker, 180)
        setup["worker_ready_s"] = time.perf_counter() - worker_started
        t = time.perf_counter()
        warm = audit_scenario(local[0].path, Counter(files=len(plan)), worker.pid, 120)
        setup["warmup_s"] = time.perf_counter() - t
        AuditRun.objects.filter(pk=warm["run"]).delete()
        MachineStatus.objects.all().delete()
        print(f"worker pid {worker.pid} ready after {setup['worker_ready_s']:.1f}s (warm-up audit of one machine "
              f"{setup['warmup_s']:.2f}s, "
              f"{warm['state']})", flush=True)

        # --- 1. local ------------------------------------------------------------------------------
        t = time.perf_counter()
        floors = local_floors(staging, live, args.floor_runs, info["nproc"])
        print(f"local floors {time.perf_counter() - t:.1f}s: rsync {floors['rsync']['median_s']:.2f}s, "
              f"sha256sum {floors['sha256']['median_s']:.2f}s", flush=True)
        results["local"] = audit_scenario("", planted_local, worker.pid, args.timeout)
        results["local"]["floors"] = floors
        r = results["local"]
        print(f"local audit: {r['state']} in {r['wall_s']:.2f}s, {r['findings']} findings", flush=True)

        # --- 2. SSH --------------------------------------------------------------------------------
        if args.ssh_machines:
            import pwd

            remote = [Machine("ssh", f"ssh/s{i:02d}", Path("/"), work / "staging-ssh" / f"s{i:02d}",
                              f"{ssh_root}/s{i:02d}") for i in range(args.ssh_machines)]
            manifest = (f'[machine]\ntransport = "ssh"\nhost = "{sshd.host}"\nport = {sshd.port}\n'
                        f'user = "{sshd.user}"\n')
            head = run(["git", "--git-dir", str(bare), "rev-parse", "main"]).stdout.strip()
            fast_import(bare, f"Add {len(remote)} SSH machines\n", repo_files(remote, plan, manifest, ["ssh"]), head)
            planted_ssh = write_trees(remote, plan)
            entry = pwd.getpwnam(sshd.user)  # the SSH "machines" belong to the ssh user
            for dirpath, _dirnames, filenames in os.walk(ssh_root):
                os.chmod(dirpath, 0o755)
                os.chown(dirpath, entry.pw_uid, entry.pw_gid)
                for name in filenames:
                    os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)
            floors = ssh_floors(work / "staging-ssh", sshd, ssh_root, args.floor_runs)
            results["ssh"] = audit_scenario("ssh", planted_ssh, worker.pid, args.timeout)
            results["ssh"]["floors"] = floors
            r = results["ssh"]
            print(f"SSH audit: {r['state']} in {r['wall_s']:.2f}s, {r['findings']} findings", flush=True)

        # --- 3. home page --------------------------------------------------------------------------
        if not args.skip_home:
            results["history"] = insert_history(results["local"]["run"], plan, HISTORY_MONTHS)
            print(f"history inserted in {results['history']['insert_s']:.1f}s: {results['history']}", flush=True)
            results["pages"] = time_pages(user, args.requests, args.warmups, args.url)

        # --- profile -------------------------------------------------------------------------------
        local_res = results["local"]
        if args.profile or local_res["wall_s"] >= TARGETS["local_s"] or local_res["state"] != "succeeded":
            first = batches(local_res["machine_paths"], settings.CMDB_AUDIT_BATCH)[0]
            results["profile"] = profile_batch(local_res["main_sha"], first, args.profile_top)
    except Exception:
        traceback.print_exc()
        if worker is not None:
            print(f"--- worker: {worker_diagnosis(worker)}")
            print("--- worker log (tail) ---\n" + "".join((work / "worker.log").read_text().splitlines(True)[-40:]))
        results["error"] = traceback.format_exc()
    finally:
        stop_process_group(worker)
        for handle in reversed(handles):
            try:
                handle.stop()
            except Exception:  # noqa: BLE001
                traceback.print_exc()
        if args.keep:
            print(f"kept: {work} and {ssh_root}")
        else:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(ssh_root, ignore_errors=True)
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["script_s"] = time.perf_counter() - script_started
    return report(results, args.json)


def _s(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}s"


def report(results: dict, json_path: str | None) -> int:
    info, setup, sz = results["machine"], results["setup"], results["sizes"]
    print()
    print(f"Machine: {info['nproc']} CPU ({info['cpu_model']}), {info['ram_gb']} GB RAM, {info['os']}, "
          f"Python {info['python']}, git {info['git']}")
    print(f"Load average: start {info['loadavg_start']}, end {info.get('loadavg_end')}")
    print(f"Django {setup.get('django')}, {setup.get('database')}, {setup.get('worker')}, "
          f"CMDB_AUDIT_BATCH={setup.get('batch')}")
    print(f"Size: {sz['machines']} local machines x {sz['files_per_machine']} files ({sz['apps']} applications, "
          f"{sz['envs']} environments) + {sz['ssh_machines']} SSH machines")
    print(f"Setup: repository {_s(setup.get('repo_s'), 1)} ({setup.get('pack_mb')} MB pack), trees "
          f"{_s(setup.get('trees_s'), 1)}, Django + clone {_s(setup.get('django_clone_s'), 1)}, full sync "
          f"{_s(setup.get('sync_s'), 1)}, worker ready after {_s(setup.get('worker_ready_s'), 1)}, warm-up audit "
          f"{_s(setup.get('warmup_s'))}")
    print()
    all_ok = "error" not in results
    header = (f"{'audit':<6} {'machines':>8} {'files':>7} {'wall':>8} {'mach/s':>7} {'findings':>8} {'planted':>7} "
              f"{'start':>6} {'queue':>6} {'worker':>7} {'wCPU':>7} {'rsync':>7} {'sha256':>7} {'sha256/P':>8} "
              f"{'x sha256':>8} {'target':>12}  verdict")
    print(header)
    print("-" * len(header))
    for name in ("local", "ssh"):
        r = results.get(name)
        if not r:
            continue
        f = r["floors"]
        target = TARGETS["local_s"] if name == "local" else None
        ratio = r["wall_s"] / f["sha256"]["median_s"] if f["sha256"]["median_s"] else float("inf")
        ok = r["state"] == "succeeded" and r["machines_done"] == r["machines"] and r["findings"] == r["planted_total"]
        met = ok and (target is None or (r["wall_s"] < target and ratio <= TARGETS["local_x_sha256"]))
        all_ok &= met
        verdict = ("OK" if met else "MISSED") if target else ("ok" if ok else "WRONG")
        if not ok:
            verdict += " (state/findings unexpected)"
        par = f.get("sha256_par", {}).get("median_s")
        print(f"{name:<6} {r['machines']:>8} {r['files']:>7} {r['wall_s']:>7.2f}s {r['machines_per_s']:>7.0f} "
              f"{r['findings']:>8} {r['planted_total']:>7} {r['start_call_s']:>5.2f}s {r['queue_s'] or 0:>5.2f}s "
              f"{r['worker_s'] or 0:>6.2f}s {r['worker_cpu_s']:>6.1f}s {f['rsync']['median_s']:>6.2f}s "
              f"{f['sha256']['median_s']:>6.2f}s {'' if par is None else f'{par:.2f}s':>8} {ratio:>7.1f}x "
              f"{'<' + str(target) + 's, <=' + str(TARGETS['local_x_sha256']) + 'x' if target else '-':>12}  {verdict}")
    print()
    for name in ("local", "ssh"):
        r = results.get(name)
        if not r:
            continue
        print(f"{name}: run #{r['run']} {r['state']}, statuses {r['statuses']}, compliance {r['compliance']}%, "
              f"findings {r['findings_by_kind']} (planted {r['planted']}); worker CPU {r['worker_cpu_s']:.1f}s "
              f"({r['worker_cpu_s'] / setup.get('concurrency', 2) / r['floors']['sha256']['median_s']:.1f}x sha256sum "
              f"if the worker processes had their cores to themselves) of which "
              f"git children {r['worker_git_cpu_s']:.1f}s; {r['batches']} batches, first stored "
              f"{_s(r['first_batch_stored_s'])} after start; rsync itemized {r['floors']['rsync']['itemized']} files")
        if r["error"]:
            print(f"  run error: {r['error']}")
    print("wall: audit_start() until AuditRun.state is finished (polled every 10 ms); start: the audit_start call "
          "(fetch + listing); queue: created_at -> started_at; worker: started_at -> finished_at; wCPU: CPU of the "
          "worker's process group (pool and git children) during the audit; rsync: rsync -anc --itemize-changes, "
          "all machines in one invocation; sha256: find | xargs sha256sum over every live file (sha256/P: xargs "
          "-P nproc; SSH: through one ssh connection); x sha256: wall / the serial sha256sum floor of this run; floors "
          "are medians of --floor-runs, page cache warm.")
    if "history" in results:
        h = results["history"]
        print()
        print(f"Home page, after {h['runs']} monthly runs of history ({h['results']} MachineResult, {h['findings']} "
              f"Finding rows, {h['machine_status_rows']} MachineStatus rows, {h['audit_runs_total']} AuditRun rows; "
              f"inserted in {h['insert_s']:.1f}s)")
        header = f"{'URL':<22} {'p50':>8} {'p95':>8} {'max':>8} {'queries':>7} {'status read':>11} {'target':>8}  verdict"
        print(header)
        print("-" * len(header))
        for row in results.get("pages", []):
            if "error" in row:
                print(f"{row['url']:<22} {row['error']}")
                if row["url"] == "/":
                    all_ok = False
                continue
            met = row["p95_ms"] < TARGETS["home_p95_ms"]
            if row["url"] == "/":
                all_ok &= met
            print(f"{row['url']:<22} {row['p50_ms']:>6.1f}ms {row['p95_ms']:>6.1f}ms {row['max_ms']:>6.1f}ms "
                  f"{row['queries']:>7} {'yes' if row['audit_status_read'] else 'no':>11} "
                  f"{'<' + str(int(TARGETS['home_p95_ms'])) + 'ms':>8}  {'OK' if met else 'MISSED'}")
        print("status read: whether the page queried audits_machinestatus (the status section is rendered).")
    if "profile" in results:
        p = results["profile"]
        print()
        q = p["plain"]
        print(f"Profile of one batch of {p['machines']} machines, in-process: audits.services._audit_machines "
              f"{q['wall_s']:.2f}s wall, {q['cpu_s']:.2f}s CPU in this process + {q['children_cpu_s']:.2f}s in git "
              f"children ({q['statuses']}); _store of its outcomes (scratch run) {q['store_s']:.2f}s, _finish check "
              f"{q['finish_check_s'] * 1000:.0f}ms; _audit_machines under cProfile with run_in_executor inline "
              f"{p['profiled_s']:.2f}s; {p['subprocesses']} subprocesses started for the batch")
        for key, text in p["stats"].items():
            print(f"--- top by {key} ---")
            body = text.split("\n")
            start = next((i for i, line in enumerate(body) if line.lstrip().startswith("ncalls")), 0)
            print("\n".join(body[start:]).rstrip())
    print(f"\nScript run time: {results['script_s']:.0f}s")
    if "error" in results:
        print("\nRUN FAILED (see the traceback above)")
    if json_path:
        slim = {**results}
        for name in ("local", "ssh"):
            if name in slim:
                slim[name] = {k: v for k, v in slim[name].items() if k != "machine_paths"}
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(slim, indent=2, default=str))
        print(f"JSON written to {json_path}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())

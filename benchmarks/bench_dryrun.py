#!/usr/bin/env python3
"""Benchmark of dry runs end to end: API call -> real Redis broker -> real Celery worker -> finished plan.

Run from the project root with the project's virtualenv, as root (the loopback sshd needs it)::

    .venv/bin/python benchmarks/bench_dryrun.py                  # 100 local machines, 50 SSH, 20 files
    .venv/bin/python benchmarks/bench_dryrun.py --small          # 10 local, 5 SSH, 5 files
    .venv/bin/python benchmarks/bench_dryrun.py --machines-ssh 0 --json out.json

What it does, in a temporary directory (removed at exit, with every process it started):

1. writes a bare origin with plain ``git``: ``local/mNNN`` machines (``transport = "local"``, ``root``
   relative to ``CMDB_LOCAL_ROOT_BASE``) and ``ssh/sNN`` machines (``transport = "ssh"`` to a loopback
   sshd started with ``tests.services.start_sshd``), each with one application of ``--files`` files;
   SSH targets are absolute paths under ``/tmp/cmbench-ssh-XXXX/sNN/`` (readable by the ssh user);
   branches ``bench/local`` and ``bench/ssh`` change one file per machine;
2. live trees with drift on every machine: two changed files, one mode difference, one missing file;
3. Django in-process (``DJANGO_DEBUG=false``, a throw-away secret key, file SQLite in ``CMDB_DATA_DIR``
   unless ``DATABASE_URL`` is set), ``migrate``, ``repo_sync``, one change request per branch;
4. a real ``redis-server`` (``tests.services.start_redis``) and a subprocess worker
   ``celery -A portal worker`` with the same environment (same database, same broker);
5. per scenario: one warm-up, then ``--runs`` timed ``POST /api/changes/{id}/dry-run/`` through the
   test ``Client`` (staff user), polling the job row every 10 ms until it is finished; then ``--runs``
   presses of the change request's *Dry run* button (its POST), polling the job page's htmx partial
   every 20 ms until the first machine's plan is on it (target 1 s);
6. the floor: one ``rsync -anc --itemize-changes`` over all machines' declared files (a staging tree
   mirroring the branch) against all live roots, locally and over the same sshd.

Exit status 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_identification import machine_description  # noqa: E402

TARGETS = {"local": 2.0, "ssh": 10.0}
FIRST_PLAN_TARGET = 1.0  # seconds from the button to the first machine on the job page
FULL = {"machines_local": 100, "machines_ssh": 50, "files": 20}
SMALL = {"machines_local": 10, "machines_ssh": 5, "files": 5}


# ====================================================================================================
# Repository and live trees
# ====================================================================================================


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def content(machine: str, index: int, variant: str = "") -> bytes:
    """A config file of roughly 0.5 to 1.5 KB, deterministic."""
    lines = [f"# Managed by the CMDB: {machine} file{index:02d} {variant}".rstrip()]
    for n in range(12 + (index * 7) % 30):
        lines.append(f"option_{n:02d}_{machine.replace('/', '_')} = value-{(n * 31 + index) % 97}")
    return ("\n".join(lines) + "\n").encode()


def rel_file(index: int) -> str:
    return f"etc/app/file{index:02d}.conf"


class Layout:
    def __init__(self, work: Path, ssh_root: Path, n_local: int, n_ssh: int, files: int) -> None:
        self.work = work
        self.ssh_root = ssh_root
        self.files = files
        self.local = [f"m{i:03d}" for i in range(n_local)]
        self.ssh = [f"s{i:02d}" for i in range(n_ssh)]
        self.live = work / "live"  # CMDB_LOCAL_ROOT_BASE
        self.bare = work / "origin.git"


def build_repo(layout: Layout, sshd, reload=None) -> None:
    """``reload(env, machine)``: the reload commands of the machine's application (default
    ``systemctl reload app``, which dry runs only list; a deploy over SSH runs them)."""
    tree = layout.work / "tree"

    def deploy_section(env_name: str, machine: str) -> str:
        commands = reload(env_name, machine) if reload else ["systemctl reload app"]
        return f"[deploy]\nreload = {json.dumps(commands)}\n"

    run(["git", "init", "-q", "-b", "main", str(tree)])
    env = {**os.environ, "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}

    def write(rel: str, data: bytes | str) -> None:
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)

    def git(*args: str) -> None:
        run(["git", "-C", str(tree), *args], env=env)

    write("README.md", "# Dry-run benchmark\n")
    write("local/README.md", "# Local machines\n")
    for m in layout.local:
        write(f"local/{m}/manifest.toml", f'[machine]\ntransport = "local"\nroot = "machines/{m}"\n')
        write(f"local/{m}/app/manifest.toml", deploy_section("local", m))
        for i in range(layout.files):
            write(f"local/{m}/app/files/{rel_file(i)}", content(f"local/{m}", i))
    if layout.ssh:
        write("ssh/README.md", "# SSH machines\n")
    for m in layout.ssh:
        write(f"ssh/{m}/manifest.toml",
              f'[machine]\ntransport = "ssh"\nhost = "{sshd.host}"\nport = {sshd.port}\nuser = "{sshd.user}"\n')
        write(f"ssh/{m}/app/manifest.toml", deploy_section("ssh", m))
        for i in range(layout.files):
            target = f"{layout.ssh_root}/{m}/{rel_file(i)}".lstrip("/")
            write(f"ssh/{m}/app/files/{target}", content(f"ssh/{m}", i))
    git("add", "-A")
    git("commit", "-q", "-m", "Initial layout")
    run(["git", "init", "-q", "--bare", "-b", "main", str(layout.bare)])
    git("push", "-q", str(layout.bare), "main")
    for env_name, machines in (("local", layout.local), ("ssh", layout.ssh)):
        if not machines:
            continue
        git("checkout", "-q", "-b", f"bench/{env_name}", "main")
        for m in machines:
            if env_name == "local":
                write(f"local/{m}/app/files/{rel_file(0)}", content(f"local/{m}", 0, "changed"))
            else:
                target = f"{layout.ssh_root}/{m}/{rel_file(0)}".lstrip("/")
                write(f"ssh/{m}/app/files/{target}", content(f"ssh/{m}", 0, "changed"))
        git("commit", "-q", "-am", f"Change one file per {env_name} machine")
        git("push", "-q", str(layout.bare), f"bench/{env_name}")
        git("checkout", "-q", "main")


def write_live(root: Path, machine: str, files: int) -> None:
    """main's files with drift: file01/file02 changed, file03 mode 0600, file04 missing."""
    for i in range(files):
        if i == 4:
            continue
        path = root / rel_file(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content(machine, i, "live drift" if i in (1, 2) else ""))
        path.chmod(0o600 if i == 3 else 0o644)


def write_staging(root: Path, machine: str, files: int) -> None:
    """What the branch declares for one machine (rsync's source)."""
    for i in range(files):
        path = root / rel_file(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content(machine, i, "changed" if i == 0 else ""))
        path.chmod(0o644)


def build_trees(layout: Layout, ssh_user: str | None) -> tuple[Path, Path]:
    staging_local = layout.work / "staging-local"
    staging_ssh = layout.work / "staging-ssh"
    for m in layout.local:
        write_live(layout.live / "machines" / m, f"local/{m}", layout.files)
        write_staging(staging_local / m, f"local/{m}", layout.files)
    for m in layout.ssh:
        write_live(layout.ssh_root / m, f"ssh/{m}", layout.files)
        write_staging(staging_ssh / m, f"ssh/{m}", layout.files)
    if ssh_user:  # the SSH "machines" belong to the ssh user, so a 0600 file is still readable
        import pwd

        entry = pwd.getpwnam(ssh_user)
        for dirpath, _dirnames, filenames in os.walk(layout.ssh_root):
            os.chmod(dirpath, 0o755)
            os.chown(dirpath, entry.pw_uid, entry.pw_gid)
            for name in filenames:
                os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)
    return staging_local, staging_ssh


# ====================================================================================================
# Floors
# ====================================================================================================


def rsync_floor(src: Path, dest: str, *, ssh: list[str] | None = None, repeat: int = 3) -> dict:
    cmd = ["rsync", "-anc", "--itemize-changes"]
    if ssh:
        cmd += ["-e", shlex.join(ssh)]
    cmd += [f"{src}/", dest]
    times, out = [], ""
    for _ in range(repeat):
        started = time.perf_counter()
        out = run(cmd).stdout
        times.append(time.perf_counter() - started)
    items = [line for line in out.splitlines() if len(line) > 1 and line[1] == "f"]  # regular files only
    return {"median_s": statistics.median(times), "min_s": min(times), "itemized": len(items),
            "command": shlex.join(cmd)}


# ====================================================================================================
# Django, worker, timed runs
# ====================================================================================================


def setup_env(layout: Layout, redis_url: str, sshd) -> dict:
    env = {
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "DJANGO_ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
        "DJANGO_LOG_LEVEL": "WARNING",
        "CMDB_DATA_DIR": str(layout.work / "data"),
        "CMDB_REPO_URL": str(layout.bare),
        "CMDB_LOCAL_ROOT_BASE": str(layout.live),
        "REDIS_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    if sshd is not None:
        env |= {"CMDB_SSH_KEY": str(sshd.key_path), "CMDB_SSH_KNOWN_HOSTS": str(sshd.known_hosts_path)}
    os.environ.update(env)
    os.environ.pop("SSH_AUTH_SOCK", None)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    if connection.vendor == "sqlite":
        import sqlite3

        db = f"SQLite {sqlite3.sqlite_version} (file, WAL)"
    else:
        with connection.cursor() as cur:
            cur.execute("SELECT version()")
            db = cur.fetchone()[0].split(" on ")[0]
    return {"django": django.get_version(), "database": db}


def start_worker(concurrency: int, log_path: Path) -> subprocess.Popen:
    cmd = [str(ROOT / ".venv/bin/celery"), "-A", "portal", "worker", "-l", "WARNING", "-P", "prefork",
           "--concurrency", str(concurrency), "--without-gossip", "--without-mingle", "--without-heartbeat"]
    return subprocess.Popen(cmd, cwd=ROOT, env=os.environ.copy(), stdout=log_path.open("wb"),
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def stop_process_group(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


def one_run(client, change_id: int, timeout: float) -> dict:
    from deploys.models import Job

    started = time.perf_counter()
    resp = client.post(f"/api/changes/{change_id}/dry-run/", data={}, content_type="application/json")
    api_s = time.perf_counter() - started
    if resp.status_code != 202:
        raise RuntimeError(f"POST dry-run: HTTP {resp.status_code}: {resp.content[:500]!r}")
    job_id = resp.json()["id"]
    deadline = started + timeout
    state = "queued"
    while time.perf_counter() < deadline:
        state = Job.objects.filter(pk=job_id).values_list("state", flat=True).first()
        if state in Job.FINISHED_STATES:
            break
        time.sleep(0.01)
    e2e = time.perf_counter() - started
    job = Job.objects.get(pk=job_id)
    if not job.is_finished:
        raise RuntimeError(f"job {job_id} still {job.state} after {timeout}s")
    statuses: dict[str, int] = {}
    actions: dict[str, int] = {}
    for plan in job.plans.all():
        statuses[plan.status] = statuses.get(plan.status, 0) + 1
        for item in plan.items:
            actions[item["action"]] = actions.get(item["action"], 0) + 1
    queue_s = (job.started_at - job.created_at).total_seconds() if job.started_at else None
    worker_s = (job.finished_at - job.started_at).total_seconds() if job.finished_at and job.started_at else None
    return {
        "job": job_id, "state": job.state, "e2e_s": e2e, "api_s": api_s, "queue_s": queue_s,
        "worker_s": worker_s, "machines": job.machines_total, "done": job.machines_done,
        "statuses": statuses, "actions": actions, "error": job.error,
        "log_tail": list(job.log_lines.order_by("-id").values_list("message", flat=True)[:3]),
    }


def first_plan_run(client, change_id: int, timeout: float) -> float:
    """Seconds from the browser's *Dry run* button (its POST) to the first machine's plan on the job
    page, polled as htmx polls it (the ``HX-Request`` partial) every 20 ms; then waits for the job's end."""
    from deploys.models import Job

    started = time.perf_counter()
    resp = client.post(f"/jobs/change/{change_id}/dry-run/")
    if resp.status_code != 302:
        raise RuntimeError(f"POST dry-run button: HTTP {resp.status_code}: {resp.content[:500]!r}")
    page = resp["Location"]
    job_id = int(page.rstrip("/").rsplit("/", 1)[1])
    first = None
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if b'data-machine="' in client.get(page, HTTP_HX_REQUEST="true").content:
            first = time.perf_counter() - started
            break
        time.sleep(0.02)
    while time.perf_counter() < deadline:
        if Job.objects.filter(pk=job_id, state__in=Job.FINISHED_STATES).exists():
            break
        time.sleep(0.02)
    if first is None:
        raise RuntimeError(f"job {job_id}: no plan on its page after {timeout}s")
    return first


def scenario(client, change_id: int, runs: int, n: int, timeout: float) -> dict:
    warm = one_run(client, change_id, timeout)
    timed = [one_run(client, change_id, timeout) for _ in range(runs)]
    e2e = [r["e2e_s"] for r in timed]
    med = statistics.median(e2e)
    first = [first_plan_run(client, change_id, timeout) for _ in range(runs)]
    return {
        "warmup_e2e_s": warm["e2e_s"], "runs": timed, "median_e2e_s": med, "min_e2e_s": min(e2e),
        "max_e2e_s": max(e2e), "per_machine_ms": 1000 * med / max(1, n),
        "first_plan_s": first, "median_first_plan_s": statistics.median(first),
        "ok": all(r["state"] == "succeeded" and r["done"] == n for r in timed),
    }


# ====================================================================================================
# Main
# ====================================================================================================


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="preset 10 local x 5 SSH x 5 files")
    parser.add_argument("--machines-local", type=int)
    parser.add_argument("--machines-ssh", type=int)
    parser.add_argument("--files", type=int)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per scenario after one warm-up")
    parser.add_argument("--concurrency", type=int, default=0, help="worker processes (default: nproc, >= 2)")
    parser.add_argument("--batch", type=int, default=0, help="CMDB_DRY_RUN_BATCH (default: the portal's)")
    parser.add_argument("--timeout", type=float, default=300.0, help="per-job timeout, seconds")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--workdir", help="parent directory of the temporary directory")
    args = parser.parse_args(argv)
    preset = SMALL if args.small else FULL
    n_local = preset["machines_local"] if args.machines_local is None else args.machines_local
    n_ssh = preset["machines_ssh"] if args.machines_ssh is None else args.machines_ssh
    files = args.files or preset["files"]
    if files < 5:
        parser.error("--files must be at least 5 (the drift uses files 00 to 04)")
    if n_ssh and os.geteuid() != 0:
        parser.error("the SSH scenario needs root (start_sshd); use --machines-ssh 0")
    if args.batch:
        os.environ["CMDB_DRY_RUN_BATCH"] = str(args.batch)

    from tests.services import start_redis, start_sshd

    info = machine_description()
    results: dict = {"machine": info, "sizes": {"machines_local": n_local, "machines_ssh": n_ssh, "files": files},
                     "targets_s": TARGETS}
    work = Path(tempfile.mkdtemp(prefix="bench-dryrun-", dir=args.workdir))
    ssh_root = Path(tempfile.mkdtemp(prefix="cmbench-ssh-", dir="/tmp"))
    ssh_root.chmod(0o755)
    handles: list = []
    worker = None
    try:
        t = time.perf_counter()
        redis_url, redis = start_redis(work / "redis")
        handles.append(redis)
        sshd = None
        if n_ssh:
            sshd = start_sshd(work / "sshd")
            handles.append(sshd)
        layout = Layout(work, ssh_root, n_local, n_ssh, files)
        build_repo(layout, sshd)
        staging_local, staging_ssh = build_trees(layout, sshd.user if sshd else None)
        results["setup"] = setup_env(layout, redis_url, sshd)

        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.test import Client

        from changes import services as change_services
        from cmdb import services

        services.repo_sync(trigger="bench")
        user = get_user_model().objects.create_user("bench", email="bench@example.com", password="x",
                                                    is_staff=True)
        client = Client()
        client.force_login(user)
        changes = {}
        if n_local:
            changes["local"] = change_services.change_create(acting_user=user, branch="bench/local",
                                                             title="Bench local").pk
        if n_ssh:
            changes["ssh"] = change_services.change_create(acting_user=user, branch="bench/ssh",
                                                           title="Bench SSH").pk
        concurrency = args.concurrency or max(2, info["nproc"])
        worker = start_worker(concurrency, work / "worker.log")
        results["setup"] |= {"worker": f"celery prefork x{concurrency}", "batch": settings.CMDB_DRY_RUN_BATCH,
                             "setup_s": time.perf_counter() - t}
        print(f"setup done in {results['setup']['setup_s']:.1f}s; worker pid {worker.pid}", flush=True)

        if n_local:
            results["local"] = scenario(client, changes["local"], args.runs, n_local, args.timeout)
            results["local"]["rsync"] = rsync_floor(staging_local, f"{layout.live / 'machines'}/")
        if n_ssh:
            results["ssh"] = scenario(client, changes["ssh"], args.runs, n_ssh, args.timeout)
            ssh_cmd = ["ssh", *sshd.ssh_options, "-p", str(sshd.port)]
            results["ssh"]["rsync"] = rsync_floor(staging_ssh, f"{sshd.user}@{sshd.host}:{ssh_root}/", ssh=ssh_cmd)
    except Exception:
        traceback.print_exc()
        if worker is not None:
            print("--- worker log (tail) ---\n" + "".join((work / "worker.log").read_text().splitlines(True)[-40:]))
        results["error"] = traceback.format_exc()
    finally:
        stop_process_group(worker)
        for handle in reversed(handles):
            try:
                handle.stop()
            except Exception:  # noqa: BLE001
                traceback.print_exc()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(ssh_root, ignore_errors=True)
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return report(results, args.json)


def report(results: dict, json_path: str | None) -> int:
    info = results["machine"]
    print()
    print(f"Machine: {info['nproc']} CPU ({info['cpu_model']}), {info['ram_gb']} GB, {info['os']}, "
          f"Python {info['python']}, git {info['git']}")
    print(f"Load average: start {info['loadavg_start']}, end {info.get('loadavg_end')}")
    if "setup" in results:
        s = results["setup"]
        print(f"Django {s.get('django')}, {s.get('database')}, {s.get('worker')}, "
              f"CMDB_DRY_RUN_BATCH={s.get('batch')}")
    sz = results["sizes"]
    print(f"Size: {sz['machines_local']} local + {sz['machines_ssh']} SSH machines x {sz['files']} files")
    print()
    header = (f"{'scenario':<8} {'machines':>8} {'e2e med':>9} {'min':>7} {'max':>7} {'warm-up':>8} "
              f"{'ms/mach':>8} {'queue':>6} {'worker':>7} {'rsync':>7} {'target':>7}  verdict")
    print(header)
    print("-" * len(header))
    all_ok = "error" not in results
    for name in ("local", "ssh"):
        r = results.get(name)
        if not r:
            continue
        runs = r["runs"]
        queue = statistics.median([x["queue_s"] or 0 for x in runs])
        worker = statistics.median([x["worker_s"] or 0 for x in runs])
        met = r["ok"] and r["median_e2e_s"] < TARGETS[name]
        all_ok &= met
        rs = r.get("rsync", {}).get("median_s")
        print(f"{name:<8} {runs[0]['machines']:>8} {r['median_e2e_s']:>8.2f}s {r['min_e2e_s']:>6.2f}s "
              f"{r['max_e2e_s']:>6.2f}s {r['warmup_e2e_s']:>7.2f}s {r['per_machine_ms']:>8.1f} {queue:>5.2f}s "
              f"{worker:>6.2f}s {'' if rs is None else f'{rs:.2f}s':>7} {'<' + str(TARGETS[name]) + 's':>7}  "
              f"{'OK' if met else 'MISSED'}")
    print()
    for name in ("local", "ssh"):
        r = results.get(name)
        if not r or "median_first_plan_s" not in r:
            continue
        met = r["median_first_plan_s"] < FIRST_PLAN_TARGET
        all_ok &= met
        print(f"{name:<8} first plan on the job page: median {r['median_first_plan_s']:.2f}s "
              f"(runs {', '.join(f'{x:.2f}' for x in r['first_plan_s'])}), target <{FIRST_PLAN_TARGET:g}s  "
              f"{'OK' if met else 'MISSED'}")
    print()
    for name in ("local", "ssh"):
        r = results.get(name)
        if not r:
            continue
        last = r["runs"][-1]
        print(f"{name}: job {last['state']}, plans {last['statuses']}, items {last['actions']}; "
              f"rsync itemized {r.get('rsync', {}).get('itemized')} files "
              f"(api call {statistics.median([x['api_s'] for x in r['runs']]) * 1000:.0f} ms)")
        if not r["ok"]:
            print(f"  NOT OK: {[(x['state'], x['done'], x['error'], x['log_tail']) for x in r['runs']]}")
    print("\ne2e: POST /api/changes/{id}/dry-run/ until the job row is finished (polled every 10 ms); queue: "
          "created_at -> started_at; worker: started_at -> finished_at; rsync: rsync -anc --itemize-changes, "
          "all machines in one invocation (median of 3).")
    if "error" in results:
        print("\nRUN FAILED (see the traceback above)")
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2, default=str))
        print(f"JSON written to {json_path}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())

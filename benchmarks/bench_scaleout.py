#!/usr/bin/env python3
"""Scale-out: two Celery workers on two "hosts" share one audit and one deploy.

Run from the project root with the project's virtualenv, as root (network namespaces, PostgreSQL)::

    .venv/bin/python benchmarks/bench_scaleout.py                       # 4,000 machines, deploy of 200
    .venv/bin/python benchmarks/bench_scaleout.py --machines 400 --deploy-machines 40   # quick check

The hosts are network namespaces on this machine (``cmdb-w1``, ``cmdb-w2``), each joined to the
host side by a veth pair (10.231.1.0/30, 10.231.2.0/30). PostgreSQL 15 (port 5455) and redis-server
(port 6395) run on the host side and listen on loopback and on both host-side veth addresses; a worker
reaches them only through its veth. Each worker has a data directory (so a Git clone) of its own, as
a separate host would; it fetches the run's commit from origin when its clone lacks it
(``cmdb.services.repo_with``). What the namespaces do *not* separate: the filesystem (origin is a path,
the machines' live trees are local-transport folders read by whichever worker takes the batch, the
deploy backups are one shared folder) and the two CPU cores.

What it does (everything it starts is stopped, and the namespaces and veths removed, at exit):

1. the repository and live trees of ``bench_audit.py`` (``--machines`` local machines x
   ``--files-per-machine`` files, 1 % planted drift), a branch that changes one file on the first
   ``--deploy-machines`` machines of the last environment (not production), Django in this process (the "web host",
   its own clone), ``migrate``, a full sync, the branch's change request approved and released;
2. per configuration: one worker (``-n w1@host1``, concurrency 1) in ``cmdb-w1``; two workers
   (``w1@host1`` and ``w2@host2``, concurrency 1 each); each times a full audit (``audit_start`` to a
   finished run) and a deploy of the release (a fresh plan of the changed file put back, then
   ``POST /api/changes/{id}/deploy/`` to a finished job), after one warm-up audit of a machine;
3. who took what: ``django_celery_results`` rows (``worker`` field) of the run's batch tasks;
4. identical: every machine's status, files in sync and findings (target, kind, live sha256) of the
   two-worker audit against the one-worker audit; every deployed machine's status and per-file results;
5. kill: with two workers, ``kill -9`` of host2's worker (its whole process group) once a third of the
   machines are stored; the audit completes on host1 after the broker visibility timeout
   (``--visibility-timeout``, ``CMDB_BROKER_VISIBILITY_TIMEOUT``); every machine exactly once.

Exit status 0 when the results are identical and the killed run completed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_audit import (  # noqa: E402
    Machine,
    declared,
    fast_import,
    file_plan,
    group_cpu,
    repo_files,
    write_trees,
)
from benchmarks.bench_dryrun import run, setup_env, stop_process_group  # noqa: E402
from benchmarks.bench_identification import machine_description  # noqa: E402
from benchmarks.synthrepo import _git_init, env_names  # noqa: E402

PG_PORT, REDIS_PORT = 5455, 6395
HOSTS = {"host1": ("cmdb-w1", "vcm1h", "vcm1w", "10.231.1.1", "10.231.1.2"),
         "host2": ("cmdb-w2", "vcm2h", "vcm2w", "10.231.2.1", "10.231.2.2")}


# ====================================================================================================
# Hosts: namespaces, veths, PostgreSQL, Redis
# ====================================================================================================


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def make_hosts() -> None:
    for ns, host_if, ns_if, host_ip, ns_ip in HOSTS.values():
        remove_host(ns, host_if)  # left over from an interrupted run
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        sh("ip", "link", "set", ns_if, "netns", ns)
        sh("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")


def remove_host(ns: str, host_if: str) -> None:
    sh("ip", "link", "del", host_if, check=False)  # removes its peer too
    sh("ip", "netns", "del", ns, check=False)


def remove_hosts() -> None:
    for ns, host_if, *_ in HOSTS.values():
        remove_host(ns, host_if)


class Postgres:
    def __init__(self, root: Path) -> None:
        self.bin = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))[-1]
        self.root = root
        self.data = root / "data"

    def start(self) -> None:
        self.root.mkdir(parents=True)
        shutil.chown(self.root, "postgres", "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
        sh(*as_pg, str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
           "--locale=C.UTF-8")
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 10.231.0.0/16 trust\n")  # the worker hosts, through their veths
        listen = ",".join(["127.0.0.1"] + [h[3] for h in HOSTS.values()])
        sh(*as_pg, str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
           "-t", "60", "-o", f"-p {PG_PORT} -k /tmp -c listen_addresses={listen} -c max_connections=200 "
           "-c fsync=off -c synchronous_commit=off -c full_page_writes=off", "start")
        sh(str(self.bin / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres", "-c",
           "CREATE DATABASE bench")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            sh("runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
               "-w", "-t", "30", "stop", check=False)


def start_redis(work: Path) -> subprocess.Popen:
    work.mkdir(parents=True)
    bind = " ".join(["127.0.0.1"] + [h[3] for h in HOSTS.values()])
    proc = subprocess.Popen(["redis-server", "--bind", bind, "--port", str(REDIS_PORT), "--save", "",
                             "--appendonly", "no", "--protected-mode", "no", "--dir", str(work),
                             "--logfile", str(work / "redis.log")], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(100):
        if sh("redis-cli", "-p", str(REDIS_PORT), "ping", check=False).stdout.strip() == "PONG":
            return proc
        time.sleep(0.1)
    raise RuntimeError("redis-server did not answer PING")


# ====================================================================================================
# Workers
# ====================================================================================================


class Worker:
    def __init__(self, host: str, work: Path) -> None:
        ns, _, _, host_ip, _ = HOSTS[host]
        self.host, self.name = host, f"w{host[-1]}@{host}"
        data = work / f"{host}-data"  # this host's data directory: its own clone
        data.mkdir(exist_ok=True)
        self.fetch_s = None
        if not (data / "repo").exists():  # the host's clone, synced from origin before it takes work
            from cmdb.gitrepo import ConfigRepo

            t = time.perf_counter()
            ConfigRepo.open_or_clone(data / "repo", os.environ["CMDB_REPO_URL"]).fetch("main")
            self.fetch_s = time.perf_counter() - t
        env = os.environ.copy()
        env |= {"CMDB_DATA_DIR": str(data), "DATABASE_URL": f"postgres://postgres@{host_ip}:{PG_PORT}/bench",
                "REDIS_URL": f"redis://{host_ip}:{REDIS_PORT}/0"}
        self.log = work / f"worker-{host}.log"
        cmd = ["ip", "netns", "exec", ns, str(ROOT / ".venv/bin/celery"), "-A", "portal", "worker", "-n", self.name,
               "-l", "INFO", "-P", "prefork", "--concurrency", "1", "--without-gossip", "--without-mingle",
               "--without-heartbeat"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)  # the main process and its pool child, no goodbye
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        stop_process_group(self.proc)


def wait_ready(workers: list[Worker], timeout: float = 180) -> float:
    from portal.celery import app

    started = time.perf_counter()
    names = {w.name for w in workers}
    while time.perf_counter() - started < timeout:
        for w in workers:
            if w.proc.poll() is not None:
                raise RuntimeError(f"worker {w.name} exited ({w.proc.returncode}): {w.log.read_text()[-2000:]}")
        try:
            answered = {name for reply in app.control.ping(timeout=0.5) for name in reply}
        except Exception:  # noqa: BLE001 - not connected yet
            answered = set()
        if names <= answered:
            return time.perf_counter() - started
        time.sleep(0.2)
    raise RuntimeError(f"workers {names} did not all answer a ping within {timeout}s")


def batches_by_worker(task_name: str, first_arg: int, since) -> dict:
    """Per worker, the batch tasks of this run or job (``django_celery_results``) it stored a result for."""
    from django_celery_results.models import TaskResult

    out: Counter = Counter()
    for worker, args in TaskResult.objects.filter(task_name=task_name, date_created__gte=since).values_list(
            "worker", "task_args"):
        m = re.match(r"\"?\((\d+),", args or "")
        if m and int(m.group(1)) == first_arg:
            out[worker or "?"] += 1
    return dict(sorted(out.items()))


# ====================================================================================================
# Runs
# ====================================================================================================


def audit_once(timeout: float, workers: list[Worker], kill: Worker | None = None, kill_at: float = 1 / 3) -> dict:
    from django.utils import timezone

    from audits import services
    from audits.models import AuditRun, MachineResult

    since = timezone.now()
    cpu0 = {w.name: sum(group_cpu(w.proc.pid)) for w in workers}
    started = time.perf_counter()
    audit = services.audit_start(acting_user=None, scope="", trigger=AuditRun.Trigger.SCHEDULE)
    killed_at = kill_time = None
    done_at_kill = 0
    killed_batch: list[str] = []
    while time.perf_counter() - started < timeout:
        row = AuditRun.objects.filter(pk=audit.pk).values("state", "machines_done").first()
        if row["state"] not in AuditRun.ACTIVE_STATES:
            break
        if kill is not None and killed_at is None and row["machines_done"] >= kill_at * audit.machines_total:
            batch = running_batch(kill.name, audit.pk)
            if batch is not None and not MachineResult.objects.filter(run=audit, machine_path__in=batch).exists():
                # host2 is inside a batch (taken, nothing of it stored yet): kill it there
                kill.kill9()
                killed_at, done_at_kill, killed_batch = time.perf_counter(), row["machines_done"], batch
                kill_time = timezone.now()
        time.sleep(0.01)
    wall = time.perf_counter() - started
    cpu = {w.name: round(sum(group_cpu(w.proc.pid)) - cpu0[w.name], 1) for w in workers if w.proc.poll() is None}
    audit.refresh_from_db()
    results = {}
    for r in MachineResult.objects.filter(run=audit).prefetch_related("findings"):
        results[r.machine_path] = (r.status, r.files_in_sync, r.files_total,
                                   tuple(sorted((f.target, f.kind, f.live_sha256) for f in r.findings.all())))
    counts = Counter(MachineResult.objects.filter(run=audit).values_list("machine_path", flat=True))
    redone = None
    if killed_batch:  # the batch host2 died in: stored after the kill (by host1), how long after
        stored = list(MachineResult.objects.filter(run=audit, machine_path__in=killed_batch)
                      .values_list("finished_at", flat=True))
        redone = {"machines": len(killed_batch), "stored": len(stored),
                  "all_after_kill": bool(stored) and min(stored) > kill_time,
                  "stored_after_kill_s": (max(stored) - kill_time).total_seconds() if stored else None}
    return {"run": audit.pk, "state": audit.state, "wall_s": wall, "worker_cpu_s": cpu, "machines": audit.machines_total,
            "done": audit.machines_done, "stored_once": all(n == 1 for n in counts.values()) and
            len(counts) == audit.machines_total, "results": results,
            "statuses": dict(Counter(v[0] for v in results.values())),
            "findings": sum(len(v[3]) for v in results.values()),
            "batches": batches_by_worker("audits.tasks.audit_batch", audit.pk, since),
            "killed_after_s": None if killed_at is None else killed_at - started,
            "completed_after_kill_s": None if killed_at is None else wall - (killed_at - started),
            "done_at_kill": done_at_kill, "killed_batch": redone}


def running_batch(worker: str, run_id: int) -> list[str] | None:
    """The machines of the audit batch ``worker`` is running now (a control request through Redis)."""
    from portal.celery import app

    try:
        active = app.control.inspect(destination=[worker], timeout=0.3).active() or {}
    except Exception:  # noqa: BLE001 - no answer this time
        return None
    for task in active.get(worker, []):
        args = task.get("args") or []
        if task.get("name") == "audits.tasks.audit_batch" and args and args[0] == run_id:
            return list(args[1])
    return None


def deploy_once(client, change_id: int, fleet: dict, timeout: float) -> dict:
    from django.utils import timezone

    from benchmarks import bench_deploy
    from benchmarks.bench_dryrun import one_run
    from deploys.models import MachinePlan

    reset(fleet)
    since = timezone.now()
    plan = one_run(client, change_id, timeout)  # the dry run of the release: batches on every worker
    if plan["state"] != "succeeded":
        raise RuntimeError(f"plan: {plan}")
    result = bench_deploy.deploy_once(client, change_id, plan["job"], timeout)
    per_machine = {}
    for p in MachinePlan.objects.filter(job_id=result["job"]):
        per_machine[p.machine_path] = (p.status, tuple(sorted((i["target"], i.get("result", "")) for i in p.items)))
    written = sum(1 for path, data in fleet["files"] if path.read_bytes() == data)
    return {"job": result["job"], "state": result["state"], "wall_s": result["e2e_s"], "worker_s": result["worker_s"],
            "plan_s": plan["e2e_s"], "statuses": result["statuses"], "per_machine": per_machine,
            "written": written, "verification": result["verification"],
            "batches": batches_by_worker("deploys.tasks.deploy_batch", result["job"], since),
            "plan_batches": batches_by_worker("changes.tasks.dryrun_batch", plan["job"], since)}


def reset(fleet: dict) -> None:
    """main's content back in the released file of every deployed machine (so there is work again)."""
    for path, data in fleet["before"]:
        tmp = path.with_name(path.name + ".bench")
        tmp.write_bytes(data)
        tmp.chmod(0o644)
        tmp.replace(path)


def store_phase(size: int) -> dict:
    """One batch of the last audit looked at again in this process, then its store (the transaction under
    the run's row lock, into a scratch run deleted after) and the end-of-run check, timed apart: the
    database's share of a batch, the part every host's batches queue for."""
    from django.db import transaction

    from audits import services
    from audits.models import AuditRun, MachineStatus

    last = AuditRun.objects.filter(scope="", state=AuditRun.State.SUCCEEDED).order_by("-pk").first()
    machines = list(last.machines)[:size]
    started = time.perf_counter()
    outcomes = services._audit_machines(last.main_sha, machines)
    look_s = time.perf_counter() - started
    saved = list(MachineStatus.objects.filter(machine_path__in=machines))
    scratch = AuditRun.objects.create(scope="bench-store", state=AuditRun.State.RUNNING, main_sha=last.main_sha,
                                      machines=machines, machines_total=len(machines) + 1)
    started = time.perf_counter()
    services._store(scratch, outcomes)
    store_s = time.perf_counter() - started
    started = time.perf_counter()
    services._finish(scratch.pk)  # not all done (machines_total + 1): the check only
    finish_s = time.perf_counter() - started
    with transaction.atomic():
        scratch.delete()
        MachineStatus.objects.bulk_update(saved, ["last_result", "last_audit_at", "status", "reason", "compliance",
                                                  "files_total", "files_in_sync", "open_findings"])
    return {"machines": len(machines), "look_s": round(look_s, 3), "store_s": round(store_s, 3),
            "finish_check_s": round(finish_s, 3), "findings": sum(len(o.findings) for o in outcomes)}


def median_run(runs: list[dict]) -> dict:
    """The run of median wall time (the lower middle one of an even number)."""
    return sorted(runs, key=lambda r: r["wall_s"])[(len(runs) - 1) // 2]


def strip(r: dict) -> dict:
    return {k: v for k, v in r.items() if k not in ("results", "per_machine")}


# ====================================================================================================
# Main
# ====================================================================================================


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", type=int, default=4000)
    parser.add_argument("--files-per-machine", type=int, default=20)
    parser.add_argument("--apps", type=int, default=4)
    parser.add_argument("--envs", type=int, default=2)
    parser.add_argument("--audit-batch", type=int, default=200, help="CMDB_AUDIT_BATCH")
    parser.add_argument("--deploy-machines", type=int, default=200)
    parser.add_argument("--deploy-batch", type=int, default=20, help="CMDB_DEPLOY_BATCH (canary 1 first)")
    parser.add_argument("--visibility-timeout", type=int, default=10, help="CMDB_BROKER_VISIBILITY_TIMEOUT")
    parser.add_argument("--runs", type=int, default=2, help="timed audits and deploys per configuration (median)")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--workdir", help="parent directory of the temporary directory")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root: it creates network namespaces and veth pairs and runs PostgreSQL as postgres")
    if sh("ip", "netns", "list", check=False).returncode != 0:
        parser.error("`ip netns` does not work here")
    for port in (PG_PORT, REDIS_PORT):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                parser.error(f"port {port} is in use on 127.0.0.1 (another run of this benchmark?)")

    info = machine_description()
    results: dict = {"machine": info, "sizes": vars(args)}
    work = Path(tempfile.mkdtemp(prefix="bench-scaleout-", dir=args.workdir))
    work.chmod(0o755)
    pg = Postgres(work / "pg")
    redis = None
    workers: list[Worker] = []
    ok = False
    os.environ |= {"CMDB_AUDIT_BATCH": str(args.audit_batch), "CMDB_DEPLOY_BATCH": str(args.deploy_batch),
                   "CMDB_DEPLOY_CANARY": "1", "CMDB_BROKER_VISIBILITY_TIMEOUT": str(args.visibility_timeout),
                   "CMDB_DEPLOY_BACKUP_DIR": str(work / "deploy-backups"),  # shared storage (see the README)
                   "DATABASE_URL": f"postgres://postgres@127.0.0.1:{PG_PORT}/bench"}
    try:
        t = time.perf_counter()
        make_hosts()
        pg.start()
        redis = start_redis(work / "redis")
        print(f"namespaces, veths, PostgreSQL, Redis up in {time.perf_counter() - t:.1f}s", flush=True)

        # --- repository, trees, the release branch --------------------------------------------------
        plan = file_plan(args.files_per_machine, args.apps)
        live, staging, bare = work / "live", work / "staging", work / "origin.git"
        envs = env_names(args.envs)
        per_env = -(-args.machines // args.envs)
        local = [Machine(envs[i // per_env], f"{envs[i // per_env]}/m{i:04d}", live / envs[i // per_env] / f"m{i:04d}",
                         staging / envs[i // per_env] / f"m{i:04d}", "") for i in range(args.machines)]
        t = time.perf_counter()
        _git_init(bare)
        head = fast_import(bare, f"Import {len(local)} machines\n",
                           [("README.md", b"# Scale-out benchmark\n", False),
                            *repo_files(local, plan, '[machine]\ntransport = "local"\nroot = "{path}"\n',
                                        sorted({m.env for m in local}))])
        planted = write_trees(local, plan)
        deployed = [m for m in local if m.env == envs[-1]][:args.deploy_machines]
        spec = plan[0]  # never drifted (k % 100 == 37 never holds for file 0 with 20 files)
        branch_files = [(f"{m.path}/{spec.app}/files/{spec.rel}", declared(spec, m.env, m.path) + b"# scale-out\n",
                         False) for m in deployed]
        fast_import_branch(bare, "bench/release", "Change one file per machine\n", branch_files, head)
        fleet = {"before": [(m.live / spec.rel, declared(spec, m.env, m.path)) for m in deployed],
                 "files": [(m.live / spec.rel, declared(spec, m.env, m.path) + b"# scale-out\n") for m in deployed]}
        print(f"repository and trees in {time.perf_counter() - t:.1f}s ({planted['files']} files, "
              f"drift {dict(planted)})", flush=True)
        os.environ["CMDB_DEPLOY_ENVIRONMENTS"] = envs[-1]  # not production: one approval

        # --- the web host: Django, clone, sync, the release -----------------------------------------
        results["setup"] = setup_env(SimpleNamespace(work=work, bare=bare, live=live),
                                     f"redis://127.0.0.1:{REDIS_PORT}/0", None)
        from django.contrib.auth import get_user_model
        from django.test import Client

        from benchmarks.bench_deploy import release
        from cmdb import services as cmdb_services

        t = time.perf_counter()
        cmdb_services.repo_sync(trigger="bench")
        print(f"full sync {time.perf_counter() - t:.1f}s", flush=True)
        make_user = get_user_model().objects.create_user
        users = {"requester": make_user("bench", email="bench@example.com", password="x", is_staff=True),
                 "approver": make_user("bench-approver", email="approver@example.com", password="x", is_staff=True)}
        client = Client()
        client.force_login(users["approver"])
        change_id = release(users, "bench/release", "Scale-out release")

        # --- 1. one worker, 2. two workers, 3. kill ------------------------------------------------
        for label, hosts in (("one", ["host1"]), ("two", ["host1", "host2"])):
            workers = [Worker(h, work) for h in hosts]
            ready = wait_ready(workers)
            warm = audit_once_scoped(local[0].path, args.timeout)
            print(f"[{label}] workers {[w.name for w in workers]} ready after {ready:.1f}s; warm-up {warm:.2f}s",
                  flush=True)
            audits, deploys = [], []
            for _ in range(args.runs):
                load = os.getloadavg()[0]
                reset(fleet)  # every audit sees the same machines: the release not yet deployed anywhere
                audit = audit_once(args.timeout, workers)
                audit["load"] = load
                audits.append(audit)
                print(f"[{label}] audit {audit['state']} {audit['wall_s']:.2f}s batches {audit['batches']} worker "
                      f"CPU {audit['worker_cpu_s']} statuses {audit['statuses']} findings {audit['findings']} "
                      f"(load {load:.1f})", flush=True)
            for _ in range(args.runs):
                load = os.getloadavg()[0]
                dep = deploy_once(client, change_id, fleet, args.timeout)
                dep["load"] = load
                deploys.append(dep)
                print(f"[{label}] deploy {dep['state']} {dep['wall_s']:.2f}s (plan {dep['plan_s']:.2f}s, plan batches "
                      f"{dep['plan_batches']}) batches {dep['batches']} statuses {dep['statuses']} written "
                      f"{dep['written']}/{len(deployed)} (load {load:.1f})", flush=True)
            results[label] = {"audit": median_run(audits), "deploy": median_run(deploys),
                              "audit_walls": [round(a["wall_s"], 2) for a in audits],
                              "deploy_walls": [round(d["wall_s"], 2) for d in deploys],
                              "plan_walls": [round(d["plan_s"], 2) for d in deploys],
                              "clone_fetch_s": {w.name: w.fetch_s for w in workers}}
            if any(a["results"] != audits[0]["results"] for a in audits):
                results.setdefault("unstable", []).append(f"{label}: audits of one configuration differ")
            if label == "two":
                reset(fleet)
                audit = audit_once(args.timeout, workers, kill=workers[1])
                print(f"[kill] audit {audit['state']} {audit['wall_s']:.2f}s, host2 killed after "
                      f"{audit['killed_after_s']:.2f}s ({audit['done_at_kill']} machines stored), completed "
                      f"{audit['completed_after_kill_s']:.2f}s later; batches {audit['batches']}", flush=True)
                results["kill"] = {"audit": audit}
            for w in workers:
                w.stop()
            workers = []
        results["store"] = store_phase(args.audit_batch)
        print(f"one batch in this process: {results['store']}", flush=True)
        one, two, kill = results["one"], results["two"], results["kill"]
        results["identical"] = {
            "audit": one["audit"]["results"] == two["audit"]["results"],
            "audit_after_kill": one["audit"]["results"] == kill["audit"]["results"],
            "deploy": one["deploy"]["per_machine"] == two["deploy"]["per_machine"],
        }
        ok = "unstable" not in results and all(results["identical"].values()) and kill["audit"]["state"] == "succeeded" and \
            kill["audit"]["stored_once"] and bool(kill["audit"]["killed_batch"]) and one["deploy"]["written"] == two["deploy"]["written"] == len(deployed)
    except Exception:
        traceback.print_exc()
        for w in workers:
            print(f"--- {w.name} log (tail) ---\n" + "".join(w.log.read_text().splitlines(True)[-30:]))
        results["error"] = traceback.format_exc()
    finally:
        for w in workers:
            w.stop()
        from django.db import connections

        connections.close_all()
        stop_process_group(redis)
        pg.stop()
        remove_hosts()
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)  # 160,000 files: faster than rmtree
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report(results, args.json)
    return 0 if ok and "error" not in results else 1


def fast_import_branch(bare: Path, branch: str, message: str, files: list, parent: str) -> None:
    """``fast_import`` writes main; this moves its commit to ``branch`` and puts main back."""
    fast_import(bare, message, files, parent)
    sha = run(["git", "--git-dir", str(bare), "rev-parse", "main"]).stdout.strip()
    run(["git", "--git-dir", str(bare), "update-ref", f"refs/heads/{branch}", sha])
    run(["git", "--git-dir", str(bare), "update-ref", "refs/heads/main", parent])


def audit_once_scoped(scope: str, timeout: float) -> float:
    """A warm-up audit of one machine (imports, connections, the workers' clones fetched), then removed."""
    from audits import services
    from audits.models import AuditRun, MachineStatus

    started = time.perf_counter()
    audit = services.audit_start(acting_user=None, scope=scope, trigger=AuditRun.Trigger.MANUAL)
    while time.perf_counter() - started < timeout:
        if AuditRun.objects.filter(pk=audit.pk).exclude(state__in=AuditRun.ACTIVE_STATES).exists():
            break
        time.sleep(0.02)
    AuditRun.objects.filter(pk=audit.pk).delete()
    MachineStatus.objects.all().delete()
    return time.perf_counter() - started


def report(results: dict, json_path: str | None) -> None:
    info = results["machine"]
    print()
    print(f"Machine: {info['nproc']} CPU ({info['cpu_model']}), {info['ram_gb']} GB RAM, {info['os']}, "
          f"Python {info['python']}, git {info['git']}")
    print(f"Load average: start {info['loadavg_start']}, end {info.get('loadavg_end')}")
    sz = results["sizes"]
    print(f"Size: {sz['machines']} local machines x {sz['files_per_machine']} files, CMDB_AUDIT_BATCH="
          f"{sz['audit_batch']}; deploy of {sz['deploy_machines']} machines (one file each), canary 1 then "
          f"CMDB_DEPLOY_BATCH={sz['deploy_batch']}; workers: prefork concurrency 1 each, one per namespace")
    if "setup" in results:
        print(f"Django {results['setup']['django']}, {results['setup']['database']} (host side, over the veths)")
    if "one" in results and "two" in results:
        one, two = results["one"], results["two"]
        print()
        print(f"{'run':<8} {'1 worker':>9} {'2 workers':>10} {'speed-up':>8}  batches per worker (2 workers)"
              "            load 1/2")
        for what in ("audit", "deploy"):
            a, b = one[what]["wall_s"], two[what]["wall_s"]
            print(f"{what:<8} {a:>8.2f}s {b:>9.2f}s {a / b:>7.2f}x  {json.dumps(two[what]['batches']):<40} "
                  f"{one[what]['load']:.1f}/{two[what]['load']:.1f}")
        a, b = one["deploy"]["plan_s"], two["deploy"]["plan_s"]
        print(f"{'plan':<8} {a:>8.2f}s {b:>9.2f}s {a / b:>7.2f}x  {json.dumps(two['deploy']['plan_batches'])} "
              "(the dry run before each deploy)")
        print(f"all runs (s): audit 1w {one['audit_walls']} 2w {two['audit_walls']}; deploy 1w {one['deploy_walls']} "
              f"2w {two['deploy_walls']}; plan 1w {one['plan_walls']} 2w {two['plan_walls']}")
        print(f"worker CPU during the median audit: 1 worker {one['audit']['worker_cpu_s']}, 2 workers "
              f"{two['audit']['worker_cpu_s']}; first fetch of each host's clone {one['clone_fetch_s']} "
              f"{two['clone_fetch_s']}")
        print(f"identical to one worker: {results.get('identical')}")
        print(f"audit statuses {two['audit']['statuses']}, findings {two['audit']['findings']}; deploy statuses "
              f"{two['deploy']['statuses']}, written {two['deploy']['written']}, verification "
              f"{two['deploy']['verification']}")
    if "kill" in results:
        k = results["kill"]["audit"]
        print(f"kill -9 of host2's worker {k['killed_after_s']:.2f}s into the audit ({k['done_at_kill']} of "
              f"{k['machines']} machines stored): run {k['state']} {k['wall_s']:.2f}s in all, "
              f"{k['completed_after_kill_s']:.2f}s after the kill; every machine exactly once: {k['stored_once']}; "
              f"batches stored per worker {k['batches']}; the batch host2 died in: {k['killed_batch']}")
    if "store" in results:
        st = results["store"]
        print(f"one batch of {st['machines']} machines in-process: looked at in {st['look_s']:.2f}s, stored in "
              f"{st['store_s']:.3f}s ({st['findings']} findings; one transaction under the run's row lock), end "
              f"check {st['finish_check_s']:.3f}s")
    if "error" in results:
        print("\nRUN FAILED (see the traceback above)")
    if json_path:
        slim = {k: ({kk: strip(vv) if isinstance(vv, dict) else vv for kk, vv in v.items()}
                    if k in ("one", "two", "kill") else v)
                for k, v in results.items()}
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(slim, indent=2, default=str))
        print(f"JSON written to {json_path}")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark of deploys end to end: API call -> real Redis broker -> real Celery worker -> written machines.

Run from the project root with the project's virtualenv, as root (the loopback sshd needs it)::

    .venv/bin/python benchmarks/bench_deploy.py                  # 100 local machines, 50 SSH, 20 files
    .venv/bin/python benchmarks/bench_deploy.py --small          # 10 local, 5 SSH, 5 files
    .venv/bin/python benchmarks/bench_deploy.py --machines-ssh 0 --canary 0 --batch 100 --json out.json

The repository, live trees, Django set-up, redis-server, loopback sshd and worker subprocess are
those of ``bench_dryrun.py`` (imported, not copied), with harmless reload commands in the manifests
(``true`` and ``test -f <the changed file>``: run over SSH, recorded on local machines). Then:

1. one change request per branch (``bench/local``, ``bench/ssh``: one file changed on every machine),
   with a planned window around now, submitted, approved by a second user and released
   (``change_implement``); ``CMDB_DEPLOY_ENVIRONMENTS=local,ssh``, ``CMDB_DEPLOY_BACKUP_DIR`` temporary;
2. per run (one warm-up, then ``--runs`` timed): the changed file of every machine is put back to
   main's content (so there is something to deploy again), the plan is made (``POST
   /api/changes/{id}/dry-run/`` until finished: timed, reported apart, never part of the deploy
   figure), then ``POST /api/changes/{id}/deploy/`` with that plan, polling the job row every 10 ms
   until it is finished; then the change request's verification is polled until it leaves ``pending``
   (the audit started when the deploy ended) and its delay is ``verification.at - job.finished_at``;
3. every machine's changed file is read back and compared with the release, one drifted file per
   machine must be untouched, the reload results are checked (ran and passed over SSH, recorded locally);
4. the floor: one ``rsync -a`` of the same files (one per machine, a staging tree) to all live roots,
   locally and over the same sshd, each repeat after the same reset.

``--profile FILE`` then runs one more deploy per scenario in this process under cProfile (the worker's
code path without Celery), saves it to ``FILE.<scenario>`` and prints the top functions.

Exit status 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_dryrun as dr  # noqa: E402
from benchmarks.bench_identification import machine_description  # noqa: E402

TARGETS = {"local": 3.0, "ssh": 10.0, "verification": 2.0}
FULL = {"machines_local": 100, "machines_ssh": 50, "files": 20}
SMALL = {"machines_local": 10, "machines_ssh": 5, "files": 5}
CHANGED = 0  # the index of the file each branch changes
DRIFTED = 1  # a file with hand edits on every machine, which a deploy must leave alone


class Fleet:
    """Where each scenario's machines keep their live files, and what the release declares."""

    def __init__(self, layout: dr.Layout, ssh_uid: tuple[int, int] | None) -> None:
        self.layout, self.ssh_uid = layout, ssh_uid

    def machines(self, scenario: str) -> list[str]:
        return self.layout.local if scenario == "local" else self.layout.ssh

    def root(self, scenario: str, machine: str) -> Path:
        if scenario == "local":
            return self.layout.live / "machines" / machine
        return self.layout.ssh_root / machine

    def live(self, scenario: str, machine: str, index: int) -> Path:
        return self.root(scenario, machine) / dr.rel_file(index)

    def reset(self, scenario: str) -> None:
        """Put main's content back in the changed file, as the machine was before any deploy."""
        for m in self.machines(scenario):
            path = self.live(scenario, m, CHANGED)
            tmp = path.with_name(path.name + ".bench")
            tmp.write_bytes(dr.content(f"{scenario}/{m}", CHANGED))
            tmp.chmod(0o644)
            if scenario == "ssh" and self.ssh_uid:
                os.chown(tmp, *self.ssh_uid)
            tmp.replace(path)

    def staging(self, scenario: str) -> Path:
        """rsync's source: only the file the deploy writes, per machine."""
        top = self.layout.work / f"staging-deploy-{scenario}"
        for m in self.machines(scenario):
            path = top / m / dr.rel_file(CHANGED)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(dr.content(f"{scenario}/{m}", CHANGED, "changed"))
            path.chmod(0o644)
        return top

    def check_written(self, scenario: str) -> dict:
        """Every machine's changed file holds the release; the drifted file is untouched."""
        wrong, drift_touched = [], []
        for m in self.machines(scenario):
            if self.live(scenario, m, CHANGED).read_bytes() != dr.content(f"{scenario}/{m}", CHANGED, "changed"):
                wrong.append(m)
            if self.live(scenario, m, DRIFTED).read_bytes() != dr.content(f"{scenario}/{m}", DRIFTED, "live drift"):
                drift_touched.append(m)
        return {"checked": len(self.machines(scenario)), "not_written": wrong, "drift_touched": drift_touched}


def reload_commands(layout: dr.Layout):
    def commands(env_name: str, machine: str) -> list[str]:
        if env_name == "ssh":
            return ["true", f"test -f {layout.ssh_root}/{machine}/{dr.rel_file(CHANGED)}"]
        return ["true", f"test -f /{dr.rel_file(CHANGED)}"]

    return commands


def release(users: dict, branch: str, title: str) -> int:
    from changes import services as change_services
    from tests.fixtures.windows import around_now

    window = around_now(6)
    cr = change_services.change_create(acting_user=users["requester"], branch=branch, title=title,
                                       planned_start=window["planned_start"], planned_end=window["planned_end"])
    change_services.change_submit(change=cr, acting_user=users["requester"])
    change_services.change_approve(change=cr, acting_user=users["approver"])
    cr = change_services.change_implement(change=cr, acting_user=users["approver"])
    return cr.pk


def wait_for(probe, timeout: float, what: str):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.01)
    raise RuntimeError(f"{what}: not done after {timeout}s")


def deploy_once(client, change_id: int, plan_id: int, timeout: float) -> dict:
    from changes.models import ChangeRequest
    from deploys.models import Job

    started = time.perf_counter()
    resp = client.post(f"/api/changes/{change_id}/deploy/", data={"plan": plan_id}, content_type="application/json")
    api_s = time.perf_counter() - started
    if resp.status_code != 202:
        raise RuntimeError(f"POST deploy: HTTP {resp.status_code}: {resp.content[:500]!r}")
    job_id = resp.json()["id"]
    wait_for(lambda: Job.objects.filter(pk=job_id, state__in=Job.FINISHED_STATES).values_list("pk").first(),
             timeout, f"deploy job {job_id}")
    e2e = time.perf_counter() - started
    job = Job.objects.get(pk=job_id)
    assert job.finished_at is not None

    def verified():
        ver = ChangeRequest.objects.filter(pk=change_id).values_list("verification", flat=True).first() or {}
        if ver.get("state") in (None, "pending") or not ver.get("audit"):
            return None
        from audits.models import AuditRun

        scope = AuditRun.objects.filter(pk=ver["audit"]).values_list("scope", flat=True).first() or ""
        return ver if f"(deploy {job_id})" in scope else None

    ver = wait_for(verified, timeout, f"verification after deploy {job_id}")
    from audits.models import AuditRun

    audit = AuditRun.objects.get(pk=ver["audit"])
    statuses: dict[str, int] = {}
    reloads = {"ran_ok": 0, "recorded": 0, "failed": 0}
    per_machine = []
    for plan in job.plans.all():
        statuses[plan.status] = statuses.get(plan.status, 0) + 1
        per_machine.append(plan.finished_at)
        for r in plan.reload_results:
            key = "recorded" if not r["ran"] else ("ran_ok" if r.get("exit_status") == 0 else "failed")
            reloads[key] += 1
    per_machine.sort()
    return {
        "job": job_id, "state": job.state, "e2e_s": e2e, "api_s": api_s,
        "queue_s": (job.started_at - job.created_at).total_seconds() if job.started_at else None,
        "worker_s": (job.finished_at - job.started_at).total_seconds() if job.finished_at and job.started_at else None,
        "first_machine_s": (per_machine[0] - job.started_at).total_seconds() if per_machine and job.started_at else None,
        "machines": job.machines_total, "done": job.machines_done, "statuses": statuses, "reloads": reloads,
        "error": job.error,
        "verification": ver["state"], "verification_note": ver.get("note", ""),
        "verification_s": (datetime.fromisoformat(ver["at"]) - job.finished_at).total_seconds(),
        "verification_audit": audit.pk, "verification_queue_s":
            (audit.started_at - job.finished_at).total_seconds() if audit.started_at else None,
        "verification_audit_s":
            (audit.finished_at - audit.started_at).total_seconds() if audit.started_at and audit.finished_at else None,
        "log_tail": list(job.log_lines.order_by("-id").values_list("message", flat=True)[:3]),
    }


def scenario(name: str, client, change_id: int, fleet: Fleet, runs: int, timeout: float) -> dict:
    n = len(fleet.machines(name))
    done = []
    for index in range(runs + 1):  # the first is the warm-up
        fleet.reset(name)
        plan = dr.one_run(client, change_id, timeout)
        if plan["state"] != "succeeded" or plan["statuses"] != {"planned": n}:
            raise RuntimeError(f"plan of {name}: {plan['state']} {plan['statuses']} {plan['error']} {plan['log_tail']}")
        result = deploy_once(client, change_id, plan["job"], timeout)
        result["plan_e2e_s"], result["plan_actions"] = plan["e2e_s"], plan["actions"]
        result["check"] = fleet.check_written(name)
        done.append(result)
        print(f"  {name} {'warm-up' if index == 0 else f'run {index}'}: plan {plan['e2e_s']:.2f}s, deploy "
              f"{result['e2e_s']:.2f}s {result['state']} {result['statuses']}, verification "
              f"{result['verification']} +{result['verification_s']:.2f}s", flush=True)
    warm, timed = done[0], done[1:]
    e2e = [r["e2e_s"] for r in timed]
    expected_reloads = {"ran_ok": 2 * n, "recorded": 0, "failed": 0} if name == "ssh" else \
        {"ran_ok": 0, "recorded": 2 * n, "failed": 0}
    return {
        "warmup": warm, "runs": timed, "median_e2e_s": statistics.median(e2e), "min_e2e_s": min(e2e),
        "max_e2e_s": max(e2e), "per_machine_ms": 1000 * statistics.median(e2e) / max(1, n),
        "median_plan_s": statistics.median(r["plan_e2e_s"] for r in timed),
        "median_verification_s": statistics.median(r["verification_s"] for r in timed),
        "max_verification_s": max(r["verification_s"] for r in timed),
        "ok": all(r["state"] == "succeeded" and r["statuses"] == {"applied": n} and not r["check"]["not_written"]
                  and not r["check"]["drift_touched"] and r["reloads"] == expected_reloads
                  and r["verification"] == "passed" for r in timed),
    }


def profile_deploy(name: str, client, change_id: int, fleet: Fleet, user, path: str, timeout: float) -> float:
    """One more deploy, its batches run in this process under cProfile (the worker's code without Celery)."""
    import cProfile
    import pstats

    from changes.models import ChangeRequest
    from deploys import rollout
    from deploys.models import Job

    fleet.reset(name)
    plan = dr.one_run(client, change_id, timeout)
    queued = rollout._enqueue
    rollout._enqueue = lambda *args: None  # the batches run here, not in the worker
    try:
        job = rollout.deploy_start(acting_user=user, change=ChangeRequest.objects.get(pk=change_id),
                                   plan_job=Job.objects.get(pk=plan["job"]))
    finally:
        rollout._enqueue = queued
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    batch = rollout.rollout_begin(job_id=job.pk)
    while batch:
        batch = rollout.rollout_run_batch(job_id=job.pk, machine_paths=batch)
    profiler.disable()
    elapsed = time.perf_counter() - started
    job.refresh_from_db()
    out = f"{path}.{name}"
    profiler.dump_stats(out)
    print(f"\n--- {name}: profiled deploy in-process {elapsed:.2f}s ({job.state}, {job.machines_done} machines), "
          f"saved to {out}; top functions by cumulative time ---")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    wait_for(lambda: None if (ChangeRequest.objects.get(pk=change_id).verification or {}).get("state") == "pending"
             else True, timeout, "verification after the profiled deploy")
    return elapsed


def rsync_floor(fleet: Fleet, name: str, src: Path, dest: str, ssh: list[str] | None, repeat: int = 3) -> dict:
    cmd = ["rsync", "-a"] + (["-e", shlex.join(ssh)] if ssh else []) + [f"{src}/", dest]
    times = []
    for _ in range(repeat):
        fleet.reset(name)
        started = time.perf_counter()
        dr.run(cmd)
        times.append(time.perf_counter() - started)
    wrote = not fleet.check_written(name)["not_written"]
    return {"median_s": statistics.median(times), "min_s": min(times), "wrote": wrote, "command": shlex.join(cmd)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="preset 10 local x 5 SSH x 5 files")
    parser.add_argument("--machines-local", type=int)
    parser.add_argument("--machines-ssh", type=int)
    parser.add_argument("--files", type=int)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per scenario after one warm-up")
    parser.add_argument("--concurrency", type=int, default=0, help="worker processes (default: nproc, >= 2)")
    parser.add_argument("--canary", type=int, help="CMDB_DEPLOY_CANARY (default: the portal's)")
    parser.add_argument("--batch", type=int, help="CMDB_DEPLOY_BATCH (default: the portal's)")
    parser.add_argument("--timeout", type=float, default=300.0, help="per-job timeout, seconds")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--profile", metavar="FILE", help="then one deploy per scenario in-process under cProfile, "
                        "saved to FILE.<scenario> (the worker's code path without Celery)")
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
    for flag, name in ((args.canary, "CMDB_DEPLOY_CANARY"), (args.batch, "CMDB_DEPLOY_BATCH")):
        if flag is not None:
            os.environ[name] = str(flag)

    from tests.services import start_redis, start_sshd

    info = machine_description()
    results: dict = {"machine": info, "sizes": {"machines_local": n_local, "machines_ssh": n_ssh, "files": files},
                     "targets_s": TARGETS}
    work = Path(tempfile.mkdtemp(prefix="bench-deploy-", dir=args.workdir))
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
        layout = dr.Layout(work, ssh_root, n_local, n_ssh, files)
        dr.build_repo(layout, sshd, reload=reload_commands(layout))
        dr.build_trees(layout, sshd.user if sshd else None)
        ssh_uid = None
        if sshd:
            import pwd

            entry = pwd.getpwnam(sshd.user)
            ssh_uid = (entry.pw_uid, entry.pw_gid)
        fleet = Fleet(layout, ssh_uid)
        environments = [e for e, n in (("local", n_local), ("ssh", n_ssh)) if n]
        os.environ["CMDB_DEPLOY_ENVIRONMENTS"] = ",".join(environments)
        os.environ["CMDB_DEPLOY_BACKUP_DIR"] = str(work / "deploy-backups")
        results["setup"] = dr.setup_env(layout, redis_url, sshd)

        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.test import Client

        from cmdb import services

        services.repo_sync(trigger="bench")
        make_user = get_user_model().objects.create_user
        users = {"requester": make_user("bench", email="bench@example.com", password="x", is_staff=True),
                 "approver": make_user("bench-approver", email="approver@example.com", password="x", is_staff=True)}
        client = Client()
        client.force_login(users["approver"])
        changes = {env: release(users, f"bench/{env}", f"Bench {env}") for env in environments}
        concurrency = args.concurrency or max(2, info["nproc"])
        worker = dr.start_worker(concurrency, work / "worker.log")
        results["setup"] |= {"worker": f"celery prefork x{concurrency}", "canary": settings.CMDB_DEPLOY_CANARY,
                             "batch": settings.CMDB_DEPLOY_BATCH, "dry_run_batch": settings.CMDB_DRY_RUN_BATCH,
                             "max_failures": settings.CMDB_DEPLOY_MAX_FAILURES, "environments": environments,
                             "setup_s": time.perf_counter() - t}
        print(f"setup done in {results['setup']['setup_s']:.1f}s; worker pid {worker.pid}; "
              f"CMDB_DEPLOY_CANARY={settings.CMDB_DEPLOY_CANARY} CMDB_DEPLOY_BATCH={settings.CMDB_DEPLOY_BATCH}",
              flush=True)

        for env in environments:
            results[env] = scenario(env, client, changes[env], fleet, args.runs, args.timeout)
            if env == "local":
                results[env]["rsync"] = rsync_floor(fleet, env, fleet.staging(env), f"{layout.live / 'machines'}/",
                                                    None)
            else:
                assert sshd is not None
                ssh_cmd = ["ssh", *sshd.ssh_options, "-p", str(sshd.port)]
                results[env]["rsync"] = rsync_floor(fleet, env, fleet.staging(env),
                                                    f"{sshd.user}@{sshd.host}:{ssh_root}/", ssh_cmd)
        if args.profile:
            for env in environments:
                results[env]["profiled_s"] = profile_deploy(env, client, changes[env], fleet, users["approver"],
                                                            args.profile, args.timeout)
    except Exception:
        traceback.print_exc()
        if worker is not None:
            print("--- worker log (tail) ---\n" + "".join((work / "worker.log").read_text().splitlines(True)[-40:]))
        results["error"] = traceback.format_exc()
    finally:
        dr.stop_process_group(worker)
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
        print(f"Django {s.get('django')}, {s.get('database')}, {s.get('worker')}, CMDB_DEPLOY_CANARY={s.get('canary')}, "
              f"CMDB_DEPLOY_BATCH={s.get('batch')}, CMDB_DEPLOY_MAX_FAILURES={s.get('max_failures')}, "
              f"CMDB_DEPLOY_ENVIRONMENTS={','.join(s.get('environments', []))}, "
              f"CMDB_DRY_RUN_BATCH={s.get('dry_run_batch')}")
    sz = results["sizes"]
    print(f"Size: {sz['machines_local']} local + {sz['machines_ssh']} SSH machines x {sz['files']} files, "
          "one file changed per machine")
    print()
    header = (f"{'scenario':<8} {'machines':>8} {'deploy med':>10} {'min':>6} {'max':>6} {'warm-up':>8} "
              f"{'ms/mach':>7} {'queue':>6} {'worker':>7} {'rsync':>6} {'target':>7}  verdict  "
              f"{'plan med':>8}  {'verif med':>9} {'max':>6} {'target':>6}  verdict")
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
        ver_met = r["ok"] and r["max_verification_s"] < TARGETS["verification"]
        all_ok &= met and ver_met
        rs = r.get("rsync", {}).get("median_s")
        print(f"{name:<8} {runs[0]['machines']:>8} {r['median_e2e_s']:>9.2f}s {r['min_e2e_s']:>5.2f}s "
              f"{r['max_e2e_s']:>5.2f}s {r['warmup']['e2e_s']:>7.2f}s {r['per_machine_ms']:>7.1f} {queue:>5.2f}s "
              f"{worker:>6.2f}s {'' if rs is None else f'{rs:.2f}s':>6} {'<' + str(TARGETS[name]) + 's':>7}  "
              f"{'OK' if met else 'MISSED':<7}  {r['median_plan_s']:>7.2f}s  {r['median_verification_s']:>8.2f}s "
              f"{r['max_verification_s']:>5.2f}s {'<' + str(TARGETS['verification']) + 's':>6}  "
              f"{'OK' if ver_met else 'MISSED'}")
    print()
    for name in ("local", "ssh"):
        r = results.get(name)
        if not r:
            continue
        last = r["runs"][-1]
        print(f"{name}: job {last['state']}, machines {last['statuses']}, reloads {last['reloads']}; live files "
              f"checked {last['check']['checked']}, not written {len(last['check']['not_written'])}, drift touched "
              f"{len(last['check']['drift_touched'])}; verification {last['verification']} ({last['verification_note']}); "
              f"rsync wrote {r.get('rsync', {}).get('wrote')} (api call "
              f"{statistics.median([x['api_s'] for x in r['runs']]) * 1000:.0f} ms)")
        if not r["ok"]:
            print(f"  NOT OK: {[(x['state'], x['statuses'], x['reloads'], x['check'], x['verification'], x['error'], x['log_tail']) for x in r['runs']]}")
    print("\ndeploy: POST /api/changes/{id}/deploy/ until the job row is finished (polled every 10 ms); queue: "
          "created_at -> started_at; worker: started_at -> finished_at; plan: the dry run of the release made "
          "before (POST /api/changes/{id}/dry-run/ to finished, not in the deploy figure); verif: the job's "
          "finished_at -> the change request's verification written (passed/failed); rsync: rsync -a of the one "
          "changed file per machine, all machines in one invocation (median of 3).")
    if "error" in results:
        print("\nRUN FAILED (see the traceback above)")
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2, default=str))
        print(f"JSON written to {json_path}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())

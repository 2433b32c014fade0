"""Deploy jobs on local-directory machines: exactly the reviewed plan, atomically, with a way back."""

from __future__ import annotations

import pytest
from django.db import connection

from changes import services as change_services
from changes.models import ApprovalPolicy, ChangeEvent
from deploys import rollout
from deploys import services as dryruns
from deploys.models import Job, MachinePlan
from deploys.services import DeployConflict, DeployForbidden
from fleet.transport import LocalTransport, TransportError


def plan(cr, user, capture, **kwargs) -> Job:
    with capture(execute=True):
        job = dryruns.dryrun_start(acting_user=user, change=cr, **kwargs)
    job.refresh_from_db()
    assert job.state == "succeeded" and job.revision == cr.merged_sha and job.baseline_sha == cr.released_from
    return job


def deploy(cr, user, capture, **kwargs) -> Job:
    with capture(execute=True):
        job = rollout.deploy_start(acting_user=user, change=cr, **kwargs)
    job.refresh_from_db()
    return job


def test_the_plan_of_a_release_separates_the_change_from_drift_and_conflicts(
        released, approver, django_capture_on_commit_callbacks):
    job = plan(released, approver, django_capture_on_commit_callbacks)
    items = {i["target"]: i for i in MachinePlan.objects.get(job=job, machine_path="prod/web1").items}
    assert {t: i["origin"] for t, i in items.items()} == {
        "/etc/nginx/nginx.conf": "conflict",  # main says 2 workers, the machine has 1 (by hand), the CR says 4
        "/etc/nginx/new.conf": "change",
        "/etc/nginx/old.conf": "change",
        "/etc/nginx/same.conf": "",
        "/etc/app/app.conf": "drift",  # mode 0600 live, 0644 declared, untouched by the CR
        "/etc/app/secrets/token": "conflict",
    }
    assert "+worker_processes 1;" in items["/etc/nginx/nginx.conf"]["base_diff"]


def test_a_deploy_writes_the_change_only_and_keeps_drift_and_unconfirmed_conflicts(
        released, approver, dry_env, settings, django_capture_on_commit_callbacks):
    reviewed = plan(released, approver, django_capture_on_commit_callbacks)
    job = deploy(released, approver, django_capture_on_commit_callbacks)
    assert (job.kind, job.state, job.plan_job_id) == ("deploy", "succeeded", reviewed.pk), job.error
    web1 = dry_env["web1"]
    assert (web1 / "etc/nginx/new.conf").read_text() == "server { listen 8080; }\n"
    assert not (web1 / "etc/nginx/old.conf").exists()
    assert (web1 / "etc/nginx/nginx.conf").read_text() == "worker_processes 1;\n"  # the hand edit is kept
    assert (web1 / "etc/app/secrets/token").read_text() == "live-token-value\n"
    assert (web1 / "etc/app/app.conf").stat().st_mode & 0o777 == 0o600  # drift left as it is
    result = MachinePlan.objects.get(job=job, machine_path="prod/web1")
    assert result.status == "applied"
    results = {i["target"]: i.get("result") for i in result.items}
    assert results["/etc/nginx/nginx.conf"] == "kept: conflict not confirmed"
    assert results["/etc/app/app.conf"] == "left as it is (drift)"
    assert (results["/etc/nginx/new.conf"], results["/etc/nginx/old.conf"]) == ("written", "deleted")
    # only nginx's files are written: app's restart (its app.conf is drift, its token an unconfirmed
    # conflict) is not among the reload commands; local machines record them, never run them
    assert [(r["command"], r["ran"]) for r in result.reload_results] == [("nginx -t", False),
                                                                          ("systemctl reload nginx", False)]
    assert result.reload == ["nginx -t", "systemctl reload nginx"]
    statuses = dict(job.plans.values_list("machine_path", "status"))
    assert statuses == {"prod/db1": "manual", "prod/ssh1": "skipped", "prod/web1": "applied"}
    backup = settings.CMDB_DEPLOY_BACKUP_DIR / str(job.pk) / "prod__web1"
    assert (backup / "backup.json").exists() and oct(backup.stat().st_mode & 0o777) == "0o700"
    actions = list(ChangeEvent.objects.filter(change=released, action__startswith="deploy")
                   .values_list("action", flat=True))
    assert actions == ["deploy-started", "deploy-machine", "deploy-machine", "deploy-machine", "deploy-finished"]


def test_confirmed_conflicts_are_overwritten_and_the_confirmation_is_recorded(
        released, approver, dry_env, django_capture_on_commit_callbacks):
    plan(released, approver, django_capture_on_commit_callbacks)
    job = deploy(released, approver, django_capture_on_commit_callbacks, confirm_conflicts=True)
    web1 = dry_env["web1"]
    assert (web1 / "etc/nginx/nginx.conf").read_text() == "worker_processes 4;\n"
    assert (web1 / "etc/nginx/nginx.conf").stat().st_mode & 0o777 == 0o640
    assert ChangeEvent.objects.get(change=released, action="deploy-started").data["confirm_conflicts"] is True
    assert job.state == "succeeded"
    # the token of app is written too (confirmed): app restarts as well
    assert MachinePlan.objects.get(job=job, machine_path="prod/web1").reload == [
        "systemctl restart app", "nginx -t", "systemctl reload nginx"]


def test_a_machine_that_moved_since_the_plan_is_skipped_untouched(
        released, approver, dry_env, django_capture_on_commit_callbacks):
    plan(released, approver, django_capture_on_commit_callbacks)
    (dry_env["web1"] / "etc/nginx/old.conf").write_text("# edited after the review\n")
    job = deploy(released, approver, django_capture_on_commit_callbacks)
    web1 = MachinePlan.objects.get(job=job, machine_path="prod/web1")
    assert web1.status == "skipped" and "changed since plan: /etc/nginx/old.conf" in web1.reason
    assert not (dry_env["web1"] / "etc/nginx/new.conf").exists()
    assert (dry_env["web1"] / "etc/nginx/old.conf").read_text() == "# edited after the review\n"


def test_a_failed_write_puts_the_machine_back_and_halts_the_rollout(
        released, approver, dry_env, monkeypatch, django_capture_on_commit_callbacks):
    plan(released, approver, django_capture_on_commit_callbacks)
    original = LocalTransport.write
    calls = []

    def disk_full_on_second_write(self, op):
        calls.append(op.target)
        if len(calls) == 2:
            raise TransportError(f"{op.target}: No space left on device")
        return original(self, op)

    monkeypatch.setattr(LocalTransport, "write", disk_full_on_second_write)
    before = {p: p.read_bytes() for p in (dry_env["web1"] / "etc/nginx").iterdir() if p.is_file()}
    job = deploy(released, approver, django_capture_on_commit_callbacks)
    web1 = MachinePlan.objects.get(job=job, machine_path="prod/web1")
    assert web1.status == "failed" and "No space left on device" in web1.reason and "put back" in web1.reason
    after = {p: p.read_bytes() for p in (dry_env["web1"] / "etc/nginx").iterdir() if p.is_file()}
    assert after == before  # every file as it was, the deleted one included
    assert job.state in ("halted", "failed")
    assert ChangeEvent.objects.filter(change=released, action__in=["deploy-halted", "deploy-finished"]).exists()


def test_restore_puts_back_what_a_deploy_wrote(released, approver, dry_env, settings, api_for,
                                               django_capture_on_commit_callbacks):
    plan(released, approver, django_capture_on_commit_callbacks)
    settings.CMDB_DEPLOY_MAX_FAILURES = 1
    job = deploy(released, approver, django_capture_on_commit_callbacks)
    Job.objects.filter(pk=job.pk).update(state=Job.State.FAILED)  # as a later machine's failure would
    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(approver).post(f"/api/jobs/{job.pk}/restore/")
    assert response.status_code == 202, response.content
    restore = Job.objects.get(pk=response.json()["id"])
    assert response["Location"] == f"http://testserver/api/jobs/{restore.pk}/"
    assert (restore.kind, restore.state) == ("restore", "succeeded")
    assert (dry_env["web1"] / "etc/nginx/old.conf").read_text() == "# legacy\n"
    assert not (dry_env["web1"] / "etc/nginx/new.conf").exists()


def test_refusals(released, requester, approver, viewer, staff, settings, django_capture_on_commit_callbacks):
    with pytest.raises(DeployConflict, match="No plan of the release"):
        rollout.deploy_start(acting_user=approver, change=released)
    plan(released, approver, django_capture_on_commit_callbacks)
    for user in (viewer, requester):
        with pytest.raises(DeployForbidden):
            rollout.deploy_start(acting_user=user, change=released)
    ApprovalPolicy.objects.create(environment="prod", required_approvals=1, self_deploy=False)
    released.requester = approver
    released.save()
    with pytest.raises(DeployForbidden, match="forbids deploying your own"):
        rollout.deploy_start(acting_user=approver, change=released)
    settings.CMDB_DEPLOY_ENVIRONMENTS = ["test"]
    with pytest.raises(DeployConflict, match="CMDB_DEPLOY_ENVIRONMENTS"):
        rollout.deploy_start(acting_user=staff, change=released)
    settings.CMDB_DEPLOY_ENVIRONMENTS = ["prod"]
    first = rollout.deploy_start(acting_user=staff, change=released)  # queued: not run (no on-commit here)
    with pytest.raises(DeployConflict, match="already running"):
        rollout.deploy_start(acting_user=staff, change=released)
    assert first.state == "queued"


def test_a_plan_for_another_commit_is_refused(released, approver, django_capture_on_commit_callbacks):
    reviewed = plan(released, approver, django_capture_on_commit_callbacks)
    Job.objects.filter(pk=reviewed.pk).update(revision="f" * 40)  # e.g. the branch was force-pushed and re-released
    with pytest.raises(DeployConflict, match="plan the release again"):
        rollout.deploy_start(acting_user=approver, change=released, plan_job=Job.objects.get(pk=reviewed.pk))


def test_the_api_starts_a_deploy_and_answers_refusals(released, approver, viewer, api_for,
                                                     django_capture_on_commit_callbacks):
    client = api_for(approver)
    refused = client.post(f"/api/changes/{released.pk}/deploy/", {}, format="json")
    assert refused.status_code == 409 and "No plan of the release" in refused.json()["detail"]
    plan(released, approver, django_capture_on_commit_callbacks)
    assert api_for(viewer).post(f"/api/changes/{released.pk}/deploy/", {}, format="json").status_code == 403
    assert client.post(f"/api/changes/{released.pk}/deploy/", {"plan": "x"}, format="json").status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/changes/{released.pk}/deploy/", {"confirm_conflicts": True}, format="json")
    assert response.status_code == 202, response.content
    assert response["Location"] == f"http://testserver/api/jobs/{response.json()['id']}/"
    body = client.get(f"/api/jobs/{response.json()['id']}/").json()
    assert (body["kind"], body["state"], body["confirm_conflicts"]) == ("deploy", "succeeded", True)
    web1 = next(p for p in body["plans"] if p["machine_path"] == "prod/web1")
    assert web1["status"] == "applied" and web1["reload_results"][0]["ran"] is False


def test_a_deploy_is_verified_by_an_audit_and_a_kept_conflict_fails_it(
        released, approver, requester, django_capture_on_commit_callbacks):
    from changes import verification
    from changes.services import ChangeConflict

    plan(released, approver, django_capture_on_commit_callbacks)
    job = deploy(released, approver, django_capture_on_commit_callbacks)
    released.refresh_from_db()
    result = released.verification
    assert result["state"] == "failed" and result["audit"]
    assert "prod/web1:/etc/nginx/nginx.conf: content" in result["findings"]  # the kept hand edit
    assert "prod/web1:/etc/app/app.conf: mode" not in result["findings"]  # drift the change does not touch
    assert result["manual"] == ["prod/db1"]  # still to be checked by hand
    assert ChangeEvent.objects.filter(change=released, action="verification-failed").exists()
    with pytest.raises(ChangeConflict, match="verification is failed"):
        verification.change_verify(change=released, acting_user=requester)
    assert job.state == "succeeded"


def test_a_confirmed_deploy_passes_its_verification_and_the_change_can_be_verified(
        released, approver, requester, django_capture_on_commit_callbacks):
    from changes import verification

    # ssh1 cannot be reached here: a plan without it (with it, the verification fails: not checked)
    plan(released, approver, django_capture_on_commit_callbacks, machines=["prod/web1", "prod/db1"])
    deploy(released, approver, django_capture_on_commit_callbacks, confirm_conflicts=True)
    released.refresh_from_db()
    # web1 is in sync; db1 is configured by hand: the verification waits for a person's check
    assert released.verification["state"] == "pending" and released.verification["manual"] == ["prod/db1"]
    from audits import services as audit_services
    from audits.models import ManualCheck

    check = ManualCheck.objects.get(run_id=released.verification["audit"], machine_path="prod/db1")
    with django_capture_on_commit_callbacks(execute=True):
        audit_services.manual_check_record(check=check, acting_user=requester, state="matches")
    released.refresh_from_db()
    assert released.verification["state"] == "passed", released.verification
    assert verification.change_verify(change=released, acting_user=requester).state == "verified"


def test_a_machine_unreachable_mid_rollout_halts_it_and_leaves_the_rest_untouched(
        released, approver, dry_env, settings, django_capture_on_commit_callbacks):
    import shutil

    plan(released, approver, django_capture_on_commit_callbacks)
    settings.CMDB_DEPLOY_CANARY, settings.CMDB_DEPLOY_MAX_FAILURES = 0, 1
    shutil.rmtree(dry_env["web1"])  # the machine went away after the review
    job = deploy(released, approver, django_capture_on_commit_callbacks)
    assert job.state == "halted" and "1 machine(s) failed" in job.error
    web1 = MachinePlan.objects.get(job=job, machine_path="prod/web1")
    assert web1.status == "unreachable" and "nothing written" in web1.reason
    assert job.machines_missing == [m for m in job.machines if m > "prod/web1"]  # after web1 in order: none here
    assert ChangeEvent.objects.filter(change=released, action="deploy-halted").exists()


def test_a_deploy_whose_worker_vanished_ends_interrupted_with_its_backups_named(
        released, approver, settings, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    plan(released, approver, django_capture_on_commit_callbacks)
    job = rollout.deploy_start(acting_user=approver, change=released)  # queued; its worker never comes
    Job.objects.filter(pk=job.pk).update(state=Job.State.RUNNING, progress_at=timezone.now() - timedelta(hours=2),
                                         started_at=timezone.now() - timedelta(hours=2))
    assert dryruns.dryrun_reap_stale() == 1
    job.refresh_from_db()
    assert job.state == "interrupted" and "backups kept" in job.error and job.machines_missing == job.machines
    assert ChangeEvent.objects.filter(change=released, action="deploy-interrupted").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor == "sqlite", reason="needs a server database (runs in the PostgreSQL pass)")
def test_two_deploys_of_one_change_at_once_make_one_job(released, approver, staff, django_capture_on_commit_callbacks):
    from tests.fixtures.worker import run_together

    plan(released, approver, django_capture_on_commit_callbacks)
    results, errors = run_together(lambda: rollout.deploy_start(acting_user=approver, change=released),
                                   lambda: rollout.deploy_start(acting_user=staff, change=released))
    assert len(results) == 1 and len(errors) == 1 and isinstance(errors[0], DeployConflict), errors
    assert Job.objects.filter(kind=Job.Kind.DEPLOY).count() == 1


THREE = ["web1", "web2", "web3"]


@pytest.fixture
def three_planned(work_repo, tmp_path, settings, make_change, requester, approver,
                  django_capture_on_commit_callbacks):
    """Three local machines in one deploy batch, a released change to one file on each, and its plan."""
    from tests.gitutil import on_branch

    settings.CMDB_LOCAL_ROOT_BASE = tmp_path / "live"
    settings.CMDB_DEPLOY_ENVIRONMENTS = ["prod"]
    settings.CMDB_DEPLOY_BACKUP_DIR = tmp_path / "backups"
    settings.CMDB_DEPLOY_CANARY, settings.CMDB_DEPLOY_BATCH = 0, 10
    for m in THREE:
        work_repo.write(f"prod/{m}/manifest.toml", f'[machine]\ntransport = "local"\nroot = "machines/{m}"\n')
        work_repo.write(f"prod/{m}/app/files/etc/app.conf", "v1\n")
        live = tmp_path / "live/machines" / m / "etc/app.conf"
        live.parent.mkdir(parents=True)
        live.write_text("v1\n")
    work_repo.commit("Three machines")
    on_branch(work_repo, "change/three", {f"prod/{m}/app/files/etc/app.conf": f"v2 {m}\n" for m in THREE})
    cr = make_change("change/three")
    with django_capture_on_commit_callbacks(execute=True):
        change_services.change_submit(change=cr, acting_user=requester)
        change_services.change_approve(change=cr, acting_user=approver)
        cr = change_services.change_implement(change=cr, acting_user=approver)
    plan(cr, approver, django_capture_on_commit_callbacks)
    return cr, {m: tmp_path / "live/machines" / m / "etc/app.conf" for m in THREE}


def test_a_batch_reads_the_release_from_git_once_for_all_its_machines(
        three_planned, approver, monkeypatch, django_capture_on_commit_callbacks):
    cr, live = three_planned
    reads, real = [], rollout.declared_configuration
    monkeypatch.setattr(rollout, "declared_configuration",
                        lambda *args, **kwargs: reads.append(sorted(kwargs["machines"])) or real(*args, **kwargs))
    job = deploy(cr, approver, django_capture_on_commit_callbacks)
    assert (job.state, dict(job.plans.values_list("machine_path", "status"))) == (
        "succeeded", {f"prod/{m}": "applied" for m in THREE}), job.error
    assert reads == [[f"prod/{m}" for m in THREE]]  # one read of the release for the whole batch
    assert {m: path.read_text() for m, path in live.items()} == {m: f"v2 {m}\n" for m in THREE}


def test_a_deploy_cancelled_between_machines_leaves_the_rest_of_its_batch_untouched(
        three_planned, approver, monkeypatch, django_capture_on_commit_callbacks):
    cr, live = three_planned
    real_store = rollout._store

    def cancel_after_the_first(job, machine, outcome):
        real_store(job, machine, outcome)
        if machine == "prod/web1":
            dryruns.dryrun_cancel(job=Job.objects.get(pk=job.pk), acting_user=approver)

    monkeypatch.setattr(rollout, "_store", cancel_after_the_first)
    job = deploy(cr, approver, django_capture_on_commit_callbacks)
    assert job.state == "cancelled"
    assert dict(job.plans.values_list("machine_path", "status")) == {"prod/web1": "applied"}
    assert {m: path.read_text() for m, path in live.items()} == {"web1": "v2 web1\n", "web2": "v1\n", "web3": "v1\n"}


def test_a_machine_cut_short_by_a_dead_worker_is_named_and_restored(
        released, approver, dry_env, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    plan(released, approver, django_capture_on_commit_callbacks)
    job = rollout.deploy_start(acting_user=approver, change=released)  # queued; run by hand below
    Job.objects.filter(pk=job.pk).update(state=Job.State.RUNNING, progress_at=timezone.now() - timedelta(hours=2))
    rollout._deploy_one(Job.objects.get(pk=job.pk), "prod/web1",  # written, then the worker died: no row
                        rollout._Release(job.revision, ["prod/web1"]))
    assert (dry_env["web1"] / "etc/nginx/new.conf").exists()
    assert dryruns.dryrun_reap_stale() == 1
    job.refresh_from_db()
    web1 = MachinePlan.objects.get(job=job, machine_path="prod/web1")
    assert (job.state, web1.status) == ("interrupted", "interrupted") and str(job.backup_dir("prod/web1")) in web1.reason
    assert "1 cut short while being written (prod/web1" in job.error
    assert job.machines_missing == ["prod/db1", "prod/ssh1"] and job.machines_done == 1
    with django_capture_on_commit_callbacks(execute=True):
        restore = rollout.restore_start(acting_user=approver, deploy=job)
    restore.refresh_from_db()
    assert (restore.state, restore.machines) == ("succeeded", ["prod/web1"])
    assert (dry_env["web1"] / "etc/nginx/old.conf").read_text() == "# legacy\n"
    assert not (dry_env["web1"] / "etc/nginx/new.conf").exists()

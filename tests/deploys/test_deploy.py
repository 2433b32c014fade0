"""Deploy jobs on local-directory machines: exactly the reviewed plan, atomically, with a way back."""

from __future__ import annotations

import pytest

from changes import services as change_services
from changes.models import ApprovalPolicy, ChangeEvent
from deploys import rollout
from deploys import services as dryruns
from deploys.models import Job, MachinePlan
from deploys.services import DeployConflict, DeployForbidden
from fleet.transport import LocalTransport, TransportError


@pytest.fixture
def released(dry_env, make_change, requester, approver, settings, tmp_path, django_capture_on_commit_callbacks):
    """The dry-run repository's change request, approved and released to main."""
    settings.CMDB_DEPLOY_ENVIRONMENTS = ["prod"]
    settings.CMDB_DEPLOY_BACKUP_DIR = tmp_path / "backups"
    cr = make_change(dry_env["branch"])
    with django_capture_on_commit_callbacks(execute=True):
        change_services.change_submit(change=cr, acting_user=requester)
        change_services.change_approve(change=cr, acting_user=approver)
        cr = change_services.change_implement(change=cr, acting_user=approver)
    return cr


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


def test_restore_puts_back_what_a_deploy_wrote(released, approver, dry_env, settings,
                                               django_capture_on_commit_callbacks):
    plan(released, approver, django_capture_on_commit_callbacks)
    settings.CMDB_DEPLOY_MAX_FAILURES = 1
    job = deploy(released, approver, django_capture_on_commit_callbacks)
    Job.objects.filter(pk=job.pk).update(state=Job.State.FAILED)  # as a later machine's failure would
    with django_capture_on_commit_callbacks(execute=True):
        restore = rollout.restore_start(acting_user=approver, deploy=Job.objects.get(pk=job.pk))
    restore.refresh_from_db()
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
    assert result["manual"] == ["prod/db1"]
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
    assert released.verification["state"] == "passed", released.verification
    assert verification.change_verify(change=released, acting_user=requester).state == "verified"

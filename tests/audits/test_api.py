"""The audit API: every endpoint × every role, the finding actions (acknowledge, adopt live into a
change request, restore declared), bad payloads, and pinned query counts on the lists."""

from __future__ import annotations

import json
import subprocess

import pytest

from audits.models import AuditRun, Finding, ManualCheck
from changes.models import ChangeRequest
from tests.changes.apiutil import token_client

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "viewer", "requester", "approver", "staff"]


def expect(viewer, requester, approver, staff) -> dict[str, int]:
    return {"anonymous": 401, "viewer": viewer, "requester": requester, "approver": approver, "staff": staff}


READ = expect(200, 200, 200, 200)


@pytest.fixture
def audited(audit_env, staff, run_audit):
    return run_audit(acting_user=staff)


def client_as(role, request):
    return token_client(None if role == "anonymous" else request.getfixturevalue(role))


def post(client, url, body=None):
    return client.post(url, data=json.dumps(body or {}), content_type="application/json")


@pytest.mark.parametrize("role", ROLES)
def test_reads_need_a_login_and_are_open_to_every_role(audited, role, request):
    client = client_as(role, request)
    finding = audited.findings.first()
    for url in ("/api/audits/", f"/api/audits/{audited.pk}/", "/api/findings/", f"/api/findings/{finding.pk}/",
                "/api/manual-checks/", "/api/status/"):
        response = client.get(url)
        assert response.status_code == READ[role], (url, response.content[:200])


@pytest.mark.parametrize("role", ROLES)
def test_only_staff_start_audits_through_the_api(audit_env, role, request, django_capture_on_commit_callbacks):
    client = client_as(role, request)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, "/api/audits/", {"scope": "prod/web1"})
    assert response.status_code == expect(403, 403, 403, 202)[role], response.content
    if role == "staff":
        run = AuditRun.objects.get()
        assert response.json()["id"] == run.pk and response["Location"] == f"http://testserver/api/audits/{run.pk}/"
        assert response.json()["url"] == f"http://testserver/audits/{run.pk}/"
        assert (run.trigger, run.scope, run.state) == ("api", "prod/web1", "succeeded")
    else:
        assert not AuditRun.objects.exists()
        if role != "anonymous":
            assert "staff" in response.json()["detail"]


@pytest.mark.parametrize("role", ROLES)
def test_acknowledging_needs_an_approver(audited, role, request):
    finding = audited.findings.get(machine_path="prod/web1", target="/etc/nginx/nginx.conf", kind="mode")
    response = post(client_as(role, request), f"/api/findings/{finding.pk}/acknowledge/", {"note": "known"})
    assert response.status_code == expect(403, 403, 200, 200)[role], response.content
    finding.refresh_from_db()
    assert finding.state == ("acknowledged" if role in ("approver", "staff") else "open")


@pytest.mark.parametrize("role", ROLES)
def test_manual_checks_are_recorded_by_requesters_approvers_and_staff(audited, role, request):
    check = audited.manual_checks.get()
    response = post(client_as(role, request), f"/api/manual-checks/{check.pk}/", {"state": "matches"})
    assert response.status_code == expect(403, 200, 200, 200)[role], response.content


@pytest.mark.parametrize("role", ["anonymous", "viewer"])
def test_viewers_cannot_open_change_requests_from_findings(audited, role, request):
    finding = audited.findings.get(machine_path="prod/web1", target="/etc/nginx/nginx.conf", kind="content")
    for action in ("adopt", "restore"):
        response = post(client_as(role, request), f"/api/findings/{finding.pk}/{action}/")
        assert response.status_code == {"anonymous": 401, "viewer": 403}[role]
    assert not ChangeRequest.objects.exists()


def test_adopt_live_commits_the_live_content_into_a_branch_and_opens_a_change_request(audit_env, audited, requester):
    finding = audited.findings.get(machine_path="prod/web1", target="/etc/nginx/nginx.conf", kind="content")
    response = post(token_client(requester), f"/api/findings/{finding.pk}/adopt/", {"note": "the live one is right"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "adopted" and body["change"] and body["handled_by"] == requester.get_username()

    change = ChangeRequest.objects.get(pk=body["change"])
    assert change.requester == requester and change.state == "draft"
    assert change.branch == f"audit/adopt-prod-web1-finding-{finding.pk}"
    assert [c["path"] for c in change.impact["cis"]] == ["prod/web1/nginx"]
    origin = audit_env["repo"].origin
    content = subprocess.run(["git", "-C", str(origin), "show", f"{change.branch}:{finding.source_path}"],
                             capture_output=True, check=True).stdout
    assert content == b"worker_processes 1;\n"  # what is live on web1
    log = subprocess.run(["git", "-C", str(origin), "log", "-1", "--format=%s%n%b", change.branch],
                         capture_output=True, text=True, check=True).stdout
    assert "Adopt live content of /etc/nginx/nginx.conf on prod/web1" in log and f"finding #{finding.pk}" in log
    assert change.events.filter(action="created").exists()

    again = post(token_client(requester), f"/api/findings/{finding.pk}/adopt/")
    assert again.status_code == 409


def test_adopt_refuses_when_the_live_file_moved_since_the_audit(audit_env, audited, requester):
    finding = audited.findings.get(machine_path="prod/web1", target="/etc/nginx/nginx.conf", kind="content")
    (audit_env["machines"] / "machines/web1/etc/nginx/nginx.conf").write_text("worker_processes 16;\n")
    response = post(token_client(requester), f"/api/findings/{finding.pk}/adopt/")
    assert response.status_code == 409 and "changed since audit" in response.json()["detail"]
    assert not ChangeRequest.objects.exists()
    finding.refresh_from_db()
    assert finding.state == "open"


def test_adopt_live_mode_and_refusals_for_kinds_git_cannot_hold(audit_env, audited, requester, staff, run_audit):
    client = token_client(requester)
    (audit_env["machines"] / "machines/web1/etc/nginx/same.conf").chmod(0o755)
    run = run_audit(acting_user=staff, scope="prod/web1")
    mode = run.findings.get(target="/etc/nginx/same.conf", kind="mode")  # declared 0644 by Git, live 0755
    response = post(client, f"/api/findings/{mode.pk}/adopt/")
    assert response.status_code == 200, response.content
    change = ChangeRequest.objects.get(pk=response.json()["change"])
    tree = subprocess.run(["git", "-C", str(audit_env["repo"].origin), "ls-tree", change.branch, mode.source_path],
                          capture_output=True, text=True, check=True).stdout
    assert tree.startswith("100755 ")

    manifest_mode = run.findings.get(target="/etc/nginx/nginx.conf", kind="mode")  # 0640 from manifest.toml
    response = post(client, f"/api/findings/{manifest_mode.pk}/adopt/")
    assert response.status_code == 400 and "manifest.toml" in response.json()["detail"]
    app_mode = audited.findings.get(target="/etc/app/app.conf", kind="mode")  # live 0600: not a Git mode
    response = post(client, f"/api/findings/{app_mode.pk}/adopt/")
    assert response.status_code == 400 and "only modes 0644 and 0755" in response.json()["detail"]
    missing = audited.findings.get(target="/etc/missing.conf", kind="missing")
    response = post(client, f"/api/findings/{missing.pk}/adopt/")
    assert response.status_code == 400 and "Only content and mode" in response.json()["detail"]


def test_restore_declared_opens_a_change_request_that_redeploys_the_application(audit_env, audited, requester):
    finding = audited.findings.get(target="/etc/missing.conf", kind="missing")
    response = post(token_client(requester), f"/api/findings/{finding.pk}/restore/", {"note": "reinstall it"})
    assert response.status_code == 200, response.content
    change = ChangeRequest.objects.get(pk=response.json()["change"])
    assert response.json()["state"] == "restore" and response.json()["note"] == "reinstall it"
    assert change.impact["files"] == [] and change.impact["redeploy"] == ["prod/web2/app"]
    assert change.machines() == ["prod/web2"]  # what its dry run looks at
    assert change.impacted.get().reason == "redeploy"
    detail = token_client(requester).get(f"/api/findings/{finding.pk}/").json()
    assert detail["change"] == change.pk


def test_bad_payloads_get_clear_errors(audited, staff, approver):
    client = token_client(staff)
    assert post(client, "/api/audits/", {"scope": "../../etc"}).status_code == 400
    assert post(client, "/api/audits/", {"scope": 42}).status_code in (202, 400)  # DRF coerces numbers to text
    response = client.post("/api/audits/", data="{not json", content_type="application/json")
    assert response.status_code == 400 and "detail" in response.json()
    finding = audited.findings.first()
    response = post(token_client(approver), f"/api/findings/{finding.pk}/acknowledge/", {"note": ""})
    assert response.status_code == 400 and "note" in response.json()["detail"]
    assert post(token_client(approver), "/api/findings/999999/acknowledge/", {"note": "x"}).status_code == 404
    check = audited.manual_checks.get()
    assert post(client, f"/api/manual-checks/{check.pk}/", {"state": "maybe"}).status_code == 400
    assert client.get("/api/findings/?state=bogus").status_code == 400
    assert client.get("/api/findings/?run=abc").status_code == 400


def test_a_second_audit_of_an_active_scope_is_a_conflict(audit_env, staff):
    client = token_client(staff)
    first = post(client, "/api/audits/", {"scope": "prod"})  # not run: the on-commit callback is not executed
    assert first.status_code == 202
    second = post(client, "/api/audits/", {"scope": "prod"})
    assert second.status_code == 409 and f"#{first.json()['id']}" in second.json()["detail"]


def test_audit_detail_lists_each_machine_with_status_compliance_and_findings(audited, viewer):
    body = token_client(viewer).get(f"/api/audits/{audited.pk}/").json()
    machines = {m["machine_path"]: m for m in body["machines"]}
    assert machines["prod/web1"]["status"] == "drifted" and machines["prod/web1"]["compliance"] == 40.0
    assert {(f["target"], f["kind"]) for f in machines["prod/web1"]["findings"]} >= {("/etc/nginx/nginx.conf", "content")}
    secret = next(f for f in machines["prod/web1"]["findings"] if f["secret"] and f["kind"] == "content")
    assert "live-token-value" not in json.dumps(body) and secret["diff"].startswith("••")
    assert machines["prod/ssh1"]["status"] == "unreachable" and machines["prod/ssh1"]["compliance"] is None
    assert body["manual_checks"][0]["machine_path"] == "prod/db1"
    assert body["summary"]["environments"]["prod"]["compliance"] == 22.2


def test_findings_filter_by_state_and_environment(audited, approver, viewer):
    finding = audited.findings.get(machine_path="prod/web1", target="/etc/nginx/nginx.conf", kind="mode")
    post(token_client(approver), f"/api/findings/{finding.pk}/acknowledge/", {"note": "known"})
    client = token_client(viewer)
    open_prod = client.get("/api/findings/?state=open&environment=prod").json()
    assert open_prod["count"] == 8 and all(f["state"] == "open" for f in open_prod["results"])
    assert client.get("/api/findings/?state=acknowledged").json()["count"] == 1
    assert client.get("/api/findings/?environment=test").json()["count"] == 0
    assert client.get("/api/findings/?kind=missing").json()["count"] == 2


def test_status_gives_the_home_page_figures(audited, viewer):
    body = token_client(viewer).get("/api/status/").json()
    envs = {e["environment"]: e for e in body["environments"]}
    assert envs["prod"]["compliance"] == 22.2 and envs["prod"]["statuses"]["unreachable"] == 1
    assert envs["prod"]["open_findings"] == 9 and envs["test"]["compliance"] == 100.0
    assert [t["compliance"] for t in envs["prod"]["trend"]] == [22.2]
    assert body["last_audit"]["id"] == audited.pk and body["next_audit_at"]
    assert body["total"]["compliance"] == 30.0


def test_lists_cost_a_fixed_number_of_queries(audit_env, staff, run_audit, viewer, django_assert_num_queries):
    run_audit(acting_user=staff)
    client = token_client(viewer)
    client.get("/api/findings/")
    # token (+ user joined), count, page (+ handled_by / requested_by joined)
    with django_assert_num_queries(3):
        assert client.get("/api/findings/?history=true").status_code == 200
    with django_assert_num_queries(3):
        assert client.get("/api/audits/").status_code == 200
    (audit_env["machines"] / "machines/web1/etc/nginx/nginx.conf").write_text("worker_processes 9;\n")
    run_audit(acting_user=staff)
    run_audit(acting_user=staff, scope="prod")
    assert Finding.objects.count() > 20 and AuditRun.objects.count() == 3
    with django_assert_num_queries(3):
        assert client.get("/api/findings/?history=true").status_code == 200
    with django_assert_num_queries(3):
        assert client.get("/api/audits/").status_code == 200
    assert ManualCheck.objects.count() == 3


def test_secrets_are_never_adopted_from_a_machine(audited, requester, client_for):
    secret = audited.findings.get(target="/etc/app/secrets/token", kind="content")
    response = post(token_client(requester), f"/api/findings/{secret.pk}/adopt/")
    assert response.status_code == 400 and "never copied" in response.json()["detail"]
    assert not ChangeRequest.objects.exists()
    page = client_for(requester).get(secret.get_absolute_url())
    assert b'value="adopt"' not in page.content and b"adopt-refusal" in page.content


def test_a_failed_adopt_leaves_no_branch_behind_and_can_be_retried(audit_env, audited, requester, monkeypatch):
    from changes import services as change_services

    finding = audited.findings.get(machine_path="prod/web1", target="/etc/nginx/nginx.conf", kind="content")
    real = change_services.change_create

    def refused(**kwargs):
        raise change_services.ChangeConflict("origin moved meanwhile")

    monkeypatch.setattr(change_services, "change_create", refused)
    response = post(token_client(requester), f"/api/findings/{finding.pk}/adopt/")
    assert response.status_code == 409
    branches = subprocess.run(["git", "-C", str(audit_env["repo"].origin), "branch", "--list", "audit/*"],
                              capture_output=True, text=True, check=True).stdout
    assert branches.strip() == ""
    monkeypatch.setattr(change_services, "change_create", real)
    assert post(token_client(requester), f"/api/findings/{finding.pk}/adopt/").status_code == 200

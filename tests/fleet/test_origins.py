"""Every planned difference says where it comes from: the change, drift on the machine, or a conflict."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from cmdb.secrets import MASK
from fleet.manifest import DeclaredFile, MachineAccess, MachineDeclaration
from fleet.planner import annotate_origins, count_origins, plan_machine
from fleet.transport import LiveFile

MAIN = b"worker_processes 4;\n"
TLS = b"worker_processes 4;\nssl_protocols TLSv1.3;\n"
HOTFIX = b"worker_processes 4;\nclient_max_body_size 64m;\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def df(target: str, blob: str, *, mode: int = 0o644, secret: bool = False) -> DeclaredFile:
    return DeclaredFile(target=target, source_path=f"prod/web1/nginx/files{target}", blob_sha=blob * 40, size=1,
                        mode=mode, owner=None, group=None, secret=secret, app_path="prod/web1/nginx")


def decl(*files: DeclaredFile) -> MachineDeclaration:
    return MachineDeclaration("prod/web1", MachineAccess("local"), {f.target: f for f in files})


def live(path: str, data: bytes | None, mode: int = 0o644) -> LiveFile:
    if data is None:
        return LiveFile(path, False)
    return LiveFile(path, True, mode=mode, owner="root", group="root", size=len(data), sha256=sha(data), kind="file")


def plan(revision, base, live_files, rev_bytes, base_bytes, live_bytes):
    actions = plan_machine(revision, base, live_files, rev_bytes, live_bytes)
    annotate_origins(actions, revision, base, live_files, base_bytes, live_bytes)
    return {a.target: a for a in actions}


def test_the_change_drift_and_a_hand_edit_the_change_would_overwrite_are_told_apart():
    base = decl(df("/etc/nginx/nginx.conf", "a"), df("/etc/site.conf", "b"), df("/etc/cron", "c"), df("/etc/app", "d"))
    revision = decl(df("/etc/nginx/nginx.conf", "e"), df("/etc/site.conf", "f"), df("/etc/cron", "c"),
                    df("/etc/app", "d"), df("/etc/new.conf", "9"))
    base_bytes = {"/etc/nginx/nginx.conf": MAIN, "/etc/site.conf": b"site\n", "/etc/cron": b"cron\n", "/etc/app": b"app\n"}
    rev_bytes = {**base_bytes, "/etc/nginx/nginx.conf": TLS, "/etc/site.conf": b"site v2\n", "/etc/new.conf": b"new\n"}
    live_bytes = {"/etc/nginx/nginx.conf": HOTFIX, "/etc/site.conf": b"site\n", "/etc/cron": b"cron edited\n",
                  "/etc/app": b"app\n"}
    live_files = {t: live(t, live_bytes.get(t)) for t in [*revision.files]}
    got = plan(revision, base, live_files, rev_bytes, base_bytes, live_bytes)

    assert (got["/etc/site.conf"].action, got["/etc/site.conf"].origin) == ("update", "change")
    assert (got["/etc/new.conf"].action, got["/etc/new.conf"].origin) == ("create", "change")
    assert (got["/etc/cron"].action, got["/etc/cron"].origin) == ("update", "drift")
    assert (got["/etc/app"].action, got["/etc/app"].origin) == ("unchanged", "")
    hotfix = got["/etc/nginx/nginx.conf"]
    assert (hotfix.action, hotfix.origin) == ("update", "conflict")
    assert "+client_max_body_size 64m;" in hotfix.base_diff and "(main)" in hotfix.base_diff  # the hand edit
    assert "+ssl_protocols TLSv1.3;" in hotfix.diff  # what deploying would write
    assert hotfix.live_exists and hotfix.live_sha256 == sha(HOTFIX)  # the state a deploy re-checks
    assert count_origins(got.values()) == {"change": 2, "conflict": 1, "drift": 1}


def test_without_a_base_every_difference_is_drift():
    revision = decl(df("/etc/cron", "c"))
    got = plan(revision, None, {"/etc/cron": live("/etc/cron", b"edited\n")}, {"/etc/cron": b"cron\n"}, {},
               {"/etc/cron": b"edited\n"})
    assert got["/etc/cron"].origin == "drift"


def test_a_removed_file_is_a_change_when_the_machine_still_holds_mains_and_a_conflict_otherwise():
    base = decl(df("/etc/old.conf", "a"), df("/etc/edited.conf", "b"))
    revision = decl()
    base_bytes = {"/etc/old.conf": b"old\n", "/etc/edited.conf": b"x\n"}
    live_bytes = {"/etc/old.conf": b"old\n", "/etc/edited.conf": b"x by hand\n"}
    live_files = {t: live(t, d) for t, d in live_bytes.items()}
    got = plan(revision, base, live_files, {}, base_bytes, live_bytes)
    assert (got["/etc/old.conf"].action, got["/etc/old.conf"].origin) == ("delete", "change")
    assert (got["/etc/edited.conf"].action, got["/etc/edited.conf"].origin) == ("delete", "conflict")


def test_a_mode_edit_by_hand_on_a_changed_file_is_a_conflict_and_secrets_stay_masked():
    base = decl(df("/etc/key", "a", secret=True))
    revision = decl(replace(df("/etc/key", "b", secret=True)))
    live_files = {"/etc/key": live("/etc/key", b"s1\n", mode=0o600)}
    got = plan(revision, base, live_files, {"/etc/key": b"s2\n"}, {"/etc/key": b"s1\n"}, {"/etc/key": b"s1\n"})
    assert got["/etc/key"].origin == "conflict"  # main declares 0644, the machine has 0600
    assert got["/etc/key"].base_diff == MASK and got["/etc/key"].diff == MASK

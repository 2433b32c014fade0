"""The dry-run planner: pure logic, no database, no machine."""

from __future__ import annotations

import hashlib

from cmdb.secrets import MASK
from fleet.manifest import DeclaredFile, MachineAccess, MachineDeclaration
from fleet.planner import paths_to_read, plan_machine, reload_commands, summarize
from fleet.transport import LiveFile

KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def df(target: str, *, app: str = "prod/web1/nginx", mode: int = 0o644, owner=None, group=None, secret=False,
       kind="file") -> DeclaredFile:
    return DeclaredFile(target=target, source_path=f"{app}/files{target}", blob_sha="0" * 40, size=1, mode=mode,
                        owner=owner, group=group, secret=secret, app_path=app, kind=kind)


def decl(*files: DeclaredFile, reload=None) -> MachineDeclaration:
    return MachineDeclaration("prod/web1", MachineAccess("local"), {f.target: f for f in files}, reload or {})


def live(path: str, data: bytes | None, *, mode=0o644, owner="root", group="root", error=None, kind="file") -> LiveFile:
    if data is None and error is None:
        return LiveFile(path, False)
    return LiveFile(path, True, mode=mode, owner=owner, group=group, size=len(data or b""),
                    sha256=sha(data) if data is not None else None, error=error, kind=kind)


def by_target(actions):
    return {a.target: a for a in actions}


def test_every_action_kind_and_reload_union():
    d = decl(
        df("/etc/new.conf"),
        df("/etc/same.conf"),
        df("/etc/changed.conf"),
        df("/etc/mode.conf", mode=0o640),
        df("/etc/owned.conf", owner="www-data", group="adm"),
        df("/etc/app/other.conf", app="prod/web1/app"),
        df("/etc/locked.conf", app="prod/web1/locked"),
        reload={"prod/web1/nginx": ["systemctl reload nginx", "nginx -t"], "prod/web1/app": ["systemctl restart app"],
                "prod/web1/locked": ["never"]},
    )
    base = decl(df("/etc/same.conf"), df("/etc/old.conf", app="prod/web1/app"), df("/etc/gone-already.conf"),
                reload={"prod/web1/app": ["systemctl restart app"]})
    declared_bytes = {t: f"{t}\nnew\n".encode() for t in d.files}
    live_files = {
        "/etc/new.conf": live("/etc/new.conf", None),
        "/etc/same.conf": live("/etc/same.conf", declared_bytes["/etc/same.conf"]),
        "/etc/changed.conf": live("/etc/changed.conf", b"/etc/changed.conf\nold\n"),
        "/etc/mode.conf": live("/etc/mode.conf", declared_bytes["/etc/mode.conf"], mode=0o644),
        "/etc/owned.conf": live("/etc/owned.conf", declared_bytes["/etc/owned.conf"], owner="root", group="adm"),
        "/etc/app/other.conf": live("/etc/app/other.conf", declared_bytes["/etc/app/other.conf"]),
        "/etc/locked.conf": live("/etc/locked.conf", b"", error="permission denied"),
        "/etc/old.conf": live("/etc/old.conf", b"legacy\n"),
        "/etc/gone-already.conf": live("/etc/gone-already.conf", None),
    }
    assert paths_to_read(d, live_files, declared_bytes) == ["/etc/changed.conf"]
    live_bytes = {"/etc/changed.conf": b"/etc/changed.conf\nold\n", "/etc/old.conf": b"legacy\n"}
    actions = plan_machine(d, base, live_files, declared_bytes, live_bytes)
    got = by_target(actions)
    assert [a.target for a in actions] == sorted(got)
    assert {t: a.action for t, a in got.items()} == {
        "/etc/new.conf": "create",
        "/etc/same.conf": "unchanged",
        "/etc/changed.conf": "update",
        "/etc/mode.conf": "update",
        "/etc/owned.conf": "update",
        "/etc/app/other.conf": "unchanged",
        "/etc/locked.conf": "unreadable",
        "/etc/old.conf": "delete",
    }
    assert got["/etc/changed.conf"].changes == ["content"]
    assert "-old" in got["/etc/changed.conf"].diff and "+new" in got["/etc/changed.conf"].diff
    assert got["/etc/mode.conf"].changes == ["mode"]
    assert (got["/etc/mode.conf"].live_mode, got["/etc/mode.conf"].declared_mode) == ("0644", "0640")
    assert got["/etc/owned.conf"].changes == ["owner"]  # group matches; undeclared fields never compared
    assert got["/etc/new.conf"].diff.startswith("--- /dev/null")
    assert got["/etc/locked.conf"].reason == "permission denied" and got["/etc/locked.conf"].changes == []
    assert "-legacy" in got["/etc/old.conf"].diff
    # nginx (create/update) and app (delete) changed; "locked" is only unreadable: not drift.
    assert reload_commands(d, actions, base) == ["systemctl restart app", "systemctl reload nginx", "nginx -t"]
    assert summarize(actions) == {"create": 1, "update": 3, "delete": 1, "unchanged": 2, "unreadable": 1}


def test_owner_and_group_only_when_declared():
    d = decl(df("/etc/a.conf"))
    data = {"/etc/a.conf": b"x\n"}
    actions = plan_machine(d, None, {"/etc/a.conf": live("/etc/a.conf", b"x\n", owner="nobody", group="nogroup")},
                           data, {})
    assert actions[0].action == "unchanged"


def test_secrets_are_masked():
    d = decl(df("/etc/ssl/site.key", secret=True), df("/etc/app.conf"), df("/etc/new.key", secret=True))
    declared_bytes = {"/etc/ssl/site.key": b"new secret\n", "/etc/app.conf": b"a\n" + KEY, "/etc/new.key": b"s3cret\n"}
    live_files = {
        "/etc/ssl/site.key": live("/etc/ssl/site.key", b"old secret\n"),
        "/etc/app.conf": live("/etc/app.conf", b"a\n"),
        "/etc/new.key": live("/etc/new.key", None),
    }
    # A secret's live content is never fetched; a file holding a private key is a secret too.
    assert paths_to_read(d, live_files, declared_bytes) == []
    got = by_target(plan_machine(d, None, live_files, declared_bytes, {"/etc/app.conf": b"a\n"}))
    assert got["/etc/ssl/site.key"].diff == MASK and got["/etc/ssl/site.key"].secret
    assert got["/etc/app.conf"].secret and got["/etc/app.conf"].diff == MASK
    assert got["/etc/new.key"].action == "create" and got["/etc/new.key"].diff == MASK
    for action in got.values():
        assert "secret\n" not in action.diff and "s3cret" not in action.diff and "abc" not in action.diff


def test_private_key_in_a_non_secret_diff_is_masked_by_mask_text():
    d = decl(df("/etc/app.conf"))
    # Declared content is harmless; the live file holds a key (it's leaking: the diff must not show it).
    actions = plan_machine(d, None, {"/etc/app.conf": live("/etc/app.conf", KEY)}, {"/etc/app.conf": b"clean\n"},
                           {"/etc/app.conf": KEY})
    assert actions[0].action == "update" and "abc" not in actions[0].diff


def test_unreadable_never_counts_as_drift_and_missing_live_content():
    d = decl(df("/etc/a.conf"), df("/etc/b.conf"), df("/etc/dir", kind="file"))
    live_files = {
        "/etc/a.conf": LiveFile("/etc/a.conf", False, error="permission denied (cannot look up the path)"),
        "/etc/b.conf": live("/etc/b.conf", b"other\n"),
        "/etc/dir": LiveFile("/etc/dir", True, mode=0o755, kind="directory", error="not a regular file (directory)"),
    }
    got = by_target(plan_machine(d, None, live_files, {"/etc/a.conf": b"a\n", "/etc/b.conf": b"b\n",
                                                       "/etc/dir": b"d\n"}, {}))
    assert got["/etc/a.conf"].action == "unreadable" and "permission denied" in got["/etc/a.conf"].reason
    assert got["/etc/dir"].action == "unreadable"
    assert got["/etc/b.conf"].action == "update" and "not available" in got["/etc/b.conf"].reason
    unreadable = [got["/etc/a.conf"], got["/etc/dir"]]
    assert reload_commands(decl(reload={"prod/web1/nginx": ["r"]}), unreadable) == []
    assert reload_commands(decl(reload={"prod/web1/nginx": ["r"]}), list(got.values())) == ["r"]


def test_symlinks_compare_targets_and_kinds():
    d = decl(df("/etc/link", kind="symlink", mode=0o777), df("/etc/file"))
    live_files = {
        "/etc/link": LiveFile("/etc/link", True, mode=0o777, kind="symlink", sha256=sha(b"target"), link_target="target"),
        "/etc/file": LiveFile("/etc/file", True, mode=0o777, kind="symlink", sha256=sha(b"x"), link_target="x"),
    }
    got = by_target(plan_machine(d, None, live_files, {"/etc/link": b"target", "/etc/file": b"x"}, {}))
    assert got["/etc/link"].action == "unchanged"
    assert got["/etc/file"].action == "update" and "symlink" in got["/etc/file"].reason


def test_binary_content():
    d = decl(df("/usr/lib/blob.bin"))
    data = {"/usr/lib/blob.bin": b"\0\1\2"}
    live_files = {"/usr/lib/blob.bin": live("/usr/lib/blob.bin", b"\0\1\3")}
    assert paths_to_read(d, live_files, data) == []
    (action,) = plan_machine(d, None, live_files, data, {})
    assert action.action == "update" and action.diff.startswith("Binary files")

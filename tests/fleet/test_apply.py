"""Applying a plan to a machine: local directories, and a real sshd on loopback with a non-root user."""

from __future__ import annotations

import hashlib
import os
import pwd
import uuid
from pathlib import Path

import pytest

from fleet.apply import Expected, apply_machine, restore_machine
from fleet.manifest import MachineAccess
from fleet.transport import FileWrite, HostKeyUnknown, SshSettings, Timeouts, open_machine


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expect(data: bytes | None, mode: str = "0644", owner: str = "", group: str = "") -> Expected:
    return Expected(False) if data is None else Expected(True, sha(data), mode, owner, group)


@pytest.fixture
def remote(sshd) -> Path:
    """A tree on the 'machine' that belongs to the ssh user (a deploy user writing its own files)."""
    base = sshd.workdir / f"deploy-{uuid.uuid4().hex[:8]}"
    (base / "etc/app").mkdir(parents=True)
    (base / "etc/app/app.conf").write_bytes(b"debug = true\n")
    (base / "etc/app/old.conf").write_bytes(b"old\n")
    user = pwd.getpwnam(sshd.user)
    for path in [base, *base.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    return base


def ssh_machine(sshd, known_hosts=None):
    access = MachineAccess("ssh", host=sshd.host, port=sshd.port, user=sshd.user)
    return open_machine(access, ssh_settings=SshSettings(sshd.key_path, known_hosts or sshd.known_hosts_path,
                                                         Timeouts(5, 30)))


@pytest.mark.services
def test_an_ssh_deploy_writes_atomically_runs_reloads_and_keeps_a_backup(sshd, remote, tmp_path):
    conf, new, old = (str(remote / p) for p in ("etc/app/app.conf", "etc/app/sub dir/new 'x'.conf", "etc/app/old.conf"))
    owner = sshd.user
    writes = [FileWrite(conf, b"debug = false\n", 0o640), FileWrite(new, b"\x00binary\xff", 0o600),
              FileWrite(old, None)]
    expected = {conf: expect(b"debug = true\n", owner=owner, group=owner), new: expect(None),
                old: expect(b"old\n", owner=owner, group=owner)}
    with ssh_machine(sshd) as machine:
        done = apply_machine(machine, writes, expected, reload=[f"cat {conf}", "echo reloaded"],
                             backup_dir=tmp_path / "backup")
    assert done.status == "applied", done.reason
    assert (remote / "etc/app/app.conf").read_bytes() == b"debug = false\n"
    assert (remote / "etc/app/app.conf").stat().st_mode & 0o777 == 0o640
    assert (remote / "etc/app/sub dir/new 'x'.conf").read_bytes() == b"\x00binary\xff"
    assert not (remote / "etc/app/old.conf").exists()
    assert not [p for p in remote.rglob(".cmdb-*")]  # no temporary file left
    assert [(c.command, c.ran, c.exit_status) for c in done.commands] == [
        (f"cat {conf}", True, 0), ("echo reloaded", True, 0)]
    assert done.commands[0].output == "debug = false\n"
    # the backup holds what was there, so the machine can be put back
    with ssh_machine(sshd) as machine:
        restored = restore_machine(machine, tmp_path / "backup")
    assert restored.status == "applied", restored.reason
    assert (remote / "etc/app/app.conf").read_bytes() == b"debug = true\n"
    assert (remote / "etc/app/old.conf").read_bytes() == b"old\n"
    assert not (remote / "etc/app/sub dir/new 'x'.conf").exists()


@pytest.mark.services
def test_a_failing_reload_puts_every_file_back(sshd, remote, tmp_path):
    conf = str(remote / "etc/app/app.conf")
    with ssh_machine(sshd) as machine:
        done = apply_machine(machine, [FileWrite(conf, b"broken\n", 0o644)],
                             {conf: expect(b"debug = true\n", owner=sshd.user, group=sshd.user)},
                             reload=["echo checking; exit 3"], backup_dir=tmp_path / "backup")
    assert done.status == "failed" and "reload failed" in done.reason and "put back" in done.reason
    assert done.commands[0].exit_status == 3 and "checking" in done.commands[0].output
    assert (remote / "etc/app/app.conf").read_bytes() == b"debug = true\n"


@pytest.mark.services
def test_permission_denied_on_a_target_writes_nothing_else(sshd, remote, tmp_path):
    (remote / "etc/locked").mkdir()  # owned by root, 0755: the deploy user cannot write in it
    conf, locked = str(remote / "etc/app/app.conf"), str(remote / "etc/locked/x.conf")
    with ssh_machine(sshd) as machine:
        done = apply_machine(machine, [FileWrite(conf, b"new\n"), FileWrite(locked, b"x\n")],
                             {conf: expect(b"debug = true\n", owner=sshd.user, group=sshd.user), locked: expect(None)},
                             reload=[], backup_dir=tmp_path / "backup")
    assert done.status == "failed" and "write failed" in done.reason
    assert (remote / "etc/app/app.conf").read_bytes() == b"debug = true\n"  # put back
    assert not (remote / "etc/locked/x.conf").exists()


@pytest.mark.services
def test_a_changed_host_key_is_refused_before_anything_is_written(sshd, remote, tmp_path):
    other = tmp_path / "known_hosts"
    other.write_text(f"[{sshd.host}]:{sshd.port} ssh-ed25519 "
                     "AAAAC3NzaC1lZDI1NTE5AAAAIHq0N3n3B2mCk3yL5Cq1m3xJ3kq4WmO0QnQ3o1b2c3d4\n")
    with pytest.raises(HostKeyUnknown), ssh_machine(sshd, known_hosts=other):
        pass
    assert (remote / "etc/app/app.conf").read_bytes() == b"debug = true\n"


def test_a_local_machine_never_runs_reload_commands_on_the_portals_host(tmp_path):
    root = tmp_path / "machine"
    root.mkdir()
    with open_machine(MachineAccess("local", root=root), ssh_settings=None) as machine:
        done = apply_machine(machine, [FileWrite("/etc/a.conf", b"a\n")], {"/etc/a.conf": expect(None)},
                             reload=[f"touch {tmp_path}/ran"], backup_dir=tmp_path / "backup")
    assert done.status == "applied" and (root / "etc/a.conf").read_bytes() == b"a\n"
    assert not (tmp_path / "ran").exists() and done.commands[0].ran is False


def test_a_symlink_in_the_path_never_leads_a_write_out_of_the_machine(tmp_path):
    root, outside = tmp_path / "machine", tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    outside.mkdir()
    os.symlink(str(outside), root / "etc/escape")  # absolute: resolved inside the root, as the machine would
    with open_machine(MachineAccess("local", root=root), ssh_settings=None) as machine:
        done = apply_machine(machine, [FileWrite("/etc/escape/x.conf", b"x\n")], {"/etc/escape/x.conf": expect(None)},
                             reload=[], backup_dir=tmp_path / "backup")
    assert not list(outside.iterdir())
    assert done.status == "applied" and (root / outside.relative_to("/") / "x.conf").read_bytes() == b"x\n"

"""Read-only looks at machines: a local tree standing for ``/``, and a real sshd on loopback."""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from pathlib import Path

import asyncssh
import pytest

from fleet.manifest import MachineAccess
from fleet.transport import (
    DEFAULT_MAX_READ_BYTES,
    AuthenticationFailed,
    HostKeyUnknown,
    LiveFile,
    LocalTransport,
    MachineSnapshot,
    ManualMachine,
    SshSettings,
    Timeouts,
    TransportError,
    Unreachable,
    stat_machines_parallel,
)
from fleet.transport import scripts as transport_module
from tests.services import free_port

SERVICES_REQUIRED = bool(os.environ.get("CMDB_TEST_SERVICES"))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_key(path: Path) -> Path:
    """A fresh ed25519 key pair at ``path`` (and ``path.pub``), made without ssh-keygen."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(path))
    key.write_public_key(str(path) + ".pub")
    return path


def snapshot_tree(root: Path) -> list[tuple]:
    """(path, mode, sha256, mtime, ctime) of everything below ``root`` (symlinks not followed)."""
    rows = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            st = path.lstat()
            digest = None
            if path.is_file() and not path.is_symlink():
                digest = sha(path.read_bytes())
            rows.append((str(path), st.st_mode, digest, st.st_mtime_ns, st.st_ctime_ns, st.st_size))
    return sorted(rows)


# --- local ---------------------------------------------------------------------------------------------
@pytest.fixture
def machine(tmp_path) -> Path:
    root = tmp_path / "machine"
    (root / "etc/nginx/conf.d").mkdir(parents=True)
    (root / "etc/nginx/nginx.conf").write_bytes(b"worker_processes 4;\n")
    (root / "etc/nginx/nginx.conf").chmod(0o640)
    (root / "usr/local/bin").mkdir(parents=True)
    (root / "usr/local/bin/tool").write_bytes(b"#!/bin/sh\n")
    (root / "usr/local/bin/tool").chmod(0o755)
    (root / "etc/with space.conf").write_bytes(b"space\n")
    (root / "etc/new\nline.conf").write_bytes(b"newline\n")
    return root


def test_local_metadata_and_hashes(machine):
    live = LocalTransport(machine)
    paths = ["/etc/nginx/nginx.conf", "/usr/local/bin/tool", "/etc/with space.conf", "/etc/new\nline.conf",
             "/etc/missing.conf", "/etc/nginx/conf.d", "/etc/nginx/nginx.conf/below"]
    got = live.stat_many(paths)
    assert list(got) == paths
    conf = got["/etc/nginx/nginx.conf"]
    assert conf == LiveFile("/etc/nginx/nginx.conf", True, mode=0o640, owner="root", group="root", size=20,
                            sha256=sha(b"worker_processes 4;\n"), kind="file")
    assert got["/usr/local/bin/tool"].mode == 0o755
    assert got["/etc/with space.conf"].sha256 == sha(b"space\n")
    assert got["/etc/new\nline.conf"].sha256 == sha(b"newline\n")
    assert got["/etc/missing.conf"] == LiveFile("/etc/missing.conf", False)
    assert got["/etc/nginx/conf.d"].kind == "directory" and got["/etc/nginx/conf.d"].error
    assert got["/etc/nginx/nginx.conf/below"] == LiveFile("/etc/nginx/nginx.conf/below", False)
    assert live.read_many(["/etc/nginx/nginx.conf", "/etc/missing.conf", "/etc/nginx/conf.d"]) == {
        "/etc/nginx/nginx.conf": b"worker_processes 4;\n"
    }
    assert live.read_many(["/etc/nginx/nginx.conf"], max_bytes=5) == {}


def test_local_paths_must_be_clean_absolute_paths(machine):
    got = LocalTransport(machine).stat_many(["etc/passwd", "/etc/../../etc/passwd", "/etc//x", "/"])
    assert all(not f.exists and f.error for f in got.values())


def test_local_symlinks_are_reported_never_followed_out_of_root(machine, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"host secret\n")
    os.symlink(str(outside), machine / "etc/abs-link")  # a host-absolute target: reported, not read
    os.symlink("nginx/nginx.conf", machine / "etc/rel-link")
    os.symlink("../../..", machine / "etc/escape")  # a directory link climbing out of the root
    os.symlink("/", machine / "rootlink")  # absolute: the machine's own /, i.e. the root again
    os.symlink(str(tmp_path), machine / "hostdir")  # re-rooted: <root>/<tmp_path>, which does not exist
    live = LocalTransport(machine)
    got = live.stat_many(["/etc/abs-link", "/etc/rel-link", f"/etc/escape/{outside.name}",
                          "/rootlink/etc/nginx/nginx.conf", f"/hostdir/{outside.name}"])
    link = got["/etc/abs-link"]
    assert (link.kind, link.link_target, link.sha256) == ("symlink", str(outside), sha(str(outside).encode()))
    assert got["/etc/rel-link"].kind == "symlink" and got["/etc/rel-link"].link_target == "nginx/nginx.conf"
    escape = got[f"/etc/escape/{outside.name}"]
    assert not escape.exists and escape.sha256 is None and "outside the machine root" in escape.error
    assert got["/rootlink/etc/nginx/nginx.conf"].sha256 == sha(b"worker_processes 4;\n")
    assert got[f"/hostdir/{outside.name}"].exists is False
    contents = live.read_many(["/etc/abs-link", f"/etc/escape/{outside.name}", f"/hostdir/{outside.name}"])
    assert contents == {"/etc/abs-link": str(outside).encode()}  # the link's text, never the host file
    assert b"host secret\n" not in contents.values()


def test_folders_known_from_earlier_files_change_nothing_a_symlinked_folder_beside_them_resolves_to(
        machine, tmp_path, monkeypatch):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"host secret\n")
    os.symlink("nginx", machine / "etc/linked")  # a folder link inside the root: followed
    os.symlink("../../..", machine / "etc/escape")  # climbing out of the root: refused
    (machine / "etc/app").mkdir()
    (machine / "etc/app/app.conf").write_bytes(b"app\n")
    opened: list[str] = []
    real_open = os.open

    def counting(name, flags, *args, **kwargs):
        if flags & os.O_DIRECTORY:
            opened.append(str(name))
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting)
    # /etc and /etc/nginx are known when the links beside them are asked for
    got = LocalTransport(machine).stat_many(["/etc/nginx/nginx.conf", "/etc/app/app.conf", "/etc/linked/nginx.conf",
                                             f"/etc/escape/{outside.name}", "/etc/nginx/nginx.conf"])
    assert got["/etc/linked/nginx.conf"].sha256 == sha(b"worker_processes 4;\n")
    assert got["/etc/app/app.conf"].sha256 == sha(b"app\n")
    escape = got[f"/etc/escape/{outside.name}"]
    assert not escape.exists and "outside the machine root" in escape.error
    # /etc/app was opened in the known /etc, not walked to from the root again
    assert opened.count("etc") == 1 + 2  # the first walk, then the walks through the two links


@pytest.mark.parametrize("size", [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 7])
def test_local_content_of_any_size_is_hashed_and_read_whole(machine, size):
    data = os.urandom(size)
    (machine / "etc/blob.bin").write_bytes(data)
    live = LocalTransport(machine)
    got = live.stat_many(["/etc/blob.bin"])["/etc/blob.bin"]
    assert (got.size, got.sha256) == (size, sha(data))
    assert live.read_many(["/etc/blob.bin"], max_bytes=size + 1).get("/etc/blob.bin", b"") == data


def test_local_symlink_loop_is_an_error(machine):
    os.symlink("loop", machine / "loop")
    got = LocalTransport(machine).stat_many(["/loop/x"])
    assert not got["/loop/x"].exists and "symbolic links" in got["/loop/x"].error


def test_local_transport_never_writes(machine):
    os.symlink("nginx/nginx.conf", machine / "etc/rel-link")
    before = snapshot_tree(machine)
    live = LocalTransport(machine)
    live.stat_many(["/etc/nginx/nginx.conf", "/etc/rel-link", "/usr/local/bin/tool", "/nope"])
    live.read_many(["/etc/nginx/nginx.conf", "/etc/rel-link"])
    assert snapshot_tree(machine) == before


def test_each_transport_answers_or_says_why(machine, tmp_path):
    accesses = {"local": MachineAccess("local", root=machine), "manual": MachineAccess("manual"),
                "absent": MachineAccess("local", root=tmp_path / "absent"),
                "nokey": MachineAccess("ssh", host="example.invalid"), "odd": MachineAccess("carrier-pigeon")}
    got = stat_machines_parallel(accesses, dict.fromkeys(accesses, ["/usr/local/bin/tool"]), ssh_settings=None)
    assert got["local"].files["/usr/local/bin/tool"].mode == 0o755
    assert isinstance(got["manual"], ManualMachine) and got["manual"].message == "configured by hand; documented only"
    assert isinstance(got["absent"], Unreachable)
    assert type(got["nokey"]) is TransportError and "no SSH key" in got["nokey"].message
    assert type(got["odd"]) is TransportError and "Unknown transport" in got["odd"].message


def test_parallel_with_local_and_manual_machines(machine, tmp_path):
    accesses = {
        "prod/a": MachineAccess("local", root=machine),
        "prod/b": MachineAccess("local", root=machine),
        "prod/gone": MachineAccess("local", root=tmp_path / "absent"),
        "prod/hand": MachineAccess("manual"),
    }
    paths = {name: ["/etc/nginx/nginx.conf", "/usr/local/bin/tool"] for name in accesses}
    results = stat_machines_parallel(
        accesses, paths, ssh_settings=None,
        read=lambda name, files: [p for p, f in files.items() if f.mode == 0o640],
    )
    a = results["prod/a"]
    assert isinstance(a, MachineSnapshot)
    assert a.files["/usr/local/bin/tool"].sha256 == sha(b"#!/bin/sh\n")
    assert a.contents == {"/etc/nginx/nginx.conf": b"worker_processes 4;\n"}
    assert isinstance(results["prod/gone"], Unreachable)
    assert isinstance(results["prod/hand"], ManualMachine)


# --- SSH -----------------------------------------------------------------------------------------------
@pytest.fixture
def remote(sshd) -> Path:
    """A tree on the 'machine' that the unprivileged ssh user can traverse (files owned by root)."""
    base = sshd.workdir / f"tree-{uuid.uuid4().hex[:8]}"
    (base / "etc/nginx").mkdir(parents=True)
    base.chmod(0o755)
    (base / "etc/nginx/nginx.conf").write_bytes(b"worker_processes 4;\n")
    (base / "etc/with space.conf").write_bytes(b"space\n")
    (base / "etc/new\nline.conf").write_bytes(b"newline\n")
    (base / "etc/it's $(quoted) `x`.conf").write_bytes(b"quoted\n")
    (base / "etc/tool").write_bytes(b"#!/bin/sh\n")
    (base / "etc/tool").chmod(0o775)
    (base / "etc/shadow-like").write_bytes(b"root-only\n")
    (base / "etc/shadow-like").chmod(0o600)
    (base / "private").mkdir(mode=0o700)
    (base / "private/hidden.conf").write_bytes(b"hidden\n")
    os.symlink("nginx/nginx.conf", base / "etc/link")
    return base


def look(sshd, paths, *, read=None, max_bytes=DEFAULT_MAX_READ_BYTES, host=None, port=None,
         user="", key_path=None, known_hosts_path=None, connect_timeout=10.0, command_timeout=120.0,
         default_user=None) -> MachineSnapshot:
    """One SSH machine through what workers run (:func:`stat_machines_parallel`); its error raised."""
    settings = SshSettings(key_path or sshd.key_path, known_hosts_path or sshd.known_hosts_path,
                           Timeouts(connect_timeout, command_timeout), default_user)
    access = MachineAccess("ssh", host=host or sshd.host, port=port or sshd.port,
                           user=(sshd.user if user == "" else user))
    result = stat_machines_parallel({"m": access}, {"m": paths}, ssh_settings=settings, read=read,
                                    max_bytes=max_bytes)["m"]
    if isinstance(result, TransportError):
        raise result
    return result


@pytest.fixture
def channels(monkeypatch) -> list:
    """One entry per SSH channel (remote command) opened."""
    opened: list = []
    original = asyncssh.SSHClientConnection.create_session

    async def counting(self, *args, **kwargs):
        opened.append(1)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(asyncssh.SSHClientConnection, "create_session", counting)
    return opened




@pytest.mark.services
@pytest.mark.parametrize("shell_tools", ["gnu", "portable"])
def test_ssh_metadata_and_hashes_in_one_command(sshd, remote, monkeypatch, shell_tools, channels):
    if shell_tools == "portable":  # as on a machine without GNU stat: one stat/sha256sum per path
        script = transport_module._STAT_SCRIPT
        assert "if stat --printf='' /" in script
        monkeypatch.setattr(transport_module, "_STAT_SCRIPT", script.replace("if stat --printf", "if false && stat"))
    names = ["etc/nginx/nginx.conf", "etc/with space.conf", "etc/new\nline.conf", "etc/it's $(quoted) `x`.conf",
             "etc/tool", "etc/link", "etc/missing", "etc/shadow-like", "private/hidden.conf", "etc",
             "etc/tool/below"]
    paths = [str(remote / n) for n in names]
    got = look(sshd, paths).files
    assert len(channels) == 1
    assert list(got) == paths
    by = dict(zip(names, (got[p] for p in paths), strict=True))
    conf = by["etc/nginx/nginx.conf"]
    assert conf == LiveFile(paths[0], True, mode=0o644, owner="root", group="root", size=20,
                            sha256=sha(b"worker_processes 4;\n"), kind="file")
    assert by["etc/with space.conf"].sha256 == sha(b"space\n")
    assert by["etc/new\nline.conf"].sha256 == sha(b"newline\n")
    assert by["etc/it's $(quoted) `x`.conf"].sha256 == sha(b"quoted\n")
    assert (by["etc/tool"].mode, by["etc/tool"].sha256) == (0o775, sha(b"#!/bin/sh\n"))
    assert (by["etc/link"].kind, by["etc/link"].link_target) == ("symlink", "nginx/nginx.conf")
    assert by["etc/link"].sha256 == sha(b"nginx/nginx.conf")
    assert by["etc/missing"] == LiveFile(str(remote / "etc/missing"), False)
    # as the unprivileged ssh user: a root-owned 0600 file is seen but not read
    denied = by["etc/shadow-like"]
    assert (denied.exists, denied.mode, denied.owner, denied.sha256, denied.error) == (
        True, 0o600, "root", None, "permission denied")
    hidden = by["private/hidden.conf"]  # below a root-only directory: cannot even be looked up
    assert not hidden.exists and hidden.error.startswith("permission denied")
    assert by["etc"].kind == "directory" and by["etc"].error
    assert by["etc/tool/below"] == LiveFile(str(remote / "etc/tool/below"), False)


@pytest.mark.services
@pytest.mark.parametrize("encoder", ["base64", "od"])
def test_ssh_read_many(sshd, remote, monkeypatch, encoder):
    if encoder == "od":  # a machine without base64
        script = transport_module._READ_SCRIPT
        assert "if command -v base64" in script
        monkeypatch.setattr(transport_module, "_READ_SCRIPT", script.replace("if command -v base64", "if false"))
    binary = bytes(range(256)) * 100 + b"\n\0\n"
    (remote / "etc/binary.bin").write_bytes(binary)
    paths = [str(remote / n) for n in ("etc/with space.conf", "etc/new\nline.conf", "etc/binary.bin",
                                        "etc/link", "etc/missing", "etc/shadow-like")]
    got = look(sshd, paths, read=lambda name, files: paths).contents
    small = look(sshd, paths[:3], read=lambda name, files: paths[:3], max_bytes=100).contents
    assert got == {
        paths[0]: b"space\n",
        paths[1]: b"newline\n",
        paths[2]: binary,
        paths[3]: b"nginx/nginx.conf",
    }
    assert small == {paths[0]: b"space\n", paths[1]: b"newline\n"}


@pytest.mark.services
def test_ssh_fifty_files_take_at_most_two_channels(sshd, remote, channels):
    for i in range(50):
        (remote / f"etc/file {i}.conf").write_bytes(f"content {i}\n".encode())
    paths = [str(remote / f"etc/file {i}.conf") for i in range(50)]
    seen = look(sshd, paths, read=lambda name, files: [p for p, f in files.items() if f.sha256 != sha(b"content 0\n")])
    files, contents = seen.files, seen.contents
    assert len(channels) == 2
    assert all(files[p].sha256 == sha(f"content {i}\n".encode()) for i, p in enumerate(paths))
    assert len(contents) == 49 and contents[paths[7]] == b"content 7\n"


@pytest.mark.services
def test_ssh_never_changes_the_machine(sshd, remote):
    before = snapshot_tree(remote)
    paths = [str(p) for p in remote.rglob("*")] + [str(remote / "nope")]
    look(sshd, paths, read=lambda name, files: paths)
    assert snapshot_tree(remote) == before


@pytest.mark.services
def test_ssh_unknown_host_key(sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyUnknown, match="host key not trusted"):
        look(sshd, ["/etc/hostname"], known_hosts_path=empty)
    other = tmp_path / "other_known_hosts"  # a different key for the same host:port
    new_key(tmp_path / "fake")
    fake = (tmp_path / "fake.pub").read_text().split()
    other.write_text(f"[{sshd.host}]:{sshd.port} {fake[0]} {fake[1]}\n")
    with pytest.raises(HostKeyUnknown):
        look(sshd, ["/etc/hostname"], known_hosts_path=other)


@pytest.mark.services
def test_ssh_wrong_key_is_refused(sshd, tmp_path):
    new_key(tmp_path / "wrong")
    with pytest.raises(AuthenticationFailed, match="refused the portal's SSH key"):
        look(sshd, ["/etc/hostname"], key_path=tmp_path / "wrong")


def test_ssh_closed_port_is_unreachable_quickly(tmp_path):
    key = new_key(tmp_path / "key")
    known = tmp_path / "known_hosts"
    known.write_text("")
    started = time.monotonic()
    with pytest.raises(Unreachable, match="connection refused"):
        look(None, ["/x"], host="127.0.0.1", port=free_port(), user="nobody", key_path=key, known_hosts_path=known,
             connect_timeout=2)
    assert time.monotonic() - started < 2


def test_ssh_silent_server_times_out(tmp_path):
    key = new_key(tmp_path / "key")
    known = tmp_path / "known_hosts"
    known.write_text("")
    with socket.socket() as listener:  # accepts TCP (backlog) but never speaks SSH
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(Unreachable, match="within 1s"):
            look(None, ["/x"], host="127.0.0.1", port=port, user="nobody", key_path=key, known_hosts_path=known,
                 connect_timeout=1)
        assert time.monotonic() - started < 4


@pytest.mark.services
def test_ssh_command_timeout(sshd, remote, monkeypatch):
    monkeypatch.setattr(transport_module, "_STAT_SCRIPT", "sleep 5\n" + transport_module._STAT_SCRIPT)
    started = time.monotonic()
    with pytest.raises(Unreachable, match="did not finish"):
        look(sshd, [str(remote / "etc/tool")], command_timeout=1)
    assert time.monotonic() - started < 4


@pytest.mark.services
def test_ssh_remote_failure_is_a_transport_error(sshd, remote, monkeypatch):
    monkeypatch.setattr(transport_module, "_STAT_SCRIPT", "echo 'cmdb: stat not found' >&2; exit 127\n")
    with pytest.raises(TransportError, match="stat not found"):
        look(sshd, [str(remote / "etc/tool")])


@pytest.mark.services
def test_ssh_uses_the_default_user_when_the_manifest_names_none(sshd, remote):
    tool = str(remote / "etc/tool")
    assert look(sshd, [tool], user=None, default_user=sshd.user).files[tool].mode == 0o775
    with pytest.raises(TransportError, match="No SSH user"):
        look(sshd, [tool], user=None)


@pytest.mark.services
def test_parallel_ssh_machines_in_one_event_loop(sshd, remote):
    ssh = MachineAccess("ssh", host=sshd.host, port=sshd.port, user=sshd.user)
    accesses = {f"prod/web{i}": ssh for i in range(6)}
    accesses["prod/down"] = MachineAccess("ssh", host="127.0.0.1", port=free_port(), user=sshd.user)
    accesses["prod/hand"] = MachineAccess("manual")
    paths = [str(remote / "etc/nginx/nginx.conf"), str(remote / "etc/with space.conf")]
    settings = SshSettings(sshd.key_path, sshd.known_hosts_path, Timeouts(5, 30))
    results = stat_machines_parallel(
        accesses, dict.fromkeys(accesses, paths), ssh_settings=settings, concurrency=4,
        read=lambda name, files: [p for p, f in files.items() if f.sha256 != sha(b"space\n")],
    )
    for i in range(6):
        snap = results[f"prod/web{i}"]
        assert isinstance(snap, MachineSnapshot), snap
        assert snap.files[paths[1]].sha256 == sha(b"space\n")
        assert snap.contents == {paths[0]: b"worker_processes 4;\n"}
    assert isinstance(results["prod/down"], Unreachable)
    assert isinstance(results["prod/hand"], ManualMachine)

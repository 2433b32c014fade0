"""The one module that speaks SSH: read-only looks at machines (metadata, SHA-256, contents).

Nothing here ever writes to a machine. Over SSH, a whole batch of paths is handled by ONE remote
POSIX ``sh`` script fed on stdin (``/bin/sh -s``), which prints NUL-separated records built from
``stat`` (``--printf``/``-c``), ``readlink`` and ``sha256sum`` (contents: ``base64``); paths travel
single-quoted inside the script and come back only inside NUL-terminated fields (or as an index),
so spaces, quotes and newlines in names are safe. Key authentication only, strict ``known_hosts``, no agent, no password, no user
``~/.ssh/config``.

- :class:`LocalTransport` maps machine paths under a local directory standing for ``/``.
- :class:`SshTransport` keeps ONE connection per object, on its own event-loop thread, so it can
  be used from synchronous code (Celery workers) for several calls.
- :func:`stat_machines_parallel` looks at many machines concurrently in one event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import errno
import functools
import grp
import hashlib
import os
import pwd
import socket
import stat
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import asyncssh

from cmdb.declared import MachineAccess

__all__ = [
    "DEFAULT_MAX_READ_BYTES",
    "AuthenticationFailed",
    "HostKeyUnknown",
    "LiveFile",
    "LocalTransport",
    "MachineSnapshot",
    "ManualMachine",
    "SshSettings",
    "SshTransport",
    "Timeouts",
    "Transport",
    "TransportError",
    "Unreachable",
    "open_transport",
    "stat_machines_parallel",
]

DEFAULT_MAX_READ_BYTES = 16 * 1024 * 1024
_MAX_SYMLINKS = 40
_T = TypeVar("_T")


# --- results and errors ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LiveFile:
    """What is at ``path`` on a machine right now.

    ``exists`` is False for a missing path (and when the path cannot be looked up: then ``error``
    says why). ``mode`` holds the permission bits (``0o644``). ``sha256`` is the hex digest of a
    regular file's content, or of a symlink's target text (Git stores a symlink as its target).
    ``error`` is set when the content could not be read ("permission denied").
    """

    path: str
    exists: bool
    mode: int | None = None
    owner: str | None = None
    group: str | None = None
    size: int | None = None
    sha256: str | None = None
    error: str | None = None
    kind: str | None = None  # "file", "symlink", "directory", "other"; None when missing
    link_target: str | None = None


class TransportError(Exception):
    """A machine could not be looked at; ``message`` is fit for users."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Unreachable(TransportError):
    """No connection (refused, no route, unknown name) or a connection/command timeout."""


class AuthenticationFailed(TransportError):
    """The machine refused our key."""


class HostKeyUnknown(TransportError):
    """The machine's host key is not in known_hosts, or differs from it."""


class ManualMachine(TransportError):
    """The machine is configured by hand: there is nothing to connect to."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0  # TCP + SSH handshake + authentication
    command: float = 120.0  # one remote script


@dataclass(frozen=True, slots=True)
class SshSettings:
    """The portal's SSH identity: private key, known_hosts, timeouts, user when a manifest names none."""

    key_path: Path
    known_hosts_path: Path
    timeouts: Timeouts = Timeouts()
    default_user: str | None = None


@dataclass(slots=True)
class MachineSnapshot:
    """One machine seen by :func:`stat_machines_parallel`: metadata of every path, contents asked for."""

    files: dict[str, LiveFile]
    contents: dict[str, bytes] = field(default_factory=dict)


@runtime_checkable
class Transport(Protocol):
    def stat_many(self, paths: Iterable[str]) -> dict[str, LiveFile]:
        """Metadata and SHA-256 of every path, in a few round trips whatever their number."""
        ...

    def read_many(self, paths: Iterable[str], *, max_bytes: int = DEFAULT_MAX_READ_BYTES) -> dict[str, bytes]:
        """Contents of regular files (a symlink's target text) in one round trip; files that are
        missing, unreadable or larger than ``max_bytes`` are left out."""
        ...

    def close(self) -> None: ...


def _check_path(path: str) -> str | None:
    """None when ``path`` is a normalised absolute path, else the reason."""
    if not isinstance(path, str) or not path.startswith("/") or path == "/":
        return "not an absolute file path"
    if "\0" in path or any(p in ("", ".", "..") for p in path[1:].split("/")):
        return "not a normalised absolute path"
    return None


def _kind(raw_mode: int) -> str:
    if stat.S_ISREG(raw_mode):
        return "file"
    if stat.S_ISLNK(raw_mode):
        return "symlink"
    if stat.S_ISDIR(raw_mode):
        return "directory"
    return "other"


@functools.lru_cache(maxsize=1024)
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@functools.lru_cache(maxsize=1024)
def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# --- local ---------------------------------------------------------------------------------------------
class _Refused(Exception):
    def __init__(self, reason: str, *, exists: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.exists = exists


class LocalTransport:
    """A directory standing for a machine's ``/``. Machine paths are resolved inside it, one
    component at a time with ``O_NOFOLLOW`` directory handles: a symlink in the middle of a path is
    followed as the machine would (an absolute target starts again at the root), but never out of
    the root; a symlink as the last component is reported as a symlink, never followed."""

    def __init__(self, root: Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise Unreachable(f"Local machine root {self.root} is not a directory.")

    def __enter__(self) -> LocalTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        pass

    def _parent(self, path: str) -> tuple[list[int], str]:
        """Open directory handles from the root down to the parent of ``path``; (handles, last name)."""
        parts = path[1:].split("/")
        pending = list(reversed(parts[:-1]))
        stack = [os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
        follows = 0
        try:
            while pending:
                name = pending.pop()
                if name in ("", "."):
                    continue
                if name == "..":
                    if len(stack) == 1:
                        raise _Refused("symlink leads outside the machine root")
                    os.close(stack.pop())
                    continue
                try:
                    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        st = os.stat(name, dir_fd=stack[-1], follow_symlinks=False)
                        if stat.S_ISLNK(st.st_mode):
                            follows += 1
                            if follows > _MAX_SYMLINKS:
                                raise _Refused("too many levels of symbolic links") from None
                            target = os.readlink(name, dir_fd=stack[-1])
                            if target.startswith("/"):
                                while len(stack) > 1:
                                    os.close(stack.pop())
                            pending.extend(reversed(target.split("/")))
                            continue
                        raise FileNotFoundError(errno.ENOTDIR, "a parent is not a directory") from None
                    raise
                stack.append(fd)
        except BaseException:
            for fd in stack:
                os.close(fd)
            raise
        return stack, parts[-1]

    def _dir_of(self, path: str, dirs: dict[str, int] | None) -> tuple[int, str, bool]:
        """(handle of the parent directory, last name, whether the caller must close the handle);
        with ``dirs``, a parent resolved once serves every file in it (closed by the caller of _look)."""
        key, _, last = path.rpartition("/")
        if dirs is not None and key in dirs:
            return dirs[key], last, False
        stack, name = self._parent(path)
        for fd in stack[:-1]:
            os.close(fd)
        if dirs is not None:
            dirs[key] = stack[-1]
            return stack[-1], name, False
        return stack[-1], name, True

    def _look(self, path: str, *, read: bool, max_bytes: int,
              dirs: dict[str, int] | None = None) -> tuple[LiveFile, bytes | None]:
        problem = _check_path(path)
        if problem:
            return LiveFile(path, False, error=problem), None
        try:
            parent, name, owned = self._dir_of(path, dirs)
        except _Refused as exc:
            return LiveFile(path, exc.exists, error=exc.reason), None
        except FileNotFoundError:
            return LiveFile(path, False), None
        except PermissionError:
            return LiveFile(path, False, error="permission denied (cannot look up the path)"), None
        except OSError as exc:
            return LiveFile(path, False, error=exc.strerror or str(exc)), None
        try:
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                return LiveFile(path, False), None
            except PermissionError:
                return LiveFile(path, False, error="permission denied (cannot look up the path)"), None
            meta: dict[str, Any] = {
                "mode": stat.S_IMODE(st.st_mode),
                "owner": _user_name(st.st_uid),
                "group": _group_name(st.st_gid),
                "size": st.st_size,
                "kind": _kind(st.st_mode),
            }
            if stat.S_ISLNK(st.st_mode):
                target = os.fsencode(os.readlink(name, dir_fd=parent))
                live = LiveFile(path, True, sha256=hashlib.sha256(target).hexdigest(),
                                link_target=os.fsdecode(target), **meta)
                return live, target if read else None
            if not stat.S_ISREG(st.st_mode):
                return LiveFile(path, True, error=f"not a regular file ({meta['kind']})", **meta), None
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
            except PermissionError:
                return LiveFile(path, True, error="permission denied", **meta), None
            except OSError as exc:
                return LiveFile(path, True, error=exc.strerror or "read error", **meta), None
            with os.fdopen(fd, "rb") as handle:
                st = os.fstat(handle.fileno())
                if not stat.S_ISREG(st.st_mode):  # swapped meanwhile
                    return LiveFile(path, True, error="changed while reading", **meta), None
                digest = hashlib.sha256()
                keep = read and st.st_size <= max_bytes
                chunks: list[bytes] = []
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
                    if keep:
                        chunks.append(chunk)
                meta["size"] = st.st_size
                data = b"".join(chunks) if keep else None
                if data is not None and len(data) > max_bytes:
                    data = None
                return LiveFile(path, True, sha256=digest.hexdigest(), **meta), data
        finally:
            if owned:
                os.close(parent)

    def stat_many(self, paths: Iterable[str]) -> dict[str, LiveFile]:
        dirs: dict[str, int] = {}
        try:
            return {p: self._look(p, read=False, max_bytes=0, dirs=dirs)[0] for p in dict.fromkeys(paths)}
        finally:
            for fd in dirs.values():
                os.close(fd)

    def read_many(self, paths: Iterable[str], *, max_bytes: int = DEFAULT_MAX_READ_BYTES) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        dirs: dict[str, int] = {}
        try:
            for p in dict.fromkeys(paths):
                data = self._look(p, read=True, max_bytes=max_bytes, dirs=dirs)[1]
                if data is not None:
                    out[p] = data
        finally:
            for fd in dirs.values():
                os.close(fd)
        return out


# --- remote scripts --------------------------------------------------------------------------------------
def _quote(path: str) -> str:
    return "'" + path.replace("'", "'\\''") + "'"


_STAT_MARK = b"CMDB-STAT-1\0"
_READ_MARK = b"CMDB-READ-1\0"
_END_MARK = b"CMDB-END\0"

# Reads only: stat, readlink, sha256sum (or shasum), base64 (or od), wc. No redirection to a file.
_PRELUDE = r"""LC_ALL=C; export LC_ALL
for c in stat readlink wc; do
  command -v "$c" >/dev/null 2>&1 || { echo "cmdb: '$c' not found on the machine" >&2; exit 127; }
done
lnk() { t=$(readlink "$1"; echo .); t=${t%?}; t=${t%?}; }
"""

# With GNU coreutils, ONE `stat --printf` per batch of paths (records "name NUL meta NUL", the name
# being the argument as given) and ONE `xargs -0 sha256sum -z` over the regular readable files
# (records "hash  name NUL"); elsewhere (busybox...) one `stat -c` and one `sha256sum < file` per
# path. Only regular files are ever opened (never a symlink, FIFO or device). A missing path is
# told from an unreachable one (EACCES on a parent) by stat's message, for those paths only.
_STAT_SCRIPT = _PRELUDE + r"""if command -v sha256sum >/dev/null 2>&1; then h() { sha256sum; }
elif command -v shasum >/dev/null 2>&1; then h() { shasum -a 256; }
else echo "cmdb: sha256sum not found on the machine" >&2; exit 127; fi
G=; Z=
if stat --printf='' / >/dev/null 2>&1; then
  G=1
  if command -v xargs >/dev/null 2>&1 && sha256sum -z </dev/null >/dev/null 2>&1; then Z=1; fi
fi
F='%f %a %s %u %g %U %G'
b() { [ -z "$G" ] || stat --printf="%n\0$F\0" -- "$@" 2>/dev/null; return 0; }
k() {
  [ -n "$Z" ] || return 0
  for p do
    if [ -f "$p" ] && [ ! -L "$p" ] && [ -r "$p" ]; then printf '%s\0' "$p"; fi
  done | xargs -0 -r sha256sum -z -- 2>/dev/null
  return 0
}
s() {
  if [ -e "$2" ] || [ -L "$2" ]; then
    m=; [ -n "$G" ] || m=$(stat -c "$F" "$2" 2>/dev/null)
  else
    case $(stat -c "$F" "$2" 2>&1) in
      *'ermission denied'*) printf '%s\0P\0\0\0' "$1" ;;
      *) printf '%s\0M\0\0\0' "$1" ;;
    esac
    return 0
  fi
  if [ -L "$2" ]; then
    lnk "$2"; printf '%s\0L\0%s\0%s\0' "$1" "$m" "$t"
  elif [ -f "$2" ]; then
    if [ ! -r "$2" ]; then printf '%s\0U\0%s\0permission denied\0' "$1" "$m"
    elif [ -n "$Z" ]; then printf '%s\0F\0%s\0\0' "$1" "$m"
    else printf '%s\0F\0%s\0' "$1" "$m"; h < "$2" 2>/dev/null; printf '\0'; fi
  else
    printf '%s\0O\0%s\0\0' "$1" "$m"
  fi
  return 0
}
printf 'CMDB-STAT-1\0'
"""

_READ_SCRIPT = _PRELUDE + r"""if command -v base64 >/dev/null 2>&1; then E=B; e() { base64; }
else E=X; e() { od -An -v -tx1; }; fi
r() {
  if [ -L "$2" ]; then
    lnk "$2"; printf '%s\0L\0%s\0' "$1" "$t"
  elif [ -f "$2" ] && [ -r "$2" ]; then
    n=$(wc -c < "$2") || return 0
    [ "$((n + 0))" -le "$3" ] || return 0
    printf '%s\0%s\0' "$1" "$E"; e < "$2" 2>/dev/null || printf '!'; printf '\0'
  fi
  return 0
}
printf 'CMDB-READ-1\0'
"""


_BATCH = 500  # paths per `stat --printf` command line (far below ARG_MAX)


def stat_script(paths: list[str]) -> bytes:
    lines = [_STAT_SCRIPT]
    for i in range(0, len(paths), _BATCH):
        lines.append("b " + " ".join(_quote(p) for p in paths[i : i + _BATCH]) + "\n")
    lines.append("printf '%s\\0' --\n")  # ends the batch records: no path is "--"
    for i in range(0, len(paths), _BATCH):
        lines.append("k " + " ".join(_quote(p) for p in paths[i : i + _BATCH]) + "\n")
    lines.append("printf '%s\\0' --\n")  # ends the hash records
    lines += [f"s {i} {_quote(p)}\n" for i, p in enumerate(paths)]
    lines.append("printf 'CMDB-END\\0'\n")
    return "".join(lines).encode("utf-8", errors="surrogateescape")


def read_script(paths: list[str], max_bytes: int) -> bytes:
    lines = [_READ_SCRIPT]
    lines += [f"r {i} {_quote(p)} {int(max_bytes)}\n" for i, p in enumerate(paths)]
    lines.append("printf 'CMDB-END\\0'\n")
    return "".join(lines).encode("utf-8", errors="surrogateescape")


def _payload(out: bytes, mark: bytes) -> list[bytes]:
    start = out.find(mark)
    end = out.rfind(_END_MARK)  # anything a login script prints before or after is ignored
    if start < 0 or end < start + len(mark):
        raise TransportError("The machine's reply was cut short or not understood.")
    body = out[start + len(mark) : end]
    fields = body.split(b"\0")
    return fields[:-1] if fields and fields[-1] == b"" else fields


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="surrogateescape")


def _encode(path: str) -> bytes:
    return path.encode("utf-8", errors="surrogateescape")


def parse_stat_output(paths: list[str], out: bytes) -> dict[str, LiveFile]:
    fields = _payload(out, _STAT_MARK)
    batch: dict[bytes, bytes] = {}
    i = 0
    while i < len(fields) and fields[i] != b"--":
        if i + 1 >= len(fields):
            raise TransportError("The machine's reply was not understood.")
        batch[fields[i]] = fields[i + 1]
        i += 2
    hashes: dict[bytes, bytes] = {}
    i += 1
    while i < len(fields) and fields[i] != b"--":
        record = fields[i]  # "<64 hex>  <name>" (or " *<name>"), names unescaped with -z
        if len(record) > 66 and record[64:65] == b" ":
            hashes[record[66:]] = record[:64]
        i += 1
    records = fields[i + 1 :]
    if i >= len(fields) or len(records) % 4:
        raise TransportError("The machine's reply was not understood.")
    result: dict[str, LiveFile] = {}
    for j in range(0, len(records), 4):
        index, tag, meta_raw, extra = records[j : j + 4]
        path = paths[int(index)]
        if tag == b"M":
            result[path] = LiveFile(path, False)
            continue
        if tag == b"P":
            result[path] = LiveFile(path, False, error="permission denied (cannot look up the path)")
            continue
        meta = _parse_meta(meta_raw or batch.get(_encode(path), b""))
        if tag == b"L":
            meta["kind"] = "symlink"
            result[path] = LiveFile(path, True, sha256=hashlib.sha256(extra).hexdigest(),
                                    link_target=_decode(extra), **meta)
        elif tag == b"F":
            digest = _decode(extra or hashes.get(_encode(path), b"")).split()
            if digest and len(digest[0]) == 64:
                result[path] = LiveFile(path, True, sha256=digest[0].lower(), **meta)
            else:
                result[path] = LiveFile(path, True, error="read error", **meta)
        elif tag == b"U":
            result[path] = LiveFile(path, True, error=_decode(extra) or "read error", **meta)
        else:
            result[path] = LiveFile(path, True, error=f"not a regular file ({meta.get('kind') or 'unknown'})", **meta)
    return result


def _parse_meta(raw: bytes) -> dict[str, Any]:
    """``%f %a %s %u %g %U %G`` (raw mode in hex, permissions in octal, size, ids, names)."""
    parts = _decode(raw).split(" ")
    if len(parts) < 5:  # appeared between the batch stat and the look (a race): no metadata
        return {}
    try:
        raw_mode, perms, size = int(parts[0], 16), int(parts[1], 8), int(parts[2])
    except ValueError:
        return {}
    owner = parts[5] if len(parts) > 5 and parts[5] != "UNKNOWN" else parts[3]
    group = " ".join(parts[6:]) if len(parts) > 6 and parts[6] != "UNKNOWN" else parts[4]
    return {"mode": perms, "owner": owner, "group": group, "size": size, "kind": _kind(raw_mode)}


def parse_read_output(paths: list[str], out: bytes) -> dict[str, bytes]:
    fields = _payload(out, _READ_MARK)
    result: dict[str, bytes] = {}
    i = 0
    while i + 2 < len(fields):
        index, tag, data = fields[i : i + 3]
        i += 3
        path = paths[int(index)]
        try:
            if tag == b"L":
                result[path] = data
            elif tag == b"B" and not data.endswith(b"!"):
                result[path] = base64.b64decode(data, validate=False)
            elif tag == b"X" and not data.endswith(b"!"):
                result[path] = bytes.fromhex(_decode(data))
        except (ValueError, binascii.Error):
            continue
    return result


# --- SSH ---------------------------------------------------------------------------------------------------
def _load_identity(
    key_path: Path | None, known_hosts_path: Path | None
) -> tuple[asyncssh.SSHKey, asyncssh.SSHKnownHosts]:
    if key_path is None:
        raise TransportError("No SSH key configured for the portal.")
    try:
        key = asyncssh.read_private_key(str(key_path))
    except (OSError, asyncssh.KeyImportError) as exc:
        raise TransportError(f"Cannot load the portal's SSH key {key_path}: {exc}") from exc
    if known_hosts_path is None:
        raise TransportError("No known_hosts file configured: host keys are always checked.")
    try:
        known_hosts = asyncssh.read_known_hosts(str(known_hosts_path))
    except (OSError, ValueError) as exc:
        raise TransportError(f"Cannot read known_hosts {known_hosts_path}: {exc}") from exc
    return key, known_hosts


class _SshSession:
    """One asyncssh connection and the scripts run over it (coroutines; see SshTransport)."""

    def __init__(self, host: str, port: int, user: str, key: asyncssh.SSHKey,
                 known_hosts: asyncssh.SSHKnownHosts, timeouts: Timeouts, known_hosts_path: Path | str = ""):
        self.host, self.port, self.user = host, port, user
        self.key, self.known_hosts, self.timeouts = key, known_hosts, timeouts
        self.known_hosts_path = known_hosts_path
        self.conn: asyncssh.SSHClientConnection | None = None
        self.commands = 0

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    async def connect(self) -> None:
        if self.conn is not None:
            return
        timeout = self.timeouts.connect
        try:
            self.conn = await asyncio.wait_for(
                asyncssh.connect(
                    self.host,
                    port=self.port,
                    username=self.user,
                    client_keys=[self.key],
                    known_hosts=self.known_hosts,
                    agent_path=None,
                    agent_forwarding=False,
                    password=None,
                    password_auth=False,
                    kbdint_auth=False,
                    host_based_auth=False,
                    gss_host=None,
                    preferred_auth="publickey",
                    config=[],
                    x509_trusted_certs=None,
                    connect_timeout=timeout,
                    login_timeout=timeout,
                    keepalive_interval=30,
                ),
                timeout=timeout + 1,
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise HostKeyUnknown(
                f"{self.host}:{self.port}: host key not trusted (unknown to or different from "
                f"{self.known_hosts_path or 'known_hosts'}): {exc.reason}"
            ) from exc
        except asyncssh.PermissionDenied as exc:
            raise AuthenticationFailed(f"{self.where}: the machine refused the portal's SSH key.") from exc
        except TimeoutError as exc:
            raise Unreachable(f"{self.host}:{self.port}: no SSH connection within {timeout:g}s.") from exc
        except ConnectionRefusedError as exc:
            raise Unreachable(f"{self.host}:{self.port}: connection refused.") from exc
        except socket.gaierror as exc:
            raise Unreachable(f"{self.host}: unknown host name ({exc.strerror}).") from exc
        except asyncssh.DisconnectError as exc:
            raise Unreachable(f"{self.host}:{self.port}: SSH connection failed: {exc.reason}") from exc
        except OSError as exc:
            raise Unreachable(f"{self.host}:{self.port}: {exc.strerror or exc}") from exc
        except asyncssh.Error as exc:  # pragma: no cover - other protocol errors
            raise TransportError(f"{self.host}:{self.port}: SSH error: {exc}") from exc

    async def run_script(self, script: bytes) -> bytes:
        await self.connect()
        assert self.conn is not None
        self.commands += 1
        timeout = self.timeouts.command
        try:
            result = await asyncio.wait_for(
                self.conn.run("/bin/sh -s", input=script, encoding=None, check=False), timeout=timeout
            )
        except TimeoutError as exc:
            await self.close()
            raise Unreachable(f"{self.where}: the remote command did not finish within {timeout:g}s.") from exc
        except asyncssh.DisconnectError as exc:
            self.conn = None
            raise Unreachable(f"{self.where}: connection lost: {exc.reason}") from exc
        except (asyncssh.ChannelOpenError, asyncssh.Error, OSError) as exc:
            raise TransportError(f"{self.where}: cannot run the remote command: {exc}") from exc
        stdout = result.stdout if isinstance(result.stdout, bytes) else b""
        if result.exit_status != 0:
            stderr = result.stderr if isinstance(result.stderr, bytes) else b""
            tail = _decode(stderr).strip().splitlines()[-1:] or [f"exit status {result.exit_status}"]
            raise TransportError(f"{self.where}: the remote command failed: {tail[0][:300]}")
        return stdout

    async def stat_many(self, paths: Iterable[str]) -> dict[str, LiveFile]:
        wanted, result = _split_valid(paths)
        if wanted:
            result.update(parse_stat_output(wanted, await self.run_script(stat_script(wanted))))
        return result

    async def read_many(self, paths: Iterable[str], max_bytes: int = DEFAULT_MAX_READ_BYTES) -> dict[str, bytes]:
        wanted, _invalid = _split_valid(paths)
        if not wanted:
            return {}
        return parse_read_output(wanted, await self.run_script(read_script(wanted, max_bytes)))

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
            try:
                await asyncio.wait_for(conn.wait_closed(), timeout=5)
            except (TimeoutError, asyncssh.Error, OSError):
                pass


def _split_valid(paths: Iterable[str]) -> tuple[list[str], dict[str, LiveFile]]:
    wanted: list[str] = []
    invalid: dict[str, LiveFile] = {}
    for p in dict.fromkeys(paths):
        problem = _check_path(p)
        if problem:
            invalid[p] = LiveFile(p, False, error=problem)
        else:
            wanted.append(p)
    return wanted, invalid


class _LoopThread:
    """An event loop running in its own daemon thread; synchronous callers submit coroutines."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, _T], timeout: float) -> _T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise Unreachable(f"No answer within {timeout:g}s.") from None

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


class SshTransport:
    """A machine over SSH: one connection for the object's lifetime (connect on first use)."""

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        key_path: Path,
        known_hosts_path: Path,
        connect_timeout: float = 10.0,
        command_timeout: float = 120.0,
    ):
        key, known_hosts = _load_identity(key_path, known_hosts_path)
        self.timeouts = Timeouts(connect_timeout, command_timeout)
        self._session = _SshSession(host, port, user, key, known_hosts, self.timeouts, known_hosts_path)
        self._loop: _LoopThread | None = _LoopThread(f"cmdb-ssh-{host}:{port}")

    @property
    def commands_run(self) -> int:
        """Remote commands (SSH channels) opened so far."""
        return self._session.commands

    def __enter__(self) -> SshTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, _T], budget: float) -> _T:
        if self._loop is None:
            coro.close()
            raise TransportError("The SSH transport is closed.")
        return self._loop.call(coro, budget)

    def connect(self) -> None:
        self._call(self._session.connect(), self.timeouts.connect + 5)

    def stat_many(self, paths: Iterable[str]) -> dict[str, LiveFile]:
        return self._call(self._session.stat_many(list(paths)), self.timeouts.connect + self.timeouts.command + 10)

    def read_many(self, paths: Iterable[str], *, max_bytes: int = DEFAULT_MAX_READ_BYTES) -> dict[str, bytes]:
        return self._call(self._session.read_many(list(paths), max_bytes),
                          self.timeouts.connect + self.timeouts.command + 10)

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            loop.call(self._session.close(), 10)
        except TransportError:
            pass
        finally:
            loop.stop()

    def __del__(self) -> None:  # pragma: no cover - a forgotten close() must not leak the thread
        loop = getattr(self, "_loop", None)
        if loop is not None:
            loop.loop.call_soon_threadsafe(loop.loop.stop)


# --- choosing a transport --------------------------------------------------------------------------------
def _manual(access: MachineAccess) -> ManualMachine:
    return ManualMachine("configured by hand; documented only")


def _ssh_target(access: MachineAccess, default_user: str | None) -> tuple[str, int, str]:
    if not access.host:
        raise TransportError("The machine manifest names no SSH host.")
    user = access.user or default_user
    if not user:
        raise TransportError("No SSH user: set user in the machine manifest or the portal's default SSH user.")
    return access.host, access.port, user


def open_transport(
    access: MachineAccess,
    *,
    ssh_key: Path | None = None,
    known_hosts: Path | None = None,
    timeouts: Timeouts = Timeouts(),
    default_user: str | None = None,
    connect: bool = True,
) -> Transport:
    """The transport for a machine. SSH connects at once (``connect=False``: on first use), so
    Unreachable / AuthenticationFailed / HostKeyUnknown surface here. Manual machines raise
    ManualMachine; the caller documents them instead."""
    if access.transport == "manual":
        raise _manual(access)
    if access.transport == "local":
        if access.root is None:
            raise TransportError("The machine manifest names no local root.")
        return LocalTransport(access.root)
    if access.transport != "ssh":
        raise TransportError(f"Unknown transport {access.transport!r}.")
    if ssh_key is None or known_hosts is None:
        raise TransportError("The portal has no SSH key or known_hosts file configured.")
    host, port, user = _ssh_target(access, default_user)
    transport = SshTransport(host, port, user, ssh_key, known_hosts, timeouts.connect, timeouts.command)
    if connect:
        try:
            transport.connect()
        except BaseException:
            transport.close()
            raise
    return transport


ReadChooser = Callable[[str, dict[str, LiveFile]], Iterable[str]]


def stat_machines_parallel(
    accesses: Mapping[str, MachineAccess],
    paths_by_machine: Mapping[str, Iterable[str]],
    *,
    ssh_settings: SshSettings | None,
    concurrency: int = 16,
    read: ReadChooser | None = None,
    max_bytes: int = DEFAULT_MAX_READ_BYTES,
) -> dict[str, MachineSnapshot | TransportError]:
    """Look at many machines at once: SSH machines in ONE event loop (at most ``concurrency``
    connections open) in a helper thread, local machines meanwhile in the calling thread.

    Per SSH machine: one connection, one stat script, and, when ``read(name, files)`` names paths
    (e.g. those whose hash differs from the declaration), one read script on the same connection.
    Each value is a :class:`MachineSnapshot` or the machine's :class:`TransportError`
    (:class:`ManualMachine` for machines configured by hand).
    """
    names = list(accesses)
    if not names:
        return {}
    identity: tuple[asyncssh.SSHKey, asyncssh.SSHKnownHosts] | TransportError | None = None
    if any(accesses[n].transport == "ssh" for n in names):
        if ssh_settings is None:
            identity = TransportError("The portal has no SSH key or known_hosts file configured.")
        else:
            try:
                identity = _load_identity(ssh_settings.key_path, ssh_settings.known_hosts_path)
            except TransportError as exc:
                identity = exc

    async def one(name: str, limit: asyncio.Semaphore) -> MachineSnapshot | TransportError:
        access = accesses[name]
        paths = list(paths_by_machine.get(name, ()))
        try:
            if access.transport == "manual":
                return _manual(access)
            if access.transport != "ssh":
                return TransportError(f"Unknown transport {access.transport!r}.")
            if isinstance(identity, TransportError):
                return identity
            assert identity is not None and ssh_settings is not None
            host, port, user = _ssh_target(access, ssh_settings.default_user)
            async with limit:
                session = _SshSession(host, port, user, identity[0], identity[1], ssh_settings.timeouts,
                                      ssh_settings.known_hosts_path)
                try:
                    files = await session.stat_many(paths)
                    wanted = list(read(name, files)) if read else []
                    contents = await session.read_many(wanted, max_bytes) if wanted else {}
                    return MachineSnapshot(files, contents)
                finally:
                    await session.close()
        except TransportError as exc:
            return exc

    def local(name: str) -> MachineSnapshot | TransportError:
        root = accesses[name].root
        if root is None:
            return TransportError("The machine manifest names no local root.")
        try:
            transport = LocalTransport(root)
            files = transport.stat_many(list(paths_by_machine.get(name, ())))
            wanted = list(read(name, files)) if read else []
            return MachineSnapshot(files, transport.read_many(wanted, max_bytes=max_bytes) if wanted else {})
        except TransportError as exc:
            return exc

    remote = [n for n in names if accesses[n].transport != "local"]
    local_names = [n for n in names if accesses[n].transport == "local"]

    async def everything() -> dict[str, MachineSnapshot | TransportError]:
        limit = asyncio.Semaphore(max(1, concurrency))
        results = await asyncio.gather(*(one(n, limit) for n in remote))
        return dict(zip(remote, results, strict=True))

    # Local machines are read in this thread, one after the other (threads would only fight over the
    # GIL: the work is short system calls and hashing); SSH machines wait on the network in an event
    # loop in a helper thread meanwhile.
    out: dict[str, MachineSnapshot | TransportError] = {}
    if not remote:
        out.update((n, local(n)) for n in local_names)
    else:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(asyncio.run, everything())
            out.update((n, local(n)) for n in local_names)
            out.update(pending.result())
    return {n: out[n] for n in names}

"""A local directory standing for a machine's ``/`` (``transport = "local"``)."""

from __future__ import annotations

import errno
import grp
import hashlib
import os
import pwd
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fleet.transport.base import (
    _MAX_SYMLINKS,
    DEFAULT_MAX_READ_BYTES,
    FileWrite,
    LiveFile,
    TransportError,
    Unreachable,
    check_path,
    file_kind,
    group_name,
    user_name,
)

_READ_CHUNK = 1 << 20


# --- local ---------------------------------------------------------------------------------------------
def manages_ownership() -> bool:
    """Whether owners and groups of local machines are looked at and set: only root can give a file
    to another user, so a portal run by an ordinary user (``make demo``) neither reports them (they
    would all be drift it can never fix) nor tries to set them (every write would fail)."""
    return os.geteuid() == 0


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
        self.owners = manages_ownership()  # asked once per machine, not per file
        if not self.root.is_dir():
            raise Unreachable(f"Local machine root {self.root} is not a directory.")

    def __enter__(self) -> LocalTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        pass

    def _parent(self, path: str, *, create: bool = False) -> tuple[list[int], str, int]:
        """Open directory handles from the root down to the parent of ``path``; (handles, last name,
        symlinks followed). ``create``: missing directories are made (0755), as a package manager would."""
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
                    try:
                        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                     dir_fd=stack[-1])
                    except FileNotFoundError:
                        if not create:
                            raise
                        os.mkdir(name, 0o755, dir_fd=stack[-1])
                        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                     dir_fd=stack[-1])
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
        return stack, parts[-1], follows

    def _dir_of(self, path: str, dirs: dict[str, int] | None) -> tuple[int, str, bool]:
        """(handle of the parent directory, last name, whether the caller must close the handle);
        with ``dirs``, a parent resolved once serves every file in it (closed by the caller of _look)."""
        key, _, last = path.rpartition("/")
        if dirs is not None:
            found = dirs[key] if key in dirs else self._below_known(key, dirs)
            if found is not None:
                return found, last, False
        stack, name, follows = self._parent(path)
        if dirs is None:
            for fd in stack[:-1]:
                os.close(fd)
            return stack[-1], name, True
        # Without symlinks on the way, handle i is the folder of the path's first i parts: kept for
        # the next folders below them (a machine's files share /etc, /usr/local...).
        parts = key.split("/")  # "" first: the root
        aligned = follows == 0 and len(stack) == len(parts)
        for i, fd in enumerate(stack[:-1]):
            prefix = "/".join(parts[: i + 1])
            if aligned and prefix not in dirs:
                dirs[prefix] = fd
            else:
                os.close(fd)
        dirs[key] = stack[-1]
        return stack[-1], name, False

    def _below_known(self, key: str, dirs: dict[str, int]) -> int | None:
        """The handle of folder ``key`` opened in its parent's known handle, or None when the parent is
        not known or ``key`` is not a plain folder there (a symlink, missing...: the full walk from
        the root decides, with its checks). ``key`` is normalised (``check_path``)."""
        above, _, name = key.rpartition("/")
        if not name or above not in dirs:
            return None
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirs[above])
        except OSError:
            return None
        dirs[key] = fd
        return fd

    def _look(self, path: str, *, read: bool, max_bytes: int,
              dirs: dict[str, int] | None = None) -> tuple[LiveFile, bytes | None]:
        problem = check_path(path)
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
            owned_here = self.owners
            meta: dict[str, Any] = {
                "mode": stat.S_IMODE(st.st_mode),
                "owner": user_name(st.st_uid) if owned_here else None,
                "group": group_name(st.st_gid) if owned_here else None,
                "size": st.st_size,
                "kind": file_kind(st.st_mode),
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
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):  # swapped meanwhile
                    return LiveFile(path, True, error="changed while reading", **meta), None
                digest = hashlib.sha256()
                keep = read and st.st_size <= max_bytes
                chunks: list[bytes] = []
                # Plain read(2)s sized by the file (one more byte shows growth): a buffered reader
                # and a fixed 1 MiB request cost more than hashing a typical configuration file.
                want, total = min(st.st_size + 1, _READ_CHUNK), 0
                while chunk := os.read(fd, want):
                    digest.update(chunk)
                    if keep:
                        chunks.append(chunk)
                    total += len(chunk)
                    if total == st.st_size and len(chunk) < want:
                        break  # asked for more than the file holds and got exactly its size: at the end
                    want = _READ_CHUNK
                meta["size"] = st.st_size
                data = b"".join(chunks) if keep else None
                if data is not None and len(data) > max_bytes:
                    data = None
                return LiveFile(path, True, sha256=digest.hexdigest(), **meta), data
            finally:
                os.close(fd)
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

    # --- writes (deploy jobs only) -------------------------------------------------------------------------
    def write(self, op: FileWrite) -> None:
        """Replace ``op.target`` atomically: a temporary file in the same directory gets the content,
        mode and (when declared) owner, is synced, then renamed over the target; ``content`` None
        removes the target. A symlink anywhere in the path is resolved inside the root, never out."""
        problem = check_path(op.target)
        if problem:
            raise TransportError(f"{op.target}: {problem}")
        try:
            stack, name, _ = self._parent(op.target, create=op.content is not None)
        except _Refused as exc:
            raise TransportError(f"{op.target}: {exc.reason}") from None
        except OSError as exc:
            raise TransportError(f"{op.target}: {exc.strerror or exc}") from None
        parent = stack[-1]
        try:
            if op.content is None:
                try:
                    os.unlink(name, dir_fd=parent)
                except FileNotFoundError:
                    pass
                return
            tmp = f".{name}.cmdb-{os.getpid()}-{secrets.token_hex(4)}"
            try:
                if op.kind == "symlink":
                    os.symlink(op.content, tmp, dir_fd=parent)
                else:
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                                 dir_fd=parent)
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(op.content)
                        handle.flush()
                        if (op.owner or op.group) and self.owners:
                            os.fchown(handle.fileno(), _uid(op.owner), _gid(op.group))
                        os.fchmod(handle.fileno(), op.mode)
                        os.fsync(handle.fileno())
                os.rename(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
                os.fsync(parent)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=parent)
                except OSError:
                    pass
                raise
        except OSError as exc:
            raise TransportError(f"{op.target}: {exc.strerror or exc}") from None
        finally:
            for fd in stack:
                os.close(fd)


def _uid(owner: str | None) -> int:
    if not owner:
        return -1
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise TransportError(f"no user {owner!r} on the machine") from None


def _gid(group: str | None) -> int:
    if not group:
        return -1
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise TransportError(f"no group {group!r} on the machine") from None

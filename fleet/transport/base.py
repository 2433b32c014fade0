"""What a look at a machine returns, and the errors it raises (shared by every transport)."""

from __future__ import annotations

import functools
import grp
import pwd
import stat
from dataclasses import dataclass, field
from pathlib import Path

from fleet.paths import is_normalised_absolute

DEFAULT_MAX_READ_BYTES = 16 * 1024 * 1024
_MAX_SYMLINKS = 40


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
    sudo: bool = False  # deploys write through ``sudo -n`` (a non-root deploy user)


@dataclass(slots=True)
class MachineSnapshot:
    """One machine seen by :func:`stat_machines_parallel`: metadata of every path, contents asked for."""

    files: dict[str, LiveFile]
    contents: dict[str, bytes] = field(default_factory=dict)



def check_path(path: str) -> str | None:
    """None when ``path`` is a normalised absolute path, else the reason."""
    if not isinstance(path, str) or not path.startswith("/") or path == "/":
        return "not an absolute file path"
    if not is_normalised_absolute(path):
        return "not a normalised absolute path"
    return None


def file_kind(raw_mode: int) -> str:
    if stat.S_ISREG(raw_mode):
        return "file"
    if stat.S_ISLNK(raw_mode):
        return "symlink"
    if stat.S_ISDIR(raw_mode):
        return "directory"
    return "other"


@functools.lru_cache(maxsize=1024)
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@functools.lru_cache(maxsize=1024)
def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


@dataclass(frozen=True, slots=True)
class FileWrite:
    """One write a deploy makes: ``content`` None deletes the file; a symlink's content is its target."""

    target: str
    content: bytes | None
    mode: int = 0o644
    owner: str | None = None
    group: str | None = None
    kind: str = "file"


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A reload command run on a machine (``ran`` False: recorded but not run, e.g. a local machine)."""

    command: str
    ran: bool
    exit_status: int | None = None
    output: str = ""

    @property
    def ok(self) -> bool:
        return not self.ran or self.exit_status == 0

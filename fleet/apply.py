"""Applying a reviewed plan to one machine: check, back up, write atomically, reload, or put it all back.

The only code that writes to machines; deploy jobs call it, dry runs and audits never do. A machine
is reached through a :class:`Machine` (``fleet.transport.open_machine``). The order is what makes it
safe:

1. every target is looked at again and compared with the live state the plan recorded; any
   difference skips the whole machine ("changed since plan"), nothing is written;
2. the previous content and metadata of every target are saved in ``backup_dir`` (on the portal's
   host, 0700) before the first write;
3. each file is replaced atomically (temporary file, mode/owner, fsync, rename);
4. the reload commands run once, after the files;
5. a failed write or reload puts back every file already written, from the backup.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from fleet.transport import CommandResult, FileWrite, LiveFile, TransportError

APPLIED, SKIPPED, FAILED = "applied", "skipped", "failed"
MAX_BACKUP_BYTES = 64 * 1024 * 1024  # a file larger than this cannot be backed up: the machine is skipped
MANIFEST = "backup.json"


class Machine(Protocol):
    def stat_many(self, paths: Iterable[str]) -> dict[str, LiveFile]: ...

    def read_many(self, paths: Iterable[str], *, max_bytes: int = ...) -> dict[str, bytes]: ...

    def write(self, op: FileWrite) -> None: ...

    def run(self, command: str) -> CommandResult: ...


@dataclass(frozen=True, slots=True)
class Expected:
    """The live state of a target when the plan was made."""

    exists: bool
    sha256: str = ""
    mode: str = ""  # octal, "0644"
    owner: str = ""
    group: str = ""

    @classmethod
    def from_item(cls, item: Mapping) -> Expected:
        return cls(bool(item.get("live_exists")), item.get("live_sha256", "") or "", item.get("live_mode", "") or "",
                   item.get("live_owner", "") or "", item.get("live_group", "") or "")

    def matches(self, live: LiveFile | None) -> bool:
        if live is None or not live.exists:
            return not self.exists
        if not self.exists or live.error:
            return False
        mode = "" if live.mode is None else f"{live.mode:04o}"
        return (live.sha256 or "", mode, live.owner or "", live.group or "") == (
            self.sha256, self.mode, self.owner, self.group)


@dataclass(slots=True)
class MachineApply:
    """What applying did to one machine."""

    status: str  # applied, skipped, failed
    reason: str = ""
    files: dict[str, str] = field(default_factory=dict)  # target -> written / deleted / put back / ...
    commands: list[CommandResult] = field(default_factory=list)

    def commands_as_dicts(self) -> list[dict]:
        return [asdict(c) for c in self.commands]


def _backup(machine: Machine, writes: list[FileWrite], now: Mapping[str, LiveFile], backup_dir: Path) -> list[dict]:
    """Save what every target holds now; the records needed to put it back."""
    present = [w.target for w in writes if now[w.target].exists]
    contents = machine.read_many(present, max_bytes=MAX_BACKUP_BYTES) if present else {}
    backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    records = []
    for index, op in enumerate(writes):
        live = now[op.target]
        record: dict = {"target": op.target, "existed": live.exists, "kind": live.kind or "file",
                  "mode": live.mode, "owner": live.owner, "group": live.group, "sha256": live.sha256, "file": ""}
        if live.exists:
            if op.target not in contents:
                raise TransportError(f"{op.target}: cannot be read for the backup ({live.error or 'too large'})")
            record["file"] = f"{index}.bin"
            path = backup_dir / record["file"]
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(contents[op.target])
        records.append(record)
    (backup_dir / MANIFEST).write_text(json.dumps({"files": records}, indent=1))
    return records


def _previous(record: Mapping, backup_dir: Path) -> FileWrite:
    if not record["existed"]:
        return FileWrite(record["target"], None)
    return FileWrite(record["target"], (backup_dir / record["file"]).read_bytes(), record["mode"] or 0o644,
                     record["owner"], record["group"], record["kind"])


def _put_back(machine: Machine, records: list[dict], backup_dir: Path, result: MachineApply) -> list[str]:
    """Restore ``records`` (newest first); the targets that could not be put back."""
    stuck = []
    for record in reversed(records):
        try:
            machine.write(_previous(record, backup_dir))
            result.files[record["target"]] = "put back"
        except TransportError as exc:
            stuck.append(f"{record['target']} ({exc.message})")
    return stuck


def apply_machine(machine: Machine, writes: list[FileWrite], expected: Mapping[str, Expected], *,
                  reload: list[str], backup_dir: Path) -> MachineApply:
    """Apply ``writes`` to one machine all-or-nothing (see the module's docstring)."""
    if not writes:
        return MachineApply(APPLIED, "nothing to write")
    try:
        now = machine.stat_many([w.target for w in writes])
    except TransportError as exc:
        return MachineApply(SKIPPED, exc.message)
    moved = [w.target for w in writes if not expected[w.target].matches(now.get(w.target))]
    if moved:
        return MachineApply(SKIPPED, "changed since plan: " + ", ".join(moved[:10]) + " (plan again)")
    try:
        records = _backup(machine, writes, now, backup_dir)
    except (TransportError, OSError) as exc:
        return MachineApply(SKIPPED, f"no backup, nothing written: {getattr(exc, 'message', exc)}")
    result = MachineApply(APPLIED)
    done: list[dict] = []
    problem = ""
    for op, record in zip(writes, records, strict=True):
        try:
            machine.write(op)
        except TransportError as exc:
            problem = f"write failed: {exc.message}"
            break
        done.append(record)
        result.files[op.target] = "deleted" if op.content is None else "written"
    if not problem:
        for command in reload:
            try:
                outcome = machine.run(command)
            except TransportError as exc:
                outcome = CommandResult(command, True, None, exc.message)
            result.commands.append(outcome)
            if not outcome.ok:
                problem = f"reload failed: {command} (exit {outcome.exit_status})"
                break
    if problem:
        stuck = _put_back(machine, done, backup_dir, result)
        result.status = FAILED
        result.reason = problem + ("; put back: " + ", ".join(result.files) if not stuck else
                                   "; COULD NOT PUT BACK: " + ", ".join(stuck) + " (restore by hand from the backup)")
    return result


def restore_machine(machine: Machine, backup_dir: Path) -> MachineApply:
    """Put a machine back to what a deploy's backup holds (the restore job of a failed or halted deploy)."""
    try:
        records = json.loads((backup_dir / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError) as exc:
        return MachineApply(SKIPPED, f"no usable backup in {backup_dir}: {exc}")
    result = MachineApply(APPLIED)
    stuck = _put_back(machine, records, backup_dir, result)
    if stuck:
        result.status, result.reason = FAILED, "could not put back: " + ", ".join(stuck)
    return result

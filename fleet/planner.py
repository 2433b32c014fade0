"""What a deploy of a revision would do to one machine: pure planning logic (no Django, no I/O).

Inputs are what :mod:`fleet.declared` says the revision (and ``main``, the baseline) declare and what
:mod:`fleet.transport` saw on the machine. The plan is a list of :class:`FileAction`:

- ``create``: declared, not on the machine;
- ``update``: on the machine but the content (SHA-256), the mode, or the owner/group (only when the
  manifest declares them) differ;
- ``delete``: declared on main but no longer in the revision, and still on the machine;
- ``unchanged``: nothing to do;
- ``unreadable``: the machine would not let us look (permission denied, not a regular file...):
  reported with the reason, never counted as drift.

Diffs are unified diffs from the live content to the declared one; a secret file's diff is
:data:`cmdb.secrets.MASK` and every other diff goes through :func:`cmdb.secrets.mask_text`.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

from cmdb.secrets import MASK, has_private_key, mask_text
from fleet.manifest import DeclaredFile, MachineDeclaration
from fleet.transport import LiveFile

__all__ = ["ACTIONS", "FileAction", "paths_to_read", "plan_machine", "reload_commands", "summarize"]

ACTIONS = ("create", "update", "delete", "unchanged", "unreadable")
CHANGED = ("create", "update", "delete")
MAX_DIFF_BYTES = 1024 * 1024  # larger files are compared by hash only
MAX_DIFF_LINES = 2000


@dataclass(slots=True)
class FileAction:
    target: str
    action: str  # one of ACTIONS
    changes: list[str] = field(default_factory=list)  # "content", "mode", "owner", "group"
    diff: str = ""
    secret: bool = False
    app_path: str = ""
    source_path: str = ""
    reason: str = ""  # for "unreadable"; a note otherwise (e.g. "live content not available")
    declared_mode: str = ""
    live_mode: str = ""
    declared_owner: str = ""
    live_owner: str = ""
    declared_group: str = ""
    live_group: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _octal(mode: int | None) -> str:
    return "" if mode is None else f"{mode:04o}"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_text(data: bytes | None) -> bool:
    if data is None or b"\0" in data[:8192]:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _unified(target: str, old: bytes | None, new: bytes | None) -> str:
    """A unified diff from ``old`` (None: absent) to ``new`` (None: deleted), masked for keys."""
    if (old is not None and not _is_text(old)) or (new is not None and not _is_text(new)):
        return f"Binary files {target} differ\n"
    old_lines = old.decode("utf-8").splitlines(keepends=True) if old is not None else []
    new_lines = new.decode("utf-8").splitlines(keepends=True) if new is not None else []
    lines = list(difflib.unified_diff(
        old_lines, new_lines,
        fromfile="/dev/null" if old is None else f"a{target} (live)",
        tofile="/dev/null" if new is None else f"b{target} (declared)",
    ))
    fixed = [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines]
    if len(fixed) > MAX_DIFF_LINES:
        fixed = [*fixed[:MAX_DIFF_LINES], f"... diff truncated ({len(fixed) - MAX_DIFF_LINES} more lines)\n"]
    return mask_text("".join(fixed))


def _secret(declared: DeclaredFile, *contents: bytes | None) -> bool:
    return declared.secret or any(has_private_key(c) for c in contents)


def paths_to_read(
    declared: MachineDeclaration, live: Mapping[str, LiveFile], declared_bytes: Mapping[str, bytes]
) -> list[str]:
    """The live files worth fetching for a diff: present, readable, differing text files that are not
    secrets (a secret's diff is masked anyway, so its content never leaves the machine)."""
    wanted: list[str] = []
    for target, decl in declared.files.items():
        lf = live.get(target)
        data = declared_bytes.get(target)
        if lf is None or not lf.exists or lf.error or lf.kind not in ("file", "symlink") or data is None:
            continue
        if decl.secret or has_private_key(data) or not _is_text(data):
            continue
        if (lf.size or 0) > MAX_DIFF_BYTES or lf.sha256 == _sha256(data):
            continue
        wanted.append(target)
    return wanted


def plan_machine(
    declared: MachineDeclaration,
    baseline: MachineDeclaration | None,
    live: Mapping[str, LiveFile],
    declared_bytes: Mapping[str, bytes],
    live_bytes: Mapping[str, bytes],
) -> list[FileAction]:
    """The file actions for one machine, sorted by target path."""
    actions: list[FileAction] = []
    for target, decl in declared.files.items():
        actions.append(_plan_file(decl, live.get(target), declared_bytes.get(target), live_bytes.get(target)))
    if baseline is not None:
        for target, old in baseline.files.items():
            if target in declared.files:
                continue
            lf = live.get(target)
            if lf is None or (not lf.exists and not lf.error):
                continue  # already gone: nothing to do
            secret = _secret(old, live_bytes.get(target))
            if lf.error and not lf.exists:
                actions.append(FileAction(target, "unreadable", secret=secret, app_path=old.app_path,
                                          source_path=old.source_path, reason=lf.error))
                continue
            if secret:
                diff = MASK
            elif target in live_bytes:
                diff = _unified(target, live_bytes[target], None)
            else:
                diff = ""
            actions.append(FileAction(
                target, "delete", changes=["content"], diff=diff, secret=secret, app_path=old.app_path,
                source_path=old.source_path, live_mode=_octal(lf.mode), live_owner=lf.owner or "",
                live_group=lf.group or "",
                reason="" if diff else "removed from the repository; live content not shown",
            ))
    actions.sort(key=lambda a: a.target)
    return actions


def _plan_file(decl: DeclaredFile, lf: LiveFile | None, data: bytes | None, live_data: bytes | None) -> FileAction:
    secret = _secret(decl, data, live_data)
    base = {
        "secret": secret, "app_path": decl.app_path, "source_path": decl.source_path,
        "declared_mode": _octal(decl.mode) if decl.kind == "file" else "",
        "declared_owner": decl.owner or "", "declared_group": decl.group or "",
    }
    if lf is None or (not lf.exists and not lf.error):
        diff = MASK if secret else (_unified(decl.target, None, data) if data is not None else "")
        return FileAction(decl.target, "create", changes=["content"], diff=diff, **base)  # type: ignore[arg-type]
    live_meta = {"live_mode": _octal(lf.mode), "live_owner": lf.owner or "", "live_group": lf.group or ""}
    if lf.error:
        return FileAction(decl.target, "unreadable", reason=lf.error, **base, **live_meta)  # type: ignore[arg-type]
    changes: list[str] = []
    if lf.kind != decl.kind or data is None or lf.sha256 != _sha256(data):
        changes.append("content")
    if decl.kind == "file" and lf.kind == "file" and lf.mode is not None and lf.mode != decl.mode:
        changes.append("mode")
    if decl.owner is not None and lf.owner != decl.owner:
        changes.append("owner")
    if decl.group is not None and lf.group != decl.group:
        changes.append("group")
    if not changes:
        return FileAction(decl.target, "unchanged", **base, **live_meta)  # type: ignore[arg-type]
    diff, reason = "", ""
    if "content" in changes:
        if secret:
            diff = MASK
        elif lf.kind != decl.kind:
            reason = f"a {lf.kind} on the machine, a {decl.kind} in the repository"
        elif live_data is not None and data is not None:
            diff = _unified(decl.target, live_data, data)
        elif data is not None and not _is_text(data):
            diff = f"Binary files {decl.target} differ\n"
        else:
            reason = "content differs (live content not available for a diff)"
    return FileAction(decl.target, "update", changes=changes, diff=diff, reason=reason, **base, **live_meta)  # type: ignore[arg-type]


def reload_commands(
    declared: MachineDeclaration, actions: Iterable[FileAction], baseline: MachineDeclaration | None = None
) -> list[str]:
    """The union (in order, without repeats) of the reload commands of every application with a change."""
    apps = {a.app_path for a in actions if a.action in CHANGED}
    commands: dict[str, None] = {}
    for app in sorted(apps):
        source = declared.reload.get(app)
        if source is None and baseline is not None:
            source = baseline.reload.get(app)
        for command in source or []:
            commands[command] = None
    return list(commands)


def summarize(actions: Iterable[FileAction | Mapping]) -> dict[str, int]:
    """Counts per action."""
    counts = dict.fromkeys(ACTIONS, 0)
    for a in actions:
        kind = a["action"] if isinstance(a, Mapping) else a.action
        counts[kind] = counts.get(kind, 0) + 1
    return counts

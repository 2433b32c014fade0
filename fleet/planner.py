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

__all__ = ["ACTIONS", "ORIGINS", "FileAction", "annotate_origins", "count_origins", "paths_to_read", "plan_machine",
           "reload_commands", "summarize"]

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
    # Where the difference comes from (set by :func:`annotate_origins` when a base is known): "change"
    # (the revision changes this file and the machine still holds the base's), "conflict" (the
    # revision changes it but the machine holds something else: deploying would overwrite a hand
    # edit), "drift" (the revision does not touch it; the machine differs anyway), "" (nothing to do).
    origin: str = ""
    base_diff: str = ""  # conflicts: base -> live, the hand edit a deploy would overwrite
    # The live state when the plan was made; a deploy re-checks it before writing anything.
    live_exists: bool = False
    live_sha256: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _octal(mode: int | None) -> str:
    return "" if mode is None else f"{mode:04o}"


# What planning asks of a content: its SHA-256, whether it holds a private key, whether it is text.
# An audit batch plans the same shared file for hundreds of machines and asks each file two or three
# times, so small contents' answers are kept, keyed by the content itself (always right, whatever a
# caller passes), up to _FACTS_BUDGET bytes of contents held, and only until the batch's looks are
# done (``forget_contents``): contents, secrets included, do not outlive the batch that read them.
_FACTS_MAX_CONTENT = 64 * 1024
_FACTS_BUDGET = 32 * 1024 * 1024
_facts: dict[bytes, tuple[str, bool, bool]] = {}
_facts_held = 0


def _content_facts(data: bytes) -> tuple[str, bool, bool] | None:
    """The three answers for a small content (computed once), None for a large one."""
    global _facts_held
    if len(data) > _FACTS_MAX_CONTENT:
        return None
    found = _facts.get(data)
    if found is None:
        found = (hashlib.sha256(data).hexdigest(), has_private_key(data), _text_now(data))
        if _facts_held + len(data) > _FACTS_BUDGET:
            _facts.clear()
            _facts_held = 0
        _facts[data] = found
        _facts_held += len(data)
    return found


def forget_contents() -> None:
    """Drop every content kept by ``_content_facts`` (the end of a batch of looks)."""
    global _facts_held
    _facts.clear()
    _facts_held = 0


def _sha256(data: bytes) -> str:
    facts = _content_facts(data)
    return facts[0] if facts else hashlib.sha256(data).hexdigest()


def _text_now(data: bytes) -> bool:
    if b"\0" in data[:8192]:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_text(data: bytes | None) -> bool:
    if data is None:
        return False
    facts = _content_facts(data)
    return facts[2] if facts else _text_now(data)


def _has_key(data: bytes | None) -> bool:
    if not data:
        return False
    facts = _content_facts(data)
    return facts[1] if facts else has_private_key(data)


def _unified(target: str, old: bytes | None, new: bytes | None, labels: tuple[str, str] = ("live", "declared")) -> str:
    """A unified diff from ``old`` (None: absent) to ``new`` (None: deleted), masked for keys."""
    if (old is not None and not _is_text(old)) or (new is not None and not _is_text(new)):
        return f"Binary files {target} differ\n"
    old_lines = old.decode("utf-8").splitlines(keepends=True) if old is not None else []
    new_lines = new.decode("utf-8").splitlines(keepends=True) if new is not None else []
    lines = list(difflib.unified_diff(
        old_lines, new_lines,
        fromfile="/dev/null" if old is None else f"a{target} ({labels[0]})",
        tofile="/dev/null" if new is None else f"b{target} ({labels[1]})",
    ))
    fixed = [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines]
    if len(fixed) > MAX_DIFF_LINES:
        fixed = [*fixed[:MAX_DIFF_LINES], f"... diff truncated ({len(fixed) - MAX_DIFF_LINES} more lines)\n"]
    return mask_text("".join(fixed))


def _secret(declared: DeclaredFile, *contents: bytes | None) -> bool:
    return declared.secret or any(_has_key(c) for c in contents)


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
        if decl.secret or _has_key(data) or not _is_text(data):
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
    # a transport that cannot know owners (a local machine, portal not root) reports None: not compared
    if decl.owner is not None and lf.owner is not None and lf.owner != decl.owner:
        changes.append("owner")
    if decl.group is not None and lf.group is not None and lf.group != decl.group:
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


ORIGINS = ("change", "conflict", "drift")


def declared_state(decl: DeclaredFile | None) -> tuple | None:
    """What a declaration asks of the machine; two declarations ask the same when these are equal."""
    return None if decl is None else (decl.blob_sha, decl.kind, decl.mode, decl.owner, decl.group)


def _holds(lf: LiveFile | None, decl: DeclaredFile | None, data: bytes | None) -> bool:
    """Whether the machine holds exactly ``decl`` (None: that the file is absent)."""
    if decl is None:
        return lf is None or (not lf.exists and not lf.error)
    if lf is None or not lf.exists or lf.error or lf.kind != decl.kind or data is None or lf.sha256 != _sha256(data):
        return False
    if decl.kind == "file" and lf.mode is not None and lf.mode != decl.mode:
        return False
    return ((decl.owner is None or lf.owner is None or lf.owner == decl.owner)
            and (decl.group is None or lf.group is None or lf.group == decl.group))


def annotate_origins(
    actions: list[FileAction],
    declared: MachineDeclaration,
    base: MachineDeclaration | None,
    live: Mapping[str, LiveFile],
    base_bytes: Mapping[str, bytes],
    live_bytes: Mapping[str, bytes],
) -> None:
    """Say where each difference comes from, comparing the revision with its ``base`` (main before
    the change). Without a base (an audit, a dry run of main itself) every difference is drift."""
    for action in actions:
        lf = live.get(action.target)
        action.live_exists = bool(lf is not None and lf.exists)
        action.live_sha256 = (lf.sha256 or "") if lf is not None else ""
        if action.action == "unchanged":
            continue
        new = declared.files.get(action.target)
        old = base.files.get(action.target) if base is not None else new
        if declared_state(new) == declared_state(old):
            action.origin = "drift"
        elif _holds(lf, old, base_bytes.get(action.target)):
            action.origin = "change"
        else:
            action.origin = "conflict"
            old_data, live_data = base_bytes.get(action.target), live_bytes.get(action.target)
            if action.secret or (old is not None and old.secret):
                action.base_diff = MASK
            elif old_data is not None and live_data is not None:
                action.base_diff = _unified(action.target, old_data, live_data, ("main", "live"))
            elif old is None and live_data is not None:
                action.base_diff = _unified(action.target, None, live_data, ("main", "live"))


def count_origins(items: Iterable[FileAction | Mapping]) -> dict[str, int]:
    """Changed items per origin."""
    counts = dict.fromkeys(ORIGINS, 0)
    for item in items:
        origin = item.get("origin", "") if isinstance(item, Mapping) else item.origin
        if origin in counts:
            counts[origin] += 1
    return counts

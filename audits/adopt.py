"""What *adopt live* writes into the repository: the live edits only, merged onto main as it is now.

An audit compares a machine with main at the run's commit, and main may have moved since (a release
two minutes later). Copying the live file whole would silently undo that release, so the edits the
machine carries (the declared file at the audit's commit -> the live file) are merged three ways
onto the file on main now: when main left the file alone the result is the live file, when main
changed other lines they are kept, and when it changed the same lines the adopt is refused with the
conflicting lines. A mode is adopted only while main still declares the mode the audit saw. Nothing
here writes: :func:`audits.services.finding_adopt` pushes the result and opens the change request.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from audits.errors import AuditConflict, AuditError
from audits.models import Finding
from changes import services as change_services
from cmdb.gitrepo import ConfigRepo, GitError
from cmdb.indexer import secret_patterns
from cmdb.secrets import mask_text
from fleet import look
from fleet.declared import declared_configuration
from fleet.manifest import DeclaredFile, MachineDeclaration
from fleet.transport import TransportError
from fleet.transport.base import LiveFile

EXCERPT_LINES = 40
SECRET_REFUSAL = ("{target} is a secret on {branch} now; a secret is never copied from a machine into the "
                  "repository: store it the way the repository keeps secrets in a branch of your own.")


@dataclass(frozen=True)
class Adoption:
    """What an adopt commits (path -> (content, Git mode)), on which commit of main, and how, in words."""

    main_sha: str
    files: dict[str, tuple[bytes, str]]
    how: str


def adoption(finding: Finding) -> Adoption:
    """The live edits of ``finding`` applied onto main now; AuditError (400) when the finding cannot be
    adopted at all, AuditConflict (409) when main or the machine moved since the audit in a way that
    would make the adopt undo or guess something."""
    refusal = finding.adopt_refusal
    if refusal:
        raise AuditError(refusal)
    repo = change_services.fetch()
    branch = settings.CMDB_BRANCH
    try:
        main = repo.origin_head(branch)
    except GitError as exc:
        raise AuditConflict(f"Cannot read {branch} on origin: {exc}") from exc
    then_decl, then, now = _declarations(repo, finding, main)
    live, content = _read_live(finding, then_decl)
    if finding.kind == Finding.Kind.MODE:
        return _adopt_mode(repo, finding, main, now, live)
    return _adopt_content(repo, finding, main, then, now, content)


def _declarations(repo: ConfigRepo, finding: Finding,
                  main: str) -> tuple[MachineDeclaration, DeclaredFile, DeclaredFile]:
    """The machine's declaration at the audit's commit, and the finding's file then and on main now."""
    audited, machine, target, branch = finding.run.main_sha, finding.machine_path, finding.target, settings.CMDB_BRANCH
    patterns = secret_patterns(repo, audited, main)  # secret now or then is secret: never read from a machine
    then_decl, now_decl = (
        declared_configuration(repo, sha, machines=[machine], local_root_base=settings.CMDB_LOCAL_ROOT_BASE,
                               secret_patterns=patterns).get(machine)
        for sha in (audited, main)
    )
    then = then_decl.files.get(target) if then_decl is not None and not then_decl.errors else None
    if then_decl is None or then is None or then.source_path != finding.source_path or then.kind != "file":
        raise AuditError(f"{target} is not a regular file declared for {machine} at audit #{finding.run_id} "
                         f"({audited[:10]}).")
    since = f"since audit #{finding.run_id} ({audited[:10]})"
    if now_decl is None:
        raise AuditConflict(f"{machine} is no longer on {branch} (removed {since}): nothing to adopt into.")
    if now_decl.errors:
        first = now_decl.errors[0]
        raise AuditConflict(f"{machine}'s declaration on {branch} has errors ({first.path}"
                            f"{':' + str(first.line) if first.line else ''}: {first.message}): fix them first.")
    now = now_decl.files.get(target)
    if now is None:
        raise AuditConflict(f"{branch} no longer declares {target} on {machine} ({finding.source_path} was removed "
                            f"or renamed {since}): run the audit again before adopting anything.")
    if now.source_path != then.source_path:
        raise AuditConflict(f"{target} on {machine} is declared by {now.source_path} on {branch} now, not by "
                            f"{then.source_path} (moved or renamed {since}): run the audit again.")
    if now.kind != "file":
        raise AuditConflict(f"{now.source_path} is a {now.kind} on {branch} now ({since}): run the audit again.")
    if then.secret or now.secret:
        raise AuditError(SECRET_REFUSAL.format(target=target, branch=branch))
    return then_decl, then, now


def _read_live(finding: Finding, declaration: MachineDeclaration) -> tuple[LiveFile, bytes]:
    """The live file read again now; AuditConflict when it moved since the audit (a new audit decides)."""
    result = look.read_live(declaration.access, [finding.target], ssh_settings=look.ssh_settings_from(settings))
    if isinstance(result, TransportError):
        raise AuditConflict(f"Cannot read {finding.target} on {finding.machine_path}: {result.message}")
    live = result.files.get(finding.target)
    content = result.contents.get(finding.target)
    if live is None or content is None or live.sha256 != finding.live_sha256 or (
            finding.kind == Finding.Kind.MODE and f"{live.mode or 0:04o}" != finding.live):
        raise AuditConflict(f"{finding.target} on {finding.machine_path} changed since audit #{finding.run_id} "
                            "(or cannot be read): run the audit again before adopting it.")
    return live, content


def _adopt_content(repo: ConfigRepo, finding: Finding, main: str, then: DeclaredFile, now: DeclaredFile,
                   live: bytes) -> Adoption:
    audited, branch = finding.run.main_sha, settings.CMDB_BRANCH
    blobs = repo.read_blobs([then.blob_sha, now.blob_sha])
    base, ours = blobs[then.blob_sha], blobs[now.blob_sha]
    labels = (f"{branch} {main[:10]}", f"declared at audit #{finding.run_id} {audited[:10]}",
              f"live on {finding.machine_path}")
    try:
        merged = repo.merge_file(base, ours, live, labels=labels)
    except GitError as exc:
        raise AuditConflict(f"{branch} changed {now.source_path} since audit #{finding.run_id} and the live "
                            f"edits cannot be merged onto it ({exc}): edit the file in a branch of your own.") from exc
    if merged.conflicts:
        raise AuditConflict(
            f"{branch} changed the same lines of {now.source_path} since audit #{finding.run_id} "
            f"({audited[:10]} -> {main[:10]}) as the live edits on {finding.machine_path}: adopting would undo "
            f"that change. {merged.conflicts} conflict(s):\n\n{conflict_excerpt(merged.content)}\n\n"
            "Merge them by hand in a branch of your own, or restore the declared file."
        )
    if merged.content == ours:
        raise AuditConflict(f"{branch} already holds the live edits of {now.source_path} (changed since audit "
                            f"#{finding.run_id}): nothing to adopt; run the audit again.")
    entry = repo.entry(main, now.source_path)
    mode = entry.mode if entry is not None and entry.mode in ("100644", "100755") else "100644"
    how = (f"{branch} has not changed the file since, so the branch holds the live file" if ours == base else
           f"{branch} changed the file since: its changes are kept and the live edits merged in")
    return Adoption(main, {now.source_path: (merged.content, mode)},
                    f"Only the live edits were applied: the difference between {then.source_path} as declared at "
                    f"{audited[:10]} and the live file, merged onto {branch} at {main[:10]} ({how}).")


def _adopt_mode(repo: ConfigRepo, finding: Finding, main: str, now: DeclaredFile, live: LiveFile) -> Adoption:
    branch = settings.CMDB_BRANCH
    declared_now = f"{now.mode:04o}"
    if declared_now != finding.declared:
        raise AuditConflict(f"{branch} declares mode {declared_now} for {finding.target} now, not {finding.declared} "
                            f"as at audit #{finding.run_id} (changed since): run the audit again.")
    entry = repo.entry(main, now.source_path)
    git_mode = {"100644": "0644", "100755": "0755"}.get(entry.mode) if entry is not None else None
    if entry is None or git_mode != declared_now:
        raise AuditError(f"Mode {declared_now} of {finding.target} is declared in the application's manifest.toml on "
                         f"{branch} now; change it there in a branch.")
    mode = "100755" if finding.live == "0755" else "100644"
    return Adoption(main, {now.source_path: (repo.read_blob(entry.sha), mode)},
                    f"Only the live mode was applied: {finding.declared} -> {finding.live} on {branch} at "
                    f"{main[:10]}; the content is {branch}'s.")


def conflict_excerpt(merged: bytes, *, limit: int = EXCERPT_LINES) -> str:
    """The conflicting hunks of a merge (from ``<<<<<<<`` to ``>>>>>>>``), at most ``limit`` lines,
    private keys masked. Never called for a secret file: those are refused before any merge."""
    shown: list[str] = []
    inside = False
    for line in merged.decode("utf-8", errors="replace").splitlines():
        inside = inside or line.startswith("<<<<<<<")
        if inside:
            shown.append(line)
        if line.startswith(">>>>>>>"):
            inside = False
    if len(shown) > limit:
        shown = [*shown[:limit], f"… ({len(shown) - limit} more lines)"]
    return mask_text("\n".join(shown))

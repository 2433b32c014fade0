"""The one per-machine loop: read what a revision declares, look at the machines, plan each one.

Dry runs, deploys and audits all call :func:`look_at_machines` and differ only in what they do with
each :class:`MachineLook` (store a plan, apply it, turn it into findings). The loop is read-only:
it never writes to a machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmdb.gitrepo import ConfigRepo, GitError
from cmdb.secrets import SecretPatterns
from fleet import planner
from fleet.declared import by_target, declared_configuration
from fleet.manifest import MachineAccess, MachineDeclaration
from fleet.transport import (
    MANUAL_REASON,
    AuthenticationFailed,
    HostKeyUnknown,
    MachineSnapshot,
    ManualMachine,
    SshSettings,
    Timeouts,
    TransportError,
    Unreachable,
    iter_machines_parallel,
    stat_machines_parallel,
)

__all__ = ["MANUAL_REASON", "MachineLook", "batches", "iter_looks", "look_at_machines", "read_live", "ssh_settings_from"]

PLANNED, MANUAL, UNREACHABLE, ERROR = "planned", "manual", "unreachable", "error"


@dataclass(slots=True)
class MachineLook:
    """What one machine would need: ``status`` is planned, manual, unreachable or error (``reason``)."""

    machine: str
    status: str
    reason: str = ""
    declaration: MachineDeclaration | None = None
    baseline: MachineDeclaration | None = None  # the valid declaration at the baseline, if one was asked for
    snapshot: MachineSnapshot | None = None
    actions: list[planner.FileAction] = field(default_factory=list)
    reload: list[str] = field(default_factory=list)
    declared: dict[str, bytes] = field(default_factory=dict)  # declared content by target path
    base_declared: dict[str, bytes] = field(default_factory=dict)  # the baseline's, by target path


def ssh_settings_from(config: Any) -> SshSettings | None:
    """The portal's SSH identity from its settings (``CMDB_SSH_*``), or None when none is configured."""
    if not config.CMDB_SSH_KEY or not config.CMDB_SSH_KNOWN_HOSTS:
        return None
    return SshSettings(
        Path(config.CMDB_SSH_KEY),
        Path(config.CMDB_SSH_KNOWN_HOSTS),
        Timeouts(float(config.CMDB_SSH_CONNECT_TIMEOUT), float(config.CMDB_SSH_COMMAND_TIMEOUT)),
        config.CMDB_SSH_USER or None,
        bool(getattr(config, "CMDB_DEPLOY_SUDO", False)),
    )


def batches(machines: list[str], size: int) -> list[list[str]]:
    """``machines`` in slices of ``size``: one worker task each."""
    size = max(1, size)
    return [machines[i:i + size] for i in range(0, len(machines), size)]


def look_at_machines(
    repo: ConfigRepo,
    revision: str,
    machines: Iterable[str],
    *,
    baseline: str = "",
    secret_patterns: SecretPatterns,
    local_root_base: Path | None,
    ssh_settings: SshSettings | None,
    missing_reason: str = "The machine is not in the repository at this revision.",
    proceed: Callable[[list[str]], bool] | None = None,
) -> list[MachineLook]:
    """Plan ``machines`` for ``revision`` against what is live, in the order given (see :func:`iter_looks`)."""
    todo = list(machines)
    looks = {seen.machine: seen for seen in iter_looks(
        repo, revision, todo, baseline=baseline, secret_patterns=secret_patterns, local_root_base=local_root_base,
        ssh_settings=ssh_settings, missing_reason=missing_reason, proceed=proceed)}
    return [looks[m] for m in todo if m in looks]


def iter_looks(
    repo: ConfigRepo,
    revision: str,
    machines: Iterable[str],
    *,
    baseline: str = "",
    secret_patterns: SecretPatterns,
    local_root_base: Path | None,
    ssh_settings: SshSettings | None,
    missing_reason: str = "The machine is not in the repository at this revision.",
    proceed: Callable[[list[str]], bool] | None = None,
) -> Iterator[MachineLook]:
    """Plan ``machines`` for ``revision`` against what is live, yielding each machine as soon as it is
    planned: first those not contacted (error, manual), then the others as they answer.

    With a ``baseline`` commit (main when a dry run or deploy was asked), files declared there but
    not at ``revision`` are planned as deletions, and a machine removed at ``revision`` has every
    file deleted. ``proceed(names)`` is asked once with the machines about to be contacted (a
    cancelled job stops there). Repository errors become error looks for every machine, never an exception.
    """
    todo = list(machines)
    try:
        declared = declared_configuration(repo, revision, machines=todo, local_root_base=local_root_base,
                                          secret_patterns=secret_patterns)
        old: dict[str, MachineDeclaration] = {}
        if baseline and baseline != revision:
            old = declared_configuration(repo, baseline, machines=todo, local_root_base=local_root_base,
                                         secret_patterns=secret_patterns)
    except GitError as exc:
        yield from (MachineLook(m, ERROR, f"Cannot read the repository: {exc}") for m in todo)
        return

    looks: dict[str, MachineLook] = {}
    to_contact: dict[str, MachineLook] = {}
    for machine in todo:
        decl = declared.get(machine)
        base = old.get(machine)
        base = base if base is not None and not base.errors else None
        if decl is None and base is not None:
            decl = MachineDeclaration(machine, access=base.access)  # removed: every file is a deletion
        if decl is None:
            looks[machine] = MachineLook(machine, ERROR, missing_reason)
        elif decl.errors:
            looks[machine] = MachineLook(machine, ERROR, "\n".join(str(e) for e in decl.errors), decl)
        elif decl.access.transport == "manual":
            looks[machine] = MachineLook(machine, MANUAL, MANUAL_REASON, decl)
        else:
            looks[machine] = to_contact[machine] = MachineLook(machine, PLANNED, "", decl, base)
    yield from (looks[m] for m in todo if m not in to_contact)
    if not to_contact or (proceed is not None and not proceed(sorted(to_contact))):
        return

    decls = [look.declaration for look in to_contact.values() if look.declaration is not None]
    bases = [look.baseline for look in to_contact.values() if look.baseline is not None]
    blobs = repo.read_blobs({f.blob_sha for d in (*decls, *bases) for f in d.files.values()})
    for look in to_contact.values():
        look.declared = by_target(look.declaration, blobs) if look.declaration is not None else {}
        look.base_declared = by_target(look.baseline, blobs) if look.baseline is not None else {}
    paths = {m: sorted(set(look.declaration.files) | (set(look.baseline.files) if look.baseline else set()))
             for m, look in to_contact.items() if look.declaration is not None}

    def read(name: str, files: dict) -> list[str]:  # live contents worth fetching: differing text files
        look = to_contact[name]
        assert look.declaration is not None
        return planner.paths_to_read(look.declaration, files, look.declared)

    answers = iter_machines_parallel({m: look.declaration.access for m, look in to_contact.items()
                                      if look.declaration is not None},
                                     paths, ssh_settings=ssh_settings, read=read)
    try:
        yield from _planned(to_contact, answers, baseline, revision)
    finally:
        planner.forget_contents()


def _planned(to_contact: dict[str, MachineLook], answers: Iterable, baseline: str,
             revision: str) -> Iterator[MachineLook]:
    """Each contacted machine's look as its answer comes: its plan, or why there is none."""
    for machine, result in answers:
        look = to_contact[machine]
        assert look.declaration is not None
        if isinstance(result, ManualMachine):
            look.status, look.reason = MANUAL, MANUAL_REASON
        elif isinstance(result, (Unreachable, AuthenticationFailed, HostKeyUnknown)):
            look.status, look.reason = UNREACHABLE, result.message
        elif isinstance(result, TransportError):
            look.status, look.reason = ERROR, result.message
        elif isinstance(result, MachineSnapshot):
            look.snapshot = result
            look.actions = planner.plan_machine(look.declaration, look.baseline, result.files, look.declared,
                                                result.contents)
            # With a baseline, a machine absent from it (or broken there) declared nothing before the change.
            base = (look.baseline or MachineDeclaration(machine)) if baseline and baseline != revision else None
            planner.annotate_origins(look.actions, look.declaration, base, result.files, look.base_declared,
                                     result.contents)
            look.reload = planner.reload_commands(look.declaration, look.actions, look.baseline)
        yield look


def read_live(access: MachineAccess, targets: list[str], *,
              ssh_settings: SshSettings | None) -> MachineSnapshot | TransportError:
    """The metadata and content of a few files on one machine, now (e.g. to adopt what is live)."""
    return stat_machines_parallel({"machine": access}, {"machine": targets}, ssh_settings=ssh_settings,
                                  read=lambda name, files: targets)["machine"]

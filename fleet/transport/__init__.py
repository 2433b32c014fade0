"""How a machine is reached: read-only looks at many machines at once (metadata, SHA-256, contents).

Nothing here writes to a machine. :func:`stat_machines_parallel` is what workers call: SSH machines
(:mod:`fleet.transport.ssh`, one connection and at most two remote scripts each) in one event loop,
local machines (:mod:`fleet.transport.local`) meanwhile in the calling thread. Every failure is a
:class:`TransportError` subclass whose ``message`` is fit for users.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import queue
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from fleet.manifest import MachineAccess
from fleet.transport.base import (
    DEFAULT_MAX_READ_BYTES,
    AuthenticationFailed,
    CommandResult,
    FileWrite,
    HostKeyUnknown,
    LiveFile,
    MachineSnapshot,
    ManualMachine,
    SshSettings,
    Timeouts,
    TransportError,
    Unreachable,
)
from fleet.transport.local import LocalTransport
from fleet.transport.ssh import ReadChooser, look_over_ssh, open_ssh_machine

__all__ = [
    "DEFAULT_MAX_READ_BYTES",
    "MANUAL_REASON",
    "AuthenticationFailed",
    "CommandResult",
    "FileWrite",
    "HostKeyUnknown",
    "LiveFile",
    "LocalTransport",
    "MachineSnapshot",
    "ManualMachine",
    "SshSettings",
    "Timeouts",
    "TransportError",
    "Unreachable",
    "iter_machines_parallel",
    "open_machine",
    "stat_machines_parallel",
]

MANUAL_REASON = "configured by hand; documented only"


def stat_machines_parallel(
    accesses: Mapping[str, MachineAccess],
    paths_by_machine: Mapping[str, Iterable[str]],
    *,
    ssh_settings: SshSettings | None,
    concurrency: int = 16,
    read: ReadChooser | None = None,
    max_bytes: int = DEFAULT_MAX_READ_BYTES,
) -> dict[str, MachineSnapshot | TransportError]:
    """Look at many machines at once (see :func:`iter_machines_parallel`); every answer, in the order given."""
    out = dict(iter_machines_parallel(accesses, paths_by_machine, ssh_settings=ssh_settings,
                                      concurrency=concurrency, read=read, max_bytes=max_bytes))
    return {n: out[n] for n in accesses}


def iter_machines_parallel(
    accesses: Mapping[str, MachineAccess],
    paths_by_machine: Mapping[str, Iterable[str]],
    *,
    ssh_settings: SshSettings | None,
    concurrency: int = 16,
    read: ReadChooser | None = None,
    max_bytes: int = DEFAULT_MAX_READ_BYTES,
) -> Iterator[tuple[str, MachineSnapshot | TransportError]]:
    """Look at many machines at once: SSH machines in ONE event loop (at most ``concurrency``
    connections open) in a helper thread, local machines meanwhile in the calling thread.

    Per SSH machine: one connection, one stat script, and, when ``read(name, files)`` names paths
    (e.g. those whose hash differs from the declaration), one read script on the same connection.
    Yields ``(name, result)`` for every machine as soon as it is known (a dry run shows each plan
    then, not at the end of its batch): a :class:`MachineSnapshot` or the machine's
    :class:`TransportError` (:class:`ManualMachine` for machines configured by hand).
    """
    names = list(accesses)
    ssh = {n: accesses[n] for n in names if accesses[n].transport == "ssh"}
    local_names = [n for n in names if accesses[n].transport == "local"]
    for n in names:
        if accesses[n].transport == "manual":
            yield n, ManualMachine(MANUAL_REASON)
        elif n not in ssh and accesses[n].transport != "local":
            yield n, TransportError(f"Unknown transport {accesses[n].transport!r}.")

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

    # Local machines are read in this thread, one after the other (threads would only fight over the
    # GIL: the work is short system calls and hashing); SSH machines wait on the network in an event
    # loop in a helper thread meanwhile, handing each answer over through a queue.
    if not ssh:
        for n in local_names:
            yield n, local(n)
        return
    answers: queue.SimpleQueue[tuple[str, MachineSnapshot | TransportError]] = queue.SimpleQueue()
    given: set[str] = set()

    def drain(block: bool) -> Iterator[tuple[str, MachineSnapshot | TransportError]]:
        while True:
            try:
                name, result = answers.get(timeout=0.2) if block else answers.get_nowait()
            except queue.Empty:
                return
            given.add(name)
            yield name, result

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(look_over_ssh, ssh, paths_by_machine, ssh_settings=ssh_settings,
                              concurrency=concurrency, read=read, max_bytes=max_bytes,
                              on_result=lambda name, result: answers.put((name, result)))
        for n in local_names:
            yield n, local(n)
            yield from drain(block=False)
        while len(given) < len(ssh) and not pending.done():
            yield from drain(block=True)
        yield from drain(block=False)
        # The loop's own answer covers whatever the queue did not (and raises what the loop raised).
        for n, result in pending.result().items():
            if n not in given:
                yield n, result


class _LocalMachine:
    """A local machine for deploys: reload commands are recorded, never run on the portal's host."""

    def __init__(self, root):
        self.transport = LocalTransport(root)
        self.stat_many = self.transport.stat_many
        self.read_many = self.transport.read_many
        self.write = self.transport.write

    def run(self, command: str) -> CommandResult:
        return CommandResult(command, False, None, "not run: local transport (a directory standing for a machine)")

    def close(self) -> None:
        self.transport.close()


@contextlib.contextmanager
def open_machine(access: MachineAccess, *, ssh_settings: SshSettings | None) -> Iterator[Any]:
    """A machine to deploy to (``fleet.apply.Machine``), open for the duration of the block.
    Raises :class:`TransportError` (Unreachable, HostKeyUnknown...) when it cannot be reached."""
    if access.transport == "manual":
        raise ManualMachine(MANUAL_REASON)
    if access.transport == "local":
        if access.root is None:
            raise TransportError("The machine manifest names no local root.")
        machine: Any = _LocalMachine(access.root)
    elif access.transport == "ssh":
        machine = open_ssh_machine(access, ssh_settings)
    else:
        raise TransportError(f"Unknown transport {access.transport!r}.")
    try:
        yield machine
    finally:
        machine.close()

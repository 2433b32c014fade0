"""Machines are handed over one by one as they answer (a dry run stores each plan then), not when the
slowest machine of the batch has answered."""

from __future__ import annotations

import threading

import pytest

import fleet.transport as transport
from fleet.manifest import MachineAccess
from fleet.transport import MachineSnapshot, TransportError, iter_machines_parallel


def _local(tmp_path, name: str) -> MachineAccess:
    root = tmp_path / name
    (root / "etc").mkdir(parents=True)
    (root / "etc/a.conf").write_text("a\n")
    return MachineAccess(transport="local", root=root)


def test_local_machines_come_before_a_slow_ssh_machine_has_answered(tmp_path, monkeypatch):
    release = threading.Event()

    def slow_ssh(accesses, paths, *, on_result, **kwargs):
        assert release.wait(30)
        answers = {name: MachineSnapshot({}, {}) for name in accesses}
        for name, result in answers.items():
            on_result(name, result)
        return answers

    monkeypatch.setattr(transport, "look_over_ssh", slow_ssh)
    accesses = {"env/ssh1": MachineAccess(transport="ssh", host="127.0.0.1"),
                "env/l1": _local(tmp_path, "l1"), "env/l2": _local(tmp_path, "l2"),
                "env/hand": MachineAccess(transport="manual")}
    answers = iter_machines_parallel(accesses, dict.fromkeys(accesses, ["/etc/a.conf"]), ssh_settings=None)

    first = [next(answers) for _ in range(3)]  # would block for good if it waited for ssh1
    assert [name for name, _ in first] == ["env/hand", "env/l1", "env/l2"]
    assert first[1][1].files["/etc/a.conf"].exists
    release.set()
    assert [name for name, _ in answers] == ["env/ssh1"]


def test_an_error_of_the_ssh_loop_is_raised_not_lost(tmp_path, monkeypatch):
    def broken(accesses, paths, **kwargs):
        raise RuntimeError("event loop broke")

    monkeypatch.setattr(transport, "look_over_ssh", broken)
    accesses = {"env/ssh1": MachineAccess(transport="ssh", host="127.0.0.1"), "env/l1": _local(tmp_path, "l1")}
    with pytest.raises(RuntimeError, match="event loop broke"):
        list(iter_machines_parallel(accesses, dict.fromkeys(accesses, ["/etc/a.conf"]), ssh_settings=None))


def test_every_ssh_machine_is_answered_once(tmp_path, monkeypatch):
    def quick(accesses, paths, *, on_result, **kwargs):
        answers = {name: TransportError("down") for name in accesses}
        for name, result in answers.items():
            on_result(name, result)
        return answers

    monkeypatch.setattr(transport, "look_over_ssh", quick)
    accesses = {f"env/s{i}": MachineAccess(transport="ssh", host="127.0.0.1") for i in range(5)}
    got = [name for name, _ in iter_machines_parallel(accesses, {}, ssh_settings=None)]
    assert sorted(got) == sorted(accesses)

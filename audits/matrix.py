"""The compliance matrix of an audit run: machines (rows) x applications (columns), one cell per
application a machine declares, in the manner of Nautobot Golden Config's compliance matrix.

Built from rows the run page already loaded (its page of results and their findings): no query of its
own, so the page costs the same whatever the size of the run. Every state has a symbol and a word as
well as a colour, so the matrix reads without colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.urls import reverse

from audits.models import Finding, MachineResult

Kind = Finding.Kind
Status = MachineResult.Status

# state: (symbol, words). Order is the legend's.
STATES: dict[str, tuple[str, str]] = {
    "in-sync": ("✓", "in sync"),
    "drifted": ("≠", "drifted"),
    "missing": ("∅", "missing files"),
    "unreadable": ("?", "not readable"),
    "unreachable": ("⊘", "unreachable"),
    "error": ("!", "error"),
    "manual": ("✎", "manual"),
    "not-declared": ("·", "not declared"),
}
# The machine was not compared file by file: one state for the whole row.
WHOLE_ROW: dict[str, str] = {Status.UNREACHABLE: "unreachable", Status.ERROR: "error", Status.MANUAL: "manual"}


@dataclass
class Cell:
    state: str
    application: str = ""
    in_sync: int = 0
    total: int = 0
    findings: int = 0
    url: str = ""

    @property
    def symbol(self) -> str:
        return STATES[self.state][0]

    @property
    def words(self) -> str:
        return STATES[self.state][1]

    @property
    def files(self) -> str:
        return f"{self.in_sync}/{self.total}" if self.total else ""


def findings_url(run_id: int, machine: str, application: str = "") -> str:
    """The findings list narrowed to one run, machine and (optionally) application."""
    query = {"run": run_id, "machine": machine, **({"application": application} if application else {})}
    return f"{reverse('audits:finding_list')}?{urlencode(query)}"


def _app_name(app_path: str) -> str:
    return app_path.rsplit("/", 1)[-1]


def _state(kinds: set[str], in_sync: int, total: int) -> str:
    if in_sync >= total and not kinds:
        return "in-sync"
    if kinds & {Kind.CONTENT, Kind.MODE, Kind.OWNER}:
        return "drifted"
    if Kind.MISSING in kinds:
        return "missing"
    if Kind.UNREADABLE in kinds:
        return "unreadable"
    return "drifted"


def audit_matrix(run_id: int, results: list[MachineResult], findings: dict[int, list[Finding]]) -> dict:
    """``{"columns": [application names], "rows": [{"result", "whole": Cell | None, "cells": [Cell]}],
    "legend": [(state, symbol, words)]}`` for ``results`` (a page of the run) and their ``findings``
    keyed by result id. Columns are the applications any machine of the page declares, by name."""
    columns = sorted({_app_name(app) for r in results for app in r.applications})
    rows = []
    for result in results:
        if result.status in WHOLE_ROW:
            rows.append({"result": result, "whole": Cell(WHOLE_ROW[result.status]), "cells": []})
            continue
        kinds: dict[str, set[str]] = {}
        counts: dict[str, int] = {}
        for f in findings.get(result.pk, []):
            kinds.setdefault(f.app_path, set()).add(f.kind)
            counts[f.app_path] = counts.get(f.app_path, 0) + 1
        by_name = {_app_name(app): (app, figures) for app, figures in result.applications.items()}
        cells = []
        for name in columns:
            if name not in by_name:
                cells.append(Cell("not-declared", application=name))
                continue
            app, (in_sync, total) = by_name[name]
            n = counts.get(app, 0)
            cells.append(Cell(_state(kinds.get(app, set()), in_sync, total), application=app, in_sync=in_sync,
                              total=total, findings=n,
                              url=findings_url(run_id, result.machine_path, app) if n else ""))
        rows.append({"result": result, "whole": None, "cells": cells})
    return {"columns": columns, "rows": rows,
            "legend": [(state, symbol, words) for state, (symbol, words) in STATES.items()]}

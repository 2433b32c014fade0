"""Panels the apps built on cmdb add to a configuration item's page.

cmdb imports none of those apps (tests/portal/test_layout.py), yet a machine's page shows its audit
status, its last deploy and the change requests that touch it. Each app registers a panel here from
its ``AppConfig.ready()`` (the idea of NetBox's ``PluginTemplateExtension``); the CI page renders the
panels that apply to its kind, in ``order``, whichever app registered first.

A panel is a callable ``(path, request) -> (template_name, context) | None`` (``None``: nothing to
show). Its queries run on every view of the page, so each must cost a fixed number of queries whatever
the history (pinned in tests/cmdb/test_machine_panels.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

PanelRender = Callable[[str, HttpRequest], "tuple[str, dict] | None"]


@dataclass(frozen=True)
class Panel:
    name: str
    order: int
    kinds: frozenset[str]
    render: PanelRender


_registry: dict[str, Panel] = {}


def register(*, name: str, order: int, kinds: tuple[str, ...], render: PanelRender) -> None:
    """Add (or replace, when ``ready()`` runs twice) the panel called ``name``."""
    _registry[name] = Panel(name=name, order=order, kinds=frozenset(kinds), render=render)


def panels_for(kind: str) -> list[Panel]:
    return sorted((p for p in _registry.values() if kind in p.kinds), key=lambda p: (p.order, p.name))


def render_panels(kind: str, path: str, request: HttpRequest) -> list[SafeString]:
    """The HTML of every panel for a CI of ``kind`` at ``path``, in order."""
    html = []
    for panel in panels_for(kind):
        found = panel.render(path, request)
        if found is not None:
            template, context = found
            # Without the request: the page's context processors ran once already, not once per panel.
            html.append(render_to_string(template, context))
    return html

"""The panels other apps add to a machine's page (cmdb.panels): which pages get them, in which order,
and the plain text of a machine never audited, never deployed and touched by no change request."""

from __future__ import annotations

import pytest

from cmdb import layout, panels
from tests.cmdb.ui import ci_url

pytestmark = pytest.mark.django_db


def test_a_machine_page_shows_the_registered_panels_in_a_fixed_order(synced, viewer, client_for):
    html = client_for(viewer).get(ci_url("production/web1")).content.decode()
    where = [html.index(f'data-panel="{name}"') for name in ("audit", "release", "changes")]
    assert where == sorted(where)


@pytest.mark.parametrize("path", ["production", "production/web1/nginx"])
def test_other_pages_get_no_machine_panel(synced, viewer, client_for, path):
    response = client_for(viewer).get(ci_url(path))
    assert response.status_code == 200 and "data-panel=" not in response.content.decode()


def test_a_machine_with_no_history_says_so_in_plain_text(synced, viewer, client_for):
    response = client_for(viewer).get(ci_url("production/web1"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "This machine has never been audited." in html
    assert "never deployed from the portal." in html
    assert "No open change request touches this machine." in html


def test_a_panel_answering_none_is_left_out_and_order_wins_over_registration(synced, viewer, client_for,
                                                                             monkeypatch):
    monkeypatch.setattr(panels, "_registry", dict(panels._registry))
    panels.register(name="test.silent", order=1, kinds=(layout.MACHINE,), render=lambda path, request: None)
    assert [p.name for p in panels.panels_for(layout.MACHINE)] == [
        "test.silent", "audits.machine", "deploys.machine", "changes.machine"]
    assert panels.panels_for(layout.APPLICATION) == []
    assert len(panels.render_panels(layout.MACHINE, "production/web1", None)) == 3  # type: ignore[arg-type]

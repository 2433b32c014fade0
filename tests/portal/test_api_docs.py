"""The API docs pages load nothing from outside the portal: Redoc's bundle is served without its CDN logo."""

from __future__ import annotations

import pytest

from portal.apidocs import REDOC_LOGO

BUNDLE = "/api/redoc/redoc.standalone.js"


def test_redoc_page_loads_the_portals_bundle_which_names_no_cdn(synced, viewer, client_for):
    client = client_for(viewer)
    page = client.get("/api/redoc/").content.decode()
    assert f'src="{BUNDLE}"' in page and "cdn.redoc.ly" not in page
    assert '<html lang="en">' in page

    r = client.get(BUNDLE)
    assert r.status_code == 200 and r["Content-Type"].startswith("text/javascript")
    body = r.content.decode()
    assert "Redoc" in body and len(body) > 100_000  # the real bundle, not a stub
    assert REDOC_LOGO not in body and "cdn.redoc.ly" not in body
    assert "/static/img/favicon.svg" in body  # the logo Redoc draws is the portal's own


def test_swagger_page_declares_its_language_and_has_no_deep_links(synced, viewer, client_for):
    client = client_for(viewer)
    page = client.get("/api/docs/").content.decode()
    assert '<html lang="en">' in page and "/static/css/swagger.css" in page
    script = client.get("/api/docs/?script").content.decode()
    assert '"deepLinking": false' in script


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_redoc_bundle_is_read_only_and_behind_the_login(db, client, viewer, method):
    assert client.get(BUNDLE).status_code == 302
    client.force_login(viewer)  # the test client skips CSRF checks: the method is what is refused
    assert getattr(client, method)(BUNDLE).status_code == 405

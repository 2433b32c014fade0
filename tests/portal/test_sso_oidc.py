"""OpenID Connect sign-in in real Chromium through a real provider (npm oidc-provider under Node): the
groups claim gives the roles, re-applied at every login; a refusal or an unreachable provider ends on
a page that says so."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from tests.changes.browser import Session
from tests.fixtures.sso import configure_oidc
from tests.services import free_port

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]

ROLES = "requesters=ops;approvers=change-board;staff=it-admins"


@pytest.fixture
def oidc_portal(oidc_provider, settings, monkeypatch):
    configure_oidc(settings, monkeypatch, oidc_provider.issuer, ROLES)
    return oidc_provider


def sign_in_at_provider(session: Session, login: str, *, cancel: bool = False) -> None:
    page = session.page
    page.goto(f"{session.base_url}/accounts/login/")
    session.shot("login-page")
    page.get_by_role("link", name="Sign in with Example ID").click()
    page.wait_for_url("http://127.0.0.1:*/interaction/**")
    if cancel:
        page.get_by_role("link", name="[ Cancel ]").click()
        return
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password: the development login takes it")
    session.shot("provider-login")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()  # consent to the portal's scopes


def roles_of(username: str):
    user = get_user_model().objects.get(username=username)
    return set(user.groups.values_list("name", flat=True)), user.is_staff


def test_browser_signs_in_through_the_provider_and_the_groups_claim_gives_the_roles(browser, live_server, oidc_portal):
    arthur = Session(browser, live_server.url, "arthur", prefix="oidc")
    sign_in_at_provider(arthur, "arthur")
    arthur.page.wait_for_url(f"{live_server.url}/")
    assert arthur.page.get_by_text("arthur").first.is_visible()
    arthur.shot("signed-in")
    assert roles_of("arthur") == ({"requesters", "approvers"}, False)
    user = get_user_model().objects.get(username="arthur")
    assert (user.email, user.last_name, user.has_usable_password()) == ("arthur@example.org", "Approver", False)

    # The provider now says arthur left the change board and joined the admins: the next login applies it.
    oidc_portal.set_groups("arthur", ["ops", "it-admins"])
    again = Session(browser, live_server.url, "arthur-again", prefix="oidc")
    sign_in_at_provider(again, "arthur")
    again.page.wait_for_url(f"{live_server.url}/")
    assert roles_of("arthur") == ({"requesters"}, True)


def test_cancelling_at_the_provider_ends_on_a_page_that_says_it_refused(browser, live_server, oidc_portal):
    olivia = Session(browser, live_server.url, "olivia", prefix="oidc")
    sign_in_at_provider(olivia, "olivia", cancel=True)
    olivia.page.wait_for_url(f"{live_server.url}/oidc/failed/")
    olivia.shot("refused")
    assert olivia.page.get_by_role("heading", name="Sign-in with Example ID failed").is_visible()
    assert "Example ID refused the sign-in" in olivia.page.locator("#sso-reason").inner_text()
    assert not get_user_model().objects.filter(username="olivia").exists()


def test_an_unreachable_provider_ends_on_a_page_that_says_so(browser, live_server, oidc_provider, settings,
                                                             monkeypatch):
    # The provider signs the person in, but its token endpoint (asked by the portal) is a closed port.
    configure_oidc(settings, monkeypatch, oidc_provider.issuer, ROLES,
                   CMDB_OIDC_TOKEN_ENDPOINT=f"http://127.0.0.1:{free_port()}/token")
    olivia = Session(browser, live_server.url, "olivia-unreachable", prefix="oidc")
    sign_in_at_provider(olivia, "olivia")
    olivia.page.wait_for_url(f"{live_server.url}/oidc/failed/")
    olivia.shot("unreachable")
    assert "Example ID could not be reached" in olivia.page.locator("#sso-reason").inner_text()
    assert not get_user_model().objects.filter(username="olivia").exists()


def test_a_local_account_is_not_taken_over_by_the_provider(browser, live_server, oidc_portal, django_user_model):
    from tests.conftest import PASSWORD

    django_user_model.objects.create_user("olivia", password=PASSWORD)
    olivia = Session(browser, live_server.url, "olivia-local", prefix="oidc")
    sign_in_at_provider(olivia, "olivia")
    olivia.page.wait_for_url(f"{live_server.url}/oidc/failed/")
    assert "olivia is a local account" in olivia.page.locator("#sso-reason").inner_text()
    olivia.login("olivia")  # the form still signs the local account in
    assert roles_of("olivia") == (set(), False)

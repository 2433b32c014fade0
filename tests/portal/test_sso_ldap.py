"""Directory sign-in against a real slapd: roles come from directory groups and are re-applied at every
login; wrong passwords, local accounts and an unreachable directory behave as a person expects."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from changes.models import ChangeEvent
from tests.conftest import PASSWORD
from tests.fixtures.ldap_server import USER_PASSWORD
from tests.fixtures.sso import configure_ldap
from tests.services import free_port

pytestmark = [pytest.mark.services, pytest.mark.django_db]

ROLES = ("requesters=cn=ops,ou=groups,dc=example,dc=org;"
         "approvers=cn=change-board, ou=groups, dc=example, dc=org;"  # spaces: the same DN to the directory
         "staff=CN=IT-Admins,ou=groups,dc=example,dc=org")


@pytest.fixture
def ldap_portal(directory, settings, monkeypatch):
    configure_ldap(settings, monkeypatch, directory.uri, ROLES)
    return directory


def sign_in(username: str, password: str = USER_PASSWORD):
    client = Client()
    response = client.post("/accounts/login/", {"username": username, "password": password})
    return client, response


def roles_of(username: str):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username=username)
    return set(user.groups.values_list("name", flat=True)), user.is_staff


def test_the_login_page_says_the_form_takes_directory_accounts(ldap_portal):
    page = Client().get("/accounts/login/").content.decode()
    assert "Sign in with your directory account" in page
    assert "Sign in with Example ID" not in page  # no OpenID provider configured


def test_directory_user_signs_in_with_the_form_and_gets_the_roles_of_the_groups(ldap_portal):
    client, response = sign_in("olivia")
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert roles_of("olivia") == ({"requesters"}, False)
    assert roles_of("olivia") == ({"requesters"}, False)
    _, response = sign_in("arthur")
    assert roles_of("arthur") == ({"requesters", "approvers"}, False)
    _, response = sign_in("dana")
    assert roles_of("dana") == (set(), True)
    from django.contrib.auth import get_user_model

    olivia = get_user_model().objects.get(username="olivia")
    assert (olivia.email, olivia.first_name, olivia.has_usable_password()) == ("olivia@example.org", "Olivia", False)
    assert ChangeEvent.objects.filter(action="roles-applied", actor=olivia).count() == 1


def test_leaving_a_directory_group_removes_the_role_at_the_next_login(ldap_portal):
    sign_in("arthur")
    sign_in("dana")
    ldap_portal.remove_member("change-board", "arthur")
    ldap_portal.remove_member("it-admins", "dana")
    ldap_portal.add_member("it-admins", "arthur")
    sign_in("arthur")
    sign_in("dana")
    assert roles_of("arthur") == ({"requesters"}, True)
    assert roles_of("dana") == (set(), False)
    event = ChangeEvent.objects.filter(action="roles-applied", actor__username="arthur").last()
    assert event.data["removed"] == ["approvers"] and event.data["added"] == ["staff"]


def test_groups_outside_the_mapping_are_left_alone(ldap_portal):
    sign_in("olivia")
    from django.contrib.auth import get_user_model

    olivia = get_user_model().objects.get(username="olivia")
    olivia.groups.add(Group.objects.get_or_create(name="viewers")[0])  # given by hand in the admin
    ldap_portal.remove_member("ops", "olivia")
    sign_in("olivia")
    assert roles_of("olivia") == ({"viewers"}, False)


def test_a_wrong_directory_password_is_refused_with_the_normal_message(ldap_portal):
    client, response = sign_in("olivia", "not-the-password")
    assert response.status_code == 200
    assert "Your username and password didn't match" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_local_account_signs_in_beside_the_directory_and_is_never_taken_over(ldap_portal, django_user_model):
    django_user_model.objects.create_user("breakglass", password=PASSWORD, is_staff=True)
    # A local account with a directory namesake keeps its own password and roles.
    django_user_model.objects.create_user("dana", password=PASSWORD)
    _, response = sign_in("breakglass", PASSWORD)
    assert response.status_code == 302
    _, response = sign_in("dana", USER_PASSWORD)
    assert response.status_code == 200  # the directory's password does not open the local account
    _, response = sign_in("dana", PASSWORD)
    assert response.status_code == 302
    assert roles_of("dana") == (set(), False)


def test_a_directory_that_goes_down_is_named_and_local_accounts_still_sign_in(ldap_portal, django_user_model):
    django_user_model.objects.create_user("breakglass", password=PASSWORD, is_staff=True)
    sign_in("arthur")
    ldap_portal.stop()
    client, response = sign_in("arthur")
    assert response.status_code == 200
    assert "The directory could not be reached" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert roles_of("arthur") == ({"requesters", "approvers"}, False)  # kept until the directory answers
    _, response = sign_in("breakglass", PASSWORD)
    assert response.status_code == 302


def test_a_directory_address_where_nothing_listens_is_named(settings, monkeypatch):
    configure_ldap(settings, monkeypatch, f"ldap://127.0.0.1:{free_port()}", ROLES)
    _, response = sign_in("olivia")
    assert response.status_code == 200
    assert "The directory could not be reached" in response.content.decode()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_directory_user_signs_in_in_the_browser(browser, live_server, ldap_portal):
    from tests.changes.browser import Session

    olivia = Session(browser, live_server.url, "olivia", prefix="ldap")
    page = olivia.page
    page.goto(f"{live_server.url}/accounts/login/")
    assert page.get_by_text("Sign in with your directory account").is_visible()
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill(USER_PASSWORD)
    olivia.shot("login")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/")
    assert page.get_by_text("olivia").first.is_visible()
    olivia.shot("signed-in")
    assert roles_of("olivia") == ({"requesters"}, False)


def test_start_tls_is_asked_of_the_directory_when_configured(ldap_portal, settings, monkeypatch):
    """The test slapd has no certificate: with CMDB_LDAP_START_TLS the portal asks for TLS before
    binding, the server cannot give it, and nobody is signed in over a clear connection."""
    configure_ldap(settings, monkeypatch, ldap_portal.uri, ROLES, CMDB_LDAP_START_TLS="true")
    assert settings.AUTH_LDAP_START_TLS is True
    _, response = sign_in("olivia")
    assert response.status_code == 200
    assert "The directory could not be reached" in response.content.decode()
    configure_ldap(settings, monkeypatch, ldap_portal.uri, ROLES, CMDB_LDAP_START_TLS="false")
    _, response = sign_in("olivia")
    assert response.status_code == 302


def test_deactivating_a_directory_account_ends_its_open_session(ldap_portal, django_user_model):
    client, _ = sign_in("olivia")
    assert client.get("/").status_code == 200
    django_user_model.objects.filter(username="olivia").update(is_active=False)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")

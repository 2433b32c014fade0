import pytest

from tests.gitutil import on_branch


@pytest.fixture
def tls_branch(synced):
    """A branch changing a production application and production/_common."""
    on_branch(synced, "change/tls", {
        "production/web1/nginx/files/etc/nginx/nginx.conf": "worker_processes 4;\nssl_protocols TLSv1.3;\n",
        "production/_common/tls/README.md": "# TLS\n\nRotate yearly.\n",
    }, message="Harden TLS")
    return "change/tls"


@pytest.fixture
def test_branch(synced):
    """A branch touching only the test environment (needs one approval)."""
    on_branch(synced, "change/test-only", {"test/web-test1/nginx/files/etc/nginx/nginx.conf": "worker_processes 2;\n"})
    return "change/test-only"


@pytest.fixture
def make_change(requester):
    from changes import services

    def make(branch, **kwargs):
        kwargs.setdefault("title", f"Change on {branch}")
        return services.change_create(acting_user=kwargs.pop("user", requester), branch=branch, **kwargs)

    return make


@pytest.fixture
def approver2(db, django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("bob_approver", email="bob@example.org", password="x")
    user.groups.add(Group.objects.get_or_create(name="approvers")[0])
    return user

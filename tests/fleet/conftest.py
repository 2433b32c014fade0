import pytest

from tests.fixtures.worker import need
from tests.services import start_sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real sshd on loopback for the module, logging in a non-root user."""
    need("sshd", "ssh", "ssh-keygen")
    handle = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield handle
    handle.stop()

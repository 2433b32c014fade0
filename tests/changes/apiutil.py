"""Helpers of the change-control API tests (their fixtures, ``branch_repo`` and
``shared_branch_repo``, are in ``tests/changes/conftest.py``)."""

from __future__ import annotations

import functools
import subprocess

from django.test import Client
from django.test.client import ClientHandler

from tests.cmdb import apiutil
from tests.gitutil import WorkRepo

TEST_BRANCH = "change/test-only"  # test environment: one approval
TLS_BRANCH = "change/tls"  # production: two approvals
TEST_NGINX = "test/web-test1/nginx/files/etc/nginx/nginx.conf"


@functools.cache
def _handler() -> ClientHandler:
    # Loading the middleware costs ~0.2 s (WhiteNoise lists every static file through the finders)
    # and Django pays it once per Client; these tests make many clients, so they share one chain.
    return ClientHandler(enforce_csrf_checks=True)


def token_client(user=None) -> Client:
    """``tests.cmdb.apiutil.token_client`` (``Authorization: Token``, CSRF on) on the shared handler."""
    client = apiutil.token_client(user)
    client.handler = _handler()
    return client


def origin_rev(repo: WorkRepo, rev: str = "main") -> str:
    return subprocess.run(["git", "-C", str(repo.origin), "rev-parse", rev], capture_output=True, text=True,
                          check=True).stdout.strip()

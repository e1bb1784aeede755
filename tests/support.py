"""Signing test clients in: a user of a role (and scope) in the app's state database and a
client that sends their API token, or logs in through the form like a browser."""

from __future__ import annotations

import itertools
import re

from analytics.access import Scope
from analytics.store import accounts
from dashboard.auth import STATE_DB

PASSWORD = "a-test-password-123"
_names = itertools.count(1)


def make_user(server, role: str = "admin", scope: str | None = None, name: str | None = None):
    engine = server.extensions[STATE_DB]
    name = name or f"{role}-{next(_names)}"
    accounts.add_user(
        engine, name, role, PASSWORD, scope=Scope.parse(scope) if scope else None, actor="test"
    )
    return name


def token_for(server, name: str, **kwargs) -> str:
    _, secret = accounts.create_token(server.extensions[STATE_DB], name, **kwargs)
    return secret


def signed_in(server, role: str = "admin", scope: str | None = None):
    """A test client sending a new `role` user's token on every request."""
    name = make_user(server, role, scope)
    client = server.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token_for(server, name)}"
    client.username = name
    return client


CSRF = re.compile(r'name="[\w-]*csrf_token"[^>]*value="([^"]+)"')


def csrf_token(page: str) -> str:
    found = CSRF.search(page)
    assert found, "no csrf_token field in the page"
    return found.group(1)


def log_in(client, name: str, password: str = PASSWORD, **kwargs):
    """Log in through the form (GET for the CSRF token, then POST), as a browser does."""
    token = csrf_token(client.get("/login").get_data(as_text=True))
    return client.post(
        "/login",
        data={"csrf_token": token, "username": name, "password": password},
        **kwargs,
    )

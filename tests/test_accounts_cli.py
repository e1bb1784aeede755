"""`python -m dashboard users|tokens ...` end to end, as ops script it: exit codes, one-line
errors, the token alone on the last line, and never a password on the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from analytics.config import PROJ_ROOT
from analytics.store import accounts, db


@pytest.fixture
def env(tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RETENTION_")}
    return {**clean, "RETENTION_STATE_DIR": str(tmp_path / "var")}


def run(env, *args, password=None):
    extra = {"RETENTION_NEW_PASSWORD": password} if password else {}
    return subprocess.run(
        [sys.executable, "-m", "dashboard", *args],
        cwd=PROJ_ROOT,
        env={**env, **extra},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_users_and_tokens_from_the_command_line(env, tmp_path):
    r = run(env, "users", "add", "ann", "--role", "admin", password="ann-password-123")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "added ann (admin)"
    r = run(
        env,
        "users",
        "add",
        "bob",
        "--role",
        "manager",
        "--scope",
        "region=North",
        password="bob-password-123",
    )
    assert r.returncode == 0, r.stderr
    r = run(env, "users", "list")
    assert "bob" in r.stdout
    assert "region=North" in r.stdout
    r = run(env, "tokens", "create", "bob", "--expires-days", "5")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith(accounts.TOKEN_PREFIX)
    engine = db.make_engine(db.database_url(tmp_path / "var", None))
    assert accounts.token_user(engine, token).username == "bob"
    token_id = accounts.tokens(engine, "bob")[0].id
    assert run(env, "tokens", "revoke", str(token_id)).returncode == 0
    assert accounts.token_user(engine, token) is None
    assert run(env, "users", "disable", "bob").returncode == 0
    assert accounts.users(engine)[1].disabled
    r = run(env, "users", "set-password", "ann", password="another-password-1")
    assert r.returncode == 0, r.stderr
    assert accounts.authenticate(engine, "ann", "another-password-1") is not None
    actors = {e["actor"] for e in accounts.events(engine)}
    assert all(a.startswith("cli:") for a in actors)


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (
            ("users", "add", "cy", "--role", "admin"),
            None,
            "no password: set RETENTION_NEW_PASSWORD",
        ),
        (("users", "add", "cy", "--role", "admin"), "short", "at least 12 characters"),
        (
            ("users", "add", "cy", "--role", "analyst", "--scope", "region=North"),
            "long-password-12",
            "only a manager has a scope",
        ),
        (
            ("users", "add", "cy", "--role", "manager", "--scope", "region"),
            "long-password-12",
            "expected COLUMN=VALUE",
        ),
        (("users", "add", "bad name", "--role", "admin"), "long-password-12", "username"),
        (("users", "disable", "nobody"), None, "no user named 'nobody'"),
        (("tokens", "create", "nobody"), None, "no user named 'nobody'"),
        (("tokens", "revoke", "99"), None, "no token with id 99"),
    ],
)
def test_every_mistake_is_one_line_and_status_1(env, args, password, message):
    r = run(env, *args, password=password)
    assert r.returncode == 1
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_a_wrong_command_line_is_status_2(env):
    r = run(env, "users", "add", "cy", "--role", "boss")
    assert r.returncode == 2
    assert "invalid choice" in r.stderr
    r = run(env, "users", "add", "cy", "--role", "admin", "--password", "x")
    assert r.returncode == 2  # no such flag: passwords never go on the command line

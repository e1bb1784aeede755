"""Signing test clients in: a user of a role (and scope) in the app's state database and a
client that sends their API token, or logs in through the form like a browser. Starting
gunicorn for real on loopback (gunicorn.conf.py, 2 workers) and stopping it."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from analytics.access import Scope
from analytics.config import PROJ_ROOT
from analytics.store import accounts, artifacts
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


def role_clients(server, scope: str) -> dict:
    """A signed-in client per role: an admin, an analyst and a manager with `scope`."""
    return {
        "admin": signed_in(server, "admin"),
        "analyst": signed_in(server, "analyst"),
        "manager": signed_in(server, "manager", scope),
    }


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


# -- gunicorn for real -----------------------------------------------------------------------

START_TIMEOUT = 60  # seconds for gunicorn to load the demo base and model and answer


def save_demo_model(models: Path, workspace) -> Path:
    """A models directory holding the workspace's model, so gunicorn starts in seconds."""
    from analytics.workflow import save

    # A copy: save() sets .version. Signed as gunicorn started with TEST_SECRET checks it.
    save(dataclasses.replace(workspace.model), models, key=MODEL_KEY)
    return models


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TEST_SECRET = "test-secret-key-of-forty-characters-long-x"
# The model-signing key a server started with TEST_SECRET derives (its state directory unused).
MODEL_KEY = artifacts.signing_key(Path(tempfile.gettempdir()), TEST_SECRET)


def gunicorn_env(models: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTION_")}
    env.update(
        RETENTION_LOG_LEVL="DEBUG",  # a typo: one WARNING line at start, nothing else
        RETENTION_MODELS_DIR=str(models),
        RETENTION_PORT=str(port),
        RETENTION_WORKERS="2",
        RETENTION_SECRET_KEY=TEST_SECRET,
        RETENTION_STATE_DIR=tempfile.mkdtemp(prefix="state-"),  # a new database
        # The demo's year of history is a minutes-long job; the over-time tests turn it on.
        RETENTION_DEMO_HISTORY="0",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def accounts_cli(env: dict[str, str], *args: str, password: str | None = None) -> str:
    """`python -m dashboard users|tokens ...` on the server's database, as ops run it."""
    extra = {"RETENTION_NEW_PASSWORD": password} if password else {}
    done = subprocess.run(
        [sys.executable, "-m", "dashboard", *args],
        cwd=PROJ_ROOT,
        env={**env, **extra},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def start_gunicorn(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--no-control-socket"],
            cwd=PROJ_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


class Server:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path, token: str = "") -> None:
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.auth = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, *, timeout: float = 20, headers=None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, headers={**self.auth, **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def post_json(self, path: str, body, *, timeout: float = 20) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **self.auth},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def workers(self) -> set[int]:
        """Worker pids: the master's child processes (from /proc)."""
        children = set()
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            text = (task / "children").read_text().split()
            children |= {int(pid) for pid in text}
        return children

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def wait_ready(server: Server, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"gunicorn exited with {server.proc.returncode}:\n{server.log_text()}")
        try:
            if server.get("/api/v1/health", timeout=2)[0] == 200 and len(server.workers()) == 2:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"gunicorn not ready after {timeout} s:\n{server.log_text()}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(35)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- Dash callback requests, as the renderer sends them ----------------------------------------


def _made_up(pattern_text: str) -> list[dict]:
    """One concrete id for a pattern-matching (ALL) id: its wildcards filled in."""
    pattern = json.loads(pattern_text)
    return [{k: (f"x{k}" if isinstance(v, list) else v) for k, v in pattern.items()}]


def callback_item(declared: dict, value=None, *, with_value=True, concrete=_made_up):
    """An input, state or output as the renderer sends it. A pattern-matching (ALL) one is a
    list, one per id of `concrete(pattern_text)`; the first gets `value`, and an id's value is
    the id itself."""
    cid, prop = declared["id"], declared["property"]
    if not (isinstance(cid, str) and cid.startswith("{")):
        return {"id": cid, "property": prop, **({"value": value} if with_value else {})}
    items = [{"id": c, "property": prop} for c in concrete(cid)]
    if with_value:
        for item in items:
            item["value"] = item["id"] if prop == "id" else None
        if value is not None:
            items[0]["value"] = value
    return items


def callback_body(key: str, spec: dict, inputs=None, state=None, *, concrete=_made_up) -> dict:
    """A request for the callback `key` (declared as `spec`); inputs and state default to the
    declared ones, every value None."""
    output = spec["output"]
    outputs = [
        callback_item(o.to_dict(), with_value=False, concrete=concrete)
        for o in (output if isinstance(output, list) else [output])
    ]
    if inputs is None:
        inputs = [callback_item(i, concrete=concrete) for i in spec["inputs"]]
    if state is None:
        state = [callback_item(i, concrete=concrete) for i in spec.get("state", [])]
    return {
        "output": key,
        "outputs": outputs if isinstance(output, list) else outputs[0],
        "inputs": inputs,
        "state": state,
        "changedPropIds": [],
    }


# -- every documented operation, called as a client would -----------------------------------

ALERT_RULE = {  # a webhook to the discard port on loopback: a test send fails at once
    "name": "role check",
    "kind": "new_at_risk",
    "threshold": 5,
    "channel": "webhook",
    "target": "http://127.0.0.1:9/hook",
}
BODIES = {
    "campaign_create": {"name": "role check", "limit": 5},
    "alert_rule_create": ALERT_RULE,
}


def call_operation(client, op, *, customer_id: str, record: dict, ids: dict):
    """Call one OpenAPI operation with a valid request: its path ids filled (a rule created
    earlier in `ids`), the body it takes (`record` for the customer routes)."""
    path = "/api/v1" + op.path.replace("{customer_id}", customer_id)
    path = path.replace("{rule_id}", str(ids.get("rule_id", 1)))
    if op.method == "get":
        return client.get(path)
    if op.method == "delete":
        return client.delete(path)
    r = client.post(path, json=BODIES.get(op.operation_id, record))
    if op.operation_id == "alert_rule_create" and r.status_code == 201:
        ids["rule_id"] = r.get_json()["id"]
    return r


def success_status(op, *, snapshots: bool = False) -> int:
    """What an allowed call of `op` answers: its success status; creating a campaign on a
    server without snapshots is a 409 that says so."""
    if op.operation_id == "campaign_create" and not snapshots:
        return 409
    return int(op.ok)


# -- a year of monthly snapshots ----------------------------------------------------------------


def over_time_year(root: Path, customers: int) -> dict:
    """A state database holding the demo's year of monthly snapshots (analytics.snapshots, as
    the first-start job records it, with its past campaign), a live model trained on the newest
    month with its own snapshot, and the app serving it with the process's History."""
    from analytics import datasets, snapshots, versions, workflow
    from analytics.config import settings_from_env
    from analytics.services import history as service
    from analytics.store import db, lifecycle
    from analytics.store import snapshots as store
    from dashboard.api import history as history_api
    from dashboard.app import create_app

    settings = settings_from_env(env={})
    state, models = root / "state", root / "models"
    engine = db.open_state(db.database_url(state, None))[0]
    made = snapshots.demo_history(engine, state, models, settings, MODEL_KEY, n_customers=customers)
    newest = max(store.snapshots(engine), key=lambda s: s.as_of)
    info = lifecycle.dataset(engine, newest.dataset_id)
    table = datasets.open_table(info, state, settings)
    model = workflow.train(table, settings, source=info.name)
    model.version = workflow.save(model, models, key=MODEL_KEY)
    metrics = versions.version_metrics(model.meta)
    lifecycle.add_version(engine, model.version, info.id, metrics, None)
    lifecycle.promote(engine, model.version, "ada")
    snapshots.record_live(engine, state, models, settings, MODEL_KEY, model.version, actor="ada")
    workspace = workflow.model_workspace(model, table, settings, info.name, "test")
    history = service.History(engine, state, settings)
    app = create_app(workspace, state=engine)
    app.extensions[history_api.EXTENSION] = history
    return {"engine": engine, "state": state, "models": models, "history": history, "app": app,
            "made": made, "model": model, "live": model}  # fmt: skip

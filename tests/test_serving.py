"""Serving: configuration from the environment, security headers, request ids and logs, and
gunicorn started for real (2 workers, preload): identical answers from every worker, a loopback
load run, a killed worker replaced, graceful SIGTERM, and clean refusals at start.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import signal
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from analytics.config import (
    DEMO_DATA,
    PROJ_ROOT,
    ConfigError,
    ServeSettings,
    default_workers,
    serve_settings_from_env,
    settings_from_env,
)
from analytics.store import artifacts
from analytics.store.artifacts import ArtifactError
from dashboard import logs, security
from dashboard.server import BATCH_LIMIT_KEY, column_mapping
from tests.support import (
    Server,
    accounts_cli,
    free_port,
    gunicorn_env,
    save_demo_model,
    start_gunicorn,
    stop,
    wait_ready,
)

HAS_API = (PROJ_ROOT / "dashboard" / "api" / "routes.py").is_file()
needs_api = pytest.mark.skipif(not HAS_API, reason="dashboard/api (the REST API) not built yet")


# -- configuration ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "broken.json").write_text("{not json", encoding="utf-8")
    (root / "a_file").write_text("x", encoding="utf-8")
    return root


BAD_ENV = [
    ("DATA", "/nonexistent/customers.csv", "no such file"),
    ("DATA", "{tmp}", "is a directory"),
    ("MAPPING", "/nonexistent/mapping.json", "no such file"),
    ("MODELS_DIR", "{tmp}/a_file", "not a directory"),
    ("HOST", "local host", "interface name or IP address"),
    ("PORT", "http", "whole number 1-65,535"),
    ("PORT", "70000", "whole number 1-65,535"),
    ("LOG_LEVEL", "verbose", "DEBUG, INFO, WARNING, ERROR"),
    ("LOG_FORMAT", "xml", "text, json"),
    ("BATCH_LIMIT", "0", "whole number 1-1,000,000"),
    ("BATCH_LIMIT", "2000000", "whole number 1-1,000,000"),
    ("BATCH_LIMIT", "lots", "whole number 1-1,000,000"),
    ("WORKERS", "0", "whole number 1-64"),
    ("WORKERS", "-2", "whole number 1-64"),
    ("WORKERS", "two", "whole number 1-64"),
    ("DEBUG", "maybe", "1/true/yes/on or 0/false/no/off"),
    ("RETRAIN", "sometimes", "1/true/yes/on or 0/false/no/off"),
]


@pytest.mark.parametrize(("name", "value", "allowed"), BAD_ENV)
def test_a_bad_variable_is_one_line_naming_it_its_value_and_what_is_allowed(
    bad_files, name, value, allowed
):
    value = value.format(tmp=bad_files)
    with pytest.raises(ConfigError) as err:
        serve_settings_from_env(env={f"RETENTION_{name}": value})
    message = str(err.value)
    assert message.startswith(f"RETENTION_{name}={value!r}: ")
    assert allowed in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("MARGIN", "2", "(0.0, 1.0]"),
        ("DISCOUNT", "one percent", "expected a number"),
        ("WINDOW_MONTHS", "36", "whole number 1-24"),
        ("CURRENCY", "dollars", "1-5 characters"),
    ],
)
def test_business_settings_are_checked_the_same_way(name, value, allowed):
    with pytest.raises(ConfigError, match=re.escape(allowed)) as err:
        settings_from_env(env={f"RETENTION_{name}": value})
    assert str(err.value).startswith(f"RETENTION_{name}=")


def test_a_mapping_file_that_is_not_json_is_one_line_naming_the_variable(bad_files):
    config = serve_settings_from_env(env={"RETENTION_MAPPING": str(bad_files / "broken.json")})
    with pytest.raises(ConfigError) as err:
        column_mapping(config)
    assert str(err.value).startswith(f"RETENTION_MAPPING='{bad_files / 'broken.json'}': ")
    assert "not valid JSON" in str(err.value)


def test_defaults_and_good_values(bad_files):
    assert serve_settings_from_env(env={}) == ServeSettings()
    config = serve_settings_from_env(
        env={
            "RETENTION_DATA": str(DEMO_DATA),
            "RETENTION_PORT": "9001",
            "RETENTION_LOG_LEVEL": "warning",
            "RETENTION_LOG_FORMAT": "JSON",
            "RETENTION_BATCH_LIMIT": "500",
            "RETENTION_WORKERS": "3",
            "RETENTION_DEBUG": "true",
            "RETENTION_RETRAIN": "0",
            "RETENTION_MODELS_DIR": str(bad_files / "not-yet-created"),
        }
    )
    assert (config.port, config.log_level, config.log_format) == (9001, "WARNING", "json")
    assert (config.batch_limit, config.workers, config.debug, config.retrain) == (500, 3, 1, 0)


@pytest.mark.parametrize(("raw", "debug"), [("1", True), ("true", True), ("0", False), ("", False)])
def test_debug_is_off_unless_asked_for(raw, debug):
    assert serve_settings_from_env(env={"RETENTION_DEBUG": raw}).debug is debug


@pytest.mark.parametrize(("cores", "workers"), [(1, 2), (2, 2), (4, 4), (64, 8)])
def test_default_workers_one_per_core_within_bounds(cores, workers):
    assert default_workers(cores) == workers


def test_check_config_prints_the_effective_configuration(monkeypatch, capsys):
    from dashboard.__main__ import main

    monkeypatch.setenv("RETENTION_BATCH_LIMIT", "250")
    monkeypatch.setenv("RETENTION_PORT", "9001")  # the flag wins over the environment
    monkeypatch.setenv("RETENTION_MARGN", "0.4")  # a typo: warned about, not applied
    assert main(["--check-config", "--port", "9002"]) == 0
    out, err = capsys.readouterr()
    assert re.search(r"RETENTION_BATCH_LIMIT\s+= 250\s+\(environment\)", out)
    assert re.search(r"RETENTION_PORT\s+= 9002\s+\(command line\)", out)
    assert re.search(r"RETENTION_MARGIN\s+= 1.0\s+\(default\)", out)
    assert re.search(r"RETENTION_CURRENCY\s+= \$\s+\(default\)", out)
    assert err.splitlines() == [
        "warning: RETENTION_MARGN is not a setting and is ignored; did you mean RETENTION_MARGIN?"
    ]

    monkeypatch.setenv("RETENTION_LOG_FORMAT", "yaml")
    assert main(["--check-config"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: RETENTION_LOG_FORMAT='yaml': expected one of text, json"


def test_without_a_model_start_up_serves_at_once_and_queues_the_training(tmp_path, caplog):
    from analytics import synthetic
    from analytics.store import accounts, lifecycle
    from dashboard import live

    data = tmp_path / "small.csv"
    artifacts.write_table(synthetic.generate(800, seed=3), data)
    config = ServeSettings(
        data=data,
        state_dir=tmp_path / "state",
        models_dir=tmp_path / "models",
        secret_key="s" * 40,
    )
    with caplog.at_level(logging.INFO, logger="dashboard"):
        server = live.start(config, settings_from_env(env={}))
    assert server.serving.version is None  # nothing was trained during start-up
    queued = lifecycle.jobs(server.ctx.engine)
    assert [(j.state, j.options) for j in queued] == [("queued", {"promote": "always"})]
    said = f"serving the views that need none while job {queued[0].id} trains one"
    assert f"no model for small.csv yet: {said}" in caplog.text
    health = server.app.test_client().get("/api/v1/health").get_json()
    assert (health["status"], health["job_id"]) == ("training", queued[0].id)
    # The admin's data and model routes are mounted, and documented.
    accounts.add_user(server.ctx.engine, "ops", "admin", "a-long-password-here")
    _, token = accounts.create_token(server.ctx.engine, "ops")
    doc = (
        server.app.test_client()
        .get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {token}"})
        .get_json()
    )
    assert doc["paths"]["/api/v1/models"]["post"]["responses"].keys() >= {"202", "403", "409"}
    assert (
        "multipart/form-data" in doc["paths"]["/api/v1/datasets"]["post"]["requestBody"]["content"]
    )
    assert {"put", "get"} <= set(doc["paths"]["/api/v1/customers/{customer_id}"])

    fresh = ServeSettings(
        data=DEMO_DATA, state_dir=tmp_path / "other", models_dir=tmp_path / "m2", retrain=False,
        secret_key="s" * 40,
    )  # fmt: skip
    with pytest.raises(ArtifactError, match="not retraining because RETENTION_RETRAIN=0"):
        live.start(fresh, settings_from_env(env={}))


# -- headers, request ids and logs through Flask's test client -------------------------------


@pytest.fixture(scope="module")
def client(demo_workspace):
    from dashboard.app import create_app
    from tests.support import signed_in

    return signed_in(create_app(demo_workspace), "analyst")


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 200),
        ("/login", 200),
        ("/_dash-layout", 200),
        ("/assets/app.css", 200),
        ("/assets/no-such-file.css", 404),
        # an unknown component file is a 404 (issue 11): headers on errors too
        ("/_dash-component-suites/no_such_package/x.js", 404),
    ],
)
def test_security_headers_on_every_response(client, path, status):
    response = client.get(path)
    assert response.status_code == status
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    csp = dict(d.strip().split(" ", 1) for d in headers["Content-Security-Policy"].split(";"))
    assert csp["frame-ancestors"] == "'none'"
    assert csp["default-src"] == "'self'"
    assert "'unsafe-inline'" not in csp["script-src"]
    if not security.ALLOW_EVAL:
        assert "'unsafe-eval'" not in csp["script-src"]


@needs_api
def test_security_headers_on_api_responses(client):
    for response in (client.get("/api/v1/health"), client.get("/api/v1/no-such-route")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_csp_allows_exactly_the_inline_scripts_the_page_has(client):
    response = client.get("/")
    # Dash's IE warning sits in an HTML comment: never executed, so it needs no hash
    html = re.sub(r"<!--.*?-->", "", response.get_data(as_text=True), flags=re.S)
    inline = [
        body
        for attrs, body in re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S)
        if "src=" not in attrs and "application/json" not in attrs and body.strip()
    ]
    assert inline, "the Dash page has no inline script (renderer) any more?"
    script_src = next(
        d for d in response.headers["Content-Security-Policy"].split("; ") if d.startswith("script")
    )
    for body in inline:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in script_src


def test_batch_limit_is_in_the_flask_config(monkeypatch, demo_workspace):
    from dashboard.app import create_app

    monkeypatch.setenv("RETENTION_BATCH_LIMIT", "1234")
    assert create_app(demo_workspace).config[BATCH_LIMIT_KEY] == 1234


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("abc-123.DEF_4:5", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("has space", False),
        ("<script>", False),
        ("-leading-dash", False),
        ("", False),
    ],
)
def test_request_id_kept_only_when_a_safe_short_token(client, incoming, kept):
    response = client.get("/_dash-layout", headers={"X-Request-ID": incoming})
    echoed = response.headers["X-Request-ID"]
    if kept:
        assert echoed == incoming
    else:
        assert re.fullmatch(r"[0-9a-f]{16}", echoed)


def test_access_log_json_line(client):
    stream = _Capture()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    access = logging.getLogger(logs.ACCESS_LOGGER)
    access.addHandler(handler)
    old_level = access.level
    access.setLevel(logging.INFO)
    try:
        client.get("/assets/app.css?customer=secret", headers={"X-Request-ID": "req-42"})
    finally:
        access.removeHandler(handler)
        access.setLevel(old_level)
    line = json.loads(stream.lines[-1])
    assert line["request_id"] == "req-42"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/assets/app.css", 200)
    assert line["duration_ms"] >= 0
    assert {"time", "level", "logger", "message"} <= set(line)
    assert line["logger"] == "dashboard.access"
    assert "secret" not in stream.lines[-1]


def test_text_log_line_carries_the_request_id(client):
    record = logging.LogRecord("dashboard", logging.INFO, __file__, 1, "hello", None, None)
    record.request_id = "req-7"
    assert "[req-7]: hello" in logs.TextFormatter().format(record)
    record = logging.LogRecord("dashboard", logging.INFO, __file__, 1, "outside", None, None)
    assert logs.TextFormatter().format(record).endswith("dashboard: outside")


class _Capture:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines += [line for line in text.splitlines() if line.strip()]

    def flush(self) -> None:
        pass


# -- gunicorn for real -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_models(tmp_path_factory, demo_workspace) -> Path:
    """A models directory holding a model for the demo base, so gunicorn starts in seconds."""
    return save_demo_model(tmp_path_factory.mktemp("serve-models"), demo_workspace)


BROWSER_USER = ("ops-admin", "ops-admin-password-1")


@pytest.fixture(scope="module")
def gunicorn_server(tmp_path_factory, trained_models):
    """gunicorn on a new database; its accounts are made with the CLI while it runs."""
    port = free_port()
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    env = gunicorn_env(trained_models, port)
    proc = start_gunicorn(env, log)
    server = Server(proc, port, log)
    try:
        wait_ready(server)
        name, password = BROWSER_USER
        accounts_cli(env, "users", "add", name, "--role", "admin", password=password)
        token = accounts_cli(env, "tokens", "create", name).strip().splitlines()[-1]
        server.auth = {"Authorization": f"Bearer {token}"}
        server.env = env
        yield server
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def customers(trained_models) -> list[dict]:
    """Demo rows restricted to the model's features (the API refuses unknown fields)."""
    import pandas as pd

    (meta,) = trained_models.glob("*/model.json")
    features = json.loads(meta.read_text())["features"]
    frame = pd.read_csv(DEMO_DATA).head(50)[features]
    return json.loads(frame.to_json(orient="records")) if HAS_API else []


def test_gunicorn_logs_preload_once_and_its_workers(gunicorn_server):
    text = gunicorn_server.log_text()
    assert "no user accounts yet: create the first admin with" in text
    assert text.count("loaded model") == 1  # loaded once, in the master, before forking
    assert "ready: 2 dashboard.worker.RetentionWorker worker(s) x 4 threads" in text
    assert "Traceback" not in text
    typo = "RETENTION_LOG_LEVL is not a setting and is ignored; did you mean RETENTION_LOG_LEVEL?"
    assert [line for line in text.splitlines() if "WARNING" in line and typo in line] != []
    assert text.count(typo) == 1  # said once, by the master


CSRF_VALUE = re.compile(rb'"value":"[\w.-]{40,}"')


def test_every_worker_answers_identically(gunicorn_server):
    paths = ["/_dash-layout"] + (["/api/v1/health"] if HAS_API else [])
    for path in paths:
        bodies = set()
        for i in range(40):  # a new connection each time, so both workers are reached
            status, body = gunicorn_server.get(path, headers={"X-Request-ID": f"same-{i}"})
            assert status == 200
            bodies.add(CSRF_VALUE.sub(b"", body))  # the log-out form's token is per request
        assert len(bodies) == 1, f"{path}: workers disagree"
    # the access log says which process answered each request id
    pids = set(re.findall(r"\[(\d+)\] dashboard\.access \[same-\d+\]", gunicorn_server.log_text()))
    assert pids == {str(p) for p in gunicorn_server.workers()}


def run_load(server: Server, threads: int, per_thread: int, customers, stop_at=None):
    """Each thread alternates the layout, the health check and (with the API) one prediction;
    returns (start, end, ok?, why) per request."""
    results: list[tuple[float, float, bool, str]] = []
    lock = threading.Lock()

    def one(i: int) -> tuple[int, bytes]:
        kind = i % 3
        if kind == 2 and customers:
            return server.post_json("/api/v1/predict", customers[i % len(customers)])
        if kind == 1 and HAS_API:
            return server.get("/api/v1/health")
        return server.get("/_dash-layout")

    def worker(t: int) -> None:
        i = 0
        while (stop_at is None and i < per_thread) or (stop_at and time.monotonic() < stop_at):
            started = time.monotonic()
            try:
                status, _ = one(t + i)
                ok, why = status == 200, str(status)
            # Reset, refused or timed out, or cut mid-body (IncompleteRead) by a killed worker.
            except (OSError, http.client.HTTPException) as exc:
                ok, why = False, repr(exc)
            with lock:
                results.append((started, time.monotonic(), ok, why))
            i += 1

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results


def test_loopback_load_has_no_errors(gunicorn_server, customers):
    results = run_load(gunicorn_server, threads=8, per_thread=50, customers=customers)
    assert len(results) == 400
    failures = [why for *_, ok, why in results if not ok]
    assert failures == []


def test_a_killed_worker_is_replaced_and_service_continues(gunicorn_server, customers):
    before = gunicorn_server.workers()
    assert len(before) == 2
    victim = min(before)
    grace = 1.0
    killed_at: list[float] = []

    def kill_soon() -> None:
        time.sleep(1.0)
        killed_at.append(time.monotonic())
        os.kill(victim, signal.SIGKILL)

    killer = threading.Thread(target=kill_soon)
    killer.start()
    results = run_load(
        gunicorn_server,
        threads=4,
        per_thread=0,
        customers=customers,
        stop_at=time.monotonic() + 5.0,
    )
    killer.join()
    kill_time = killed_at[0]
    # requests in flight on the killed worker may fail; none that ended before it or began
    # after a short grace
    before_kill = [r for r in results if r[1] < kill_time]
    after_grace = [r for r in results if r[0] > kill_time + grace]
    assert before_kill
    assert [why for *_, ok, why in before_kill if not ok] == []
    assert len(after_grace) > 20
    assert [why for *_, ok, why in after_grace if not ok] == []

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now = gunicorn_server.workers()
        if len(now) == 2 and victim not in now:
            break
        time.sleep(0.2)
    now = gunicorn_server.workers()
    assert victim not in now, "the killed worker is still there"
    assert len(now) == 2, "the killed worker was not replaced"
    assert gunicorn_server.get("/_dash-layout")[0] == 200


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx is then an HTTPError the caller reads


def _login(server: Server, name: str, password: str) -> tuple[int, str]:
    """A form login with urllib: (status, the session cookie). Redirects are not followed."""
    import http.cookiejar

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)
    page = opener.open(server.url + "/login", timeout=20).read().decode()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrf_token": token, "username": name, "password": password})
    try:
        status = opener.open(server.url + "/login", data=form.encode(), timeout=20).status
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status, "; ".join(f"{c.name}={c.value}" for c in jar)


@needs_api
def test_accounts_and_roles_through_gunicorn(gunicorn_server):
    """Issue 10's check: without credentials only health answers; each role gets what the table
    says; a manager scoped to region=North sees a strict part and 404 outside it, and cannot run
    a model-view callback; 20 wrong passwords meet 429; the database file holds no password or
    token in plain; the audit log shows the manager's login."""
    server, env = gunicorn_server, gunicorn_server.env
    anonymous = Server(server.proc, server.port, server.log)
    assert anonymous.get("/api/v1/health")[0] == 200
    for path in ("/api/v1/kpis", "/api/v1/model", "/_dash-layout", "/_dash-dependencies"):
        assert anonymous.get(path)[0] == 401, path
    assert anonymous.post_json("/_dash-update-component", {})[0] == 401
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(urllib.request.Request(server.url + "/"), timeout=20)
    assert refused.value.code == 302
    assert refused.value.headers["Location"].startswith("/login")

    secrets = {}
    for role, scope in (("analyst", None), ("manager", "region=North")):
        extra = ("--scope", scope) if scope else ()
        accounts_cli(
            env,
            "users",
            "add",
            f"g-{role}",
            "--role",
            role,
            *extra,
            password=f"g-{role}-password-1",
        )
        secrets[role] = accounts_cli(env, "tokens", "create", f"g-{role}").splitlines()[-1]
    clients = {"admin": server}
    for role, secret in secrets.items():
        clients[role] = Server(server.proc, server.port, server.log, secret)
    table = {
        "/api/v1/kpis": (200, 200, 200),
        "/api/v1/model": (200, 200, 403),
        "/api/v1/model/curves": (200, 200, 403),
        "/api/v1/audit?limit=5": (200, 403, 403),
    }
    for path, codes in table.items():
        got = tuple(clients[r].get(path)[0] for r in ("admin", "analyst", "manager"))
        assert got == codes, path
    everyone = json.loads(clients["analyst"].get("/api/v1/kpis")[1])["customers"]
    north = json.loads(clients["analyst"].get("/api/v1/kpis?region=North")[1])["customers"]
    mine = json.loads(clients["manager"].get("/api/v1/kpis")[1])["customers"]
    assert 0 < mine == north < everyone
    page = json.loads(
        clients["analyst"].get("/api/v1/customers/at-risk?limit=1000&region=South")[1]
    )
    outside = page["items"][0]["customer_id"]
    assert clients["analyst"].get(f"/api/v1/customers/{outside}")[0] == 200
    assert clients["manager"].get(f"/api/v1/customers/{outside}")[0] == 404
    body = {
        "output": "..confusion-matrix.figure...threshold-metrics.children...model-lift.figure..",
        "outputs": [{"id": "confusion-matrix", "property": "figure"}],
        "inputs": [],
        "changedPropIds": [],
    }
    assert clients["manager"].post_json("/_dash-update-component", body)[0] == 403

    status, _ = _login(server, "g-manager", "g-manager-password-1")
    assert status == 302
    codes = [_login(server, "g-analyst", f"wrong-{i}")[0] for i in range(20)]
    assert codes[0] == 401
    assert 429 in codes  # 5 per worker and account: by the 11th try at the latest

    state = Path(env["RETENTION_STATE_DIR"])
    raw = b"".join(p.read_bytes() for p in state.iterdir() if p.is_file())
    assert b"g-manager" in raw
    for plain in ["g-manager-password-1", "g-analyst-password-1", *secrets.values()]:
        assert plain.encode() not in raw
    events = json.loads(server.get("/api/v1/audit?limit=100")[1])["events"]
    assert ("login", "g-manager") in {(e["action"], e["actor"]) for e in events}


@needs_api
def test_batch_predict_through_gunicorn(gunicorn_server, customers):
    status, body = gunicorn_server.post_json("/api/v1/predict", {"customers": customers})
    assert status == 200
    assert json.loads(body)["count"] == len(customers)


def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str]]:
    """Send bytes as they are (no client library fixes them) and read the status and headers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in head[1:])
    return int(head[0].split()[1]), headers


def csp_directives(value: str) -> dict[str, str]:
    return dict(d.strip().split(" ", 1) for d in value.split(";"))


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),  # limit_request_line
        (b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 400),
        (b"BAD\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", 431),
    ],
)
def test_gunicorns_own_error_responses_carry_the_security_headers(
    gunicorn_server, request_bytes, status
):
    """gunicorn answers these itself, before the app: the same headers as the app's answers."""
    code, headers = raw_exchange(gunicorn_server.port, request_bytes)
    assert code == status
    _, app_headers = raw_exchange(
        gunicorn_server.port, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    for name in security.STATIC_HEADERS:
        assert headers[name] == app_headers[name], name
    ours, apps = (csp_directives(h["Content-Security-Policy"]) for h in (headers, app_headers))
    assert ours.keys() == apps.keys()
    assert ours["frame-ancestors"] == "'none'"
    assert ours["default-src"] == "'self'"
    assert "unsafe" not in ours["script-src"]


# -- the browser under the real CSP ----------------------------------------------------------

CSP_PROBE = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push(
    e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':'
    + e.lineNumber + ':' + e.columnNumber);
});
"""


@pytest.mark.browser
@pytest.mark.filterwarnings("ignore:HTTPResponse.getheader:DeprecationWarning")
def test_dashboard_renders_under_the_csp_without_violations(gunicorn_server, dash_br):
    from dash.testing.wait import until
    from selenium.webdriver.common.by import By

    driver = dash_br.driver
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_PROBE})
    driver.get(gunicorn_server.url + "/")  # to the login page, then back
    name, password = BROWSER_USER
    until(lambda: driver.find_elements(By.ID, "username"), 20, msg="no login form")
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    kpi = '[id=\'{"name":"customers","type":"kpi"}\']'
    until(
        lambda: driver.find_elements(By.CSS_SELECTOR, kpi)
        and driver.find_element(By.CSS_SELECTOR, kpi).text == "23,143",
        30,
        msg="the Customers KPI card did not render",
    )
    for tab in driver.find_elements(By.CSS_SELECTOR, "#tabs .nav-link"):  # figures, grids, forms
        driver.execute_script("arguments[0].click()", tab)
        time.sleep(1.0)
    assert driver.execute_script("return window.__cspViolations") == []
    # the value x risk chart is WebGL (plotly draws "WebGL is not supported" if eval is refused)
    if driver.execute_script("return !!document.createElement('canvas').getContext('webgl')"):
        tab = "//a[contains(@class, 'nav-link') and normalize-space()='At-risk customers']"
        driver.execute_script("arguments[0].click()", driver.find_element(By.XPATH, tab))
        until(lambda: "Value x risk" in driver.find_element(By.TAG_NAME, "body").text, 20)
        assert "WebGL is not supported" not in driver.find_element(By.TAG_NAME, "body").text
    console = [e["message"] for e in dash_br.get_logs()]
    assert not [m for m in console if "Content Security Policy" in m or "Refused" in m]

    # the policy is enforced and the probe sees it: an injected inline script does not run
    driver.execute_script(
        "var s = document.createElement('script'); s.textContent = 'window.__injected = 1';"
        "document.body.appendChild(s);"
    )
    until(lambda: driver.execute_script("return window.__cspViolations.length") > 0, 5)
    assert driver.execute_script("return window.__injected") is None


# -- refusals at start, and shutdown ---------------------------------------------------------


def run_to_exit(env: dict[str, str], log: Path, timeout: float = 60) -> tuple[int, list[str]]:
    proc = start_gunicorn(env, log)
    try:
        code = proc.wait(timeout)
    finally:
        stop(proc)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    return code, lines


def test_bad_setting_exits_nonzero_with_one_line(tmp_path, trained_models):
    env = gunicorn_env(trained_models, free_port(), RETENTION_LOG_LEVEL="chatty")
    code, lines = run_to_exit(env, tmp_path / "log")
    assert code != 0
    expected = "expected one of DEBUG, INFO, WARNING, ERROR"
    assert lines == [f"error: RETENTION_LOG_LEVEL='chatty': {expected}"]


def test_corrupt_model_without_retrain_exits_nonzero_with_one_line(tmp_path, trained_models):
    models = tmp_path / "models"
    shutil.copytree(trained_models, models)
    (pipeline,) = models.glob("*/pipeline.joblib")
    pipeline.write_bytes(b"not a model")
    env = gunicorn_env(models, free_port(), RETENTION_RETRAIN="0")
    code, lines = run_to_exit(env, tmp_path / "log")
    assert code != 0
    errors = [line for line in lines if "ERROR" in line]
    assert len(errors) == 1, lines
    assert "cannot start: model:" in errors[0]
    assert "pipeline.joblib was changed after model version" in errors[0]
    assert "RETENTION_RETRAIN=0" in errors[0]
    assert not any("Traceback" in line for line in lines)


def test_sigterm_stops_gracefully_with_status_zero(gunicorn_server):
    """Last of the gunicorn tests: it stops the module's server."""
    workers = gunicorn_server.workers()
    gunicorn_server.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    code = gunicorn_server.proc.wait(35)
    assert code == 0
    assert time.monotonic() - started < 30  # graceful_timeout in gunicorn.conf.py
    assert "Shutting down: Master" in gunicorn_server.log_text()
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection("127.0.0.1", gunicorn_server.port, timeout=2).request("GET", "/")

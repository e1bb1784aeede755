"""Accounts and roles through the app's own test client: who gets what on every API route,
page and Dash callback; a manager's scope; login, logout, timeouts, the rate limit and CSRF;
tokens; single sign-on; the admin pages and the audit log."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import create_engine

from analytics import access
from analytics.services import customers as customer_service
from analytics.services import planner as planner_service
from analytics.store import accounts, db
from dashboard import auth
from dashboard.api.openapi import OPERATIONS
from dashboard.app import create_app, dash_app, served_base
from tests.support import (
    PASSWORD,
    call_operation,
    callback_body,
    csrf_token,
    log_in,
    make_user,
    signed_in,
    success_status,
    token_for,
)

ROLES = ("admin", "analyst", "manager")
CSRF_VALUE = re.compile(r'value="[^"]{40,}"')
NORTH = "region=North"


@pytest.fixture(scope="module")
def app(demo_workspace):
    return create_app(demo_workspace)


@pytest.fixture(scope="module")
def clients(app):
    """One signed-in client per role (the manager scoped to region=North) and an anonymous one."""
    out = {role: signed_in(app, role, NORTH if role == "manager" else None) for role in ROLES}
    out["anonymous"] = app.test_client()
    return out


@pytest.fixture(scope="module")
def data(app):
    return served_base(app)


def region_of(data, customer_id: str) -> str:
    return str(data.scored["region"].iloc[int(data.id_positions[str(customer_id)])])


def some_id(data, region: str) -> str:
    rows = np.flatnonzero(data.scored["region"].astype(str).to_numpy() == region)
    return str(data.scored["customer_id"].iloc[rows[0]])


# -- the table of rights, on every API route --------------------------------------------------


def expected(role: str, op) -> int:
    if op.right is None:
        return 200
    if role == "anonymous":
        return 401
    return success_status(op) if access.allowed(role, op.right) else 403


@pytest.mark.parametrize("role", [*ROLES, "anonymous"])
def test_every_api_route_answers_each_role_as_the_table_says(clients, data, role):
    client = clients[role]
    model = clients["admin"].get("/api/v1/model").get_json()
    record = {name: spec["default"] for name, spec in model["features"].items()}
    seen, ids = {}, {}
    for op in OPERATIONS:
        r = call_operation(client, op, customer_id=some_id(data, "North"), record=record, ids=ids)
        seen[op.operation_id] = r.status_code
        want = expected(role, op)
        assert r.status_code == want, (op.path, role, r.get_data(as_text=True)[:200])
        if want == 403:
            assert "needs the" in r.get_json()["error"]
            assert f"you are {role}" in r.get_json()["error"]
        if want == 401:
            assert "Bearer" in r.headers["WWW-Authenticate"]
    assert len(seen) == len(OPERATIONS)


def test_a_bad_or_missing_token_is_401(app):
    client = app.test_client()
    for header in ("Bearer rt_nope", "Bearer ", "Basic abc", "rt_x"):
        r = client.get("/api/v1/kpis", headers={"Authorization": header})
        assert r.status_code == 401, header


# -- pages and Dash's own routes --------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/_dash-layout", "/_dash-dependencies", "/api/v1/kpis", "/api/v1/openapi.json"]
)
def test_without_a_user_dash_routes_and_the_api_answer_401(clients, path):
    r = clients["anonymous"].get(path)
    assert r.status_code == 401
    assert "log in" in r.get_json()["error"]


def test_without_a_user_pages_redirect_to_login(clients):
    for path in ("/", "/admin/users", "/admin/audit", "/?region=North#planner"):
        r = clients["anonymous"].get(path)
        assert r.status_code == 302, path
        assert r.headers["Location"].startswith("/login?next=")
    assert clients["anonymous"].get("/login").status_code == 200
    assert clients["anonymous"].get("/api/v1/health").status_code == 200
    r = clients["anonymous"].post("/_dash-update-component", json={})
    assert r.status_code == 401


def layout_props(client):
    """The props of every component of the page `client` is served (/_dash-layout)."""
    stack = [client.get("/_dash-layout").get_json()]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            props = node.get("props", {})
            yield props
            stack.extend(v for v in props.values() if isinstance(v, list | dict))


def layout_ids(client) -> set[str]:
    return {
        json.dumps(p["id"], sort_keys=True) if isinstance(p["id"], dict) else p["id"]
        for p in layout_props(client)
        if "id" in p
    }


def layout_text(client) -> str:
    return json.dumps(client.get("/_dash-layout").get_json())


def test_the_layout_is_built_per_role(clients):
    admin, analyst, manager = (layout_ids(clients[r]) for r in ROLES)
    assert "model-roc" in admin
    assert "model-roc" in analyst
    assert "model-roc" not in manager
    assert not any(i.startswith("model-") for i in manager)
    assert "kpi-row" in manager
    assert "predict-result" in manager
    text = layout_text(clients["manager"])
    assert '"Model"' not in text  # not even the tab's label
    assert "region=North" in text  # the menu says whose book this is
    assert "/admin/users" not in text
    assert "/admin/users" in layout_text(clients["admin"])


def filter_options(client, column: str) -> list[str]:
    for props in layout_props(client):
        if props.get("id") == {"type": "filter", "column": column}:
            return [o["value"] if isinstance(o, dict) else o for o in props["options"]]
    raise AssertionError(f"no filter for {column}")


def test_the_browser_is_told_only_of_its_roles_callbacks(clients):
    def outputs(role):
        return " ".join(e["output"] for e in clients[role].get("/_dash-dependencies").get_json())

    assert "model-roc" in outputs("analyst")
    assert "model-roc" not in outputs("manager")
    assert "trend-graph" in outputs("manager")


def test_the_managers_region_filter_offers_their_scope_only(clients):
    assert filter_options(clients["manager"], "region") == ["North"]
    assert "South" in filter_options(clients["analyst"], "region")


def _named(body: dict) -> set[str]:
    outputs = body["outputs"] if isinstance(body["outputs"], list) else [body["outputs"]]
    items = outputs + body["inputs"] + body["state"]
    flat = [i for entry in items for i in (entry if isinstance(entry, list) else [entry])]
    return {i["id"] for i in flat if isinstance(i["id"], str)}


def test_every_callback_is_refused_or_allowed_as_the_table_says(app, clients):
    callbacks = dash_app(app).callback_map
    model_ids = {"model-roc", "confusion-matrix", "model-lift", "threshold-slider"}
    checked = {"model": 0, "views": 0}
    for key, spec in callbacks.items():
        body = callback_body(key, spec)
        named = _named(body)
        is_model = any(i.startswith(("model-", "confusion-", "threshold-")) for i in named) or bool(
            named & model_ids
        )
        for role in (*ROLES, "anonymous"):
            r = clients[role].post("/_dash-update-component", json=body)
            if role == "anonymous":
                assert r.status_code == 401, key
            elif is_model and role == "manager":
                assert r.status_code == 403, key
                assert "model view" in r.get_json()["error"]
            else:
                assert r.status_code not in (401, 403), (key, role)
        checked["model" if is_model else "views"] += 1
    assert clients["analyst"].post("/_dash-update-component", json=[1]).status_code == 400
    assert checked["model"] >= 2
    assert checked["views"] >= 10


def test_a_tab_link_to_the_model_opens_the_overview_for_a_manager():
    from dash import no_update

    from dashboard.callbacks.filters import sync_tab
    from dashboard.layout import tabs_for

    assert sync_tab(None, "#model", "overview", tabs_for("manager")) == (no_update, "overview")
    assert sync_tab(None, "#model", "overview", tabs_for("analyst")) == (no_update, "model")


# -- a manager's scope ------------------------------------------------------------------------


def test_a_managers_scope_cuts_every_view(clients, data):
    manager, analyst = clients["manager"], clients["analyst"]
    mine = manager.get("/api/v1/kpis").get_json()
    north = analyst.get("/api/v1/kpis?region=North").get_json()
    everyone = analyst.get("/api/v1/kpis").get_json()
    assert 0 < mine["customers"] == north["customers"] < everyone["customers"]
    for path in (
        "/api/v1/segments",
        "/api/v1/drivers?factor=plan",
        "/api/v1/trend",
        "/api/v1/cohorts",
        "/api/v1/planner",
        "/api/v1/customers/value-risk",
        "/api/v1/customers/at-risk?limit=1000",
    ):
        got = manager.get(path).get_json()
        want = analyst.get(path + ("&" if "?" in path else "?") + NORTH).get_json()
        got.pop("filters"), want.pop("filters")
        # "All customers" is the manager's book: the base rate is the book's churn rate
        for answer in (got, want):
            answer.pop("base_churn_rate", None)
        if "base_churn_rate" in json.dumps(manager.get(path).get_json()):
            assert manager.get(path).get_json()["base_churn_rate"] == mine["churn_rate"]
        assert got == want, path
    # Filters inside the scope narrow it; outside it they are refused (levels of the scope only)
    r = manager.get("/api/v1/kpis?contract=Monthly")
    assert r.get_json() == {
        **analyst.get("/api/v1/kpis?contract=Monthly&region=North").get_json(),
        "filters": r.get_json()["filters"],
    }
    r = manager.get("/api/v1/kpis?region=South")
    assert r.status_code == 400
    assert "known: North" in r.get_data(as_text=True)


def test_a_customer_outside_the_scope_is_404_like_an_unknown_one(clients, data):
    south, north = some_id(data, "South"), some_id(data, "North")
    r = clients["manager"].get(f"/api/v1/customers/{south}")
    unknown = clients["manager"].get("/api/v1/customers/no-such-id")
    assert r.status_code == unknown.status_code == 404
    assert clients["manager"].get(f"/api/v1/customers/{north}").status_code == 200
    assert clients["analyst"].get(f"/api/v1/customers/{south}").status_code == 200
    page = clients["manager"].get("/api/v1/customers/at-risk?limit=1000").get_json()
    rows = page["items"]
    assert rows
    assert {region_of(data, r["customer_id"]) for r in rows} == {"North"}


def test_exports_hold_the_scope(data):
    scope = access.Scope.parse(NORTH)
    with access.scoped(scope):
        text, rows = customer_service.at_risk_csv(data, "")
        assumptions = planner_service.Assumptions.defaults(data.ws.settings)
        contacts = planner_service.contacts_frame(data, "", assumptions)
    _, all_rows = customer_service.at_risk_csv(data, "")
    assert 0 < rows < all_rows
    ids = [line.split(",")[0] for line in text.splitlines()[1:]]
    assert {region_of(data, i) for i in ids} == {"North"}
    assert len(contacts)
    assert {region_of(data, i) for i in contacts["customer_id"]} == {"North"}


def test_a_scope_that_selects_nobody_is_refused_with_a_reason(app):
    client = signed_in(app, "manager", "region=Atlantis")
    r = client.get("/api/v1/kpis")
    assert r.status_code == 403
    assert "selects nobody" in r.get_json()["error"]
    client = signed_in(app, "manager", "no_such_column=x")
    assert client.get("/api/v1/kpis").status_code == 403


# -- login, logout, sessions ------------------------------------------------------------------


@pytest.fixture
def fresh(demo_workspace):
    """A new app per test (its own limiter counts and sessions), with short limits."""

    def make(**changes):
        cfg = auth.AuthConfig.for_tests(login_attempts=3, **changes)
        return create_app(demo_workspace, auth_config=cfg)

    return make


def test_login_sets_a_safe_session_cookie_and_opens_the_page(fresh):
    server = fresh()
    name = make_user(server, "analyst")
    client = server.test_client()
    r = log_in(client, name, query_string={"next": "/?region=North"})
    assert r.status_code == 302
    assert r.headers["Location"] == "/?region=North"
    cookie = next(c for c in r.headers.getlist("Set-Cookie") if c.startswith("retention_session"))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie
    assert client.get("/").status_code == 200
    r = client.get("/api/v1/kpis")
    assert r.status_code == 200  # the API takes the session too
    assert r.headers["Cache-Control"] == "no-store"


def test_the_session_cookie_is_secure_behind_a_tls_proxy(fresh):
    server = fresh(trusted=auth.networks("127.0.0.1"))
    name = make_user(server, "analyst")
    client = server.test_client()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    r = client.post(
        "/login",
        data={"csrf_token": token, "username": name, "password": PASSWORD},
        headers={"X-Forwarded-Proto": "https"},
    )
    cookie = next(c for c in r.headers.getlist("Set-Cookie") if c.startswith("retention_session"))
    assert "Secure" in cookie


def test_login_over_https_checks_the_referer_too(fresh):
    server = fresh()
    name = make_user(server, "analyst")
    client = server.test_client()
    https = "https://retention.example"
    page = client.get("/login", base_url=https).get_data(as_text=True)
    form = {"csrf_token": csrf_token(page), "username": name, "password": PASSWORD}
    r = client.post("/login", data=form, base_url=https)
    assert r.status_code == 400  # no Referer: refused (another site's form has none of ours)
    r = client.post("/login", data=form, base_url=https, headers={"Referer": https + "/login"})
    assert r.status_code == 302
    cookie = next(c for c in r.headers.getlist("Set-Cookie") if c.startswith("retention_session"))
    assert "Secure" in cookie


def test_a_wrong_password_and_an_unknown_account_get_the_same_answer(fresh):
    server = fresh()
    name = make_user(server, "analyst")
    wrong = log_in(server.test_client(), name, "wrong-password-xx")
    unknown = log_in(server.test_client(), "nobody-here", "wrong-password-xx")
    assert wrong.status_code == unknown.status_code == 401
    assert auth.WRONG in wrong.get_data(as_text=True)

    def page(r, who):
        return CSRF_VALUE.sub("", r.get_data(as_text=True).replace(who, ""))

    assert page(wrong, name) == page(unknown, "nobody-here")


def test_login_refuses_a_missing_csrf_token_and_an_offsite_next(fresh):
    server = fresh()
    name = make_user(server, "analyst")
    client = server.test_client()
    r = client.post("/login", data={"username": name, "password": PASSWORD})
    assert r.status_code == 400
    for target in ("//evil.example/x", "https://evil.example/", "javascript:alert(1)"):
        r = log_in(server.test_client(), name, query_string={"next": target})
        assert r.headers["Location"] == "/", target


def test_wrong_passwords_are_limited_per_account_with_retry_after(fresh):
    server = fresh()  # 3 per account, 12 per address
    name = make_user(server, "analyst")
    client = server.test_client()
    codes = [log_in(client, name, "wrong-password-xx").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    r = log_in(client, name)  # the right password waits too
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0
    assert "Too many attempts" in r.get_data(as_text=True)
    # another account from the same address is not locked by this one
    other = make_user(server, "analyst")
    assert log_in(client, other).status_code == 302
    # an unknown account is met the same way, so 429 does not tell that an account exists
    codes = [log_in(client, "ghost-user", "wrong-password-xx").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]


def test_wrong_passwords_are_limited_per_address(fresh):
    server = fresh()
    client = server.test_client()
    codes = [log_in(client, f"someone-{i}", "wrong-password-xx").status_code for i in range(13)]
    assert codes[:12] == [401] * 12
    assert codes[12] == 429


def test_logout_needs_its_csrf_token_and_ends_the_session(fresh):
    server = fresh()
    name = make_user(server, "analyst")
    client = server.test_client()
    log_in(client, name)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400  # no token: another site cannot do it
    page = client.get("/admin/users")  # analyst: forbidden, the session still alive
    assert page.status_code == 403
    token = csrf_token(client.get("/login").get_data(as_text=True))
    r = client.post("/logout", data={"csrf_token": token})
    assert r.status_code == 302
    assert client.get("/").status_code == 302
    actions = [e["action"] for e in accounts.events(server.extensions[auth.STATE_DB], 10)]
    assert actions[:2] == ["logout", "login"]


def test_logout_ends_the_session_on_the_server_so_an_earlier_copy_of_the_cookie_fails(fresh):
    # A callback answered after the logout sets the old cookie again (the browser test saw it):
    # the session row has ended, so that cookie, like any copy of it, no longer logs anyone in.
    server = fresh()
    name = make_user(server, "analyst")
    client = server.test_client()
    log_in(client, name)
    copy = client.get_cookie(auth.SESSION_COOKIE).value
    other = server.test_client()
    log_in(other, name)  # the same user in another browser keeps their session
    token = csrf_token(client.get("/login").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    client.set_cookie(auth.SESSION_COOKIE, copy)
    assert client.get("/").status_code == 302
    assert client.get("/api/v1/kpis").status_code == 401
    assert other.get("/api/v1/kpis").status_code == 200
    # the table keeps no key in clear, only hashes, and an ended row is removed at a later login
    engine = server.extensions[auth.STATE_DB]
    with engine.connect() as connection:
        hashes = [r[0] for r in connection.execute(sa.text("SELECT key_hash FROM login_sessions"))]
    assert len(hashes) == 2
    assert all(len(h) == 64 for h in hashes)
    log_in(server.test_client(), name)
    with engine.connect() as connection:
        ended = connection.execute(
            sa.text("SELECT count(*) FROM login_sessions WHERE ended_at IS NOT NULL")
        ).scalar()
    assert ended == 0


@pytest.mark.parametrize(("minutes", "ends"), [(29, False), (31, True), (60 * 13, True)])
def test_idle_and_absolute_timeouts(fresh, monkeypatch, minutes, ends):
    server = fresh()  # 30 minutes idle, 12 hours absolute
    name = make_user(server, "analyst")
    client = server.test_client()
    log_in(client, name)
    import time as real_time

    start = real_time.time()
    if minutes > 60:  # stay active every 20 minutes: only the absolute limit ends it
        for step in range(1, minutes // 20 + 1):
            monkeypatch.setattr(auth.time, "time", lambda s=step: start + s * 20 * 60)
            r = client.get("/api/v1/health")
            if step * 20 < 12 * 60:
                assert client.get("/api/v1/kpis").status_code == 200, step
    monkeypatch.setattr(auth.time, "time", lambda: start + minutes * 60)
    r = client.get("/")
    if ends:
        assert r.status_code == 302
        assert "expired=1" in r.headers["Location"]
        assert "session has ended" in client.get(r.headers["Location"]).get_data(as_text=True)
    else:
        assert r.status_code == 200


def test_a_password_reset_or_disable_ends_existing_sessions(fresh):
    server = fresh()
    engine = server.extensions[auth.STATE_DB]
    name = make_user(server, "analyst")
    client = server.test_client()
    log_in(client, name)
    assert client.get("/api/v1/kpis").status_code == 200
    accounts.change_user(engine, name, password="another-password-456", actor="test")
    assert client.get("/api/v1/kpis").status_code == 401
    log_in(client, name, "another-password-456")
    accounts.change_user(engine, name, disabled=True, actor="test")
    assert client.get("/api/v1/kpis").status_code == 401
    assert log_in(server.test_client(), name, "another-password-456").status_code == 401


def test_role_changes_apply_at_the_next_request(fresh):
    server = fresh()
    engine = server.extensions[auth.STATE_DB]
    client = signed_in(server, "analyst")
    assert client.get("/api/v1/model").status_code == 200
    accounts.change_user(engine, client.username, role="manager", actor="test")
    assert client.get("/api/v1/model").status_code == 403


# -- CSRF on Dash callbacks -------------------------------------------------------------------


def test_a_cookie_session_needs_the_csrf_header_a_token_does_not(fresh):
    server = fresh()
    name = make_user(server, "analyst")
    client = server.test_client()
    log_in(client, name)
    client.get("/_dash-layout")  # sets the _csrf_token cookie the renderer echoes
    cookie = client.get_cookie(auth.CSRF_COOKIE)
    assert cookie is not None
    assert not cookie.http_only
    key, spec = next(
        (k, v) for k, v in dash_app(server).callback_map.items() if k == "cohort-graph.figure"
    )
    body = callback_body(key, spec)
    assert client.post("/_dash-update-component", json=body).status_code == 400
    r = client.post("/_dash-update-component", json=body, headers={"X-CSRFToken": cookie.value})
    assert r.status_code not in (400, 401, 403)
    r = client.post("/api/v1/predict", json={})  # cookie-authenticated POST: checked too
    assert r.status_code == 400
    assert "CSRF" in r.get_json()["error"]
    token_client = signed_in(server, "analyst")
    assert token_client.post("/_dash-update-component", json=body).status_code not in (400, 403)


# -- tokens -----------------------------------------------------------------------------------


def test_tokens_expire_and_are_revoked(fresh, monkeypatch):
    server = fresh()
    engine = server.extensions[auth.STATE_DB]
    name = make_user(server, "analyst")
    secret = token_for(server, name, expires_days=1)
    client = server.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/kpis", headers=headers).status_code == 200
    later = accounts.now() + accounts.timedelta(days=1, seconds=1)
    monkeypatch.setattr(accounts, "now", lambda: later)
    assert client.get("/api/v1/kpis", headers=headers).status_code == 401
    monkeypatch.undo()
    other = token_for(server, name)
    token_id = accounts.tokens(engine, name)[0].id
    accounts.revoke_token(engine, token_id, actor="test")
    r = client.get("/api/v1/kpis", headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 401
    assert "revoked" in r.get_json()["error"]


# -- single sign-on through a trusted proxy ---------------------------------------------------


def test_single_sign_on_from_a_trusted_proxy_only(fresh):
    server = fresh(
        mode="proxy",
        trusted=auth.networks("10.0.0.5"),
        group_roles=auth.group_roles("retention-admins=admin,sales=manager,analysts=analyst"),
    )
    client = server.test_client()
    sso = {"X-Forwarded-User": "grace", "X-Forwarded-Groups": "staff,analysts"}
    proxy = {"REMOTE_ADDR": "10.0.0.5"}
    r = client.get("/api/v1/model", headers=sso, environ_base=proxy)
    assert r.status_code == 200
    r = client.get("/api/v1/kpis", headers=sso, environ_base={"REMOTE_ADDR": "10.0.0.6"})
    assert r.status_code == 401  # the same headers from anyone else mean nothing
    r = client.get(
        "/api/v1/kpis", headers={**sso, "X-Forwarded-Groups": "staff"}, environ_base=proxy
    )
    assert r.status_code == 403
    r = client.get(
        "/api/v1/model", headers={**sso, "X-Forwarded-Groups": "sales"}, environ_base=proxy
    )
    assert r.status_code == 403  # the role follows the groups at every request
    users = {u.username: u for u in accounts.users(server.extensions[auth.STATE_DB])}
    assert users["grace"].role == "manager"
    assert not users["grace"].has_password
    r = client.post("/api/v1/predict", json={}, headers=sso, environ_base=proxy)
    assert r.status_code == 400  # the proxy's cookie is ambient: a state change needs the token
    assert "CSRF" in r.get_json()["error"]
    assert "single sign-on" in client.get("/login").get_data(as_text=True)


# -- admin pages and the audit log ------------------------------------------------------------


def _admin_session(server):
    name = make_user(server, "admin")
    client = server.test_client()
    log_in(client, name)
    return client, name


def test_admin_pages_add_change_and_audit_users(fresh):
    server = fresh()
    engine = server.extensions[auth.STATE_DB]
    client, admin = _admin_session(server)
    page = client.get("/admin/users").get_data(as_text=True)
    form = {
        "csrf_token": csrf_token(page),
        "add-username": "mia",
        "add-role": "manager",
        "add-scope": NORTH,
        "add-password": "mias-password-123",
    }
    assert client.post("/admin/users", data=form).status_code == 302
    mia = {u.username: u for u in accounts.users(engine)}["mia"]
    assert str(mia.scope) == NORTH
    bad = {**form, "add-username": "zed", "add-role": "analyst"}
    r = client.post("/admin/users", data=bad)
    assert r.status_code == 400
    assert "only a manager has a scope" in r.get_data(as_text=True)
    change = {
        "csrf_token": csrf_token(page),
        f"u{mia.id}-role": "analyst",
        f"u{mia.id}-scope": "",
        f"u{mia.id}-disabled": "y",
        f"u{mia.id}-password": "",
    }
    assert client.post("/admin/users/mia", data=change).status_code == 302
    mia = {u.username: u for u in accounts.users(engine)}["mia"]
    assert (mia.role, mia.scope, mia.disabled) == ("analyst", None, True)
    assert client.post("/admin/users/mia", data={**change, "csrf_token": ""}).status_code == 400
    events = accounts.events(engine, 20)
    mine = [(e["action"], e["target"]) for e in events if e["actor"] == admin]
    assert ("user.add", "mia") in mine
    assert ("user.role", "mia") in mine
    assert ("user.disable", "mia") in mine
    assert ("user.scope", "mia") in mine
    audit = client.get("/admin/audit").get_data(as_text=True)
    assert "user.disable" in audit
    assert "mia" in audit


def test_admin_token_page_shows_a_token_once_and_revokes_it(fresh):
    server = fresh()
    engine = server.extensions[auth.STATE_DB]
    client, _ = _admin_session(server)
    other = make_user(server, "analyst")
    page = client.get("/admin/tokens").get_data(as_text=True)
    r = client.post(
        "/admin/tokens",
        data={
            "csrf_token": csrf_token(page),
            "tok-username": other,
            "tok-label": "crm",
            "tok-expires_days": "30",
        },
    )
    text = r.get_data(as_text=True)
    secret = text.split('id="new-token" class="user-select-all">')[1].split("<")[0]
    assert secret.startswith("rt_")
    assert secret not in client.get("/admin/tokens").get_data(as_text=True)
    assert (
        server.test_client()
        .get("/api/v1/kpis", headers={"Authorization": f"Bearer {secret}"})
        .status_code
        == 200
    )
    token_id = accounts.tokens(engine, other)[0].id
    r = client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf_token(page)})
    assert r.status_code == 302
    assert accounts.tokens(engine, other)[0].status == "revoked"


def test_the_audit_api_shows_logins_exports_and_counts(fresh, data):
    server = fresh()
    admin = signed_in(server, "admin")
    manager = make_user(server, "manager", NORTH)
    browser = server.test_client()
    log_in(browser, manager)
    log_in(server.test_client(), manager, "wrong-password-xx")
    predict = admin.get("/api/v1/model").get_json()["features"]
    record = {name: spec["default"] for name, spec in predict.items()}
    admin.post("/api/v1/predict", json={"customers": [record, record, record]})
    got = admin.get("/api/v1/audit?limit=5").get_json()
    assert got["limit"] == 5
    assert len(got["events"]) <= 5
    actions = [(e["action"], e["target"]) for e in got["events"]]
    assert ("login", manager) in actions
    assert ("login.failed", manager) in actions
    assert {"action": "predict", "count": 3} | {
        "day": got["usage"][0]["day"],
        "username": admin.username,
    } in got["usage"]
    assert admin.get("/api/v1/audit?limit=0").status_code == 400
    assert admin.get("/api/v1/audit?limit=5&x=1").status_code == 400
    assert signed_in(server, "analyst").get("/api/v1/audit").status_code == 403


def test_an_export_through_dash_is_audited_with_filters_scope_and_rows(fresh):
    server = fresh()
    engine = server.extensions[auth.STATE_DB]
    client = signed_in(server, "manager", NORTH)
    key, spec = next(
        (k, v) for k, v in dash_app(server).callback_map.items() if k == "plan-download.data"
    )
    body = callback_body(key, spec)
    values = {
        "plan-export": 1,
        "filter-query": "?contract=Monthly",
        "plan-save-rate": 0.25,
        "plan-cost": 10,
        "plan-margin": 1.0,
        "plan-discount": 0.01,
    }
    for item in body["inputs"] + body["state"]:
        item["value"] = values.get(item["id"], item["value"])
    body["changedPropIds"] = ["plan-export.n_clicks"]
    r = client.post("/_dash-update-component", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    event = accounts.events(engine, 1, ["export"])[0]
    assert event["actor"] == client.username
    assert event["details"]["filters"] == "?contract=Monthly"
    assert event["details"]["scope"] == NORTH
    assert event["details"]["rows"] > 0


# -- secrets and first start ------------------------------------------------------------------


def test_no_secret_key_no_start():
    from analytics.config import ServeSettings

    with pytest.raises(auth.AuthSetupError, match="RETENTION_SECRET_KEY is not set"):
        auth.AuthConfig.from_settings(ServeSettings())
    with pytest.raises(auth.AuthSetupError, match="TRUSTED_PROXIES"):
        auth.AuthConfig.from_settings(ServeSettings(auth="proxy"), "k" * 40)


def test_the_database_file_holds_no_password_or_token_in_plain(tmp_path):
    url = db.database_url(tmp_path, None)
    engine, _ = db.open_state(url)
    password = "plain-password-to-find"
    accounts.add_user(engine, "ops", "admin", password, actor="test")
    _, secret = accounts.create_token(engine, "ops")
    accounts.authenticate(engine, "ops", password)
    engine.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"ops" in raw  # the file is the one written
    assert password.encode() not in raw
    assert secret.encode() not in raw
    assert secret[3:].encode() not in raw


def test_demo_accounts_get_new_passwords_each_start(tmp_path, data):
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    db.upgrade(engine)
    first = auth.demo_accounts(engine, data.allowed)
    second = auth.demo_accounts(engine, data.allowed)
    assert [n for n, _, _ in first] == ["demo-admin", "demo-analyst", "demo-manager"]
    assert first[2][1] == "manager, region=North"
    assert {p for _, _, p in first}.isdisjoint({p for _, _, p in second})
    assert accounts.authenticate(engine, "demo-manager", second[2][2]).scope == access.Scope(
        "region", ("North",)
    )
    assert accounts.authenticate(engine, "demo-manager", first[2][2]) is None

"""The over-time surfaces (issue 13) as an attacker with each role would use them: a scoped
manager never sees figures of customers outside their scope (the snapshot list, monitoring,
alert deliveries), bad input is a clear 4xx and never a 500 (campaign bodies, alert rule
names), a snapshot file changed on disk is refused without breaking the live views, a
campaign cannot be back-dated to a snapshot whose outcome is known, and a webhook's secret
never reaches the delivery log, even when the receiver echoes its path."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from analytics import access, alerting, datasets, snapshots
from analytics import columns as C
from analytics.config import serve_settings_from_env, settings_from_env
from analytics.history import monitoring as monitoring_module
from analytics.services import history as service
from analytics.store import accounts, db, lifecycle
from analytics.store import snapshots as store
from dashboard.api import history as history_api
from dashboard.app import served_base
from tests.support import over_time_year, role_clients

SETTINGS = settings_from_env(env={})
CUSTOMERS = 2_000  # the demo business's year at a small size: about 20 s
SCOPE = "region=North"


def build_year(root: Path) -> dict:
    """The demo's year (tests.support.over_time_year)."""
    return over_time_year(root, CUSTOMERS)


@pytest.fixture(scope="module")
def year(tmp_path_factory):
    return build_year(tmp_path_factory.mktemp("over-time-security"))


@pytest.fixture(scope="module")
def clients(year):
    return role_clients(year["app"], SCOPE)


def answer(response, status: int = 200) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response.get_json()


def snapshot_frames(year) -> dict[str, object]:
    """Each listed as_of's whole snapshot, read straight from the store."""
    history = year["history"]
    return {
        i.label: store.read_frame(year["state"], i) for i in history.chosen(year["model"].version)
    }


# -- the snapshot list ------------------------------------------------------------------------


def test_a_scoped_manager_gets_the_snapshot_list_with_their_scopes_figures(year, clients):
    """The list's customers and churn were the whole base's for everyone: a manager scoped to
    region=North read how many customers the company had and its churn, month by month."""
    frames = snapshot_frames(year)
    mine = answer(clients["manager"].get("/api/v1/snapshots"))["snapshots"]
    whole = answer(clients["analyst"].get("/api/v1/snapshots"))["snapshots"]
    assert [s["as_of"] for s in mine] == [s["as_of"] for s in whole]
    for item, full in zip(mine, whole, strict=True):
        frame = frames[item["as_of"]]
        north = frame[frame["region"].astype(str) == "North"]
        assert 0 < item["customers"] == len(north) < full["customers"] == len(frame)
        assert item["predicted_churn"] == pytest.approx(north[C.P_CHURN].mean())
        if full["realised_churn"] is not None:
            assert item["realised_churn"] == pytest.approx(north[C.CHURNED].mean())


@pytest.mark.parametrize(
    "value",
    ["20261031", "2026-W44-6", " 2026-10-31", "２０２６-10-31", "2026-10-31\x00", "2026-13-01",
     "2026-10-31T00:00", "x" * 4000, ""],
)  # fmt: skip
def test_a_snapshot_is_named_by_its_date_as_yyyy_mm_dd_only(year, clients, value):
    """?snapshot= went through date.fromisoformat after strip(), which also reads 20261031 and
    week dates (2026-W44-6 is 2026-10-31), and the 400 quoted the whole value back (4 KB
    under gunicorn's request line, more elsewhere). Now only YYYY-MM-DD in ASCII digits names
    a snapshot; anything else is a 400 quoting at most 40 characters of it."""
    assert year["history"].chosen(year["model"].version)[-1].label == "2026-10-31"
    client = clients["manager"]
    assert answer(client.get("/api/v1/kpis?snapshot=2026-10-31"))["as_of"] == "2026-10-31"
    for path in ("/api/v1/kpis", "/api/v1/customers/at-risk", "/api/v1/revenue"):
        refused = answer(client.get(path, query_string={"snapshot": value}), 400)
        message = refused["errors"][0]["message"]
        assert refused["errors"][0]["field"] == "snapshot"
        assert message.startswith("expected a date YYYY-MM-DD, got ")
        assert len(message) < 100


def test_a_snapshot_of_another_dataset_without_the_scopes_column_is_a_400(year, clients):
    """The snapshots of every dataset are listed (an admin may move the product to other data).
    One of a table without `region` was a 500 for a manager scoped to region=North on
    ?snapshot= (the scope's column is not in that base) and on revenue, which reads every
    snapshot (and for anyone filtering by region). Now ?snapshot= says the scope selects nobody
    there (400), and revenue counts nobody of the selection in it."""
    engine, state = year["engine"], year["state"]
    first = year["history"].chosen(year["model"].version)[0]
    other = store.read_frame(state, first).drop(columns=["region"])
    other[C.CUSTOMER_ID] = "Z" + other[C.CUSTOMER_ID].astype(str)
    table = pd.DataFrame({C.CUSTOMER_ID: ["a", "b"], C.CHURNED: [0, 1], C.TENURE: [3, 4]})
    info, _, _ = datasets.add_frame(engine, state, table, "another table", SETTINGS)
    summary = {**first.summary, "categorical": [c for c in first.summary["categorical"]
                                                if c != "region"]}  # fmt: skip
    when = pd.Timestamp("2025-06-30").date()
    snap, _ = store.add_snapshot(engine, state, other, as_of=when, model_version="other-v1",
                                 dataset_id=info.id, kind="manual", summary=summary)  # fmt: skip
    app = year["app"]
    app.extensions[history_api.EXTENSION] = service.History(engine, state, SETTINGS)
    manager, analyst = clients["manager"], clients["analyst"]
    try:
        for path in ("/api/v1/kpis", "/api/v1/customers/at-risk", "/api/v1/planner"):
            refused = answer(manager.get(f"{path}?snapshot=2025-06-30"), 400)
            assert refused["errors"][0]["field"] == "snapshot"
            assert "region" in refused["errors"][0]["message"]
        assert answer(analyst.get("/api/v1/kpis?snapshot=2025-06-30"))["customers"] == len(other)
        for client, query in ((manager, ""), (analyst, "?region=North")):
            months = answer(client.get(f"/api/v1/revenue{query}"))["months"]
            assert months[0]["month"] == "2025-06"
            assert months[0]["mrr_start"] == 0  # nobody of the selection in that table
        listed = answer(manager.get("/api/v1/snapshots"))["snapshots"]
        assert next(s for s in listed if s["as_of"] == "2025-06-30")["customers"] == 0
        answer(manager.get("/api/v1/monitoring"))
    finally:
        app.extensions[history_api.EXTENSION] = year["history"]
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM snapshots WHERE id = :id"), {"id": snap.id})
        (Path(state) / snap.path).unlink()


# -- a snapshot file changed on disk ------------------------------------------------------------


def test_a_changed_snapshot_file_is_refused_and_the_live_views_go_on(year, clients):
    """One snapshot file changed on disk made the live KPIs, movers, revenue and monitoring
    answer 500 (each reads the previous or every snapshot). Now that snapshot alone is refused,
    ?snapshot=<it> is a 400 saying why, the other views leave it out and say so, and nothing
    is cached: once the file is back, it is served again."""
    app, client = year["app"], clients["analyst"]
    fresh = service.History(year["engine"], year["state"], SETTINGS)  # nothing read yet
    chosen = fresh.chosen(year["model"].version)
    previous = chosen[-2]  # the live snapshot's previous one: every live view reads it
    campaign = store.campaign(year["engine"], "demo-202605")
    source = store.snapshot(year["engine"], campaign.snapshot_id)  # the demo campaign's draw
    outcome = next(i for i in chosen if i.as_of > campaign.as_of)  # and what measures it
    damaged = {i.label: Path(year["state"]) / i.path for i in (previous, source, outcome)}
    kept = {label: path.read_bytes() for label, path in damaged.items()}
    app.extensions[history_api.EXTENSION] = fresh
    try:
        for path, original in zip(damaged.values(), kept.values(), strict=True):
            changed = bytearray(original)
            changed[len(changed) // 2] ^= 1
            path.write_bytes(bytes(changed))
        kpis = answer(client.get("/api/v1/kpis"))
        assert kpis["vs_previous"] is None
        assert f"snapshot of {previous.label} cannot be read" in kpis["vs_previous_note"]
        refused = answer(client.get(f"/api/v1/kpis?snapshot={previous.label}"), 400)
        assert refused["errors"][0]["field"] == "snapshot"
        assert "changed since it was written" in refused["errors"][0]["message"]
        movers = answer(client.get("/api/v1/customers/movers"))
        assert movers["items"] == []
        assert "cannot be read" in movers["note"]
        revenue = answer(client.get("/api/v1/revenue"))
        months = {m["month"] for m in revenue["months"]}
        # a month runs between consecutive snapshots: none next to a refused one
        at = {i.label: n for n, i in enumerate(chosen)}
        readable = [i for i in chosen if i.label not in damaged]
        expected = {a.label[:7] for a, b in pairwise(readable) if at[b.label] == at[a.label] + 1}
        assert months == expected
        assert len(months) == len(chosen) - 1 - 5
        assert "cannot be read" in revenue["note"]
        monitoring = answer(client.get("/api/v1/monitoring"))
        assert {s["as_of"] for s in monitoring["snapshots"]}.isdisjoint(damaged)
        assert "cannot be read" in monitoring["note"]
        listed = answer(client.get("/api/v1/campaigns"))["campaigns"]
        demo = next(c for c in listed if c["campaign_id"] == "demo-202605")
        assert demo["measured_save_rate"] is None
        assert "cannot be read" in demo["note"]
        mine = answer(clients["manager"].get("/api/v1/campaigns"))["campaigns"]
        demo = next(c for c in mine if c["campaign_id"] == "demo-202605")
        assert (demo["treated"], demo["control"], demo["measured_save_rate"]) == (0, 0, None)
        plan = answer(client.get("/api/v1/planner"))
        assert plan["save_rate_source"]["used"] == "assumed"
    finally:
        for label, path in damaged.items():
            path.write_bytes(kept[label])
        app.extensions[history_api.EXTENSION] = year["history"]
    app.extensions[history_api.EXTENSION] = fresh
    try:
        back = answer(client.get(f"/api/v1/kpis?snapshot={previous.label}"))
        assert back["as_of"] == previous.label
        assert answer(client.get("/api/v1/kpis"))["vs_previous"] is not None
    finally:
        app.extensions[history_api.EXTENSION] = year["history"]


# -- campaigns --------------------------------------------------------------------------------


def campaign_ids(year) -> set[str]:
    return {c.id for c in store.campaigns(year["engine"])}


def create_directly(year, body: dict, query: str = "") -> dict:
    """services.history.create_campaign on the live base, as the dashboard's form calls it."""
    live = served_base(year["app"])
    return service.create_campaign(year["history"], live, query, body, "ada", None)


@pytest.mark.parametrize("seed", [2**31, 2**40, 10**30])
def test_a_campaign_seed_the_database_cannot_hold_is_a_422(year, clients, seed):
    """The body took any seed >= 1: above 2**63 SQLite raised OverflowError and above 2**31
    PostgreSQL's integer column refused it, a 500 either way. Now it is a 422 naming the
    seed, before anything is written; the largest seed that fits is taken."""
    client, before = clients["analyst"], campaign_ids(year)
    body = {"name": "s", "limit": 5, "seed": seed}
    refused = answer(client.post("/api/v1/campaigns", json=body), 422)
    assert refused["errors"][0]["field"] == "seed"
    with pytest.raises(service.InvalidInput, match="seed"):
        create_directly(year, body)
    assert campaign_ids(year) == before
    body["seed"] = service.MAX_SEED
    fits = answer(client.post("/api/v1/campaigns", json=body), 201)
    assert store.campaign(year["engine"], fits["campaign_id"]).seed == service.MAX_SEED


@pytest.mark.parametrize(
    "name", ["Winback\x00", "Winback\r\nBcc: x@example.com", "a\u2028b", "a\x85b"]
)
def test_a_campaign_name_is_one_line_of_plain_text(year, clients, name):
    """A name with NUL was a 500 on PostgreSQL (text refuses it) and line breaks were stored
    as they came, to be shown in every list and audit event. Now the API answers 422 and the
    dashboard's form says why, and nothing is written."""
    before = campaign_ids(year)
    refused = answer(clients["manager"].post("/api/v1/campaigns", json={"name": name, "limit": 5}),
                     422)  # fmt: skip
    assert refused["errors"][0]["field"] == "name"
    assert "one line" in refused["errors"][0]["message"]
    with pytest.raises(service.InvalidInput, match="one line"):
        create_directly(year, {"name": name, "limit": 5})
    assert campaign_ids(year) == before


def test_a_campaign_cannot_be_back_dated_to_a_snapshot_whose_outcome_is_known(year, clients):
    """POST /api/v1/campaigns?snapshot=<an old date> drew the campaign from that snapshot: its
    outcome being known, the campaign was measured at once, a save rate nobody's contact caused,
    and the planner then offered it to everyone as measured. The dashboard refused a past
    snapshot; now the service does, for the API too."""
    client, before = clients["analyst"], campaign_ids(year)
    source = answer(client.get("/api/v1/planner"))["save_rate_source"]
    for when in (s.label for s in year["history"].chosen(year["model"].version)[-4:]):
        refused = answer(client.post(f"/api/v1/campaigns?snapshot={when}",
                                     json={"name": "Back-dated", "limit": 40}), 400)  # fmt: skip
        assert refused["errors"][0]["field"] == "snapshot"
        assert "contacts customers now" in refused["errors"][0]["message"]
    assert campaign_ids(year) == before
    assert answer(client.get("/api/v1/planner"))["save_rate_source"] == source


def test_a_campaign_is_at_most_max_campaign_customers(year, clients, monkeypatch):
    """`limit` had no upper bound and the planner's best N none either: a campaign of a whole
    million-row base wrote an ORM object per member in the request (200,000 took 40 s and
    400 MB). Now a campaign holds at most MAX_CAMPAIGN customers (422 / InvalidInput naming
    the limit, nothing written) and its members are written in bulk."""
    client, before = clients["analyst"], campaign_ids(year)
    for limit in (service.MAX_CAMPAIGN + 1, 10**30):
        refused = answer(client.post("/api/v1/campaigns", json={"name": "All", "limit": limit}),
                         422)  # fmt: skip
        assert refused["errors"][0]["field"] == "limit"
    monkeypatch.setattr(service, "MAX_CAMPAIGN", 50)
    with pytest.raises(service.InvalidInput, match="1 to 50, got 51"):
        create_directly(year, {"name": "All", "limit": 51})
    # the body gives no save rate: the plan assumes RETENTION_SAVE_RATE
    best = answer(client.get(f"/api/v1/planner?save_rate={SETTINGS.save_rate}"))["best_n"]
    assert best > 50
    with pytest.raises(service.InvalidInput, match=f"contacts {best:,} customers"):
        create_directly(year, {"name": "Best N"})  # the planner's best N
    assert campaign_ids(year) == before
    made = create_directly(year, {"name": "Fifty", "limit": 50, "seed": 7})
    members = store.members(year["engine"], made["campaign_id"])
    live = served_base(year["app"]).scored.set_index(C.CUSTOMER_ID)
    assert len(members) == made["treated"] + made["control"] == 50
    assert set(members.loc[members["group"] == "treated", "customer_id"]) == set(
        made["treated_ids"]
    )
    kept = members.set_index("customer_id")["p_churn"]
    assert np.allclose(kept, live.loc[kept.index, C.P_CHURN])


def test_a_manager_sees_only_their_scopes_members_of_a_campaign_made_without_one(year, clients):
    """A campaign an analyst made without a scope is listed to a manager, measured on their
    scope's members; but while it waited for its outcome, the list gave the manager its whole
    treated and control counts, other regions' customers included."""
    body = {"name": "Everyone", "limit": 300}
    made = answer(clients["analyst"].post("/api/v1/campaigns", json=body), 201)
    drawn = store.read_frame(year["state"], year["history"].current(served_base(year["app"])))
    regions = drawn.set_index(drawn[C.CUSTOMER_ID].astype(str))["region"].astype(str)
    members = store.members(year["engine"], made["campaign_id"])
    north = members[members["customer_id"].map(regions).eq("North").to_numpy()]
    assert 0 < len(north) < len(members) == 300
    listed = answer(clients["manager"].get("/api/v1/campaigns"))["campaigns"]
    mine = next(c for c in listed if c["campaign_id"] == made["campaign_id"])
    assert mine["measured_save_rate"] is None  # waiting for a later snapshot
    assert mine["treated"] == int((north["group"] == "treated").sum())
    assert mine["control"] == int((north["group"] == "control").sum())
    everyone = answer(clients["analyst"].get("/api/v1/campaigns"))["campaigns"]
    whole = next(c for c in everyone if c["campaign_id"] == made["campaign_id"])
    assert (whole["treated"], whole["control"]) == (made["treated"], made["control"])
    demo = next(c for c in listed if c["campaign_id"] == "demo-202605")  # measured, in scope
    assert demo["treated"] >= demo["treated_outcome"]["n"]
    assert (
        demo["treated"] < next(c for c in everyone if c["campaign_id"] == "demo-202605")["treated"]
    )


def test_campaign_members_are_written_in_bulk_with_blanks_as_null(empty_state, tmp_path):
    """The bulk write keeps a blank band or probability NULL on SQLite and PostgreSQL (a
    pandas frame would make it NaN, which PostgreSQL keeps: a band 'NaN'), in the same
    transaction as the campaign and its audit event."""
    db.upgrade(empty_state)
    table = pd.DataFrame({C.CUSTOMER_ID: ["a", "b"], C.CHURNED: [0, 1], C.TENURE: [3, 4]})
    info, _, _ = datasets.add_frame(empty_state, tmp_path, table, "t", SETTINGS)
    snap, _ = store.add_snapshot(
        empty_state, tmp_path, pd.DataFrame({C.CUSTOMER_ID: ["a"], C.P_CHURN: [0.1]}),
        as_of=pd.Timestamp("2026-10-31").date(), model_version="v1", dataset_id=info.id,
        kind="promote", summary={"threshold": 0.5},
    )  # fmt: skip
    n = 25_000
    members = pd.DataFrame({
        "customer_id": [f"C{i:06d}" for i in range(n)],
        "group": np.where(np.arange(n) % 10 == 0, "control", "treated"),
        "risk_band": pd.Series(["High", None, "Low", np.nan] * (n // 4), dtype=object),
        "p_churn": [0.5, np.nan, 0.25, None] * (n // 4),
    })  # fmt: skip
    made = store.add_campaign(empty_state, name="Bulk", snapshot=snap, control_share=0.1, seed=3,
                              inputs={}, members=members, scope=None, actor="ada")  # fmt: skip
    assert (made.treated, made.control) == (22_500, 2_500)
    with empty_state.connect() as connection:
        nulls = connection.execute(text(
            "SELECT count(*) FILTER (WHERE risk_band IS NULL), count(*) FILTER (WHERE p_churn IS "
            "NULL), count(*) FROM campaign_members")).one()  # fmt: skip
    assert tuple(nulls) == (n // 2, n // 2, n)
    back = store.members(empty_state, made.id).set_index("customer_id").loc[members["customer_id"]]
    assert back["group"].tolist() == members["group"].tolist()
    assert back["risk_band"].head(4).tolist()[::2] == ["High", "Low"]
    assert back["p_churn"].head(4).tolist()[::2] == [0.5, 0.25]
    assert accounts.events(empty_state, 1)[0]["action"] == "campaign.create"


# -- alert rules ------------------------------------------------------------------------------


def rule_body(name: str = "North churn", **extra) -> dict:
    body = {"name": name, "kind": "new_at_risk", "threshold": 1, "channel": "email",
            "target": "retention@example.com"}  # fmt: skip
    return {**body, **extra}


@pytest.mark.parametrize("name", ["a\u2028Bcc: x@example.com", "a\x85b", "a\x1cb", "a\u202eb"])
def test_an_alert_rule_name_that_no_e_mail_subject_can_hold_is_refused(year, clients, name):
    """The name (the e-mail's subject) refused only ASCII controls: a rule named with U+2028
    or \\x85 was accepted, and every e-mail of it then failed (the header refuses a line
    break: no injection, but an alert never sent). Now it is a 422 naming the name."""
    settings = serve_settings_from_env(env={"RETENTION_SMTP_FROM": "alerts@example.com"})
    payload = {"title": f"{name}: test alert", "text": "t"}
    if name != "a\u202eb":  # a direction mark is refused as a name only (it hides text)
        with pytest.raises(ValueError, match="linefeed or carriage return"):
            alerting.email_message(settings, "to@example.com", payload, "k")
    refused = answer(clients["admin"].post("/api/v1/alerts/rules", json=rule_body(name)), 422)
    assert refused["errors"][0]["field"] == "name"
    made = clients["admin"].post("/api/v1/alerts/rules", json=rule_body("Risk ↑ — Nord"))
    payload = {"title": f"{answer(made, 201)['name']}: t", "text": "t"}
    message = alerting.email_message(settings, "to@example.com", payload, "k")
    assert message["Subject"] == "Risk ↑ — Nord: t"  # any other text is fine


TOKEN = "xoxb-Secret%2FToken-4242"  # percent-encoded in the URL, as a receiver may decode it


class EchoingReceiver:
    """A webhook receiver on loopback that refuses every POST and says what it was sent, as
    Express's default 404 ("Cannot POST /path") or a receiver naming a bad token does."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                path, _, query = self.path.partition("?")
                said = f"Cannot POST {self.path}" if path.endswith("404") else (
                    f"invalid token {unquote(path.rsplit('/', 1)[-1])} ({query})")  # fmt: skip
                body = said.encode()
                self.send_response(404 if path.endswith("404") else 403)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("ending", ["/404", ""])
def test_a_webhooks_secret_never_reaches_the_delivery_log(year, clients, caplog, ending):
    """The receiver's answer went into last_error and the log, with only the whole URL hidden:
    a receiver echoing the path or the token put the secret there, where the rule's owner (a
    manager, shown the target without its path because the path is the secret) reads it."""
    hook = EchoingReceiver()
    year["app"].extensions[history_api.SERVE_CONFIG] = serve_settings_from_env(env={})
    try:
        url = f"{hook.base}/services/T0/{TOKEN}{ending}?sig=SignatureSecret9"
        manager = clients["manager"]
        body = rule_body(channel="webhook", target=url, owner=manager.username)
        rule = answer(clients["admin"].post("/api/v1/alerts/rules", json=body), 201)
        sent = answer(clients["admin"].post(f"/api/v1/alerts/rules/{rule['id']}/test"))
        assert sent["state"] == "failed"
        log = answer(manager.get(f"/api/v1/alerts/deliveries?rule_id={rule['id']}"))
        errors = " ".join(d["last_error"] for d in log["deliveries"])
        assert ("Cannot POST" if ending else "invalid token") in errors  # the receiver's words
        for secret in ("Secret", "SignatureSecret9"):
            assert secret not in errors
            assert secret not in caplog.text
            assert secret not in json.dumps(answer(manager.get("/api/v1/alerts/rules")))
    finally:
        hook.close()
        year["app"].extensions.pop(history_api.SERVE_CONFIG, None)


def test_revenue_and_monitoring_read_at_most_max_months_of_snapshots(year, clients, monkeypatch):
    """Revenue read every snapshot's file and monitoring every realised check's, in one
    request: the history grows each month (13 snapshots of a million rows were 9 s cold), so
    the request would, past its time budget, which nothing checked between the files. Now they
    read the newest MAX_MONTHS months, say so, and check the budget between files."""
    client = clients["analyst"]
    whole = answer(client.get("/api/v1/revenue"))
    assert len(whole["months"]) == 12
    monkeypatch.setattr(service, "MAX_MONTHS", 5)
    last = answer(client.get("/api/v1/revenue"))
    assert [m["month"] for m in last["months"]] == [m["month"] for m in whole["months"]][-5:]
    assert last["months"] == whole["months"][-5:]  # the same figures, fewer months
    assert "last 5 months" in last["note"]
    watched = answer(client.get("/api/v1/monitoring"))
    newest = sorted(s.label for s in store.snapshots(year["engine"]) if s.summary["outcome_known"])
    assert len(watched["snapshots"]) == 5
    assert sorted(s["as_of"] for s in watched["snapshots"]) == newest[-5:]
    assert "newest 5 realised checks" in watched["note"]


# -- jobs, not requests -----------------------------------------------------------------------


def test_a_restart_queues_the_live_versions_snapshot_once(tmp_path):
    """Each start queued a snapshot job for the live version while it had none recorded, even
    when one was queued already: a server restarted before the job ran (or crash-looping)
    queued one more scoring of the whole base per start."""
    from types import SimpleNamespace

    from dashboard import live

    engine = db.open_state(db.database_url(tmp_path / "state", None))[0]
    table = pd.DataFrame({C.CUSTOMER_ID: ["a", "b"], C.CHURNED: [0, 1], C.TENURE: [3, 4]})
    info, _, _ = datasets.add_frame(engine, tmp_path, table, "t", SETTINGS)
    lifecycle.add_version(engine, "v1", info.id, {}, None)
    lifecycle.promote(engine, "v1", "ada")
    config = SimpleNamespace(data=tmp_path / "t.csv", demo_history=False)
    ctx = SimpleNamespace(engine=engine, configured=info, config=config)
    for _ in range(3):
        live._queue_snapshots(ctx)
    queued = lifecycle.jobs(engine, kind=lifecycle.SNAPSHOT)
    assert [(j.state, j.options["version"]) for j in queued] == [(lifecycle.QUEUED, "v1")]
    lifecycle.finish(engine, queued[0].id, lifecycle.FAILED, error="the version cannot be read")
    live._queue_snapshots(ctx)  # a failed job is not waited for: the next start tries again
    assert len(lifecycle.jobs(engine, kind=lifecycle.SNAPSHOT)) == 2


def test_a_managers_model_decay_alert_reads_their_scopes_realised_figures(tmp_path, monkeypatch):
    """Every model_decay rule was checked against the whole base's realised ROC-AUC: a rule a
    manager owns told them the whole company's (and stayed quiet when only their scope's
    ranking had failed). Now it reads their scope's, as their monitoring view does. Hand-built:
    North's churners all got the lowest scores (ROC-AUC 0), South's the highest (1)."""
    monkeypatch.delenv("RETENTION_SMTP_HOST", raising=False)  # e-mail fails at once, recorded
    state = tmp_path / "state"
    engine = db.open_state(db.database_url(state, None))[0]
    table = pd.DataFrame({C.CUSTOMER_ID: ["a", "b"], C.CHURNED: [0, 1], C.TENURE: [3, 4]})
    info, _, _ = datasets.add_frame(engine, state, table, "t", SETTINGS)
    north = pd.DataFrame({"region": "North", C.CHURNED: [1] * 5 + [0] * 15,
                          C.P_CHURN: np.r_[np.full(5, 0.05), np.full(15, 0.6)]})  # fmt: skip
    south = pd.DataFrame({"region": "South", C.CHURNED: [1] * 40 + [0] * 160,
                          C.P_CHURN: np.r_[np.full(40, 0.9), np.full(160, 0.1)]})  # fmt: skip
    frame = pd.concat([north, south], ignore_index=True)
    frame[C.CUSTOMER_ID] = [f"C{i:03d}" for i in range(len(frame))]
    whole = monitoring_module.realised(frame)["roc_auc"]
    assert whole > 0.85  # the whole base ranks well: its decay alone would not fire
    summary = {"threshold": 0.5, "window_months": 1, "expected_roc_auc": 0.8, "in_sample": False,
               "outcome_known": True, "drift": []}  # fmt: skip
    snap, _ = store.add_snapshot(engine, state, frame, as_of=pd.Timestamp("2026-10-31").date(),
                                 model_version="v1", dataset_id=info.id, kind="refresh",
                                 summary=summary)  # fmt: skip
    accounts.add_user(engine, "bob", "manager", "a-test-password-123",
                      scope=access.Scope.parse(SCOPE), actor="test")  # fmt: skip
    from analytics.store import alerts as alert_store

    rules = {}
    for owner in ("bob", None):
        rules[owner] = alert_store.add_rule(
            engine,
            name=f"decay {owner}",
            kind="model_decay",
            threshold=0.05,
            channel="email",
            target="bob@example.com",
            owner=owner,
            scope=None,
            actor="ada",
        ).id  # fmt: skip (an owned rule covers its owner's scope as the users table says)
    snapshots._alert(engine, state, snap, frame, SETTINGS)
    sent = {d.rule_id: d for d in alert_store.deliveries(engine)}
    assert rules[None] not in sent  # the whole base: 0.9 or more, not below 0.8 - 0.05
    details = sent[rules["bob"]].payload["alert"]["details"]
    assert details["realised_roc_auc"] == pytest.approx(0.0)
    assert details["scope"] == SCOPE
    assert f"{whole:.3f}" not in sent[rules["bob"]].payload["text"]

"""Alert delivery against real servers on loopback (never anything else): an HTTP receiver in a
thread recording every request, and an aiosmtpd server that requires STARTTLS with a
certificate from a throwaway CA (trustme) that the client trusts through RETENTION_SMTP_CA_FILE.
An alert is sent once however often the evaluation runs, retried on 5xx with the attempts
counted, failed with the status after RETENTION_ALERT_RETRIES attempts, and no secret reaches
last_error or the log. On SQLite and a real PostgreSQL. Backoff sleeps are injected."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import socket
import ssl
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.orm import Session

from analytics import alerting
from analytics.access import Scope
from analytics.config import serve_settings_from_env
from analytics.services import alerts as service
from analytics.store import accounts, db
from analytics.store import alerts as store
from analytics.store.tables import Dataset, Snapshot

PASSWORD = "correct horse battery"
SMTP_USER = "alerts@example.com"
SMTP_PASSWORD = "smtp-pa55word-never-logged"
TOKEN = "s3cret-token"


def wait_for(condition, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# -- a webhook receiver ---------------------------------------------------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 answering POSTs with scripted statuses (then 200), keeping
    each request; `gate`, when set, holds answers until it is opened."""

    def __init__(self, statuses=()):
        self.requests: list[dict] = []
        self.statuses = list(statuses)
        self.lock = threading.Lock()
        self.gate: threading.Event | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                if receiver.gate is not None:
                    receiver.gate.wait(10)
                answer = b"ok" if status < 400 else b"receiver says no"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{port}/services/T0/B0/{TOKEN}?token=q-{TOKEN}"

    def bodies(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self):
        if self.gate is not None:
            self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(statuses=()):
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for r in made:
        r.close()


# -- an SMTP server that requires STARTTLS --------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self):
        self.messages: list[dict] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "message": parsed,
                "tls": session.ssl is not None,
                "login": session.authenticated,
            }
        )
        return "250 Message accepted"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((login, password))
        ok = (login, password) == (SMTP_USER, SMTP_PASSWORD)
        return AuthResult(success=ok, handled=False)  # not handled: the server answers 535


@pytest.fixture
def smtp_server(tmp_path):
    """(inbox, port, CA file): aiosmtpd on 127.0.0.1 refusing mail before STARTTLS and logins
    outside TLS, its certificate (for 127.0.0.1) issued by a test CA written to the CA file."""
    pytest.importorskip("aiosmtpd")
    trustme = pytest.importorskip("trustme")
    from aiosmtpd.controller import Controller

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    inbox = Inbox()
    port = _free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_context,
        require_starttls=True,
        authenticator=inbox.authenticate,
        auth_require_tls=True,
    )
    controller.start()
    yield inbox, port, ca_file
    controller.stop()


# -- state and snapshots --------------------------------------------------------------------


@pytest.fixture
def engine(empty_state):
    db.upgrade(empty_state)
    accounts.add_user(empty_state, "ada", "admin", PASSWORD)
    accounts.add_user(empty_state, "mo", "manager", PASSWORD, scope=Scope("region", ("North",)))
    return empty_state


def settings(**env):
    return serve_settings_from_env(env={f"RETENTION_{k.upper()}": str(v) for k, v in env.items()})


def snapshots() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(current, previous): customers A (North) and B (South) newly high-value high-risk."""
    base = {"value": 500.0, "segment": "Steady", "monthly_revenue": 40.0, "churned": np.nan}
    previous = pd.DataFrame(
        [
            {**base, "customer_id": "A", "region": "North", "p_churn": 0.1, "risk_band": "Low",
             "high_value": True, "expected_loss": 5.0, "churned": 0},
            {**base, "customer_id": "B", "region": "South", "p_churn": 0.1, "risk_band": "Low",
             "high_value": True, "expected_loss": 5.0, "churned": 0},
        ]
    )  # fmt: skip
    current = previous.assign(
        p_churn=[0.8, 0.7], risk_band="High", expected_loss=[400.0, 350.0], churned=np.nan
    )
    return current, previous


def add_rule(engine, target, channel="webhook", **changes) -> dict:
    body = {
        "name": "New risk",
        "kind": "new_at_risk",
        "threshold": 1,
        "channel": channel,
        "target": target,
        **changes,
    }
    return service.create_rule(engine, body, username="ada", role="admin")


def run(engine, config, snapshot_id="snap-1", sleep=None):
    current, previous = snapshots()
    return alerting.run_for_snapshot(
        engine,
        config,
        snapshot_id=snapshot_id,
        current=current,
        previous=previous,
        monitoring=None,
        sleep=sleep or (lambda s: None),
    )


# -- webhooks -------------------------------------------------------------------------------


def test_an_alert_is_posted_once_with_text_and_idempotency_key_however_often_it_runs(
    engine, receiver
):
    hook = receiver()
    rule = add_rule(engine, hook.url)
    config = settings()
    first = run(engine, config)
    assert [a.customer_ids for a in first.alerts] == [("A", "B")]
    assert [(d.state, d.attempts) for d in first.delivered] == [("sent", 1)]
    second = run(engine, config)  # the job ran again for the same snapshot
    assert len(second.alerts) == 1
    assert second.recorded == []
    assert second.delivered == []
    assert alerting.deliver_pending(engine, config) == []

    assert len(hook.requests) == 1
    request = hook.requests[0]
    key = f"rule:{rule['id']}:snapshot:snap-1"
    assert request["headers"]["Idempotency-Key"] == key
    assert request["headers"]["Content-Type"] == "application/json"
    body = json.loads(request["body"])
    assert body["text"].startswith("New risk: 2 customers newly high-value high-risk.")
    assert "$750 of expected loss" in body["text"]
    assert "Customers: A, B." in body["text"]
    assert (body["alert"]["rule"], body["alert"]["kind"]) == ("New risk", "new_at_risk")
    assert body["alert"]["snapshot"] == "snap-1"
    assert body["alert"]["details"]["customer_ids"] == ["A", "B"]
    (logged,) = store.deliveries(engine)
    assert (logged.key, logged.state, logged.attempts) == (key, "sent", 1)
    assert logged.delivered_at is not None


def test_a_managers_rule_posts_only_their_customers(engine, receiver):
    hook = receiver()
    add_rule(engine, hook.url, owner="mo")
    with Session(engine) as session:  # a recorded snapshot: its date is in the message
        session.add(
            Dataset(
                id="d" * 64,
                name="base.csv",
                kind="file",
                file_sha256="d" * 64,
                path="datasets/d",
                mapping={},
                rows=2,
                report={},
            )
        )
        session.add(
            Snapshot(id="snap-1", as_of=date(2026, 11, 1), model_version="v1",
                     dataset_id="d" * 64, kind="manual", path="snapshots/snap-1", rows=2,
                     summary={})
        )  # fmt: skip
        session.commit()
    run(engine, settings())
    (body,) = hook.bodies()
    assert body["text"].startswith("New risk: 1 customer newly high-value high-risk. As of 2026")
    assert body["alert"]["as_of"] == "2026-11-01"
    assert body["alert"]["details"]["customer_ids"] == ["A"]
    assert body["alert"]["details"]["scope"] == "region=North"
    assert "1 customer entered the high-value at-risk list" in body["text"]


def test_a_receiver_failing_twice_then_answering_gets_one_delivery_after_three_attempts(
    engine, receiver
):
    hook = receiver([500, 503])
    add_rule(engine, hook.url)
    waits = []
    result = run(engine, settings(), sleep=waits.append)
    (done,) = result.delivered
    assert (done.state, done.attempts) == ("sent", 3)
    assert done.last_error.startswith("HTTP 503")  # the last failure is kept
    assert waits == [1.0, 2.0]  # the backoff, injected: the test does not wait
    assert len(hook.requests) == 3
    assert len({r["headers"]["Idempotency-Key"] for r in hook.requests}) == 1
    run(engine, settings(), sleep=waits.append)
    assert len(hook.requests) == 3  # sent: never again


def test_a_receiver_always_failing_fails_the_delivery_with_its_status_and_no_secret(
    engine, receiver, caplog
):
    hook = receiver([500] * 10)
    add_rule(engine, hook.url)
    with caplog.at_level(logging.INFO, logger="analytics.alerting"):
        result = run(engine, settings(alert_retries=4))
    (done,) = result.delivered
    assert (done.state, done.attempts) == ("failed", 4)
    assert len(hook.requests) == 4
    assert done.last_error.startswith("HTTP 500 Internal Server Error from http://127.0.0.1:")
    assert "receiver says no" in done.last_error
    assert TOKEN not in done.last_error
    assert TOKEN not in caplog.text
    assert "attempt 4 of 4 failed for good" in caplog.text
    run(engine, settings(alert_retries=4))
    assert len(hook.requests) == 4  # failed: not retried by the next run


def test_a_client_error_is_not_retried(engine, receiver):
    hook = receiver([404])
    add_rule(engine, hook.url)
    (done,) = run(engine, settings()).delivered
    assert (done.state, done.attempts) == ("failed", 1)
    assert done.last_error.startswith("HTTP 404")
    assert len(hook.requests) == 1


def test_a_receiver_that_is_down_is_retried_and_failed_without_the_url_secret(engine):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, not listening: connections are refused
        add_rule(engine, f"http://127.0.0.1:{port}/hook/{TOKEN}")
        (done,) = run(engine, settings(alert_retries=2)).delivered
    assert (done.state, done.attempts) == ("failed", 2)
    assert "refused" in done.last_error.lower()
    assert TOKEN not in done.last_error


def test_two_processes_delivering_at_once_send_an_alert_once(engine, receiver):
    hook = receiver()
    hook.gate = threading.Event()  # the receiver holds its answer: the first send is in flight
    add_rule(engine, hook.url)
    current, previous = snapshots()
    alerts = [alerting.evaluate(r, current, previous) for r in store.rules(engine)]
    (delivery_id,) = alerting.record_alerts(engine, "snap-1", alerts)
    config = settings()
    results = {}
    first = threading.Thread(
        target=lambda: results.update(first=alerting.deliver_pending(engine, config))
    )
    first.start()
    wait_for(lambda: len(hook.requests) == 1, what="the first sender's request")
    # The other process read the row as pending just before: its claim must fail.
    results["second"] = alerting.deliver(engine, config, delivery_id)
    results["third"] = alerting.deliver_pending(engine, config)
    hook.gate.set()
    first.join(10)
    assert results["second"] is None
    assert results["third"] == []
    assert [d.state for d in results["first"]] == ["sent"]
    assert len(hook.requests) == 1


def test_a_test_alert_is_sent_now_under_its_own_key_and_audited(engine, receiver):
    hook = receiver([200, 500])
    rule = add_rule(engine, hook.url)
    sent = service.send_rule_test(engine, settings(), rule["id"], username="ada", role="admin")
    assert (sent["state"], sent["attempts"], sent["test"]) == ("sent", 1, True)
    failed = service.send_rule_test(engine, settings(), rule["id"], username="ada", role="admin")
    assert (failed["state"], failed["attempts"]) == ("failed", 1)  # one attempt: said at once
    assert failed["last_error"].startswith("HTTP 500")
    keys = [r["headers"]["Idempotency-Key"] for r in hook.requests]
    assert len(set(keys)) == 2
    assert all(k.startswith(f"rule:{rule['id']}:test:") for k in keys)
    assert "A test of alert rule 'New risk'" in hook.bodies()[0]["text"]
    events = accounts.events(engine, actions=("alert.rule.test",))
    assert [(e["actor"], e["target"]) for e in events] == [("ada", f"rule {rule['id']}")] * 2
    # A test is not a snapshot's alert: the snapshot's alert is still sent.
    run(engine, settings())
    assert len(hook.requests) == 3


# -- e-mail ---------------------------------------------------------------------------------


def smtp_settings(port, ca_file, **more):
    given = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_username": SMTP_USER,
        "smtp_password": SMTP_PASSWORD,
        "smtp_ca_file": ca_file,
    }
    return settings(**{**given, **more})


def test_an_alert_is_mailed_once_over_starttls_with_its_figures(engine, smtp_server, caplog):
    inbox, port, ca_file = smtp_server
    add_rule(engine, "ops@example.com", channel="email")
    config = smtp_settings(port, ca_file)
    with caplog.at_level(logging.DEBUG):
        first = run(engine, config)
        run(engine, config)
    assert [(d.state, d.attempts) for d in first.delivered] == [("sent", 1)]
    (mail,) = inbox.messages
    assert mail["tls"]  # STARTTLS first (the server refuses mail and logins without)
    assert mail["login"]
    assert inbox.logins == [(SMTP_USER, SMTP_PASSWORD)]
    assert (mail["from"], mail["to"]) == (SMTP_USER, ["ops@example.com"])
    message = mail["message"]
    assert message["Subject"] == "New risk: 2 customers newly high-value high-risk"
    body = message.get_content()
    assert "2 customers entered the high-value at-risk list" in body
    assert "$750 of expected loss" in body
    assert "Customers: A, B." in body
    assert message["Message-ID"].endswith("@example.com>")
    assert SMTP_PASSWORD not in caplog.text


def test_a_server_whose_certificate_is_not_trusted_fails_at_once(engine, smtp_server):
    inbox, port, _ = smtp_server
    add_rule(engine, "ops@example.com", channel="email")
    config = settings(smtp_host="127.0.0.1", smtp_port=port, smtp_from="alerts@example.com")
    (done,) = run(engine, config).delivered  # the system's CAs do not know the test CA
    assert (done.state, done.attempts) == ("failed", 1)
    assert "certificate is not trusted" in done.last_error
    assert "RETENTION_SMTP_CA_FILE" in done.last_error
    assert inbox.messages == []


def test_a_wrong_smtp_password_fails_without_showing_it(engine, smtp_server, caplog):
    inbox, port, ca_file = smtp_server
    add_rule(engine, "ops@example.com", channel="email")
    wrong = "wrong-pa55word-also-secret"
    config = smtp_settings(port, ca_file, smtp_password=wrong)
    with caplog.at_level(logging.DEBUG):
        (done,) = run(engine, config).delivered
    assert (done.state, done.attempts) == ("failed", 1)
    assert f"refused the login of user {SMTP_USER!r}" in done.last_error
    assert wrong not in done.last_error
    assert wrong not in caplog.text
    assert inbox.messages == []


def test_e_mail_without_an_smtp_server_configured_fails_saying_what_to_set(engine):
    add_rule(engine, "ops@example.com", channel="email")
    (done,) = run(engine, settings()).delivered
    assert (done.state, done.attempts) == ("failed", 1)
    assert "set RETENTION_SMTP_HOST" in done.last_error

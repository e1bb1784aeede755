"""Alert rules: each kind fires or stays quiet on small hand-built snapshots at its exact
threshold; a scoped rule counts only its customers; rule bodies are checked field by field;
the service enforces roles and audits every change; recording is once per rule and snapshot
(SQLite and a real PostgreSQL). Delivery over real servers: tests/test_alert_delivery.py."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from analytics import alerting
from analytics.access import Scope
from analytics.services import alerts as service
from analytics.services.errors import InvalidInput
from analytics.store import accounts, db
from analytics.store import alerts as store
from analytics.store.alerts import AlertError

PASSWORD = "correct horse battery"
HOOK = "https://hooks.example.com/services/T1/B2/s3cret"


def snapshot(rows: list[dict]) -> pd.DataFrame:
    """A snapshot frame: one row per customer, defaults for what a test does not set."""
    base = {
        "p_churn": 0.1,
        "risk_band": "Low",
        "value": 100.0,
        "expected_loss": 10.0,
        "high_value": False,
        "segment": "Steady",
        "monthly_revenue": 10.0,
        "churned": np.nan,
        "region": "North",
    }
    return pd.DataFrame([{**base, **r} for r in rows])


def at_risk(cid: str, loss: float = 50.0, **more) -> dict:
    """A customer in the high-value at-risk list (high value, band High, not churned)."""
    return {
        "customer_id": cid,
        "p_churn": 0.7,
        "risk_band": "High",
        "high_value": True,
        "expected_loss": loss,
        **more,
    }


def rule(kind: str, threshold: float, scope: Scope | None = None) -> alerting.RuleSpec:
    return alerting.RuleSpec(kind=kind, threshold=threshold, name="watch", id=7, scope=scope)


# -- mrr_at_risk_up -------------------------------------------------------------------------


def _revenue_pair(p_now: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    previous = snapshot(
        [
            {"customer_id": "A", "p_churn": 0.5, "monthly_revenue": 100.0, "churned": 0},
            {"customer_id": "B", "p_churn": 0.5, "monthly_revenue": 100.0, "churned": 0},
        ]
    )  # MRR at risk 100
    current = snapshot(
        [
            {"customer_id": "A", "p_churn": p_now, "monthly_revenue": 100.0},
            {"customer_id": "B", "p_churn": p_now, "monthly_revenue": 100.0},
        ]
    )  # outcomes not known yet: both still count as active
    return current, previous


def test_mrr_at_risk_up_fires_only_above_the_percentage():
    current, previous = _revenue_pair(0.55)  # 110: +10% (0.55 * 100 is 55.00000000000001)
    assert alerting.evaluate(rule("mrr_at_risk_up", 10), current, previous) is None
    alert = alerting.evaluate(rule("mrr_at_risk_up", 9.9), current, previous)
    assert alert is not None
    assert alert.title == "MRR at risk up +10.0%"
    assert "from $100 to $110 (+10.0%)" in alert.text
    assert alert.details["rise_percent"] == pytest.approx(10.0)
    assert alert.details["mrr_at_risk_previous"] == pytest.approx(100.0)
    # Nothing to compare with, or a fall: quiet.
    assert alerting.evaluate(rule("mrr_at_risk_up", 0), current, None) is None
    assert alerting.evaluate(rule("mrr_at_risk_up", 0), previous, current) is None


def test_mrr_at_risk_leaves_out_customers_known_to_have_left():
    current, previous = _revenue_pair(0.55)
    current.loc[1, "churned"] = 1  # B left: its revenue is not at risk any more
    assert alerting.evaluate(rule("mrr_at_risk_up", 0), current, previous) is None


# -- new_at_risk ----------------------------------------------------------------------------


def test_new_at_risk_counts_customers_newly_in_the_at_risk_list():
    previous = snapshot([at_risk("A"), {"customer_id": "B"}, {"customer_id": "C"}])
    current = snapshot(
        [at_risk("A"), at_risk("B", loss=80.0), at_risk("C", loss=90.0), {"customer_id": "D"}]
    )
    assert alerting.evaluate(rule("new_at_risk", 3), current, previous) is None
    alert = alerting.evaluate(rule("new_at_risk", 2), current, previous)
    assert alert is not None
    assert alert.customer_ids == ("C", "B")  # the list's order: expected loss, descending
    assert alert.details["newly_at_risk"] == 2
    assert alert.details["at_risk"] == 3
    assert "2 customers entered the high-value at-risk list" in alert.text
    assert "$170 of expected loss" in alert.text
    assert alerting.evaluate(rule("new_at_risk", 1), current, None) is None


def test_a_scoped_rule_counts_only_the_customers_in_its_scope():
    previous = snapshot([{"customer_id": c} for c in "ABCD"])
    current = snapshot(
        [
            at_risk("A", region="North"),
            at_risk("B", region="South"),
            at_risk("C", region="South"),
            at_risk("D", region="West"),
        ]
    )
    north = Scope("region", ("North",))
    assert alerting.evaluate(rule("new_at_risk", 2, north), current, previous) is None
    assert alerting.evaluate(rule("new_at_risk", 1, north), current, previous).customer_ids == (
        "A",
    )
    south_west = Scope("region", ("South", "West"))
    alert = alerting.evaluate(rule("new_at_risk", 3, south_west), current, previous)
    assert sorted(alert.customer_ids) == ["B", "C", "D"]
    assert "Scope region=South,West: 3 customers." in alert.text
    assert alert.details["scope"] == "region=South,West"
    # Everyone together: 4.
    assert (
        alerting.evaluate(rule("new_at_risk", 4), current, previous).details["newly_at_risk"] == 4
    )


def test_a_scope_column_the_snapshot_lacks_means_nobody_and_says_so(caplog):
    previous = snapshot([{"customer_id": "A"}]).drop(columns="region")
    current = snapshot([at_risk("A")]).drop(columns="region")
    with caplog.at_level(logging.WARNING, logger="analytics.alerting"):
        found = alerting.evaluate(
            rule("new_at_risk", 1, Scope("region", ("North",))), current, previous
        )
    assert found is None
    assert "the snapshot has no column 'region': nobody is in scope region=North" in caplog.text
    assert alerting.evaluate(rule("new_at_risk", 1), current, previous) is not None


# -- high_value_to_high ---------------------------------------------------------------------


def test_high_value_to_high_fires_for_customers_at_or_above_the_value_crossing_into_high():
    previous = snapshot(
        [
            {"customer_id": "X", "risk_band": "Medium"},
            {"customer_id": "Y", "risk_band": "Low"},
            {"customer_id": "Z", "risk_band": "High"},
        ]
    )
    current = snapshot(
        [
            {"customer_id": "X", "risk_band": "High", "value": 1000.0, "p_churn": 0.6},
            {"customer_id": "Y", "risk_band": "High", "value": 999.99},
            {"customer_id": "Z", "risk_band": "High", "value": 5000.0},  # High before too
            {"customer_id": "W", "risk_band": "High", "value": 2000.0},  # absent before
            {"customer_id": "V", "risk_band": "Medium", "value": 9000.0},  # not High
            {"customer_id": "U", "risk_band": "High", "value": 3000.0, "churned": 1},  # left
        ]
    )
    alert = alerting.evaluate(rule("high_value_to_high", 1000), current, previous)
    assert alert.customer_ids == ("W", "X")  # by value, descending
    assert "X (value $1,000, p 0.60, was Medium)" in alert.text
    assert "W (value $2,000, p 0.10, was absent)" in alert.text
    assert [c["previous_band"] for c in alert.details["crossed"]] == [None, "Medium"]
    assert alerting.evaluate(rule("high_value_to_high", 1000.01), current, previous)
    assert alerting.evaluate(
        rule("high_value_to_high", 1000.01), current, previous
    ).customer_ids == ("W",)
    assert alerting.evaluate(rule("high_value_to_high", 2000.01), current, previous) is None
    assert alerting.evaluate(rule("high_value_to_high", 0), current, None) is None


# -- segment_churn --------------------------------------------------------------------------


def test_segment_churn_uses_the_realised_rate_when_known_else_the_predicted_one():
    known = snapshot(
        [
            {"customer_id": "A", "segment": "New", "churned": 1},
            {"customer_id": "B", "segment": "New", "churned": 0},
            {"customer_id": "C", "segment": "New", "churned": 0},
            {"customer_id": "D", "segment": "New", "churned": 0},
            {"customer_id": "E", "segment": "Loyal", "churned": 0},
        ]
    )  # New: 1 of 4 left = 25%
    assert alerting.evaluate(rule("segment_churn", 0.25), known, None) is None
    alert = alerting.evaluate(rule("segment_churn", 0.2499), known, None)
    assert alert.title == "Segment 'New' churn rate 25.00%"  # told apart from 24.99%
    assert "'New': realised churn rate 25.00% of 4 customers" in alert.text
    assert alert.details["segments"] == [
        {"segment": "New", "rate": 0.25, "basis": "realised", "customers": 4}
    ]

    pending = snapshot(
        [
            {"customer_id": "A", "segment": "New", "p_churn": 0.2},
            {"customer_id": "B", "segment": "New", "p_churn": 0.3},
            {"customer_id": "C", "segment": "Loyal", "p_churn": 0.6},
        ]
    )  # New: mean p 0.25; Loyal 0.6; outcomes not known
    alert = alerting.evaluate(rule("segment_churn", 0.25), pending, None)
    assert [s["segment"] for s in alert.details["segments"]] == ["Loyal"]
    assert "predicted churn rate (mean p_churn: the window has not passed)" in alert.text
    alert = alerting.evaluate(rule("segment_churn", 0.2), pending, None)
    assert alert.title == "2 segments churning above 20.0%"
    assert [s["segment"] for s in alert.details["segments"]] == ["Loyal", "New"]


# -- model_decay ----------------------------------------------------------------------------


def _monitoring(drift_psi: float = 0.1) -> dict:
    return {
        "snapshots": [
            {"as_of": "2026-09-01", "model_version": "v1", "realised_roc_auc": 0.60,
             "expected_roc_auc": 0.80},
            {"as_of": "2026-10-01", "model_version": "v1", "realised_roc_auc": 0.75,
             "expected_roc_auc": 0.80},
            {"as_of": "2026-11-01", "model_version": "v2", "realised_roc_auc": 0.10,
             "expected_roc_auc": 0.80, "in_sample": True},  # its own base: not decay
            {"as_of": "2026-12-01", "model_version": "v1", "realised_roc_auc": None,
             "expected_roc_auc": 0.80},
        ],
        "drift": [
            {"feature": "tenure_months", "psi": drift_psi, "level": "stable"},
            {"feature": "plan", "psi": 0.05, "level": "stable"},
        ],
    }  # fmt: skip


def test_model_decay_reads_the_newest_realised_roc_auc_and_large_drift():
    frame = snapshot([{"customer_id": "A"}])
    # Newest realised 0.75 = expected 0.80 - margin 0.05: not below.
    assert alerting.evaluate(rule("model_decay", 0.05), frame, None, _monitoring()) is None
    alert = alerting.evaluate(rule("model_decay", 0.04), frame, None, _monitoring())
    assert "realised ROC-AUC 0.750 below expected 0.800" in alert.title
    assert "The snapshot of 2026-10-01 (model v1)" in alert.text
    assert alert.details["realised_roc_auc"] == 0.75
    assert "retrain" in alert.text
    # PSI exactly 0.25 is moderate; above it is large.
    assert alerting.evaluate(rule("model_decay", 0.05), frame, None, _monitoring(0.25)) is None
    alert = alerting.evaluate(rule("model_decay", 0.05), frame, None, _monitoring(0.2501))
    assert "large drift in 1 feature" in alert.title
    assert alert.details["drift"][0]["feature"] == "tenure_months"
    assert alert.details["realised_roc_auc"] is None
    assert alerting.evaluate(rule("model_decay", 0.0), frame, None, None) is None
    assert alerting.evaluate(rule("model_decay", 0.0), frame, None, {"snapshots": []}) is None


# -- rule bodies ----------------------------------------------------------------------------


def _body(**changes) -> dict:
    body = {
        "name": "Revenue watch",
        "kind": "mrr_at_risk_up",
        "threshold": 10,
        "channel": "webhook",
        "target": HOOK,
    }
    return {**body, **changes}


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"kind": "churn_up"}, "kind", "got 'churn_up'"),
        ({"threshold": 1000.5}, "threshold", "from 0 to 1000; got 1000.5"),
        ({"threshold": "10"}, "threshold", "must be a number"),
        ({"kind": "new_at_risk", "threshold": 0}, "threshold", "from 1 to"),
        ({"kind": "new_at_risk", "threshold": 2.5}, "threshold", "a whole number"),
        ({"kind": "segment_churn", "threshold": 1}, "threshold", "(1 excluded); got 1"),
        ({"kind": "model_decay", "threshold": 0.6}, "threshold", "from 0 to 0.5"),
        ({"target": "ftp://files.example.com/x"}, "target", "http:// or https://"),
        ({"target": "https://user:pw@hooks.example.com/x"}, "target", "user:password@"),
        ({"channel": "email"}, "target", "not an e-mail address"),
        ({"channel": "email", "target": "ops@example.com\nBcc: x@y.z"}, "target", "e-mail"),
        ({"channel": "sms"}, "channel", "got 'sms'"),
        ({"name": "  "}, "name", "must not be blank"),
        ({"name": "a\r\nb"}, "name", "control characters"),
        ({"owner": "no such!"}, "owner", "letters, digits"),
        ({"colour": "red"}, "colour", "is not a field of an alert rule"),
    ],
)
def test_a_bad_rule_body_is_one_line_naming_the_field(changes, field, says):
    with pytest.raises(InvalidInput) as caught:
        service.parse_rule(_body(**changes))
    assert caught.value.field == field
    assert says in caught.value.message
    assert "\n" not in str(caught.value)


def test_good_rule_bodies_pass():
    assert service.parse_rule(_body()).threshold == 10.0
    assert service.parse_rule(_body(channel="email", target="ops@example.com")).target
    assert service.parse_rule(_body(kind="segment_churn", threshold=0)).threshold == 0.0
    assert service.parse_rule(_body(kind="new_at_risk", threshold=1)).threshold == 1.0
    with pytest.raises(InvalidInput, match="name: is required"):
        service.parse_rule({k: v for k, v in _body().items() if k != "name"})
    with pytest.raises(InvalidInput, match="body: expected a JSON object"):
        service.parse_rule([_body()])


# -- the service and the store (SQLite and PostgreSQL) --------------------------------------


@pytest.fixture
def engine(empty_state):
    db.upgrade(empty_state)
    accounts.add_user(empty_state, "ada", "admin", PASSWORD)
    accounts.add_user(empty_state, "ann", "analyst", PASSWORD)
    accounts.add_user(empty_state, "mo", "manager", PASSWORD, scope=Scope("region", ("North",)))
    accounts.add_user(empty_state, "max", "manager", PASSWORD, scope=Scope("region", ("West",)))
    return empty_state


def _create(engine, **changes) -> dict:
    return service.create_rule(engine, _body(**changes), username="ada", role="admin")


def test_only_an_admin_creates_deletes_or_tests_rules_and_each_is_audited(engine):
    for role in ("analyst", "manager"):
        with pytest.raises(AlertError) as refused:
            service.create_rule(engine, _body(), username="mo", role=role)
        assert refused.value.status == 403
    made = _create(engine)
    assert (made["target"], made["owner"], made["scope"]) == (HOOK, None, None)
    with pytest.raises(AlertError) as refused:
        service.delete_rule(engine, made["id"], username="mo", role="manager")
    assert refused.value.status == 403
    with pytest.raises(AlertError) as refused:
        service.send_rule_test(engine, None, made["id"], username="ann", role="analyst")
    assert refused.value.status == 403
    assert service.delete_rule(engine, made["id"], username="ada", role="admin")["id"] == made["id"]
    with pytest.raises(AlertError) as gone:
        service.delete_rule(engine, made["id"], username="ada", role="admin")
    assert gone.value.status == 404
    with pytest.raises(InvalidInput, match="rule_id"):
        service.delete_rule(engine, "1; drop", username="ada", role="admin")

    events = accounts.events(engine, actions=("alert.rule.add", "alert.rule.delete"))
    assert [(e["action"], e["actor"], e["target"]) for e in events] == [
        ("alert.rule.delete", "ada", f"rule {made['id']}"),
        ("alert.rule.add", "ada", f"rule {made['id']}"),
    ]
    added = events[1]["details"]
    assert (added["kind"], added["threshold"]) == ("mrr_at_risk_up", 10)
    assert added["to"] == "https://hooks.example.com/…"  # the hook's secret path is not kept


def test_a_managers_rule_covers_their_scope_and_they_alone_see_it(engine):
    mine = _create(engine, owner="mo", kind="new_at_risk", threshold=1)
    _create(engine, owner="max")
    _create(engine, channel="email", target="ops@example.com")
    assert (mine["owner"], mine["scope"]) == ("mo", "region=North")
    with pytest.raises(AlertError) as refused:
        service.list_rules(engine, username="ann", role="analyst")
    assert refused.value.status == 403
    with pytest.raises(AlertError) as refused:
        service.list_deliveries(engine, username="ann", role="analyst")
    assert refused.value.status == 403
    seen = service.list_rules(engine, username="mo", role="manager")
    assert [r["id"] for r in seen] == [mine["id"]]
    assert seen[0]["target"] == "https://hooks.example.com/…"  # not the hook's secret
    assert len(service.list_rules(engine, username="ada", role="admin")) == 3

    # The owner must be an enabled manager.
    for owner, says in (("ann", "is an analyst"), ("nobody", "no user named")):
        with pytest.raises(InvalidInput, match=says):
            _create(engine, owner=owner)
    # The scope is the owner's as it is now; a rule whose owner is no longer a manager is
    # not evaluated.
    accounts.change_user(engine, "mo", scope=Scope("region", ("South",)))
    assert store.rule(engine, mine["id"]).scope == Scope("region", ("South",))
    accounts.change_user(engine, "mo", role="analyst")
    assert store.rule(engine, mine["id"]).active is False


def test_recording_twice_keeps_one_delivery_per_rule_and_snapshot(engine):
    made = _create(engine, kind="new_at_risk", threshold=1, owner="mo")
    other = _create(engine, kind="new_at_risk", threshold=1)
    previous = snapshot([{"customer_id": "A"}, {"customer_id": "B", "region": "South"}])
    current = snapshot([at_risk("A"), at_risk("B", region="South")])
    rules = store.rules(engine, enabled_only=True)
    alerts = [alerting.evaluate(r, current, previous) for r in rules]
    assert [a.customer_ids for a in alerts] == [("A",), ("A", "B")]  # mo's scope: North
    first = alerting.record_alerts(engine, "snap1", alerts)
    assert len(first) == 2
    assert alerting.record_alerts(engine, "snap1", alerts) == []
    assert len(alerting.record_alerts(engine, "snap2", alerts)) == 2
    log = service.list_deliveries(engine, username="ada", role="admin")
    assert sorted(d["key"] for d in log) == sorted(
        f"rule:{r}:snapshot:{s}" for r in (made["id"], other["id"]) for s in ("snap1", "snap2")
    )
    assert {d["state"] for d in log} == {"pending"}
    theirs = service.list_deliveries(engine, username="mo", role="manager")
    assert [d["rule_id"] for d in theirs] == [made["id"]] * 2
    assert theirs[0]["details"]["customer_ids"] == ["A"]
    with pytest.raises(AlertError) as hidden:  # another's rule is not found, not forbidden
        service.list_deliveries(engine, username="max", role="manager", rule_id=made["id"])
    assert hidden.value.status == 404
    with pytest.raises(InvalidInput, match="limit"):
        service.list_deliveries(engine, username="ada", role="admin", limit=0)
    # Deleting a rule deletes its log.
    service.delete_rule(engine, made["id"], username="ada", role="admin")
    left = service.list_deliveries(engine, username="ada", role="admin")
    assert {d["rule_id"] for d in left} == {other["id"]}


def test_a_claimed_delivery_cannot_be_claimed_again(engine):
    made = _create(engine)
    alert = alerting.Alert(made["id"], "watch", "mrr_at_risk_up", "t", "x")
    (delivery_id,) = alerting.record_alerts(engine, "s1", [alert])
    assert store.claim(engine, delivery_id) is not None
    assert store.claim(engine, delivery_id) is None
    assert store.pending_ids(engine) == []

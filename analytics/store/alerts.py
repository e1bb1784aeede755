"""Alert rules and their deliveries in the state database.

The one home of these rules for the alert job, the API and the admin pages:
- a rule is added and deleted with its audit event in the same transaction, and so is a test;
- a delivery's key is unique (rule and snapshot, or a test's nonce): recording the same alert
  twice, even from two processes at once, keeps one row, so the alert is sent once;
- a delivery moves pending -> sending (claimed by one process, by a conditional update) ->
  sent | failed, and only forward: a row is never sent again once claimed. A process killed
  while sending leaves its row `sending`; it is not retried, since the receiver may have got
  it (the webhook's Idempotency-Key lets a receiver drop a repeat, were it resent by hand).
- a rule owned by a manager covers that manager's scope as the users table says now: a scope
  changed since the rule was made applies at the next evaluation, and a rule whose owner is no
  longer an enabled manager is not evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from analytics.access import MANAGER, Scope
from analytics.store.accounts import UserInfo, audit_in, now
from analytics.store.lifecycle import LifecycleError, _iso
from analytics.store.tables import AlertDelivery, AlertRule, Snapshot, User

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
STATES = (PENDING, SENDING, SENT, FAILED)
WEBHOOK, EMAIL = "webhook", "email"
CHANNELS = (WEBHOOK, EMAIL)


class AlertError(LifecycleError):
    """An alert request cannot be done; `status` is the HTTP status that fits it (403, 404)."""


def redacted_target(channel: str, target: str) -> str:
    """A rule's target as logs, errors and non-admins may see it. A webhook URL often holds its
    secret in the path (Slack: /services/T../B../<token>) or the query, so only the scheme,
    host and port are shown; an e-mail address is shown whole."""
    if channel != WEBHOOK:
        return target
    try:
        parts = urlsplit(target)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<webhook URL>"
    host = f"[{host}]" if ":" in host else host
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{rest}"


# -- rules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleInfo:
    """A rule as evaluation and the API need it. `scope` is the one the rule covers now (its
    owner's current scope); `active` is False when the owner is no longer an enabled manager
    (such a rule is not evaluated)."""

    id: int
    name: str
    kind: str
    threshold: float
    channel: str
    target: str
    owner: str | None
    scope: Scope | None
    enabled: bool
    active: bool
    created_at: str | None

    @classmethod
    def of(cls, row: AlertRule, owner: User | None) -> RuleInfo:
        scope = Scope.of(row.scope_column, row.scope_values)
        active = True
        if row.owner is not None:
            active = owner is not None and owner.role == MANAGER and not owner.disabled
            if owner is not None:
                scope = Scope.of(owner.scope_column, owner.scope_values)
        return cls(
            id=row.id,
            name=row.name,
            kind=row.kind,
            threshold=float(row.threshold),
            channel=row.channel,
            target=row.target,
            owner=row.owner,
            scope=scope,
            enabled=bool(row.enabled),
            active=active,
            created_at=_iso(row.created_at),
        )

    def public(self, *, reveal_target: bool = True) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "threshold": self.threshold,
            "channel": self.channel,
            "target": self.target if reveal_target else redacted_target(self.channel, self.target),
            "owner": self.owner,
            "scope": str(self.scope) if self.scope else None,
            "enabled": self.enabled,
            "active": self.active,
            "created_at": self.created_at,
        }


def _rules_query():
    return select(AlertRule, User).outerjoin(User, User.username == AlertRule.owner)


def owner_account(engine: Engine, username: str) -> UserInfo | None:
    with Session(engine) as session:
        user = session.scalars(select(User).where(User.username == username)).one_or_none()
        return UserInfo.of(user) if user is not None else None


def add_rule(
    engine: Engine,
    *,
    name: str,
    kind: str,
    threshold: float,
    channel: str,
    target: str,
    owner: str | None,
    scope: Scope | None,
    actor: str | None,
    address: str | None = None,
) -> RuleInfo:
    """Add a rule (checked by the caller) and its audit event in one transaction."""
    with Session(engine) as session:
        row = AlertRule(
            name=name,
            kind=kind,
            threshold=float(threshold),
            channel=channel,
            target=target,
            owner=owner,
            scope_column=scope.column if scope else None,
            scope_values=list(scope.values) if scope else None,
            enabled=True,
            created_at=now(),
        )
        session.add(row)
        session.flush()
        audit_in(
            session, "alert.rule.add", actor, f"rule {row.id}", address,
            name=name, kind=kind, threshold=float(threshold), channel=channel,
            to=redacted_target(channel, target), owner=owner,
        )  # fmt: skip
        session.commit()
        rule_id = row.id
    found = rule(engine, rule_id)
    assert found is not None  # just committed; rules are deleted only by delete_rule
    return found


def rule(engine: Engine, rule_id: int) -> RuleInfo | None:
    with Session(engine) as session:
        found = session.execute(_rules_query().where(AlertRule.id == rule_id)).first()
        return RuleInfo.of(*found) if found is not None else None


def rules(
    engine: Engine, *, owner: str | None = None, enabled_only: bool = False
) -> list[RuleInfo]:
    """Rules in the order they were made; only `owner`'s when given."""
    query = _rules_query().order_by(AlertRule.id)
    if owner is not None:
        query = query.where(AlertRule.owner == owner)
    if enabled_only:
        query = query.where(AlertRule.enabled.is_(True))
    with Session(engine) as session:
        return [RuleInfo.of(r, u) for r, u in session.execute(query)]


def delete_rule(
    engine: Engine, rule_id: int, actor: str | None, address: str | None = None
) -> RuleInfo | None:
    """Delete a rule and its deliveries, with its audit event; None when there is no such
    rule."""
    found = rule(engine, rule_id)
    if found is None:
        return None
    with Session(engine) as session:
        row = session.get(AlertRule, rule_id, with_for_update=True)
        if row is None:  # deleted meanwhile by another request
            return None
        # Explicitly, not only by the foreign key's cascade: SQLite enforces that only on
        # connections that asked (analytics.store.db.make_engine does; memory_state does not).
        session.execute(delete(AlertDelivery).where(AlertDelivery.rule_id == rule_id))
        session.delete(row)
        audit_in(
            session, "alert.rule.delete", actor, f"rule {rule_id}", address,
            name=found.name, kind=found.kind, channel=found.channel, owner=found.owner,
        )  # fmt: skip
        session.commit()
    return found


# -- deliveries -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryInfo:
    id: int
    rule_id: int
    snapshot_id: str | None
    key: str
    state: str
    attempts: int
    last_error: str | None
    payload: dict
    created_at: str | None
    delivered_at: str | None

    @classmethod
    def of(cls, row: AlertDelivery) -> DeliveryInfo:
        return cls(
            id=row.id,
            rule_id=row.rule_id,
            snapshot_id=row.snapshot_id,
            key=row.key,
            state=row.state,
            attempts=int(row.attempts or 0),
            last_error=row.last_error,
            payload=dict(row.payload or {}),
            created_at=_iso(row.created_at),
            delivered_at=_iso(row.delivered_at),
        )

    def public(self) -> dict:
        alert = self.payload.get("alert") or {}
        return {
            "id": self.id,
            "rule_id": self.rule_id,
            "snapshot_id": self.snapshot_id,
            "key": self.key,
            "state": self.state,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "title": alert.get("title"),
            "text": self.payload.get("text"),
            "test": bool(alert.get("test")),
            "details": alert.get("details"),
            "created_at": self.created_at,
            "delivered_at": self.delivered_at,
        }


@dataclass(frozen=True)
class Claimed:
    """A delivery this process holds (state `sending`) and where its rule sends it."""

    delivery: DeliveryInfo
    channel: str
    target: str


def _insert_ignoring_key(engine: Engine):
    """INSERT ... ON CONFLICT (key) DO NOTHING in this database's dialect: a key recorded by
    another process at the same moment is skipped, not an error."""
    make = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    return make(AlertDelivery).on_conflict_do_nothing(index_elements=[AlertDelivery.key])


def add_deliveries(engine: Engine, items: Sequence[tuple[int, str | None, str, dict]]) -> list[int]:
    """Record pending deliveries (rule_id, snapshot_id, key, payload); returns the ids of the
    rows added, leaving out keys recorded before. Each is its own transaction: a rule deleted
    meanwhile loses its row (a foreign-key error) without losing the others."""
    added = []
    for rule_id, snapshot_id, key, payload in items:
        statement = (
            _insert_ignoring_key(engine)
            .values(
                rule_id=rule_id,
                snapshot_id=snapshot_id,
                key=key,
                state=PENDING,
                attempts=0,
                payload=payload,
                created_at=now(),
            )
            .returning(AlertDelivery.id)
        )
        try:
            with engine.begin() as connection:
                new_id = connection.execute(statement).scalar_one_or_none()
        except IntegrityError:
            continue
        if new_id is not None:
            added.append(int(new_id))
    return added


def add_test_delivery(
    engine: Engine, rule_id: int, key: str, payload: dict, actor: str | None, address=None
) -> int:
    """Record a test delivery of a rule with its audit event, in one transaction."""
    with Session(engine) as session:
        new_id = session.execute(
            insert(AlertDelivery)
            .values(
                rule_id=rule_id,
                snapshot_id=None,
                key=key,
                state=PENDING,
                attempts=0,
                payload=payload,
                created_at=now(),
            )
            .returning(AlertDelivery.id)
        ).scalar_one()
        audit_in(session, "alert.rule.test", actor, f"rule {rule_id}", address, delivery=new_id)
        session.commit()
    return int(new_id)


def pending_ids(engine: Engine, limit: int = 1000) -> list[int]:
    with Session(engine) as session:
        query = (
            select(AlertDelivery.id)
            .where(AlertDelivery.state == PENDING)
            .order_by(AlertDelivery.id)
            .limit(limit)
        )
        return [int(i) for i in session.scalars(query)]


def claim(engine: Engine, delivery_id: int) -> Claimed | None:
    """Take a pending delivery for this process (pending -> sending), or None when another
    process has it, it was sent or it failed: one conditional update, so two processes asking
    at once cannot both get it."""
    with Session(engine) as session:
        taken = session.execute(
            update(AlertDelivery)
            .where(AlertDelivery.id == delivery_id, AlertDelivery.state == PENDING)
            .values(state=SENDING)
        ).rowcount
        if taken != 1:
            session.rollback()
            return None
        row = session.get(AlertDelivery, delivery_id)
        target = session.get(AlertRule, row.rule_id)
        claimed = Claimed(DeliveryInfo.of(row), target.channel, target.target)
        session.commit()
    return claimed


def record_attempt(
    engine: Engine, delivery_id: int, *, error: str | None, final: bool
) -> DeliveryInfo | None:
    """Count one attempt of a claimed delivery: sent (error None), failed for good (final), or
    failed with another attempt to come (the row stays `sending`). The last error is kept."""
    values: dict = {"attempts": AlertDelivery.attempts + 1}
    if error is None:
        values.update(state=SENT, delivered_at=now())
    else:
        values.update(last_error=error[:2000], state=FAILED if final else SENDING)
    with Session(engine) as session:
        session.execute(
            update(AlertDelivery)
            .where(AlertDelivery.id == delivery_id, AlertDelivery.state == SENDING)
            .values(**values)
        )
        session.commit()
    return delivery(engine, delivery_id)


def delivery(engine: Engine, delivery_id: int) -> DeliveryInfo | None:
    with Session(engine) as session:
        row = session.get(AlertDelivery, delivery_id)
        return DeliveryInfo.of(row) if row is not None else None


def deliveries(
    engine: Engine,
    *,
    owner: str | None = None,
    rule_id: int | None = None,
    limit: int = 100,
) -> list[DeliveryInfo]:
    """The delivery log, newest first; only the rules `owner` owns when given."""
    query = select(AlertDelivery).order_by(AlertDelivery.id.desc()).limit(limit)
    if owner is not None:
        query = query.join(AlertRule, AlertRule.id == AlertDelivery.rule_id).where(
            AlertRule.owner == owner
        )
    if rule_id is not None:
        query = query.where(AlertDelivery.rule_id == rule_id)
    with Session(engine) as session:
        return [DeliveryInfo.of(r) for r in session.scalars(query)]


def snapshot_as_of(engine: Engine, snapshot_id: str) -> str | None:
    """A recorded snapshot's as-of date (ISO), None when there is no such snapshot."""
    if "\x00" in snapshot_id:
        return None
    with Session(engine) as session:
        row = session.get(Snapshot, snapshot_id)
        return row.as_of.isoformat() if row is not None else None

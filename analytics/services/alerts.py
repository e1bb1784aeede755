"""Alert rules and their delivery log as a user may ask for them (the API's /api/v1/alerts).

- An admin creates, deletes and tests rules and sees every rule and delivery; a rule may name
  an `owner`, a manager whose scope the rule then covers.
- A manager sees the rules they own and those rules' deliveries (a webhook URL shown without
  its path, which often holds the hook's secret); nothing else.
- An analyst sees nothing.
The web layer checks roles too; these functions enforce them themselves. A bad body is
InvalidInput naming the field (400); a role without the right is AlertError 403; an unknown
rule (or one a manager does not own) is AlertError 404. Every create, delete and test is
audited in the transaction that makes it (analytics.store.alerts).
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from sqlalchemy import Engine

from analytics import alerting
from analytics.access import ADMIN, MANAGER
from analytics.config import ServeSettings, check_mail_address
from analytics.formatting import NAME_RULE, plain_name
from analytics.services.errors import InvalidInput
from analytics.store import alerts as store
from analytics.store.accounts import AccountError, check_username
from analytics.store.alerts import EMAIL, WEBHOOK, AlertError

FIELDS = ("name", "kind", "threshold", "channel", "target", "owner")
MAX_DELIVERIES = 500


def _plain_text(value: str) -> str:
    # The name is the e-mail's subject: a header refuses U+2028 and \x85 too, so a rule named
    # with one could never deliver by e-mail.
    if not plain_name(value):
        raise ValueError(NAME_RULE)
    return value


def check_webhook_url(url: str) -> str:
    """An http(s) URL with a host, nothing that could be read two ways."""
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError("a webhook URL has no spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a malformed port raises here)
    except ValueError:
        raise ValueError("not a URL: expected https://host/path") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "a user:password@ before the host is not supported; put a token in the path"
        )
    return url


class RuleBody(BaseModel):
    """POST /api/v1/alerts/rules."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=128, description="what the rule is called")
    kind: Literal[alerting.KINDS] = Field(description="what the rule watches")  # type: ignore[valid-type]
    threshold: float = Field(description="when it fires; its meaning depends on the kind")
    channel: Literal["webhook", "email"] = Field(description="how the alert is delivered")
    target: str = Field(
        min_length=1, max_length=512, description="the webhook's URL or the e-mail address"
    )
    owner: str | None = Field(
        None, description="a manager's username: the rule then covers that manager's scope"
    )

    _name = field_validator("name")(_plain_text)

    @field_validator("threshold", mode="before")
    @classmethod
    def _a_number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number")
        return value

    @field_validator("threshold")
    @classmethod
    def _in_range(cls, value: float, info: ValidationInfo) -> float:
        kind = info.data.get("kind")
        return alerting.THRESHOLDS[kind].check(value) if kind else value

    @field_validator("target")
    @classmethod
    def _a_target(cls, value: str, info: ValidationInfo) -> str:
        channel = info.data.get("channel")
        if channel == WEBHOOK:
            return check_webhook_url(value)
        if channel == EMAIL:
            return check_mail_address(value)
        return value

    @field_validator("owner")
    @classmethod
    def _a_username(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            return check_username(value)
        except AccountError as exc:
            raise ValueError(str(exc)) from None


_SAID = {
    "missing": "is required",
    "extra_forbidden": f"is not a field of an alert rule ({', '.join(FIELDS)})",
}


def parse_rule(body: object) -> RuleBody:
    """A rule body checked, or InvalidInput naming the first field at fault in one line."""
    if not isinstance(body, dict):
        raise InvalidInput("body", f"expected a JSON object with {', '.join(FIELDS)}")
    try:
        return RuleBody.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = str(error["loc"][0]) if error["loc"] else "body"
        message = _SAID.get(error["type"]) or error["msg"].removeprefix("Value error, ")
        if error["type"] == "string_too_short":
            message = "must not be blank"
        elif error["type"] == "string_too_long":
            message = f"must be at most {error['ctx']['max_length']} characters"
        if error["type"] == "literal_error":
            message = f"got {error['input']!r}; {message[0].lower()}{message[1:]}"
        raise InvalidInput(where, message) from None


# -- who may do what -------------------------------------------------------------------------


def _admin(role: str, what: str) -> None:
    if role != ADMIN:
        raise AlertError(f"{what} needs the admin role", 403)


def _reader(role: str) -> None:
    if role not in (ADMIN, MANAGER):
        raise AlertError("alerts need the admin or manager role", 403)


def _rule_id(value: object) -> int:
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) < 2**31:
        raise InvalidInput(
            "rule_id", f"expected a rule's id (a positive whole number), got {value!r}"
        )
    return int(text)


def _visible_rule(engine: Engine, rule_id: object, username: str, role: str) -> store.RuleInfo:
    found = store.rule(engine, _rule_id(rule_id))
    if found is None or (role == MANAGER and found.owner != username):
        raise AlertError(f"no alert rule {rule_id}: see GET /api/v1/alerts/rules", 404)
    return found


# -- the service ----------------------------------------------------------------------------


def create_rule(
    engine: Engine, body: object, *, username: str, role: str, address: str | None = None
) -> dict:
    """Add a rule (admin); `owner` must be an enabled manager."""
    _admin(role, "creating an alert rule")
    rule = parse_rule(body)
    scope = None
    if rule.owner is not None:
        account = store.owner_account(engine, rule.owner)
        if account is None:
            raise InvalidInput("owner", f"no user named {rule.owner!r}")
        if account.role != MANAGER:
            raise InvalidInput(
                "owner", f"{rule.owner!r} is an {account.role}; only a manager owns a rule"
            )
        if account.disabled:
            raise InvalidInput("owner", f"{rule.owner!r} is disabled")
        scope = account.scope
    made = store.add_rule(
        engine,
        name=rule.name,
        kind=rule.kind,
        threshold=rule.threshold,
        channel=rule.channel,
        target=rule.target,
        owner=rule.owner,
        scope=scope,
        actor=username,
        address=address,
    )
    return made.public()


def delete_rule(
    engine: Engine, rule_id: object, *, username: str, role: str, address: str | None = None
) -> dict:
    """Delete a rule and its delivery log (admin); the deleted rule is returned."""
    _admin(role, "deleting an alert rule")
    gone = store.delete_rule(engine, _rule_id(rule_id), username, address)
    if gone is None:
        raise AlertError(f"no alert rule {rule_id}: see GET /api/v1/alerts/rules", 404)
    return gone.public()


def list_rules(engine: Engine, *, username: str, role: str) -> list[dict]:
    """Every rule (admin), or the rules this manager owns."""
    _reader(role)
    if role == ADMIN:
        return [r.public() for r in store.rules(engine)]
    return [r.public(reveal_target=False) for r in store.rules(engine, owner=username)]


def list_deliveries(
    engine: Engine,
    *,
    username: str,
    role: str,
    rule_id: object = None,
    limit: object = 100,
) -> list[dict]:
    """The delivery log, newest first: every rule's (admin) or this manager's rules'."""
    _reader(role)
    try:
        count = int(str(limit))
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_DELIVERIES:
        raise InvalidInput("limit", f"must be 1 to {MAX_DELIVERIES}, got {limit!r}")
    only = None
    if rule_id not in (None, ""):
        only = _visible_rule(engine, rule_id, username, role).id
    owner = username if role == MANAGER else None
    return [d.public() for d in store.deliveries(engine, owner=owner, rule_id=only, limit=count)]


def send_rule_test(
    engine: Engine,
    settings: ServeSettings,
    rule_id: object,
    *,
    username: str,
    role: str,
    address: str | None = None,
) -> dict:
    """Send a rule's test alert now (admin): the delivery as it ended, sent or with its error."""
    _admin(role, "testing an alert rule")
    rule = _visible_rule(engine, rule_id, username, role)
    return alerting.send_test(engine, settings, rule.id, username, address=address).public()

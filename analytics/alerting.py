"""Alerts: rules checked against each new snapshot, and their delivery by webhook and e-mail.

Evaluation is pure: `evaluate(rule, current, previous, monitoring)` reads two snapshot frames
(one row per customer: customer_id, p_churn, risk_band, value, expected_loss, high_value,
segment, monthly_revenue, churned: 0/1, blank while the window has not passed) and the
monitoring figures, and returns an Alert or None. A customer whose outcome is not known yet
counts as active, as in analytics.history.movers. Rules comparing with the previous snapshot
stay quiet without one. A rule with a scope sees only its customers in both snapshots.

Delivery (`record_alerts`, `deliver_pending`, `run_for_snapshot`, `send_test`) goes through
analytics.store.alerts: one delivery per rule and snapshot, claimed before it is sent, so
running the evaluation twice or in two processes sends an alert once. Webhooks are a JSON POST
with a Slack-compatible `text` and an Idempotency-Key header; e-mail is SMTP with STARTTLS.
Secrets (the SMTP password, a webhook URL's path and query) never reach a log or last_error.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import math
import re
import secrets
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from analytics import columns as C
from analytics.access import Scope
from analytics.config import ServeSettings, check_mail_address
from analytics.formatting import DEFAULT_CURRENCY, money
from analytics.history.movers import at_risk_ids, newly_at_risk
from analytics.metrics.kpis import kpis
from analytics.store import alerts as store
from analytics.store.alerts import EMAIL, WEBHOOK, AlertError, DeliveryInfo, redacted_target

log = logging.getLogger("analytics.alerting")

MRR_AT_RISK_UP = "mrr_at_risk_up"
NEW_AT_RISK = "new_at_risk"
HIGH_VALUE_TO_HIGH = "high_value_to_high"
SEGMENT_CHURN = "segment_churn"
MODEL_DECAY = "model_decay"
KINDS = (MRR_AT_RISK_UP, NEW_AT_RISK, HIGH_VALUE_TO_HIGH, SEGMENT_CHURN, MODEL_DECAY)

LARGE_PSI = 0.25  # METRICS.md: PSI > 0.25 is a large drift
MAX_IDS = 100  # customer ids kept in an alert (the count is always whole)
IDS_IN_TEXT = 5
FIGURE_DECIMALS = 9  # figures are compared rounded: 0.1 + 0.2 is 0.3 at a threshold of 0.3
BACKOFF_SECONDS = 1.0  # before the 2nd attempt; doubles after each failure, at most 30 s


@dataclass(frozen=True)
class Threshold:
    """What a kind's threshold means and the values it may take."""

    low: float
    high: float
    integer: bool
    high_open: bool
    meaning: str

    def check(self, value: float) -> float:
        if (
            not math.isfinite(value)
            or value < self.low
            or value > self.high
            or (self.high_open and value == self.high)
        ):
            excluded = f" ({self.high:g} excluded)" if self.high_open else ""
            raise ValueError(
                f"must be {self.meaning}, from {self.low:g} to {self.high:g}{excluded}; "
                f"got {value:g}"
            )
        if self.integer and not float(value).is_integer():
            raise ValueError(f"must be {self.meaning}, a whole number; got {value:g}")
        return float(value)


THRESHOLDS = {
    MRR_AT_RISK_UP: Threshold(
        0, 1000, False, False, "a percentage (MRR at risk up by more than it)"
    ),
    NEW_AT_RISK: Threshold(
        1, 1_000_000, True, False, "a number of customers (this many newly high-value high-risk)"
    ),
    HIGH_VALUE_TO_HIGH: Threshold(
        0, 1e12, False, False, "a customer value (a customer worth at least it turning High)"
    ),
    SEGMENT_CHURN: Threshold(
        0, 1, False, True, "a churn rate as a fraction, 0.2 = 20% (a segment above it)"
    ),
    MODEL_DECAY: Threshold(0, 0.5, False, False, "a margin of ROC-AUC (realised below expected)"),
}


class RuleLike(Protocol):
    id: int | None
    name: str
    kind: str
    threshold: float
    scope: Scope | None


@dataclass(frozen=True)
class RuleSpec:
    """A rule as evaluation reads it (analytics.store.alerts.RuleInfo has the same fields)."""

    kind: str
    threshold: float
    name: str = ""
    id: int | None = None
    scope: Scope | None = None


@dataclass(frozen=True)
class Alert:
    """A rule that fired: a title, one paragraph with the figures, the figures as details, and
    the customers concerned (at most MAX_IDS; details say how many there are)."""

    rule_id: int | None
    rule_name: str
    kind: str
    title: str
    text: str
    details: dict = field(default_factory=dict)
    customer_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    title: str
    text: str
    details: dict
    customer_ids: tuple[str, ...] = ()


# -- evaluation -----------------------------------------------------------------------------


def _round(x: float) -> float:
    return round(float(x), FIGURE_DECIMALS)


def _figure(x: float, ref: float, suffix: str = "") -> str:
    """x with the fewest decimals (1 to 6) that tell it apart from ref: 10.04% vs 10%."""
    for decimals in range(1, 7):
        if round(x, decimals) != round(ref, decimals):
            break
    return f"{x:,.{decimals}f}{suffix}"


def _share(x: float, ref: float) -> str:
    """A fraction as a percentage, told apart from ref: 25.1% vs 25%."""
    return _figure(100 * x, 100 * ref, "%")


def _customers(n: int, kind: str = "") -> str:
    return f"{n:,} {kind}customer{'' if n == 1 else 's'}"


def _ids_text(ids: Sequence[str], total: int) -> str:
    shown = ", ".join(ids[:IDS_IN_TEXT])
    more = total - min(len(ids), IDS_IN_TEXT)
    return shown + (f" and {more:,} more" if more > 0 else "")


def _unknown_active(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with a blank outcome read as still a customer (0): kpis() counts only known
    actives, and a new snapshot's outcomes are all blank."""
    if C.CHURNED in frame.columns and frame[C.CHURNED].isna().any():
        return frame.assign(**{C.CHURNED: frame[C.CHURNED].fillna(0)})
    return frame


def _active(frame: pd.DataFrame) -> pd.DataFrame:
    if C.CHURNED not in frame.columns:
        return frame
    return frame[frame[C.CHURNED].to_numpy(dtype=float, na_value=np.nan) != 1]


def in_scope(frame: pd.DataFrame, scope: Scope | None) -> tuple[pd.DataFrame, str | None]:
    """The customers of `frame` in `scope`, and why there are none when the frame lacks the
    scope's column (then nobody is in scope)."""
    if scope is None:
        return frame, None
    if scope.column not in frame.columns:
        problem = f"the snapshot has no column {scope.column!r}: nobody is in scope {scope}"
        return frame.iloc[:0], problem
    keep = frame[scope.column].astype(str).isin(scope.values).to_numpy()
    return frame[keep], None


def mrr_at_risk_up(
    current: pd.DataFrame, previous: pd.DataFrame | None, percent: float, currency: str
) -> Finding | None:
    if previous is None:
        return None
    now_k, before_k = kpis(_unknown_active(current)), kpis(_unknown_active(previous))
    now, before = now_k["mrr_at_risk"], before_k["mrr_at_risk"]
    if now is None or before is None or now <= before:
        return None
    rise = None if before == 0 else _round((now - before) / before * 100)
    if rise is not None and not rise > percent:
        return None
    change = "from nothing" if rise is None else f"+{_figure(rise, percent, '%')}"
    mrr = now_k["mrr"]
    share = f", {now / mrr:.1%} of MRR {money(mrr, currency)}" if mrr else ""
    return Finding(
        title=f"MRR at risk up {change}",
        text=(
            f"MRR at risk rose from {money(before, currency)} to {money(now, currency)} "
            f"({change}) since the previous snapshot, more than the rule's {percent:g}%"
            f"{share}, over {_customers(now_k['active_customers'], 'active ')}."
        ),
        details={
            "mrr_at_risk": now,
            "mrr_at_risk_previous": before,
            "rise_percent": rise,
            "threshold_percent": percent,
            "mrr": mrr,
            "active_customers": now_k["active_customers"],
        },
    )


def new_at_risk(
    current: pd.DataFrame, previous: pd.DataFrame | None, count: float, currency: str
) -> Finding | None:
    if previous is None:
        return None
    now = _unknown_active(current)
    ids = newly_at_risk(now, _unknown_active(previous))
    if len(ids) < count or len(ids) == 0:
        return None
    rows = now[now[C.CUSTOMER_ID].astype(str).isin(ids)]
    loss = float(rows[C.EXPECTED_LOSS].sum())
    listed = [str(i) for i in ids[:MAX_IDS]]
    total = len(at_risk_ids(now))
    return Finding(
        title=f"{_customers(len(ids))} newly high-value high-risk",
        text=(
            f"{_customers(len(ids))} entered the high-value at-risk list since the previous "
            f"snapshot (the rule: {int(count):,} or more), with {money(loss, currency)} of "
            f"expected loss; the list now holds {total:,}. "
            f"Customers: {_ids_text(listed, len(ids))}."
        ),
        details={
            "newly_at_risk": len(ids),
            "at_risk": total,
            "expected_loss": loss,
            "threshold": int(count),
        },
        customer_ids=tuple(listed),
    )


def high_value_to_high(
    current: pd.DataFrame, previous: pd.DataFrame | None, value: float, currency: str
) -> Finding | None:
    if previous is None or C.VALUE not in current.columns:
        return None
    now = _active(current)
    worth = now[C.VALUE].to_numpy(dtype=float, na_value=np.nan)
    high_now = now[(np.round(worth, FIGURE_DECIMALS) >= value) & (now[C.RISK_BAND] == "High")]
    bands_before = previous.set_index(previous[C.CUSTOMER_ID].astype(str))[C.RISK_BAND]
    was = high_now[C.CUSTOMER_ID].astype(str).map(bands_before)
    crossed = high_now[(was != "High").to_numpy()]
    if crossed.empty:
        return None
    was = was[(was != "High").to_numpy()]
    order = np.argsort(-crossed[C.VALUE].to_numpy(dtype=float), kind="stable")
    crossed, was = crossed.iloc[order], was.iloc[order]
    ids = crossed[C.CUSTOMER_ID].astype(str).tolist()
    before = [b if isinstance(b, str) else None for b in was]
    first = [
        f"{cid} (value {money(v, currency)}, p {p:.2f}, was {b or 'absent'})"
        for cid, v, p, b in zip(
            ids[:IDS_IN_TEXT], crossed[C.VALUE], crossed[C.P_CHURN], before, strict=False
        )
    ]
    more = len(ids) - len(first)
    loss = float(crossed[C.EXPECTED_LOSS].sum()) if C.EXPECTED_LOSS in crossed else None
    return Finding(
        title=f"{_customers(len(ids))} worth {money(value, currency)} or more turned High risk",
        text=(
            f"{_customers(len(ids))} with a value of at least {money(value, currency)} crossed "
            f"into risk band High since the previous snapshot, worth "
            f"{money(float(crossed[C.VALUE].sum()), currency)} together"
            + (f" with {money(loss, currency)} of expected loss" if loss is not None else "")
            + f": {'; '.join(first)}"
            + (f"; and {more:,} more." if more > 0 else ".")
        ),
        details={
            "customers": len(ids),
            "threshold_value": value,
            "value": float(crossed[C.VALUE].sum()),
            "expected_loss": loss,
            "crossed": [
                {"customer_id": cid, "value": float(v), "p_churn": float(p), "previous_band": b}
                for cid, v, p, b in zip(
                    ids[:MAX_IDS],
                    crossed[C.VALUE][:MAX_IDS],
                    crossed[C.P_CHURN][:MAX_IDS],
                    before[:MAX_IDS],
                    strict=True,
                )
            ],
        },
        customer_ids=tuple(ids[:MAX_IDS]),
    )


def segment_rates(frame: pd.DataFrame) -> pd.DataFrame:
    """Per segment: customers, churn rate and its basis, "realised" (share who left) when every
    customer's outcome is known, else "predicted" (mean p_churn: the window has not passed)."""
    churned = (
        frame[C.CHURNED].to_numpy(dtype=float, na_value=np.nan)
        if C.CHURNED in frame.columns
        else np.full(len(frame), np.nan)
    )
    parts = pd.DataFrame(
        {
            "segment": frame[C.SEGMENT].astype(str).to_numpy(),
            "churned": churned,
            "known": ~np.isnan(churned),
            "p": frame[C.P_CHURN].to_numpy(dtype=float, na_value=np.nan),
        }
    )
    groups = parts.groupby("segment", sort=True)
    out = pd.DataFrame(
        {
            "customers": groups.size(),
            "realised": groups["churned"].mean(),
            "predicted": groups["p"].mean(),
            "all_known": groups["known"].all(),
        }
    )
    out["basis"] = np.where(out["all_known"], "realised", "predicted")
    out["rate"] = np.where(out["all_known"], out["realised"], out["predicted"])
    return out[["customers", "rate", "basis"]]


def segment_churn(
    current: pd.DataFrame, previous: pd.DataFrame | None, rate: float, currency: str
) -> Finding | None:
    if C.SEGMENT not in current.columns or C.P_CHURN not in current.columns or current.empty:
        return None
    rates = segment_rates(current)
    above = rates[np.round(rates["rate"].to_numpy(dtype=float), FIGURE_DECIMALS) > rate]
    if above.empty:
        return None
    above = above.sort_values("rate", ascending=False, kind="stable")
    words = {
        "realised": "realised churn rate",
        "predicted": "predicted churn rate (mean p_churn: the window has not passed)",
    }
    parts = [
        f"{name!r}: {words[r.basis]} {_share(r.rate, rate)} of {_customers(int(r.customers))}"
        for name, r in above.iterrows()
    ]
    title = (
        f"Segment {above.index[0]!r} churn rate {_share(above['rate'].iloc[0], rate)}"
        if len(above) == 1
        else f"{len(above)} segments churning above {_share(rate, -1)}"
    )
    return Finding(
        title=title,
        text=f"{'; '.join(parts)}; above the rule's {_share(rate, -1)}.",
        details={
            "threshold": rate,
            "segments": [
                {
                    "segment": name,
                    "rate": float(r.rate),
                    "basis": r.basis,
                    "customers": int(r.customers),
                }
                for name, r in above.iterrows()
            ],
        },
    )


def _number(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def model_decay(monitoring: dict | None, margin: float) -> Finding | None:
    """The newest snapshot with a realised ROC-AUC below the model's expected one minus the
    margin, or any feature drifting largely (PSI > 0.25). Snapshots marked in_sample (a model
    scoring its own training base: cross-validated figures) say nothing of decay."""
    if not monitoring:
        return None
    realised = [
        s
        for s in monitoring.get("snapshots") or []
        if not s.get("in_sample")
        and _number(s.get("realised_roc_auc")) is not None
        and _number(s.get("expected_roc_auc")) is not None
    ]
    newest = max(realised, key=lambda s: str(s.get("as_of")), default=None)
    decayed = None
    if newest is not None:
        got, expected = _number(newest["realised_roc_auc"]), _number(newest["expected_roc_auc"])
        if _round(got) < _round(expected - margin):
            decayed = (got, expected)
    drift = sorted(
        (d for d in monitoring.get("drift") or [] if (_number(d.get("psi")) or 0) > LARGE_PSI),
        key=lambda d: -float(d["psi"]),
    )
    if decayed is None and not drift:
        return None
    sentences, titles = [], []
    if decayed is not None:
        got, expected = decayed
        titles.append(f"realised ROC-AUC {got:.3f} below expected {expected:.3f}")
        sentences.append(
            f"The snapshot of {newest.get('as_of')} (model {newest.get('model_version')}) "
            f"ranked who left with ROC-AUC {got:.3f}, below the {expected:.3f} expected at "
            f"training minus the rule's margin {margin:g} ({expected - margin:.3f})."
        )
    if drift:
        titles.append(f"large drift in {len(drift)} feature{'s' if len(drift) > 1 else ''}")
        listed = ", ".join(f"{d.get('feature')} ({float(d['psi']):.2f})" for d in drift[:10])
        sentences.append(f"Large drift (PSI above {LARGE_PSI}) in {listed}.")
    sentences.append("Consider retraining the model on recent data.")
    return Finding(
        title="Model decaying: " + "; ".join(titles),
        text=" ".join(sentences),
        details={
            "as_of": str(newest.get("as_of")) if newest else None,
            "model_version": newest.get("model_version") if newest else None,
            "realised_roc_auc": decayed[0] if decayed else None,
            "expected_roc_auc": decayed[1] if decayed else None,
            "margin": margin,
            "drift": [
                {"feature": d.get("feature"), "psi": float(d["psi"]), "level": d.get("level")}
                for d in drift
            ],
        },
    )


_FRAME_RULES: dict[str, Callable[..., Finding | None]] = {
    MRR_AT_RISK_UP: mrr_at_risk_up,
    NEW_AT_RISK: new_at_risk,
    HIGH_VALUE_TO_HIGH: high_value_to_high,
    SEGMENT_CHURN: segment_churn,
}


def evaluate(
    rule: RuleLike,
    current: pd.DataFrame,
    previous: pd.DataFrame | None = None,
    monitoring: dict | None = None,
    *,
    currency: str = DEFAULT_CURRENCY,
) -> Alert | None:
    """The alert `rule` raises on the current snapshot (against the previous one), or None.
    model_decay reads the monitoring figures given (run_for_snapshot gives a rule with a scope
    its scope's realised ones; drift is the model's); the other kinds read the rule's scope
    only (nobody when the snapshot lacks the scope's column: logged, and quiet)."""
    if rule.kind == MODEL_DECAY:
        found, scope_note = model_decay(monitoring, rule.threshold), ""
    elif rule.kind in _FRAME_RULES:
        now, problem = in_scope(current, rule.scope)
        before = in_scope(previous, rule.scope)[0] if previous is not None else None
        if problem:
            log.warning("alert rule %s %r: %s", rule.id, rule.name, problem)
            return None
        found = _FRAME_RULES[rule.kind](now, before, rule.threshold, currency)
        scope_note = f" Scope {rule.scope}: {_customers(len(now))}." if rule.scope else ""
    else:
        raise ValueError(f"unknown alert kind {rule.kind!r}: one of {', '.join(KINDS)}")
    if found is None:
        return None
    details = {**found.details, "scope": str(rule.scope) if rule.scope else None}
    return Alert(
        rule_id=rule.id,
        rule_name=rule.name,
        kind=rule.kind,
        title=found.title,
        text=found.text + scope_note,
        details=details,
        customer_ids=found.customer_ids[:MAX_IDS],
    )


# -- what is sent ---------------------------------------------------------------------------


def slack_text(text: str) -> str:
    """Text as Slack's `text` field reads it literally: &, < and > escaped (Slack's rule)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload_of(
    alert: Alert, snapshot_id: str | None, as_of: str | None = None, *, test: bool = False
) -> dict:
    """What a delivery row keeps: the message (title, one paragraph) and the alert as data."""
    return {
        "title": f"{alert.rule_name}: {alert.title}" if alert.rule_name else alert.title,
        "text": f"As of {as_of}: {alert.text}" if as_of else alert.text,
        "alert": {
            "rule": alert.rule_name,
            "rule_id": alert.rule_id,
            "kind": alert.kind,
            "title": alert.title,
            "snapshot": snapshot_id,
            "as_of": as_of,
            "details": {**alert.details, "customer_ids": list(alert.customer_ids)},
            "test": test,
        },
    }


def webhook_body(payload: dict) -> dict:
    return {
        "text": slack_text(f"{payload['title']}. {payload['text']}"),
        "alert": payload["alert"],
    }


def snapshot_key(rule_id: int, snapshot_id: str) -> str:
    return f"rule:{rule_id}:snapshot:{snapshot_id}"


# -- sending --------------------------------------------------------------------------------


class DeliveryFailed(Exception):
    """One attempt failed; `permanent` when another attempt cannot help (a 4xx answer, a
    refused login or certificate, e-mail not configured). The message holds no secret."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook is POSTed where it is configured: urllib would turn a redirected POST into a
    GET without its body, or send it to a host the admin never named."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(str(text).split())[:limit]


def post_webhook(url: str, body: dict, key: str, timeout: float) -> None:
    shown = redacted_target(WEBHOOK, url)
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            "User-Agent": "retention-alerts",
        },
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(65536)
    except urllib.error.HTTPError as exc:
        said = _one_line(exc.read(300).decode("utf-8", "replace")) if exc.fp else ""
        permanent = 300 <= exc.code < 500 and exc.code not in (408, 425, 429)
        note = " (redirects are not followed)" if 300 <= exc.code < 400 else ""
        raise DeliveryFailed(
            f"HTTP {exc.code} {_one_line(exc.reason)} from {shown}{note}"
            + (f": {said}" if said else ""),
            permanent=permanent,
        ) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        permanent = isinstance(reason, ssl.SSLCertVerificationError)
        raise DeliveryFailed(f"{shown}: {_one_line(reason)}", permanent=permanent) from None
    except (OSError, http.client.HTTPException) as exc:  # timeouts, resets mid-answer
        raise DeliveryFailed(f"{shown}: {type(exc).__name__} {_one_line(exc)}") from None


def _sender(settings: ServeSettings) -> str:
    if settings.smtp_from:
        return settings.smtp_from
    try:
        return check_mail_address(settings.smtp_username or "")
    except ValueError:
        raise DeliveryFailed(
            "no sender: set RETENTION_SMTP_FROM to the address alerts are sent from",
            permanent=True,
        ) from None


def email_message(settings: ServeSettings, to: str, payload: dict, key: str) -> EmailMessage:
    sender = _sender(settings)
    message = EmailMessage()
    message["Subject"] = payload["title"]
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(usegmt=True)
    # The same id on every attempt: a mail system that got an attempt the client saw fail
    # (a timeout after DATA) can drop the repeat.
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    message["Message-ID"] = f"<{digest}@{sender.rpartition('@')[2]}>"
    message.set_content(f"{payload['title']}\n\n{payload['text']}\n")
    return message


def send_email(settings: ServeSettings, to: str, payload: dict, key: str) -> None:
    host = settings.smtp_host
    if not host:
        raise DeliveryFailed(
            "e-mail is not configured: set RETENTION_SMTP_HOST (and RETENTION_SMTP_FROM)",
            permanent=True,
        )
    message = email_message(settings, to, payload, key)
    where = f"SMTP {host}:{settings.smtp_port}"
    try:
        with smtplib.SMTP(host, settings.smtp_port, timeout=settings.smtp_timeout) as smtp:
            smtp.ehlo()
            if settings.smtp_starttls:
                cafile = str(settings.smtp_ca_file) if settings.smtp_ca_file else None
                smtp.starttls(context=ssl.create_default_context(cafile=cafile))
                smtp.ehlo()
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
            smtp.send_message(message)
    except smtplib.SMTPNotSupportedError:
        raise DeliveryFailed(
            f"{where} does not offer STARTTLS: use a server that does, or set "
            "RETENTION_SMTP_STARTTLS=0 for a relay on this host",
            permanent=True,
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise DeliveryFailed(
            f"{where}: its certificate is not trusted ({exc.verify_message}); set "
            "RETENTION_SMTP_CA_FILE to its CA certificate",
            permanent=True,
        ) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryFailed(
            f"{where} refused the login of user {settings.smtp_username!r} ({exc.smtp_code})",
            permanent=True,
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        code, said = next(iter(exc.recipients.values()), (0, b""))
        raise DeliveryFailed(
            f"{where} refused the recipient {to} ({code} {_one_line(_text(said))})",
            permanent=code >= 500,
        ) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryFailed(
            f"{where}: {exc.smtp_code} {_one_line(_text(exc.smtp_error))}",
            permanent=exc.smtp_code >= 500,
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"{where}: {type(exc).__name__} {_one_line(exc)}") from None


def _text(said) -> str:
    return said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)


SECRET_MIN = 8  # a part of a webhook URL this long may be its token; shorter ones are words


def webhook_secrets(url: str) -> list[str]:
    """What of a webhook URL may be secret, as a receiver may echo it in an error ("Cannot POST
    /hooks/<token>"): the URL, its path and query, and each of their parts long enough to be
    a token, also percent-decoded; longest first."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    tail = f"{parts.path}?{parts.query}" if parts.query else parts.path
    pieces = {url, tail, parts.path, parts.query, *re.split(r"[/?&=;]", tail)}
    pieces |= {unquote(p) for p in pieces}
    return sorted((p for p in pieces if len(p.strip("/?&=;")) >= SECRET_MIN), key=len, reverse=True)


def _scrubbed(text: str, settings: ServeSettings, target: str) -> str:
    """Belt and braces: no message written anywhere (a log, last_error, which the rule's owner
    reads) holds the SMTP password or any part of a webhook URL that may be its secret."""
    secrets_ = webhook_secrets(target) if target.startswith(("http://", "https://")) else []
    for secret in (settings.smtp_password, *secrets_):
        if secret:
            text = text.replace(secret, "<hidden>")
    return text


def _send(settings: ServeSettings, claimed: store.Claimed) -> None:
    payload, key = claimed.delivery.payload, claimed.delivery.key
    if claimed.channel == WEBHOOK:
        post_webhook(claimed.target, webhook_body(payload), key, settings.webhook_timeout)
    elif claimed.channel == EMAIL:
        send_email(settings, claimed.target, payload, key)
    else:
        raise DeliveryFailed(f"unknown channel {claimed.channel!r}", permanent=True)


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, 4 ... at most 30)."""
    return min(BACKOFF_SECONDS * 2 ** (attempt - 1), 30.0)


def deliver(
    engine: Engine,
    settings: ServeSettings,
    delivery_id: int,
    *,
    attempts: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryInfo | None:
    """Claim one pending delivery and send it, trying up to `attempts` times (default
    RETENTION_ALERT_RETRIES) with a short backoff; each attempt is counted in its row. None
    when another process has it or it was sent or failed already."""
    claimed = store.claim(engine, delivery_id)
    if claimed is None:
        return None
    limit = max(1, (attempts or settings.alert_retries) - claimed.delivery.attempts)
    shown = f"{claimed.channel} {redacted_target(claimed.channel, claimed.target)}"
    for attempt in range(1, limit + 1):
        try:
            _send(settings, claimed)
        except DeliveryFailed as exc:
            error = _scrubbed(str(exc), settings, claimed.target)
            final = exc.permanent or attempt == limit
            info = store.record_attempt(engine, delivery_id, error=error, final=final)
            log.warning(
                "alert delivery %s (rule %s, %s): attempt %d of %d failed%s: %s",
                delivery_id, claimed.delivery.rule_id, shown, attempt, limit,
                " for good" if final else "", error,
            )  # fmt: skip
            if final:
                return info
            sleep(backoff(attempt))
        except Exception as exc:  # a defect, not the receiver: never leave the row claimed
            error = _scrubbed(f"{type(exc).__name__}: {_one_line(exc)}", settings, claimed.target)
            log.error(
                "alert delivery %s (rule %s): %s", delivery_id, claimed.delivery.rule_id, error
            )
            return store.record_attempt(engine, delivery_id, error=error, final=True)
        else:
            log.info(
                "alert delivery %s (rule %s, %s) sent on attempt %d",
                delivery_id, claimed.delivery.rule_id, shown, attempt,
            )  # fmt: skip
            return store.record_attempt(engine, delivery_id, error=None, final=True)
    return store.delivery(engine, delivery_id)


def deliver_pending(
    engine: Engine, settings: ServeSettings, *, sleep: Callable[[float], None] = time.sleep
) -> list[DeliveryInfo]:
    """Send every pending delivery this process can claim; returns them as they ended. A sent
    or failed delivery is never sent again, and one another process holds is left to it."""
    done = []
    for delivery_id in store.pending_ids(engine):
        info = deliver(engine, settings, delivery_id, sleep=sleep)
        if info is not None:
            done.append(info)
    return done


def record_alerts(
    engine: Engine, snapshot_id: str, alerts: Sequence[Alert], *, as_of: str | None = None
) -> list[int]:
    """One pending delivery per (rule, snapshot); returns the ids added. An alert recorded
    before for the same rule and snapshot (evaluation run twice) is skipped."""
    items = []
    for alert in alerts:
        if alert.rule_id is None:
            raise ValueError(f"alert {alert.title!r} has no rule id: only stored rules record")
        key = snapshot_key(alert.rule_id, snapshot_id)
        items.append((alert.rule_id, snapshot_id, key, payload_of(alert, snapshot_id, as_of)))
    return store.add_deliveries(engine, items)


@dataclass(frozen=True)
class AlertRun:
    """What one snapshot's evaluation did: the alerts that fired, the delivery rows added
    (none for alerts recorded before) and the deliveries sent or failed meanwhile."""

    alerts: list[Alert]
    recorded: list[int]
    delivered: list[DeliveryInfo]


def run_for_snapshot(
    engine: Engine,
    settings: ServeSettings,
    *,
    snapshot_id: str,
    current: pd.DataFrame,
    previous: pd.DataFrame | None,
    monitoring: dict | Callable[[Scope | None], dict | None] | None,
    currency: str = DEFAULT_CURRENCY,
    sleep: Callable[[float], None] = time.sleep,
) -> AlertRun:
    """Evaluate every enabled rule on a new snapshot, record what fired, deliver what is
    pending. A rule that cannot be evaluated is logged and the others go on. `monitoring`
    may be a function of a rule's scope: a model_decay rule a manager owns then reads the
    realised figures of their scope, as their monitoring view does, not the whole base's."""
    fired = []
    watched: dict[str, dict | None] = {}

    def monitoring_for(scope: Scope | None) -> dict | None:
        if not callable(monitoring):
            return monitoring
        if str(scope) not in watched:
            watched[str(scope)] = monitoring(scope)
        return watched[str(scope)]

    for rule in store.rules(engine, enabled_only=True):
        if not rule.active:
            log.warning(
                "alert rule %s %r skipped: its owner %r is no longer an enabled manager",
                rule.id, rule.name, rule.owner,
            )  # fmt: skip
            continue
        try:
            watch = monitoring_for(rule.scope) if rule.kind == MODEL_DECAY else None
            alert = evaluate(rule, current, previous, watch, currency=currency)
        except Exception:
            log.exception("alert rule %s %r could not be evaluated", rule.id, rule.name)
            continue
        if alert is not None:
            fired.append(alert)
    as_of = store.snapshot_as_of(engine, snapshot_id)
    recorded = record_alerts(engine, snapshot_id, fired, as_of=as_of)
    delivered = deliver_pending(engine, settings, sleep=sleep)
    log.info(
        "alerts for snapshot %s: %d fired, %d recorded, %d delivered (%d sent)",
        snapshot_id, len(fired), len(recorded), len(delivered),
        sum(d.state == store.SENT for d in delivered),
    )  # fmt: skip
    return AlertRun(fired, recorded, delivered)


def alert_for_test(rule: RuleLike, channel: str, actor: str | None) -> Alert:
    """The message a rule's test sends: what the rule watches, and that delivery works."""
    meaning = THRESHOLDS[rule.kind].meaning if rule.kind in THRESHOLDS else rule.kind
    return Alert(
        rule_id=rule.id,
        rule_name=rule.name,
        kind=rule.kind,
        title="test alert",
        text=(
            f"A test of alert rule {rule.name!r} ({rule.kind}, threshold {rule.threshold:g}: "
            f"{meaning}), sent by {actor or 'the system'}. If you read this, alerts reach "
            f"this {'e-mail address' if channel == EMAIL else 'webhook'}."
        ),
        details={"threshold": rule.threshold},
    )


def send_test(
    engine: Engine,
    settings: ServeSettings,
    rule_id: int,
    actor: str | None,
    *,
    address: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryInfo:
    """Send one test alert of a rule now (one attempt: the admin sees the error at once);
    recorded under a key of its own and audited. Returns the delivery, sent or failed."""
    rule = store.rule(engine, rule_id)
    if rule is None:
        raise AlertError(f"no alert rule {rule_id}: see GET /api/v1/alerts/rules", 404)
    key = f"rule:{rule.id}:test:{secrets.token_hex(8)}"
    payload = payload_of(alert_for_test(rule, rule.channel, actor), None, test=True)
    delivery_id = store.add_test_delivery(engine, rule.id, key, payload, actor, address)
    info = deliver(engine, settings, delivery_id, attempts=1, sleep=sleep)
    return info if info is not None else store.delivery(engine, delivery_id)

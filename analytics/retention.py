"""What to do about a customer, and the planner under the user's own assumptions."""

from __future__ import annotations

import math
import re

import pandas as pd

from analytics import columns as C
from analytics import value
from analytics.result import Unavailable

# Reason text starts with the feature name ("contract = Monthly (+18.2 pts)"); the action is
# chosen by what the feature is about, matched on whole words of its name so it works for any
# schema ("customer_age" is not "tenure"; "Account length" is).
ACTIONS = (
    (
        {"contract", "term", "commitment"},
        "Offer a discounted longer contract (e.g. 12 months) in exchange for commitment.",
    ),
    (
        {"payment", "paymentmethod", "billing", "autopay", "invoice", "paperlessbilling"},
        "Move them to automatic payment with a one-off credit; remove billing friction.",
    ),
    (
        {"support", "ticket", "tickets", "complaint", "complaints", "techsupport", "calls"},
        "Priority call from a senior support agent to resolve open issues.",
    ),
    (
        {"price", "charge", "charges", "monthlycharges", "fee", "revenue", "spend", "discount"},
        "Review their recent price change; offer a loyalty discount or a better-fitting plan.",
    ),
    (
        {"usage", "hours", "minutes", "login", "logins", "sessions", "activity", "engagement"},
        "Re-engagement: show unused features, onboarding help or a usage tip series.",
    ),
    (
        {"tenure", "length", "since", "lifetime"},
        "Early-life check-in: a welcome call and onboarding review for newer customers.",
    ),
    (
        {
            "security",
            "backup",
            "protection",
            "streaming",
            "internetservice",
            "addon",
            "onlinesecurity",
            "onlinebackup",
            "deviceprotection",
            "streamingtv",
        },
        "Bundle offer: add the missing service or support add-on free for 3 months.",
    ),
)


def _words(name: str) -> set[str]:
    """'support_tickets_90d' -> {'support', 'tickets', '90d'}; 'TechSupport' -> 'techsupport'."""
    return {w for w in re.split(r"[^a-z0-9]+", name.lower()) if w}


DEFAULT_ACTION = "Personal retention call to understand their needs and offer a tailored incentive."


def reason_feature(reason: str) -> str:
    return reason.split(" = ", 1)[0].strip() if reason else ""


def recommend_action(row: pd.Series | dict, *, save_rate: float, cost_per_contact: float) -> str:
    """One recommended next step for a customer, from their top reason and their economics."""
    get = row.get
    band = str(get(C.RISK_BAND, ""))
    p = float(get(C.P_CHURN, float("nan")))
    val = get(C.VALUE)
    if band == "Low":
        return "No action needed: low churn risk. Keep in regular lifecycle communication."
    if val is not None and not (isinstance(val, float) and math.isnan(val)):
        expected_saving = save_rate * p * float(val)
        if expected_saving < cost_per_contact:
            return (
                f"Low expected return (saving {expected_saving:,.0f} < contact cost "
                f"{cost_per_contact:,.0f}): include in an automated email campaign only."
            )
    reason = str(get(C.REASONS[0], "") or "")
    words = _words(reason_feature(reason))
    for keywords, action in ACTIONS:
        if words & keywords:
            return action
    return DEFAULT_ACTION


def plan(
    frame: pd.DataFrame,
    *,
    threshold: float,
    save_rate: float,
    cost_per_contact: float,
    margin: float,
    discount: float,
    window_months: int = 1,
    base_churn_rate: float | None = None,
) -> value.RetentionPlan | Unavailable:
    """The retention plan with value recomputed under the user's margin and discount."""
    if C.MONTHLY_REVENUE not in frame.columns:
        return Unavailable(
            "Not available because the data has no monthly_revenue column "
            "(map one with --map monthly_revenue=<column>)."
        )
    revalued = value.add_value_columns(
        frame,
        threshold=threshold,
        margin=margin,
        discount=discount,
        window_months=window_months,
        base_churn_rate=base_churn_rate,
    )
    return value.plan_retention(revalued, save_rate=save_rate, cost_per_contact=cost_per_contact)

"""What to do about a customer, and the planner under the user's own assumptions."""

from __future__ import annotations

import functools
import math
import re

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.metrics import value
from analytics.metrics.kpis import active_mask
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


NO_REVENUE = (
    "Not available because the data has no monthly_revenue column "
    "(map one with --map monthly_revenue=<column>)."
)
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
        return Unavailable(NO_REVENUE)
    revalued = value.add_value_columns(
        frame,
        threshold=threshold,
        margin=margin,
        discount=discount,
        window_months=window_months,
        base_churn_rate=base_churn_rate,
    )
    return value.plan_retention(revalued, save_rate=save_rate, cost_per_contact=cost_per_contact)


class Planner:
    """plan() for any selection of one scored base, without sorting the selection.

    The base is ordered by expected loss once. Under another margin or discount every value
    changes by the same factor, so that order still holds; each plan checks that it holds
    exactly (savings non-increasing, ties in table order) and sorts only if rounding broke it.
    Gives exactly what plan(base[mask], ...) gives.
    """

    def __init__(
        self,
        base: pd.DataFrame,
        *,
        threshold: float,
        window_months: int = 1,
        base_churn_rate: float | None = None,
    ) -> None:
        self.base = base
        self.threshold = threshold
        self.window_months = window_months
        self.base_churn_rate = base_churn_rate
        self.available = C.MONTHLY_REVENUE in base.columns
        self._last = None
        if not self.available:
            return
        p = base[C.P_CHURN].to_numpy(dtype=float, na_value=np.nan)
        self._p_month = value.monthly_probability(p, window_months)
        self._revenue = base[C.MONTHLY_REVENUE].to_numpy(dtype=float, na_value=np.nan)
        self._active = active_mask(base)
        self._order = value.descending(base[C.EXPECTED_LOSS].to_numpy(dtype=float, na_value=np.nan))

    def _values(self, rate: float, margin: float, discount: float):
        """Value, expected loss and candidates (active, known loss) of every customer, as
        add_value_columns and plan_retention compute them; the last assumptions' are kept, as
        a user changes the filters far more often than the assumptions."""
        key = (rate, margin, discount)
        last = self._last
        if last is not None and last[0] == key:
            return last[1]
        p0 = value.monthly_probability(rate, self.window_months)
        val = value.clv(self._revenue, np.full(len(self._revenue), p0), margin, discount)
        loss = self._p_month * val
        arrays = (val, loss, self._active & ~np.isnan(loss))
        self._last = (key, arrays)  # one assignment: safe to share between threads
        return arrays

    def plan(
        self,
        mask: np.ndarray,
        *,
        save_rate: float,
        cost_per_contact: float,
        margin: float,
        discount: float,
        max_points: int = 500,
    ) -> value.RetentionPlan | Unavailable:
        if not self.available:
            return Unavailable(NO_REVENUE)
        value.check_plan_inputs(save_rate, cost_per_contact, max_points)
        rate = self.base_churn_rate
        if rate is None:  # the selection's own rate, as plan() takes it
            rate = value.base_rate(self.base.loc[mask, _rate_columns(self.base)], None)
        val, loss, candidates = self._values(rate, margin, discount)
        eligible = mask & candidates
        ranked = self._order[eligible[self._order]]
        saving = save_rate * loss[ranked]
        if not value.is_ranked(ranked, saving):
            rows = np.flatnonzero(eligible)
            ranked, saving = value.rank_savings(rows, save_rate * loss[rows])

        @functools.cache
        def cuts():
            return value.tier_cuts(val[mask & self._active & ~np.isnan(val)])

        def contacts(rows: np.ndarray, savings: np.ndarray, columns) -> pd.DataFrame:
            frame = self.base
            cut = (np.inf, np.inf)  # placeholder when the tiers are not asked for
            if columns is None or set(columns) & _TIERS:
                cut = cuts()  # a quantile over the whole selection: only when needed
            if columns is not None:
                keep = {*columns, C.P_CHURN, C.MONTHLY_REVENUE}
                frame = frame[[c for c in frame.columns if c in keep]]
            revalued = value.add_value_columns(
                frame.iloc[rows],
                threshold=self.threshold,
                margin=margin,
                discount=discount,
                window_months=self.window_months,
                base_churn_rate=rate,
                value_cuts=cut,
            ).assign(**{value.EXPECTED_SAVING: savings})
            if columns is None:
                return revalued
            return revalued[[c for c in columns if c in revalued.columns]]

        return value.ranked_plan(
            ranked,
            saving,
            contacts,
            save_rate=save_rate,
            cost_per_contact=cost_per_contact,
            max_points=max_points,
        )


_TIERS = {C.HIGH_VALUE, C.VALUE_TIER}


def _rate_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in (C.CHURNED, C.P_CHURN) if c in frame.columns]

"""What to do about a customer, and the retention planner under the user's own assumptions.

Definition (../shared/METRICS.md): contacting the top N active customers by expected loss, with
save rate s (share of would-be churners an offer keeps; default 0.25) and cost per contact c
(default 10): net benefit(N) = sum over those N of (s x p_i x Value_i) - N x c, p_i the window
probability. The expected saving s x p_i x Value_i is analytics.metrics.value.expected_saving,
for the planner and the recommended action alike.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.formatting import DEFAULT_CURRENCY, money
from analytics.metrics import value
from analytics.metrics.kpis import active_mask, missing
from analytics.result import Unavailable

# Reason text starts with the feature's display name ("Contract: Monthly (+18.2 pts)"); the
# action is chosen by what the feature is about, matched on whole words of its name so it works
# for any schema ("customer_age" is not "tenure"; "Account length" is).
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
            "internet",
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
    """'Support tickets 90d' -> {'support', 'tickets', '90d', 'supporttickets90d'}; the words
    run together too, so 'Tech support' still matches 'techsupport'."""
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    return {*words, "".join(words)}


NO_REVENUE = (
    "Not available because the data has no monthly_revenue column "
    "(map one with --map monthly_revenue=<column>)."
)
DEFAULT_ACTION = "Personal retention call to understand their needs and offer a tailored incentive."


def reason_feature(reason: str) -> str:
    """The feature a reason is about: "Tenure: 2 months (+9.0 pts)" -> "Tenure" (a reason of
    an older model, "tenure_months = 2 (+9.0 pts)", -> "tenure_months")."""
    if not reason:
        return ""
    sep = " = " if " = " in reason and ": " not in reason.split(" = ", 1)[0] else ": "
    return reason.split(sep, 1)[0].strip()


def recommend_action(
    row: pd.Series | dict,
    *,
    save_rate: float,
    cost_per_contact: float,
    currency: str = DEFAULT_CURRENCY,
) -> str:
    """One recommended next step for a customer, from their top reason and their economics."""
    get = row.get
    band = str(get(C.RISK_BAND, ""))
    p = float(get(C.P_CHURN, float("nan")))
    val = get(C.VALUE)
    if band == "Low":
        return "No action needed: low churn risk. Keep in regular lifecycle communication."
    if val is not None and not (isinstance(val, float) and math.isnan(val)):
        saving = value.expected_saving(value.expected_loss(p, float(val)), save_rate)
        if saving < cost_per_contact:
            return (
                f"Low expected return (saving {money(saving, currency)} < contact cost "
                f"{money(cost_per_contact, currency)}): include in an automated email campaign "
                "only."
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
) -> RetentionPlan | Unavailable:
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
    return plan_retention(revalued, save_rate=save_rate, cost_per_contact=cost_per_contact)


@dataclass(frozen=True, eq=False)
class RetentionPlan:
    """The planner's answer for one set of assumptions.

    curve: DataFrame n, net_benefit, saved_value, cost (N = 0 .. all candidates, thinned to at
    most max_points rows, always with N = 0, the best N and the last N); best_n: the N with the
    largest net benefit (the smallest such N on ties; 0 when no contact pays for itself);
    saved_value / cost / net_benefit at best_n; roi = net_benefit / cost (NaN when cost is 0);
    contacts: the best_n customers by expected loss, descending, with expected_saving =
    s x p_i x Value_i (built when first read: on a million customers it can hold hundreds of
    thousands of rows; first_contacts(n) builds only the first n); candidates: active
    customers with a known expected loss.
    """

    curve: pd.DataFrame
    best_n: int
    saved_value: float
    cost: float
    net_benefit: float
    roi: float
    save_rate: float
    cost_per_contact: float
    candidates: int
    # (rows, their savings) -> their contact table; rows are the plan's first n contacts
    _contact_rows: np.ndarray = field(repr=False)
    _contact_savings: np.ndarray = field(repr=False)
    _contacts_of: ContactTable = field(repr=False)

    @functools.cached_property
    def contacts(self) -> pd.DataFrame:
        return self._contacts_of(self._contact_rows, self._contact_savings, None)

    def first_contacts(self, n: int, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """contacts.head(n) (only `columns` of it, those present, if given), without building
        the rest."""
        if "contacts" in self.__dict__:
            head = self.contacts.head(n)
            return head if columns is None else head[[c for c in columns if c in head]]
        return self._contacts_of(self._contact_rows[:n], self._contact_savings[:n], columns)


# (rows, their savings, columns or None for all) -> those rows of the contact table.
ContactTable = Callable[[np.ndarray, np.ndarray, Sequence[str] | None], pd.DataFrame]


EXPECTED_SAVING = C.EXPECTED_SAVING


def check_plan_inputs(save_rate: float, cost_per_contact: float, max_points: int) -> None:
    if not 0.0 <= save_rate <= 1.0:  # also rejects NaN
        raise ValueError(f"save_rate must be between 0 and 1, got {save_rate}")
    if not 0.0 <= cost_per_contact < np.inf:
        raise ValueError(f"cost_per_contact must be a number >= 0, got {cost_per_contact}")
    if max_points < 3:
        raise ValueError(f"max_points must be at least 3, got {max_points}")


def _curve_points(n: int, best_n: int, max_points: int) -> np.ndarray:
    """Evenly spread N values in 0..n, plus the best N; at most max_points of them."""
    if n + 1 <= max_points:
        return np.arange(n + 1)
    grid = np.unique(np.round(np.linspace(0, n, max_points - 1)).astype(np.int64))
    return np.unique(np.append(grid, best_n))


def plan_retention(
    frame: pd.DataFrame,
    *,
    save_rate: float = 0.25,
    cost_per_contact: float = 10.0,
    max_points: int = 500,
) -> RetentionPlan | Unavailable:
    """Contact the top N active customers by expected loss: net benefit(N) = sum over those N of
    (s x p_i x Value_i) - N x c. Returns the curve over N, the best N and its figures.

    ValueError when save_rate is outside [0, 1], cost_per_contact is negative or max_points < 3.
    """
    check_plan_inputs(save_rate, cost_per_contact, max_points)
    gap = missing(frame, C.MONTHLY_REVENUE, C.EXPECTED_LOSS)
    if gap is not None:
        return gap
    loss = frame[C.EXPECTED_LOSS].to_numpy(dtype=float, na_value=np.nan)
    eligible = np.flatnonzero(active_mask(frame) & ~np.isnan(loss))
    ranked, saving = rank_savings(eligible, value.expected_saving(loss[eligible], save_rate))
    return ranked_plan(
        ranked,
        saving,
        lambda rows, sv, columns: _columns(
            frame.iloc[rows].assign(**{EXPECTED_SAVING: sv}), columns
        ),
        save_rate=save_rate,
        cost_per_contact=cost_per_contact,
        max_points=max_points,
    )


def _columns(frame: pd.DataFrame, columns: Sequence[str] | None) -> pd.DataFrame:
    return frame if columns is None else frame[[c for c in columns if c in frame.columns]]


def rank_savings(rows: np.ndarray, saving: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`rows` and their savings by saving, descending (ties in table order): the contact order."""
    order = np.argsort(-saving, kind="stable")
    return rows[order], saving[order]


def is_ranked(rows: np.ndarray, saving: np.ndarray) -> bool:
    """Whether rows and savings are exactly as rank_savings would order them."""
    if np.isnan(saving).any():
        return False
    step = np.diff(saving)
    if (step > 0).any():
        return False
    ties = step == 0
    return not ties.any() or bool((np.diff(rows)[ties] > 0).all())


def ranked_plan(
    ranked: np.ndarray,
    saving: np.ndarray,
    contacts: ContactTable,
    *,
    save_rate: float,
    cost_per_contact: float,
    max_points: int = 500,
) -> RetentionPlan:
    """The plan over candidates already in contact order (rank_savings); `contacts(rows,
    savings, columns)` gives the table of those of them."""
    saved = np.concatenate(([0.0], np.cumsum(saving)))
    ns = np.arange(len(saved))
    cost = ns * float(cost_per_contact)
    net = saved - cost
    best = int(np.argmax(net))
    pts = _curve_points(len(ranked), best, max_points)
    curve = pd.DataFrame(
        {"n": pts, "net_benefit": net[pts], "saved_value": saved[pts], "cost": cost[pts]}
    )
    total_cost = float(cost[best])
    return RetentionPlan(
        curve=curve,
        best_n=best,
        saved_value=float(saved[best]),
        cost=total_cost,
        net_benefit=float(net[best]),
        roi=float(net[best] / total_cost) if total_cost > 0 else float("nan"),
        save_rate=float(save_rate),
        cost_per_contact=float(cost_per_contact),
        candidates=len(ranked),
        _contact_rows=ranked[:best],
        _contact_savings=saving[:best],
        _contacts_of=contacts,
    )


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
        self._p = base[C.P_CHURN].to_numpy(dtype=float, na_value=np.nan)
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
        val = value.customer_value(self._revenue, rate, self.window_months, margin, discount)
        loss = value.expected_loss(self._p, val)
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
    ) -> RetentionPlan | Unavailable:
        if not self.available:
            return Unavailable(NO_REVENUE)
        check_plan_inputs(save_rate, cost_per_contact, max_points)
        rate = self.base_churn_rate
        if rate is None:  # the selection's own rate, as plan() takes it
            rate = value.base_rate(self.base.loc[mask, _rate_columns(self.base)], None)
        val, loss, candidates = self._values(rate, margin, discount)
        eligible = mask & candidates
        ranked = self._order[eligible[self._order]]
        saving = value.expected_saving(loss[ranked], save_rate)
        if not is_ranked(ranked, saving):
            rows = np.flatnonzero(eligible)
            ranked, saving = rank_savings(rows, value.expected_saving(loss[rows], save_rate))

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
            ).assign(**{EXPECTED_SAVING: savings})
            if columns is None:
                return revalued
            return revalued[[c for c in columns if c in revalued.columns]]

        return ranked_plan(
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

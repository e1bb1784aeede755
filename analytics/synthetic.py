"""The built-in customer base: a seeded subscription business with known churn drivers.

`generate()` simulates HISTORY_MONTHS monthly periods ending at `as_of` (default 48 months,
2022-11-01 .. 2026-10-31) and returns one row per customer who was a customer at any time in
that span: those already active when it starts (signed up earlier) and every later signup,
including those who have since left. The last period is the observation window of
../shared/METRICS.md ("With dates"): for the default `as_of`, 2026-10-01 .. 2026-10-31.

Churn follows a discrete-time monthly hazard. A customer is at risk from the period after
the one they signed up in; in each period t the probability h of leaving satisfies

    logit h = BASE_LOGIT
              - 0.6  x log1p(tenure_months at the start of t)
              + 1.5 if contract is Monthly, + 0.6 if Annual, 0 if Two-year
              - 0.03 x monthly_usage_hours           (+0.3 per 10 hours less)
              + 0.35 x support_tickets_90d
              + 0.07 x last_price_change_pct
              + 0.6 if payment_method is Invoice, 0 for the other methods
              + 0    x customer_age                  (the distractor: no effect at all)

`PLANTED_EFFECTS` holds these numbers (log-odds per unit; per level against a reference
level at 0.0), keyed in order of strength with the distractor last; `DRIVER_ORDER` names
the six real drivers, strongest first. Strength = how much a driver separates leavers from
stayers in the default base active at the window's start: the standard deviation of its
log-odds contribution (0.79, 0.64, 0.56, 0.40, 0.29, 0.21) and the drop in ROC-AUC when
the true hazard has that driver permuted (0.128, 0.064, 0.039, 0.025, 0.012, 0.007) agree
on the order. Cross-validated gradient boosting on the base ranks the first four in this
order by permutation importance; the last two are weaker and close to each other, but well
above the distractor (data/README.md has the measurements).

No other column has a direct effect: plan shifts usage and the acquisition channel shifts
the contract mix, so they correlate with churn in the raw data without causing it;
add-ons and region only shape revenue and mix.

What a row shows is what the hazard used: support_tickets_90d, last_price_change_pct and
monthly_revenue change over time, and a row holds their values at the start of the
customer's last period at risk (the churn period, or the window for active customers); the
other features are fixed at signup. So a model fitted on the window's base, with `churned`
= left within the window and tenure taken at the window's start, sees exactly the
covariates that drove the outcome.

The simulation loops over the 48 periods with arrays over customers: a million customers
take about 2.5 seconds. data/README.md documents every column and the default base's figures.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.config import DEMO_DATA
from analytics.store import artifacts

DEFAULT_CUSTOMERS = 75_000  # rows = customers at any time in the 48 months
DEFAULT_SEED = 42
DEFAULT_AS_OF = "2026-10-31"
HISTORY_MONTHS = 48

DISTRACTOR = "customer_age"
# Log-odds of leaving in a month, per unit (numbers) or per level against the reference
# level (categories, reference 0.0); tenure_months acts through log1p(tenure_months).
# Keys strongest first (see the module docstring), the distractor last.
PLANTED_EFFECTS: dict[str, float | dict[str, float]] = {
    C.TENURE: -0.6,
    "contract": {"Monthly": 1.5, "Annual": 0.6, "Two-year": 0.0},
    "monthly_usage_hours": -0.03,
    "support_tickets_90d": 0.35,
    "last_price_change_pct": 0.07,
    "payment_method": {"Invoice": 0.6, "Card autopay": 0.0, "Bank transfer": 0.0, "PayPal": 0.0},
    DISTRACTOR: 0.0,
}
DRIVER_ORDER: tuple[str, ...] = tuple(k for k in PLANTED_EFFECTS if k != DISTRACTOR)
BASE_LOGIT = -1.85  # puts the monthly churn rate near 5%

# The business. Levels, shares and prices (per month, before discounts).
PLANS = ("Basic", "Standard", "Premium", "Family")
PLAN_SHARE = (0.30, 0.35, 0.20, 0.15)
PLAN_PRICE = (24.99, 39.99, 59.99, 74.99)
PLAN_USAGE_HOURS = (29.0, 36.0, 43.0, 48.0)  # mean monthly usage per plan
USAGE_SHAPE = 6.0  # gamma shape: coefficient of variation 0.41 within a plan

CONTRACTS = ("Monthly", "Annual", "Two-year")
CONTRACT_DISCOUNT = (0.0, 0.08, 0.15)

CHANNELS = ("Online", "Retail store", "Partner", "Referral", "Telesales")
CHANNEL_SHARE = (0.35, 0.20, 0.15, 0.15, 0.15)
# Contract mix per channel (rows follow CHANNELS): online buyers pick monthly terms.
CHANNEL_CONTRACT = (
    (0.70, 0.18, 0.12),
    (0.55, 0.25, 0.20),
    (0.50, 0.25, 0.25),
    (0.60, 0.20, 0.20),
    (0.45, 0.27, 0.28),
)
REFERRAL_DISCOUNT = 0.10  # lifetime discount for referred customers

PAYMENT_METHODS = ("Card autopay", "Bank transfer", "Invoice", "PayPal")
PAYMENT_SHARE = (0.48, 0.20, 0.20, 0.12)

REGIONS = ("North", "South", "East", "West", "Central")
REGION_SHARE = (0.22, 0.24, 0.18, 0.21, 0.15)

ADDONS = (  # (column, monthly price, share of Basic/Standard, share of Premium/Family)
    ("streaming_addon", 9.99, 0.25, 0.50),
    ("device_protection", 6.99, 0.20, 0.35),
)

TICKETS_PER_MONTH = 0.35  # mean support tickets per customer-month
TICKETS_SHAPE = 1.5  # gamma heterogeneity of each customer's ticket rate

PRICE_RISES_PCT = (5.0, 7.5, 10.0, 12.5, 15.0, 20.0)
PRICE_RISES_SHARE = (0.25, 0.15, 0.25, 0.10, 0.15, 0.10)
PRICE_RISE_MONTHLY = 0.012  # chance per customer-month of a price rise ...
PRICE_RISE_MONTHLY_RECENT = 0.035  # ... and in the last RECENT_MONTHS (a repricing wave)
RECENT_MONTHS = 10
PRICE_RISE_MEMORY = 6  # last_price_change_pct shows a rise for 6 months, then 0

EXISTING_SHARE = 0.30  # customers already active when the history starts
EXISTING_MEAN_DAYS = 900  # their time as customers before it: truncated exponential
EXISTING_MAX_DAYS = 6 * 365
SIGNUP_GROWTH = 0.012  # signups grow 1.2% a month
BILLING_NOISE = 0.03  # total_revenue: +-3% for one-off charges and credits

COLUMN_ORDER = (
    C.CUSTOMER_ID,
    C.SIGNUP_DATE,
    C.CHURN_DATE,
    C.TENURE,
    C.CHURNED,
    "plan",
    "contract",
    "payment_method",
    "streaming_addon",
    "device_protection",
    "region",
    "acquisition_channel",
    "monthly_usage_hours",
    "support_tickets_90d",
    "last_price_change_pct",
    C.MONTHLY_REVENUE,
    C.TOTAL_REVENUE,
    DISTRACTOR,
)


@dataclass(frozen=True)
class _Calendar:
    """HISTORY_MONTHS + 1 boundaries: period k is [starts[k], starts[k + 1])."""

    starts: np.ndarray  # datetime64[D]
    lengths: np.ndarray  # days in each period
    month_number: np.ndarray  # year * 12 + month of each start, for whole-month tenure
    day: np.ndarray  # day of month of each start


def generate(
    n_customers: int = DEFAULT_CUSTOMERS, seed: int = DEFAULT_SEED, as_of: str = DEFAULT_AS_OF
) -> pd.DataFrame:
    """Simulate `n_customers` customers over the 48 months ending at `as_of`.

    Same (n_customers, seed, as_of) -> the same frame. Rows are in signup order; ids
    C000001, C000002, ... Dates are datetime64[ns] (churn_date NaT while active), text
    columns dtype str, money and hours rounded to cents/hundredths.
    """
    if n_customers < 1:
        raise ValueError(f"n_customers must be at least 1, got {n_customers}")
    cal = _calendar(pd.Timestamp(as_of))
    rng = np.random.Generator(np.random.PCG64(seed))
    people = _draw_customers(n_customers, cal, rng)
    outcome = _simulate(people, cal, rng)
    return _to_frame(people, outcome, cal)


def write_demo(path: str | Path = DEMO_DATA) -> None:
    """Write the default base as a byte-reproducible gzip CSV (the committed demo file).

    gzip with mtime 0 and no file name in the header: the same bytes on every run.
    """
    csv = to_csv_text(generate())
    artifacts.atomic_write_bytes(Path(path), gzip.compress(csv.encode("utf-8"), mtime=0))


def to_csv_text(frame: pd.DataFrame) -> str:
    """The CSV form: ISO dates, blank churn_date while active.

    Floats are already rounded to 2 decimals, so their shortest repr is written (48.5, not
    48.50): the same text as `artifacts.write_table` writes for this frame.
    """
    return frame.to_csv(index=False, date_format="%Y-%m-%d")


def effect_contributions(frame: pd.DataFrame) -> pd.DataFrame:
    """Each planted driver's log-odds contribution per row (columns = PLANTED_EFFECTS).

    Uses the row's tenure_months; for the window's base pass tenure at the window's start.
    """
    out = {}
    for column, effect in PLANTED_EFFECTS.items():
        if isinstance(effect, dict):
            out[column] = frame[column].map(effect).astype("float64")
        elif column == C.TENURE:
            out[column] = effect * np.log1p(frame[column].astype("float64"))
        else:
            out[column] = effect * frame[column].astype("float64")
    return pd.DataFrame(out, index=frame.index)


# --- calendar -------------------------------------------------------------------------------


def _calendar(as_of: pd.Timestamp) -> _Calendar:
    end = as_of.normalize() + pd.Timedelta(days=1)
    bounds = [end - pd.DateOffset(months=HISTORY_MONTHS - k) for k in range(HISTORY_MONTHS + 1)]
    starts = np.array([b.date() for b in bounds], dtype="datetime64[D]")
    month_number, day = _month_and_day(starts)
    return _Calendar(
        starts=starts,
        lengths=np.diff(starts).astype(np.int64),
        month_number=month_number,
        day=day,
    )


def _month_and_day(dates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    months = dates.astype("datetime64[M]")
    day = (dates - months.astype("datetime64[D]")).astype(np.int64) + 1
    return months.astype(np.int64), day


def _whole_months(
    start_month: np.ndarray, start_day: np.ndarray, end_month: np.ndarray, end_day: np.ndarray
) -> np.ndarray:
    """Whole calendar months from start to end dates (0 within the first month); scalars too."""
    return (end_month - start_month) - (end_day < start_day)


# --- customers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _People:
    signup: np.ndarray  # datetime64[D]
    period: np.ndarray  # signup period index; -1 for customers who predate the history
    plan: np.ndarray  # codes into PLANS, etc.
    contract: np.ndarray
    channel: np.ndarray
    payment: np.ndarray
    region: np.ndarray
    addons: np.ndarray  # (n, len(ADDONS)) bool
    base_price: np.ndarray  # monthly charge before price rises
    usage: np.ndarray
    ticket_rate: np.ndarray
    age: np.ndarray


def _draw_customers(n: int, cal: _Calendar, rng: np.random.Generator) -> _People:
    existing = rng.random(n) < EXISTING_SHARE
    period = np.full(n, -1, dtype=np.int64)
    weights = np.exp(SIGNUP_GROWTH * np.arange(HISTORY_MONTHS))
    n_new = int((~existing).sum())
    period[~existing] = rng.choice(HISTORY_MONTHS, size=n_new, p=weights / weights.sum())

    signup = np.empty(n, dtype="datetime64[D]")
    new_days = (rng.random(n_new) * cal.lengths[period[~existing]]).astype(np.int64)
    signup[~existing] = cal.starts[period[~existing]] + new_days
    signup[existing] = cal.starts[0] - _days_before_history(int(existing.sum()), rng)
    order = np.argsort(signup, kind="stable")  # ids in signup order
    signup, period = signup[order], period[order]

    plan = rng.choice(len(PLANS), size=n, p=PLAN_SHARE)
    channel = rng.choice(len(CHANNELS), size=n, p=CHANNEL_SHARE)
    contract = _choice_by_row(np.asarray(CHANNEL_CONTRACT)[channel], rng)
    payment = rng.choice(len(PAYMENT_METHODS), size=n, p=PAYMENT_SHARE)
    region = rng.choice(len(REGIONS), size=n, p=REGION_SHARE)
    big_plan = plan >= PLANS.index("Premium")
    addons = np.column_stack(
        [rng.random(n) < np.where(big_plan, rich, lean) for _, _, lean, rich in ADDONS]
    )
    list_price = np.asarray(PLAN_PRICE)[plan] + addons @ np.array([a[1] for a in ADDONS])
    discount = 1.0 - np.asarray(CONTRACT_DISCOUNT)[contract]
    discount *= np.where(channel == CHANNELS.index("Referral"), 1.0 - REFERRAL_DISCOUNT, 1.0)
    usage_mean = np.asarray(PLAN_USAGE_HOURS)[plan]
    usage = rng.gamma(USAGE_SHAPE, usage_mean / USAGE_SHAPE)
    ticket_rate = rng.gamma(TICKETS_SHAPE, TICKETS_PER_MONTH / TICKETS_SHAPE, size=n)
    age = np.clip(np.rint(rng.normal(44.0, 14.0, size=n)), 18, 85).astype(np.int64)
    return _People(
        signup=signup,
        period=period,
        plan=plan,
        contract=contract,
        channel=channel,
        payment=payment,
        region=region,
        addons=addons,
        base_price=list_price * discount,
        usage=np.round(np.clip(usage, 0.5, 300.0), 2),  # the hazard sees the row's value
        ticket_rate=ticket_rate,
        age=age,
    )


def _days_before_history(n: int, rng: np.random.Generator) -> np.ndarray:
    """1 .. EXISTING_MAX_DAYS days, exponential with mean EXISTING_MEAN_DAYS, truncated."""
    cap = 1.0 - np.exp(-EXISTING_MAX_DAYS / EXISTING_MEAN_DAYS)
    days = -EXISTING_MEAN_DAYS * np.log1p(-rng.random(n) * cap)
    return np.clip(np.ceil(days), 1, EXISTING_MAX_DAYS).astype(np.int64)


def _choice_by_row(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category index per row, each row with its own probabilities."""
    cumulative = probabilities.cumsum(axis=1)
    u = rng.random(len(probabilities))[:, None]
    return np.minimum((u >= cumulative).sum(axis=1), probabilities.shape[1] - 1)


# --- simulation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    churn_period: np.ndarray  # -1 while active
    churn_date: np.ndarray  # datetime64[D], NaT while active
    tickets_90d: np.ndarray  # values at the start of the last period at risk
    price_change_pct: np.ndarray
    monthly_revenue: np.ndarray
    total_revenue: np.ndarray  # everything billed, with one-off charges and credits


def _simulate(p: _People, cal: _Calendar, rng: np.random.Generator) -> _Outcome:
    n = len(p.signup)
    signup_month, signup_day = _month_and_day(p.signup)
    fixed_logit = (
        BASE_LOGIT
        + _level_effects("contract", CONTRACTS)[p.contract]
        + _level_effects("payment_method", PAYMENT_METHODS)[p.payment]
        + PLANTED_EFFECTS["monthly_usage_hours"] * p.usage
        + PLANTED_EFFECTS[DISTRACTOR] * p.age
    )
    tickets_effect = PLANTED_EFFECTS["support_tickets_90d"]
    price_effect = PLANTED_EFFECTS["last_price_change_pct"]
    tenure_effect = PLANTED_EFFECTS[C.TENURE]

    churn_period = np.full(n, -1, dtype=np.int64)
    # Tickets in each of the last three periods (a ring indexed by period % 3); customers
    # who predate the history bring three months of tickets with them.
    ring = np.zeros((3, n), dtype=np.int64)
    existing = p.period < 0
    ring[:, existing] = rng.poisson(np.broadcast_to(p.ticket_rate[existing], (3, existing.sum())))
    price_factor = np.ones(n)
    rise_pct = np.zeros(n)
    rise_period = np.full(n, -10_000, dtype=np.int64)
    tickets_90d = np.zeros(n, dtype=np.int64)
    shown_pct = np.zeros(n)
    paid = np.where(existing, p.base_price * _months_billed_before(p, cal), 0.0)

    for t in range(HISTORY_MONTHS):
        at_risk = np.flatnonzero((p.period < t) & (churn_period < 0))
        tenure = _whole_months(
            signup_month[at_risk], signup_day[at_risk], cal.month_number[t], cal.day[t]
        )
        # Price rises land at a period's start, for anyone at risk (a rise is not a tenure proxy).
        recent_wave = t >= HISTORY_MONTHS - RECENT_MONTHS
        rate = PRICE_RISE_MONTHLY_RECENT if recent_wave else PRICE_RISE_MONTHLY
        rises = at_risk[rng.random(len(at_risk)) < rate]
        pct = rng.choice(PRICE_RISES_PCT, size=len(rises), p=PRICE_RISES_SHARE)
        price_factor[rises] *= 1.0 + pct / 100.0
        rise_pct[rises] = pct
        rise_period[rises] = t
        recent = t - rise_period[at_risk] < PRICE_RISE_MEMORY
        shown_pct[at_risk] = np.where(recent, rise_pct[at_risk], 0.0)
        tickets_90d[at_risk] = ring[:, at_risk].sum(axis=0)

        logit = (
            fixed_logit[at_risk]
            + tickets_effect * tickets_90d[at_risk]
            + price_effect * shown_pct[at_risk]
            + tenure_effect * np.log1p(tenure)
        )
        leaves = rng.random(len(at_risk)) < 1.0 / (1.0 + np.exp(-logit))
        churn_period[at_risk[leaves]] = t

        # Billing: everyone at risk pays this period (leavers included); so do newcomers.
        joining = np.flatnonzero(p.period == t)
        paid[at_risk] += p.base_price[at_risk] * price_factor[at_risk]
        paid[joining] += p.base_price[joining]
        # Tickets raised during this period by those still here, for the next three.
        active = np.concatenate([at_risk[~leaves], joining])
        ring[t % 3, active] = rng.poisson(p.ticket_rate[active])

    churn_date = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    gone = np.flatnonzero(churn_period >= 0)
    day = (rng.random(len(gone)) * cal.lengths[churn_period[gone]]).astype(np.int64)
    churn_date[gone] = cal.starts[churn_period[gone]] + day
    noise = 1.0 + BILLING_NOISE * (2.0 * rng.random(n) - 1.0)
    return _Outcome(
        churn_period=churn_period,
        churn_date=churn_date,
        tickets_90d=tickets_90d,
        price_change_pct=shown_pct,
        monthly_revenue=np.round(p.base_price * price_factor, 2),
        total_revenue=np.round(paid * noise, 2),
    )


def _level_effects(column: str, levels: tuple[str, ...]) -> np.ndarray:
    effects = PLANTED_EFFECTS[column]
    assert isinstance(effects, dict)
    return np.array([effects[level] for level in levels])


def _months_billed_before(p: _People, cal: _Calendar) -> np.ndarray:
    """Months billed before the history starts: one per month started since signup."""
    signup_month, signup_day = _month_and_day(p.signup)
    whole = _whole_months(signup_month, signup_day, cal.month_number[0], cal.day[0])
    return np.maximum(whole, 0) + 1


# --- frame ----------------------------------------------------------------------------------


def _to_frame(p: _People, o: _Outcome, cal: _Calendar) -> pd.DataFrame:
    n = len(p.signup)
    end = np.where(o.churn_period >= 0, o.churn_date, cal.starts[-1] - np.timedelta64(1, "D"))
    end_month, end_day = _month_and_day(end)
    signup_month, signup_day = _month_and_day(p.signup)
    width = max(6, len(str(n)))
    ids = pd.Series(np.arange(1, n + 1), dtype="int64").astype("str").str.zfill(width)

    frame = pd.DataFrame(
        {
            C.CUSTOMER_ID: ("C" + ids).astype("str"),
            C.SIGNUP_DATE: p.signup.astype("datetime64[ns]"),
            C.CHURN_DATE: o.churn_date.astype("datetime64[ns]"),
            C.TENURE: _whole_months(signup_month, signup_day, end_month, end_day),
            C.CHURNED: (o.churn_period >= 0).astype(np.int64),
            "plan": _labels(PLANS, p.plan),
            "contract": _labels(CONTRACTS, p.contract),
            "payment_method": _labels(PAYMENT_METHODS, p.payment),
            "streaming_addon": _labels(("No", "Yes"), p.addons[:, 0].astype(np.int64)),
            "device_protection": _labels(("No", "Yes"), p.addons[:, 1].astype(np.int64)),
            "region": _labels(REGIONS, p.region),
            "acquisition_channel": _labels(CHANNELS, p.channel),
            "monthly_usage_hours": p.usage,
            "support_tickets_90d": o.tickets_90d,
            "last_price_change_pct": o.price_change_pct,
            C.MONTHLY_REVENUE: o.monthly_revenue,
            C.TOTAL_REVENUE: o.total_revenue,
            DISTRACTOR: p.age,
        }
    )
    return frame.loc[:, list(COLUMN_ORDER)]


def _labels(levels: tuple[str, ...], codes: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(levels)[codes], dtype="str")

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
log-odds contribution (0.79, 0.64, 0.56, 0.39, 0.29, 0.21) and the drop in ROC-AUC when
the true hazard has that driver permuted (0.127, 0.060, 0.047, 0.027, 0.010, 0.008) agree
on the order. Cross-validated gradient boosting on the base ranks the first four in this
order by permutation importance; the last two are weaker and close to each other, but well
above the distractor (data/README.md has the measurements).

No other column has a direct effect: plan shifts usage and the acquisition channel shifts
the contract mix, so they correlate with churn in the raw data without causing it;
add-ons and region only shape revenue and mix.

For revenue retention the business also has plan changes (each customer-month 1.0% one plan
up, 0.6% one plan down: plan and monthly_revenue change, usage stays the customer's typical
usage, so the hazard does not) and pauses (0.4%: one or two months at MRR 0, never starting
in the last 3 periods; a paused customer has not churned and keeps their hazard). Two things
are planted for the product to find (data/README.md): a past retention campaign, CAMPAIGN,
whose treated customers' leave probability is cut by CAMPAIGN_SAVE_RATE in one month against
a random control group; and a drift, DRIFT, in the distractor (recent signups are much
younger), which leaves it without effect on churn but confounded with tenure.

What a row shows is what the hazard used: plan, support_tickets_90d, last_price_change_pct
and monthly_revenue change over time, and a row holds their values at the start of the
customer's last period at risk (the churn period, or the window for active customers); the
other features are fixed at signup. So a model fitted on the window's base, with `churned`
= left within the window and tenure taken at the window's start, sees exactly the
covariates that drove the outcome. `generate_history()` returns the same table with the
last HISTORY_SNAPSHOTS periods as monthly exports, each holding the values of its own start.

The simulation loops over the 48 periods with arrays over customers: a million customers
take about 4 seconds on 2 cores. data/README.md documents every column and the default
base's figures.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics import timeline
from analytics.config import DEMO_DATA
from analytics.store import artifacts

DEFAULT_CUSTOMERS = 75_000  # rows = customers at any time in the 48 months
DEFAULT_SEED = 42
DEFAULT_AS_OF = "2026-10-31"
HISTORY_MONTHS = 48

HISTORY_SNAPSHOTS = 13  # monthly exports in generate_history: a year back and the window

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
# The wave began 24 months before as_of, so the year of monthly exports (HISTORY_SNAPSHOTS)
# all see it in its steady state: last_price_change_pct does not drift within that year.
RECENT_MONTHS = 24
PRICE_RISE_MEMORY = 6  # last_price_change_pct shows a rise for 6 months, then 0

# Plan changes and pauses: chances per customer-month at risk, drawn at the period's start
# from a child stream of the seed (the churn process's own draws are unchanged by them).
UPGRADE_MONTHLY = 0.010  # one plan up (not from Family) ...
DOWNGRADE_MONTHLY = 0.006  # ... or one plan down (not from Basic)
PAUSE_MONTHLY = 0.004  # a pause of PAUSE_MONTHS[0] or [1] months at MRR 0 ...
PAUSE_MONTHS = (1, 2)
PAUSE_LAST_START = HISTORY_MONTHS - 4  # ... never starting in the last 3 periods

# A past retention campaign with a planted effect (data/README.md). Its period is
# CAMPAIGN_PERIOD (June 2026 for the default as_of); the contact list is drawn from the
# previous month's base.
CAMPAIGN_PERIOD = HISTORY_MONTHS - 5
CAMPAIGN_SIZE = 6_000  # contacts for DEFAULT_CUSTOMERS; scaled with the customer count
CAMPAIGN_MIN_SIZE = 60  # ... but at least this many (when that many are eligible)
CAMPAIGN_CONTROL_SHARE = 0.2  # held out at random within each hazard tercile
CAMPAIGN_SAVE_RATE = 0.30  # treated customers' leave probability x (1 - this), that month
CAMPAIGN = MappingProxyType(
    {
        "name": "Summer save offer",
        "start": "2026-06-01",  # the campaign period's first day (default as_of)
        "as_of": "2026-05-31",  # the snapshot its contact list was drawn from (default as_of)
        "period": CAMPAIGN_PERIOD,
        "size": CAMPAIGN_SIZE,
        "control_share": CAMPAIGN_CONTROL_SHARE,
        "stratified_by": "true hazard tercile",
        "save_rate": CAMPAIGN_SAVE_RATE,
    }
)

# A planted drift: customers who sign up in the last DRIFT_SIGNUP_MONTHS periods are much
# younger (age = 18 + (age - 18) x DRIFT_AGE_FACTOR: 18 to 28; a student offer, say). Age
# has no effect on churn, but among recent signups it now goes with short tenure.
DRIFT_SIGNUP_MONTHS = 8
DRIFT_AGE_FACTOR = 0.15
DRIFT = MappingProxyType(
    {
        "feature": DISTRACTOR,
        "from": "2026-03-01",  # the first signup day drawn younger (default as_of)
        "signup_months": DRIFT_SIGNUP_MONTHS,
        "age_factor": DRIFT_AGE_FACTOR,
    }
)

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
    people, outcome, cal = _run(n_customers, seed, as_of, record_from=HISTORY_MONTHS)
    return _to_frame(people, outcome, cal)


def _run(
    n_customers: int, seed: int, as_of: str, record_from: int
) -> tuple[_People, _Outcome, _Calendar]:
    if n_customers < 1:
        raise ValueError(f"n_customers must be at least 1, got {n_customers}")
    cal = _calendar(pd.Timestamp(as_of))
    rng = np.random.Generator(np.random.PCG64(seed))
    events = rng.spawn(1)[0]  # plan changes, pauses, the campaign (see _simulate)
    people = _draw_customers(n_customers, cal, rng)
    return people, _simulate(people, cal, rng, events, record_from), cal


@dataclass(frozen=True, eq=False)
class DemoHistory:
    """The business's last months as monthly exports (see generate_history)."""

    table: pd.DataFrame  # exactly generate(n_customers, seed, as_of)
    months: pd.DataFrame  # one row per customer at risk at each period's start
    campaign: pd.DataFrame  # customer_id, group ("treated" | "control"), as_of


def generate_history(
    n_customers: int = DEFAULT_CUSTOMERS,
    seed: int = DEFAULT_SEED,
    as_of: str = DEFAULT_AS_OF,
    snapshots: int = HISTORY_SNAPSHOTS,
) -> DemoHistory:
    """The same simulation as generate(), with its last `snapshots` periods as exports.

    `months` holds, for each of those periods (the last is the observation window), the
    base at risk at its start: the rows `timeline.snapshot(table, as_of=<period end>)`
    selects, as a static Telco-like export taken then. Columns: `as_of` (the period's last
    day), the table's columns without signup_date and churn_date, with `churned` = left
    within the period, `tenure_months` at the period's start (as timeline.snapshot counts
    it), every feature as it was at the period's start, `monthly_revenue` = MRR then (0
    while paused) and `total_revenue` = billed up to and including the period's first day.
    The last period's rows equal timeline.snapshot(table).base on every shared column.

    `campaign` lists the CAMPAIGN contact list: `as_of` = the last day of the period before
    the campaign's (the export it was drawn from); its outcome is the next period's churned.
    """
    if not 1 <= snapshots <= HISTORY_MONTHS:
        raise ValueError(f"snapshots must be between 1 and {HISTORY_MONTHS}, got {snapshots}")
    people, outcome, cal = _run(n_customers, seed, as_of, record_from=HISTORY_MONTHS - snapshots)
    table = _to_frame(people, outcome, cal)
    ids = table[C.CUSTOMER_ID].to_numpy()
    return DemoHistory(
        table=table,
        months=_months_frame(people, outcome, cal, ids),
        campaign=_campaign_frame(outcome, cal, ids),
    )


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
    addon_price: np.ndarray  # monthly price of the add-ons, before discounts
    discount: np.ndarray  # factor for the contract and referral discounts
    base_price: np.ndarray  # monthly charge of the signup plan before price rises
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
    addon_price = addons @ np.array([a[1] for a in ADDONS])
    discount = 1.0 - np.asarray(CONTRACT_DISCOUNT)[contract]
    discount *= np.where(channel == CHANNELS.index("Referral"), 1.0 - REFERRAL_DISCOUNT, 1.0)
    usage_mean = np.asarray(PLAN_USAGE_HOURS)[plan]
    usage = rng.gamma(USAGE_SHAPE, usage_mean / USAGE_SHAPE)
    ticket_rate = rng.gamma(TICKETS_SHAPE, TICKETS_PER_MONTH / TICKETS_SHAPE, size=n)
    age = np.clip(np.rint(rng.normal(44.0, 14.0, size=n)), 18, 85).astype(np.int64)
    # The planted drift: recent signups are much younger (no extra draws, same stream).
    young = period >= HISTORY_MONTHS - DRIFT_SIGNUP_MONTHS
    age[young] = np.rint(18 + (age[young] - 18) * DRIFT_AGE_FACTOR).astype(np.int64)
    return _People(
        signup=signup,
        period=period,
        plan=plan,
        contract=contract,
        channel=channel,
        payment=payment,
        region=region,
        addons=addons,
        addon_price=addon_price,
        discount=discount,
        base_price=_plan_price(plan, addon_price, discount),
        usage=np.round(np.clip(usage, 0.5, 300.0), 2),  # the hazard sees the row's value
        ticket_rate=ticket_rate,
        age=age,
    )


def _plan_price(plan: np.ndarray, addon_price: np.ndarray, discount: np.ndarray) -> np.ndarray:
    """Monthly charge before price rises: plan + add-ons, with the customer's discounts."""
    return (np.asarray(PLAN_PRICE)[plan] + addon_price) * discount


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


@dataclass
class _State:
    """What changes over the periods, one entry per customer (updated in place by the loop)."""

    churn_period: np.ndarray  # -1 while active
    ring: np.ndarray  # (3, n) tickets raised in each of the last three periods, by t % 3
    price_factor: np.ndarray  # every price rise so far, multiplied
    rise_pct: np.ndarray
    rise_period: np.ndarray
    tickets_90d: np.ndarray  # values at the start of the last period at risk
    shown_pct: np.ndarray
    plan: np.ndarray
    base_price: np.ndarray  # the current plan's charge before price rises
    paused_until: np.ndarray  # paused in period t while t < paused_until
    paid: np.ndarray  # billed so far, before one-off charges and credits


@dataclass(frozen=True)
class _Period:
    """The base at risk at one period's start, as the monthly export records it."""

    t: int
    index: np.ndarray  # the customers at risk
    plan: np.ndarray
    mrr: np.ndarray  # 0 while paused
    tickets_90d: np.ndarray
    price_change_pct: np.ndarray
    paid: np.ndarray  # billed up to and including the period's first day
    churned: np.ndarray  # bool: left within the period


@dataclass(frozen=True)
class _Outcome:
    churn_period: np.ndarray  # -1 while active
    churn_date: np.ndarray  # datetime64[D], NaT while active
    plan: np.ndarray  # values at the start of the last period at risk
    tickets_90d: np.ndarray
    price_change_pct: np.ndarray
    monthly_revenue: np.ndarray  # the plan's charge with every rise, paused or not
    total_revenue: np.ndarray  # everything billed, with one-off charges and credits
    billing_noise: np.ndarray  # each customer's factor for those charges and credits
    campaign: dict[str, np.ndarray]  # "treated", "control": customer indices
    periods: tuple[_Period, ...]  # the recorded periods, oldest first


def _simulate(
    p: _People,
    cal: _Calendar,
    rng: np.random.Generator,
    events: np.random.Generator,
    record_from: int = HISTORY_MONTHS,
) -> _Outcome:
    """Run the periods; record the base at risk of each period from `record_from` on.

    `rng` drives signups, price rises, churn and tickets; `events` (a child stream of the
    same seed) drives plan changes, pauses and the campaign's control group, so that adding
    those left every draw of the churn process as it was.
    """
    s = _initial_state(p, cal, rng)
    signup_month, signup_day = _month_and_day(p.signup)
    fixed_logit = _fixed_logit(p)
    campaign = {"treated": np.empty(0, np.int64), "control": np.empty(0, np.int64)}
    periods = []
    for t in range(HISTORY_MONTHS):
        at_risk = np.flatnonzero((p.period < t) & (s.churn_period < 0))
        tenure = _whole_months(
            signup_month[at_risk], signup_day[at_risk], cal.month_number[t], cal.day[t]
        )
        _price_rises(s, at_risk, t, rng)
        _plan_changes_and_pauses(s, p, at_risk, t, events)
        mrr = _bill(s, p, at_risk, t)
        h = _hazard(s, fixed_logit, at_risk, tenure)
        if t == CAMPAIGN_PERIOD:
            groups = _campaign(p, at_risk, h, mrr, t, events)
            h[groups["treated"]] *= 1.0 - CAMPAIGN_SAVE_RATE  # this period only
            campaign = {group: at_risk[pos] for group, pos in groups.items()}
        leaves = rng.random(len(at_risk)) < h
        s.churn_period[at_risk[leaves]] = t
        if t >= record_from:
            periods.append(_record(s, at_risk, t, mrr, leaves))
        # Tickets raised during this period by those still here, for the next three.
        active = np.concatenate([at_risk[~leaves], np.flatnonzero(p.period == t)])
        s.ring[t % 3, active] = rng.poisson(p.ticket_rate[active])
    return _finish(p, cal, rng, s, campaign, tuple(periods))


def _initial_state(p: _People, cal: _Calendar, rng: np.random.Generator) -> _State:
    n = len(p.signup)
    # Customers who predate the history bring three months of tickets with them.
    ring = np.zeros((3, n), dtype=np.int64)
    existing = p.period < 0
    ring[:, existing] = rng.poisson(np.broadcast_to(p.ticket_rate[existing], (3, existing.sum())))
    return _State(
        churn_period=np.full(n, -1, dtype=np.int64),
        ring=ring,
        price_factor=np.ones(n),
        rise_pct=np.zeros(n),
        rise_period=np.full(n, -10_000, dtype=np.int64),
        tickets_90d=np.zeros(n, dtype=np.int64),
        shown_pct=np.zeros(n),
        plan=p.plan.copy(),
        base_price=p.base_price.copy(),
        paused_until=np.zeros(n, dtype=np.int64),
        paid=np.where(existing, p.base_price * _months_billed_before(p, cal), 0.0),
    )


def _fixed_logit(p: _People) -> np.ndarray:
    """The hazard's terms that never change: nothing here depends on plan or pauses."""
    return (
        BASE_LOGIT
        + _level_effects("contract", CONTRACTS)[p.contract]
        + _level_effects("payment_method", PAYMENT_METHODS)[p.payment]
        + PLANTED_EFFECTS["monthly_usage_hours"] * p.usage
        + PLANTED_EFFECTS[DISTRACTOR] * p.age
    )


def _price_rises(s: _State, at_risk: np.ndarray, t: int, rng: np.random.Generator) -> None:
    """Rises land at a period's start, for anyone at risk (a rise is not a tenure proxy)."""
    recent_wave = t >= HISTORY_MONTHS - RECENT_MONTHS
    rate = PRICE_RISE_MONTHLY_RECENT if recent_wave else PRICE_RISE_MONTHLY
    rises = at_risk[rng.random(len(at_risk)) < rate]
    pct = rng.choice(PRICE_RISES_PCT, size=len(rises), p=PRICE_RISES_SHARE)
    s.price_factor[rises] *= 1.0 + pct / 100.0
    s.rise_pct[rises] = pct
    s.rise_period[rises] = t
    recent = t - s.rise_period[at_risk] < PRICE_RISE_MEMORY
    s.shown_pct[at_risk] = np.where(recent, s.rise_pct[at_risk], 0.0)


def _plan_changes_and_pauses(
    s: _State, p: _People, at_risk: np.ndarray, t: int, events: np.random.Generator
) -> None:
    """Upgrades, downgrades and pauses start at a period's start; a paused customer does none.

    Usage stays the customer's typical usage: the hazard never sees the plan or a pause.
    """
    u = events.random(len(at_risk))
    low = UPGRADE_MONTHLY + DOWNGRADE_MONTHLY
    drawn = u < low + PAUSE_MONTHLY  # the few with an event: work on those alone (speed)
    who, u = at_risk[drawn], u[drawn]
    free = s.paused_until[who] <= t
    plan = s.plan[who]
    up = free & (u < UPGRADE_MONTHLY) & (plan < len(PLANS) - 1)
    down = free & (u >= UPGRADE_MONTHLY) & (u < low) & (plan > 0)
    changed = who[up | down]
    s.plan[changed] += np.where(up, 1, -1)[up | down]
    s.base_price[changed] = _plan_price(
        s.plan[changed], p.addon_price[changed], p.discount[changed]
    )
    if t <= PAUSE_LAST_START:  # so nobody is paused in the last periods
        pausing = who[free & (u >= low)]
        s.paused_until[pausing] = t + events.choice(PAUSE_MONTHS, size=len(pausing))


def _bill(s: _State, p: _People, at_risk: np.ndarray, t: int) -> np.ndarray:
    """Bill the period on its first day; returns the MRR of `at_risk` (0 while paused).

    Everyone at risk pays the month (leavers included) unless paused; newcomers pay their
    signup month at the plan's price.
    """
    paused = s.paused_until[at_risk] > t
    mrr = np.where(paused, 0.0, s.base_price[at_risk] * s.price_factor[at_risk])
    s.paid[at_risk] += mrr
    joining = np.flatnonzero(p.period == t)
    s.paid[joining] += s.base_price[joining]
    return mrr


def _hazard(s: _State, fixed_logit: np.ndarray, at_risk: np.ndarray, tenure) -> np.ndarray:
    """Each at-risk customer's probability of leaving in the period (the planted model)."""
    s.tickets_90d[at_risk] = s.ring[:, at_risk].sum(axis=0)
    logit = (
        fixed_logit[at_risk]
        + PLANTED_EFFECTS["support_tickets_90d"] * s.tickets_90d[at_risk]
        + PLANTED_EFFECTS["last_price_change_pct"] * s.shown_pct[at_risk]
        + PLANTED_EFFECTS[C.TENURE] * np.log1p(tenure)
    )
    return 1.0 / (1.0 + np.exp(-logit))


def _campaign(
    p: _People,
    at_risk: np.ndarray,
    h: np.ndarray,
    mrr: np.ndarray,
    t: int,
    events: np.random.Generator,
) -> dict[str, np.ndarray]:
    """The campaign's contact list split into treated and control (positions in at_risk).

    Eligible: paying customers already at risk at the previous period's start (so in that
    month's export, with churned 0). The list = the top by true hazard x MRR; the control
    group is a random CAMPAIGN_CONTROL_SHARE of each tercile of the list's hazard.
    """
    eligible = np.flatnonzero((p.period[at_risk] < t - 1) & (mrr > 0))
    size = min(len(eligible), _campaign_size(len(p.signup)))
    score = h[eligible] * mrr[eligible]
    listed = eligible[np.argsort(-score, kind="stable")[:size]]
    by_hazard = listed[np.argsort(h[listed], kind="stable")]
    control = [
        events.permutation(tercile)[: round(CAMPAIGN_CONTROL_SHARE * len(tercile))]
        for tercile in np.array_split(by_hazard, 3)
    ]
    held_out = np.sort(np.concatenate(control))
    return {"treated": np.setdiff1d(listed, held_out), "control": held_out}


def _campaign_size(n_customers: int) -> int:
    """CAMPAIGN_SIZE scaled with the customer count, at least CAMPAIGN_MIN_SIZE."""
    return max(CAMPAIGN_MIN_SIZE, round(CAMPAIGN_SIZE * n_customers / DEFAULT_CUSTOMERS))


def _record(s: _State, at_risk: np.ndarray, t: int, mrr: np.ndarray, leaves) -> _Period:
    return _Period(
        t=t,
        index=at_risk,
        plan=s.plan[at_risk],
        mrr=mrr,
        tickets_90d=s.tickets_90d[at_risk],
        price_change_pct=s.shown_pct[at_risk],
        paid=s.paid[at_risk],
        churned=leaves,
    )


def _finish(
    p: _People,
    cal: _Calendar,
    rng: np.random.Generator,
    s: _State,
    campaign: dict[str, np.ndarray],
    periods: tuple[_Period, ...],
) -> _Outcome:
    """Leaving days within the churn period, and one-off charges and credits on the bills."""
    n = len(p.signup)
    churn_date = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    gone = np.flatnonzero(s.churn_period >= 0)
    day = (rng.random(len(gone)) * cal.lengths[s.churn_period[gone]]).astype(np.int64)
    churn_date[gone] = cal.starts[s.churn_period[gone]] + day
    noise = 1.0 + BILLING_NOISE * (2.0 * rng.random(n) - 1.0)
    return _Outcome(
        churn_period=s.churn_period,
        churn_date=churn_date,
        plan=s.plan,
        tickets_90d=s.tickets_90d,
        price_change_pct=s.shown_pct,
        monthly_revenue=np.round(s.base_price * s.price_factor, 2),
        total_revenue=np.round(s.paid * noise, 2),
        billing_noise=noise,
        campaign=campaign,
        periods=periods,
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


# --- frames ---------------------------------------------------------------------------------


def _to_frame(p: _People, o: _Outcome, cal: _Calendar) -> pd.DataFrame:
    n = len(p.signup)
    end = np.where(o.churn_period >= 0, o.churn_date, cal.starts[-1] - np.timedelta64(1, "D"))
    end_month, end_day = _month_and_day(end)
    signup_month, signup_day = _month_and_day(p.signup)
    width = max(6, len(str(n)))
    ids = pd.Series(np.arange(1, n + 1), dtype="int64").astype("str").str.zfill(width)
    everyone = np.arange(n)
    frame = pd.DataFrame(
        {
            C.CUSTOMER_ID: ("C" + ids).astype("str"),
            C.SIGNUP_DATE: p.signup.astype("datetime64[ns]"),
            C.CHURN_DATE: o.churn_date.astype("datetime64[ns]"),
            C.TENURE: _whole_months(signup_month, signup_day, end_month, end_day),
            C.CHURNED: (o.churn_period >= 0).astype(np.int64),
            "plan": _labels(PLANS, o.plan),
            **_fixed_columns(p, everyone),
            "support_tickets_90d": o.tickets_90d,
            "last_price_change_pct": o.price_change_pct,
            C.MONTHLY_REVENUE: o.monthly_revenue,
            C.TOTAL_REVENUE: o.total_revenue,
        }
    )
    return frame.loc[:, list(COLUMN_ORDER)]


def _months_frame(p: _People, o: _Outcome, cal: _Calendar, ids: np.ndarray) -> pd.DataFrame:
    """The recorded periods as one frame of monthly exports, oldest first."""
    index = np.concatenate([r.index for r in o.periods])
    t = np.repeat([r.t for r in o.periods], [len(r.index) for r in o.periods]).astype(np.int64)

    def joined(name: str) -> np.ndarray:
        return np.concatenate([getattr(r, name) for r in o.periods])

    frame = pd.DataFrame(
        {
            "as_of": (cal.starts[t + 1] - np.timedelta64(1, "D")).astype("datetime64[ns]"),
            C.CUSTOMER_ID: pd.Series(ids[index], dtype="str"),
            C.TENURE: timeline.months_between(p.signup[index], cal.starts[t]).astype(np.int64),
            C.CHURNED: joined("churned").astype(np.int64),
            "plan": _labels(PLANS, joined("plan")),
            **_fixed_columns(p, index),
            "support_tickets_90d": joined("tickets_90d"),
            "last_price_change_pct": joined("price_change_pct"),
            C.MONTHLY_REVENUE: np.round(joined("mrr"), 2),
            C.TOTAL_REVENUE: np.round(joined("paid") * o.billing_noise[index], 2),
        }
    )
    dated = [c for c in COLUMN_ORDER if c not in (C.SIGNUP_DATE, C.CHURN_DATE)]
    return frame.loc[:, ["as_of", *dated]]


def _campaign_frame(o: _Outcome, cal: _Calendar, ids: np.ndarray) -> pd.DataFrame:
    """The contact list in id order, dated by the export it was drawn from."""
    index = np.concatenate([o.campaign["treated"], o.campaign["control"]])
    group = np.repeat(
        ["treated", "control"], [len(o.campaign["treated"]), len(o.campaign["control"])]
    )
    order = np.argsort(index, kind="stable")
    drawn = cal.starts[CAMPAIGN_PERIOD] - np.timedelta64(1, "D")
    return pd.DataFrame(
        {
            C.CUSTOMER_ID: pd.Series(ids[index[order]], dtype="str"),
            "group": pd.Series(group[order], dtype="str"),
            "as_of": pd.Series(np.full(len(index), drawn), dtype="datetime64[ns]"),
        }
    )


def _fixed_columns(p: _People, index: np.ndarray) -> dict[str, pd.Series | np.ndarray]:
    """The features fixed at signup, for the customers `index`."""
    return {
        "contract": _labels(CONTRACTS, p.contract[index]),
        "payment_method": _labels(PAYMENT_METHODS, p.payment[index]),
        "streaming_addon": _labels(("No", "Yes"), p.addons[index, 0].astype(np.int64)),
        "device_protection": _labels(("No", "Yes"), p.addons[index, 1].astype(np.int64)),
        "region": _labels(REGIONS, p.region[index]),
        "acquisition_channel": _labels(CHANNELS, p.channel[index]),
        "monthly_usage_hours": p.usage[index],
        DISTRACTOR: p.age[index],
    }


def _labels(levels: tuple[str, ...], codes: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(levels)[codes], dtype="str")

"""The canonical columns from their source columns: ids, numbers, dates, derived values.

Checks a user would want refused (blank or duplicated ids, negative amounts, a numeric column
that is not numeric) raise one-line DataErrors; repairs are counted and noted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.ingest.aliases import ALIASES, norm
from analytics.ingest.errors import (
    DataError,
    DuplicateIdError,
    MissingColumnError,
    NegativeRevenueError,
)
from analytics.ingest.labels import is_binary
from analytics.ingest.messages import EXAMPLES, listing, named_column, note_coerced, rows_text
from analytics.ingest.parse import parse_dates, parse_numbers
from analytics.ingest.views import Dates, Numbers, View, as_text

CANONICAL_NUMERIC_SHARE = 0.5  # below this a mapped numeric column is the wrong column
NUMERIC_CANONICAL = (C.TENURE, C.MONTHLY_REVENUE, C.TOTAL_REVENUE)
# Tenure in months rarely stops this short; in years (a bank's "Tenure" of 0-10) it does.
SHORT_TENURE_MAX = 15
DAYS_PER_MONTH = 365.25 / 12
# Names of a day count since joining ("vintage", "days_since_signup", "customer_for_days")
# and of dates of last activity (recency, offered only with a caveat), compared after norm().
DAY_WORDS = ("day",)
JOIN_WORDS = ("since", "signup", "join", "customer", "member", "account", "age", "tenure",
              "for", "registr", "onboard", "client", "subscri", "relationship")  # fmt: skip
RECENCY_WORDS = ("last", "recen", "latest", "ago", "seen", "inactiv")
# A count of years with the company ("YearsAtCompany", "customer_years", "tenure_years"); other
# year counts ("YearsInCurrentRole", "TotalWorkingYears") are not the customer's tenure.
YEAR_WORDS = ("year", "yrs")
YEAR_JOIN_WORDS = ("company", "customer", "member", "client", "account", "tenure", "bank",
                   "relationship", "subscri", "service", "with us", "since")  # fmt: skip
DATE_SHARE = 0.9  # of filled cells that parse as dates, for a date column offered as tenure


def is_day_count(name: str) -> bool:
    """A column named as days since joining ('vintage', 'days_since_signup', 'tenure_days')."""
    key = norm(name)
    if key == "vintage":
        return True
    return (
        any(w in key for w in DAY_WORDS)
        and not any(w in key for w in RECENCY_WORDS)
        and any(w in key for w in JOIN_WORDS)
    )


def is_year_count(name: str) -> bool:
    """A column named as years with the company ('YearsAtCompany', 'tenure_years')."""
    key = norm(name)
    return (
        any(w in key for w in YEAR_WORDS)
        and not any(w in key for w in RECENCY_WORDS)
        and any(norm(w) in key for w in YEAR_JOIN_WORDS)
    )


def _tenure_suggestion(columns: Sequence[str], views: Mapping[str, View]) -> str:
    """Which column could give tenure: a day or year count since joining, else a date column."""
    numbers = [c for c in columns if _numeric_share(views[c]) >= CANONICAL_NUMERIC_SHARE]
    for test, unit in ((is_day_count, "days"), (is_year_count, "years")):
        counts = [c for c in numbers if test(c)]
        if counts:
            return (
                f"'{counts[0]}' looks like {unit} since joining: map it with --map "
                f"{C.TENURE}={counts[0]} ({unit} are converted to months); "
            )
    dates = [c for c in columns if c not in numbers and _date_share(views[c]) >= DATE_SHARE]
    if not dates:
        return ""
    recency = [c for c in dates if any(w in norm(c) for w in RECENCY_WORDS)]
    column = next((c for c in dates if c not in recency), dates[0])
    caveat = (
        " (a date of last activity: right only if customers joined then)"
        if column in recency
        else ""
    )
    return (
        f"'{column}' holds dates: map it with --map {C.SIGNUP_DATE}={column} to count tenure "
        f"from it to the latest date in the file{caveat}; "
    )


def _numeric_share(view: View) -> float:
    if isinstance(view, Numbers):
        return 1.0
    if isinstance(view, Dates):
        return 0.0
    counts = view.counts()
    numbers = parse_numbers(pd.Series(view.values, dtype="str"))
    return float(counts[~np.isnan(numbers)].sum() / counts.sum()) if counts.sum() else 0.0


def _date_share(view: View) -> float:
    if isinstance(view, Dates):
        return 1.0
    if isinstance(view, Numbers):
        return 0.0
    counts = view.counts()
    parsed, _ = parse_dates(pd.Series(view.values, dtype="str"))
    return float(counts[~np.isnat(parsed)].sum() / counts.sum()) if counts.sum() else 0.0


def missing_column(
    canonical: str, columns: Sequence[str], views: Mapping[str, View], hint: str = ""
) -> MissingColumnError:
    tried = listing(list(ALIASES[canonical]), limit=10)
    extra = ""
    offer = _tenure_suggestion(columns, views) if canonical == C.TENURE else ""
    if canonical == C.CHURNED:
        binary = [c for c in columns if is_binary(views[c])]
        if binary:
            extra = f"; two-valued columns: {listing(binary, 5)}"
    return MissingColumnError(
        f"no {canonical} column: {offer}no column matches {tried}{hint}; columns found: "
        f"{listing(list(columns))}{extra}; map one with --map {canonical}=<column>"
    )


def line_ids(pos: np.ndarray, first_line: int | None) -> pd.Series:
    """'line-2', 'line-3', ... (file lines when the reader knows them, else 1-based rows)."""
    start = first_line if first_line is not None else 1
    prefix = "line-" if first_line is not None else "row-"
    return pd.Series([f"{prefix}{int(p) + start}" for p in pos], dtype="str")


def customer_ids(view: View, mapping: Mapping[str, str], pos, first_line) -> pd.Series:
    text = as_text(view)
    blank = np.flatnonzero(text.missing)
    if blank.size:
        raise DataError(
            f"{named_column(C.CUSTOMER_ID, mapping)} is blank on {blank.size} rows "
            f"({rows_text(pos[blank], first_line)}): every customer needs an id"
        )
    counts = text.counts()
    dup = np.flatnonzero(counts > 1)
    if dup.size:
        order = dup[np.argsort(-counts[dup], kind="stable")][:EXAMPLES]
        examples = ", ".join(f"{text.values[i]} ({counts[i]} rows)" for i in order)
        raise DuplicateIdError(
            f"{named_column(C.CUSTOMER_ID, mapping)} has {dup.size} duplicated ids, "
            f"e.g. {examples}: one row per customer expected"
        )
    return pd.Series(text.values.take(text.codes), dtype="str")


def numeric_canonical(
    canonical: str, view: View, mapping, decimal, coercions: dict[str, int], notes: list[str]
) -> np.ndarray:
    if isinstance(view, Numbers):
        return view.values.copy()
    text = as_text(view)
    numbers = parse_numbers(pd.Series(text.values, dtype="str"), decimal)
    counts = text.counts()
    bad = np.isnan(numbers)
    filled = int(counts.sum())
    if filled and counts[~bad].sum() < CANONICAL_NUMERIC_SHARE * filled:
        examples = listing([repr(v) for v in text.values[bad]], 3)
        raise DataError(
            f"{named_column(canonical, mapping)} is not numeric: {int(counts[bad].sum())} of "
            f"{filled} values are not numbers, e.g. {examples}; "
            f"map the right column with --map {canonical}=<column>"
        )
    note_coerced(canonical, text.values[bad], int(counts[bad].sum()), coercions, notes)
    return np.append(numbers, np.nan)[text.codes]


def _check_not_negative(
    canonical: str, values: np.ndarray, ids: pd.Series, mapping, error: type[DataError]
) -> None:
    negative = np.flatnonzero(values < 0)
    if negative.size:
        shown = listing(list(ids.iloc[negative[:EXAMPLES]]), EXAMPLES)
        raise error(
            f"{named_column(canonical, mapping)} has {negative.size} negative values, e.g. ids "
            f"{shown}{', ...' if negative.size > EXAMPLES else ''}: amounts must be >= 0"
        )


def check_revenue(out: dict, ids: pd.Series, resolved) -> None:
    for canonical in (C.MONTHLY_REVENUE, C.TOTAL_REVENUE):
        if canonical in out:
            _check_not_negative(canonical, out[canonical], ids, resolved, NegativeRevenueError)
    if C.TENURE in out:
        _check_not_negative(C.TENURE, out[C.TENURE], ids, resolved, DataError)


def canonical_dates(
    canonical: str, view: View, coercions: dict[str, int], notes: list[str]
) -> np.ndarray:
    if isinstance(view, Dates):
        return view.values.copy()
    text = as_text(view)
    parsed, fmt = parse_dates(pd.Series(text.values, dtype="str"))
    bad = np.isnat(parsed)
    n_bad = int(text.counts()[bad].sum())
    if n_bad:
        coercions[canonical] = coercions.get(canonical, 0) + n_bad
        shown = listing([repr(v) for v in text.values[bad]], 3)
        notes.append(f"{canonical}: {n_bad} cells that are not dates became missing (e.g. {shown})")
    if fmt in ("%m/%d/%Y", "%m/%d/%y", "%m-%d-%Y") and _ambiguous_day(parsed):
        notes.append(
            f"{canonical}: dates read month-first ({fmt}); every day is 12 or less, "
            "so day-first would fit too (recode the dates as YYYY-MM-DD to be sure)"
        )
    return np.append(parsed, np.datetime64("NaT", "ns"))[text.codes]


def _ambiguous_day(parsed: np.ndarray) -> bool:
    days = pd.DatetimeIndex(parsed[~np.isnat(parsed)]).day
    return bool(len(days)) and bool((days <= 12).all())


def note_tenure_unit(out: dict, resolved, notes: list[str]) -> None:
    """Read tenure in months and say how: a day count ('vintage', 'days_since_signup', mapped by
    the user) is converted; a tenure column that does not say its unit and stops short may
    count years, which is said rather than guessed (segments, CLV horizons and actions read
    it as months)."""
    source = resolved.get(C.TENURE)
    if source is None or C.TENURE not in out or "month" in str(source).lower():
        return
    if is_day_count(source):
        out[C.TENURE] = np.asarray(out[C.TENURE], dtype="float64") / DAYS_PER_MONTH
        notes.append(
            f"tenure_months: read from '{source}' as days since joining and converted to "
            f"months (days / {DAYS_PER_MONTH:.2f})"
        )
        return
    if is_year_count(source):
        out[C.TENURE] = np.asarray(out[C.TENURE], dtype="float64") * 12
        notes.append(
            f"tenure_months: read from '{source}' as years since joining and converted to "
            "months (years x 12)"
        )
        return
    values = np.asarray(out[C.TENURE], dtype="float64")
    values = values[~np.isnan(values)]
    if len(values) and values.max() <= SHORT_TENURE_MAX:
        notes.append(
            f"tenure_months: read from '{source}' as months, but its values stop at "
            f"{values.max():g}: if they count years, multiply them by 12 before loading"
        )


def complete_canonical(out: dict, resolved, columns, views, notes: list[str]) -> None:
    """Derive what the data implies: tenure from dates, total revenue, label from churn_date."""
    if C.TENURE not in out:
        if C.SIGNUP_DATE not in out:
            raise missing_column(
                C.TENURE, columns, views, hint=" and there is no signup_date to derive it from"
            )
        signup = out[C.SIGNUP_DATE]
        dates = np.concatenate([out[c] for c in C.DATE_COLUMNS if c in out])
        if np.isnat(dates).all():
            raise missing_column(
                C.TENURE, columns, views, hint=" and signup_date holds no dates to derive it from"
            )
        latest = dates[~np.isnat(dates)].max()
        end = out.get(C.CHURN_DATE, np.full(len(signup), np.datetime64("NaT", "ns")))
        end = np.where(np.isnat(end), latest, end)
        out[C.TENURE] = whole_months(signup, end)
        notes.append(
            "tenure_months: derived as whole months from signup_date to churn_date (or to "
            f"{pd.Timestamp(latest).date()}, the latest date in the data)"
        )
    if C.TOTAL_REVENUE in out and C.MONTHLY_REVENUE in out:
        total = out[C.TOTAL_REVENUE]
        fillable = np.isnan(total) & ~np.isnan(out[C.MONTHLY_REVENUE]) & ~np.isnan(out[C.TENURE])
        if fillable.any():
            total[fillable] = out[C.TENURE][fillable] * out[C.MONTHLY_REVENUE][fillable]
            notes.append(
                f"total_revenue: {int(fillable.sum())} missing cells filled with "
                "tenure_months x monthly_revenue"
            )
    if C.CHURNED not in out and C.CHURN_DATE in out:
        out[C.CHURNED] = (~np.isnat(out[C.CHURN_DATE])).astype(np.int8)
        notes.append("churned: no label column; 1 where churn_date is set, else 0")


def whole_months(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Whole calendar months from start to end (float, NaN where a date is missing)."""
    s, e = pd.DatetimeIndex(start), pd.DatetimeIndex(end)
    months = (e.year - s.year) * 12 + (e.month - s.month) - (e.day < s.day)
    out = np.asarray(months, dtype=np.float64)
    out[np.isnat(start) | np.isnat(end)] = np.nan
    return out

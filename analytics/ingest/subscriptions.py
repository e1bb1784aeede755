"""A subscription log (several rows per account: start, end, plan, seats, MRR, flags) turned into
one customer per account, before validation.

A log is recognised by its repeated account ids and its start and end date columns, the ids'
rows starting on different dates (a table of duplicated customer rows is not a log: it keeps
its duplicate-id error). Each account becomes one customer: tenure from its first start to the
as-of date (or its last end), churned when every subscription has ended by the as-of date
(the latest date in the file unless given), its current MRR (the sum over active
subscriptions; the last MRR for a churned account) and its plan history as features. The load
report says so in one note.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.ingest.aliases import alias_rank, norm
from analytics.ingest.canonical import whole_months
from analytics.ingest.errors import MappingError
from analytics.ingest.mapping import columns_to_drop, resolve
from analytics.ingest.messages import listing
from analytics.ingest.parse import parse_dates, parse_numbers
from analytics.ingest.views import Dates, Numbers, as_text, column_view

# raw.attrs key: the as-of date of a subscription log (else the latest date in the file)
ATTR_AS_OF = "retention_as_of"
# keys validate reads (ingest.validate's ATTR_NOTES / ATTR_DROPPED; not imported: a cycle)
_ATTR_NOTES = "retention_notes"
_ATTR_DROPPED = "retention_dropped"
_ATTR_DECIMAL = "retention_decimal"
DATE_SHARE = 0.9  # of filled cells that must parse as dates for a start / end column
LOG_SHARE = 0.5  # of repeated ids whose rows start on different dates, for a log
NUMBER_SHARE = 0.95  # of filled cells that must be numbers for a numeric column
START_WORDS = ("start", "begin", "from", "since", "opened")
END_WORDS = ("end", "stop", "expir", "until", "cancel", "terminat", "closed")
PLAN_WORDS = ("plan", "tier", "package", "product", "edition", "sku", "subscriptiontype")
SEAT_WORDS = ("seat", "licen", "quantity", "users")
# Output feature names (the plan history)
SUBSCRIPTIONS = "subscriptions"
PLAN_CHANGES = "plan_changes"
UPGRADES = "upgrades"
DOWNGRADES = "downgrades"


def customers_from_log(
    raw: pd.DataFrame, mapping: Mapping[str, str] | None, drop: Sequence[str]
) -> tuple[pd.DataFrame, Mapping[str, str] | None, Sequence[str]]:
    """(raw, mapping, drop) with a subscription log replaced by one row per account; anything
    else unchanged (validation then reports what is wrong with it)."""
    names = [str(n).replace("\ufeff", "").strip() for n in raw.columns]
    if len(raw) < 2 or len(set(names)) != len(names):
        return raw, mapping, drop
    canonical = {k: v for k, v in (mapping or {}).items() if k in C.CANONICAL}
    try:
        resolved = resolve(names, canonical, None)[0]
        dropped = columns_to_drop(drop, names, resolved)
    except MappingError:
        return raw, mapping, drop  # validation names the mistake
    frame = raw.set_axis(names, axis=1)
    id_col = resolved.get(C.CUSTOMER_ID)
    if id_col is None or id_col in dropped:
        return raw, mapping, drop
    if frame[id_col].is_unique:  # cheap: most tables stop here
        return raw, mapping, drop
    ids = as_text(column_view(frame[id_col]))
    if ids.missing.any() or ids.counts().max(initial=0) < 2:
        return raw, mapping, drop
    start_col = _date_column(frame, resolved.get(C.SIGNUP_DATE), START_WORDS, dropped)
    end_col = _date_column(frame, resolved.get(C.CHURN_DATE), END_WORDS, dropped | {start_col})
    if start_col is None or end_col is None:
        return raw, mapping, drop
    codes = ids.codes
    start, end = _dates(frame[start_col]), _dates(frame[end_col])
    if not _starts_differ(codes, start):
        return raw, mapping, drop
    as_of = raw.attrs.get(ATTR_AS_OF)
    later = ""
    if as_of is not None:
        as_of = np.datetime64(pd.Timestamp(as_of), "ns")
        future = np.flatnonzero(start > as_of)  # not begun by then: left out
        if future.size:
            rows = np.setdiff1d(np.arange(len(frame)), future)
            frame, ids = frame.iloc[rows].reset_index(drop=True), ids.take(rows)
            codes, start, end = ids.codes, start[rows], end[rows]
            later = f"; {future.size:,} subscriptions starting after the as-of date left out"
    log = _Log(frame, names, codes, ids.values, start, end, raw.attrs.get(_ATTR_DECIMAL), as_of)
    log.file_rows = len(raw)
    used = {id_col, start_col, end_col}
    out, said, left_out = log.customers(id_col, resolved, used | dropped)
    said += later
    out.attrs = {
        **raw.attrs,
        _ATTR_NOTES: [*raw.attrs.get(_ATTR_NOTES, ()), said],
        _ATTR_DROPPED: {
            **raw.attrs.get(_ATTR_DROPPED, {}),
            **{c: "dropped by the user (--drop)" for c in sorted(dropped)},
            **left_out,
        },
    }
    kept = {k: v for k, v in (mapping or {}).items() if k not in C.CANONICAL}
    if C.CUSTOMER_ID in canonical:
        kept[C.CUSTOMER_ID] = id_col
    return out, kept or None, ()


def _date_column(frame, mapped: str | None, words, taken) -> str | None:
    """The mapped or alias date column, else the first column named like one that holds dates."""
    named = [c for c in frame.columns if c not in taken and any(w in norm(c) for w in words)]
    for column in ([mapped] if mapped and mapped not in taken else []) + named:
        if _dates_share(frame[column]) >= DATE_SHARE:
            return column
    return None


def _dates_share(series: pd.Series) -> float:
    view = column_view(series)
    if isinstance(view, Dates):
        return 1.0
    if isinstance(view, Numbers):
        return 0.0
    filled = int(view.counts().sum())
    if not filled:
        return 0.0
    parsed, _ = parse_dates(pd.Series(view.values, dtype="str"))
    return float(view.counts()[~np.isnat(parsed)].sum()) / filled


def _dates(series: pd.Series) -> np.ndarray:
    view = column_view(series)
    if isinstance(view, Dates):
        return view.values
    text = as_text(view)
    parsed, _ = parse_dates(pd.Series(text.values, dtype="str"))
    return np.append(parsed, np.datetime64("NaT", "ns"))[text.codes]


def _numbers(series: pd.Series, decimal) -> np.ndarray | None:
    """Numbers when nearly every filled cell is one, else None (a text column)."""
    view = column_view(series)
    if isinstance(view, Numbers):
        return view.values
    if isinstance(view, Dates):
        return None
    text = as_text(view)
    values = parse_numbers(pd.Series(text.values, dtype="str"), decimal)
    counts = text.counts()
    if not counts.sum() or counts[~np.isnan(values)].sum() < NUMBER_SHARE * counts.sum():
        return None
    return np.append(values, np.nan)[text.codes]


def _starts_differ(codes: np.ndarray, start: np.ndarray) -> bool:
    """Whether most repeated ids start their rows on different dates (a log, not copies)."""
    pairs = pd.DataFrame({"id": codes, "start": start})
    per_id = pairs.groupby("id")["start"].agg(["size", "nunique"])
    repeated = per_id[per_id["size"] > 1]
    return bool(len(repeated)) and float((repeated["nunique"] > 1).mean()) >= LOG_SHARE


class _Log:
    """The log's rows with per-row account codes, dates and the as-of date."""

    def __init__(self, frame, names, codes, id_values, start, end, decimal, as_of) -> None:
        self.frame, self.names, self.decimal = frame, names, decimal
        self.codes, self.id_values = codes, id_values
        self.start, self.end = start, end
        dates = np.concatenate([start, end])
        dates = dates[~np.isnat(dates)]
        self.as_of = as_of if as_of is not None else dates.max()
        self.as_of_given = as_of is not None
        self.ended = ~np.isnat(end) & (end <= self.as_of)
        # rows ordered so each account's current row comes last: active ones, latest start
        # among them; for an account with none, the one that ended last
        end_key = np.where(self.ended, end, np.datetime64("2262-01-01", "ns"))
        self.order = np.lexsort((start, end_key, ~self.ended, codes))
        self.n = n = len(id_values)
        grouped = codes[self.order]
        self.current = self.order[np.flatnonzero(np.append(grouped[1:] != grouped[:-1], True))]
        self.churned = np.bincount(codes, weights=~self.ended, minlength=n) == 0
        self.rows = np.bincount(codes, minlength=n)
        self.file_rows = len(codes)

    def _active_sum_or_last(self, values: np.ndarray) -> np.ndarray:
        """Sum over active subscriptions; for a churned account, its last subscription's."""
        active = np.where(self.ended | np.isnan(values), 0.0, values)
        total = np.bincount(self.codes, weights=active, minlength=self.n)
        return np.where(self.churned, values[self.current], total)

    def _changes(self, values: np.ndarray, numeric: bool):
        """Per account, between consecutive subscriptions by start: (changes, ups, downs)."""
        by_start = np.lexsort((self.start, self.codes))
        codes, ordered = self.codes[by_start], values[by_start]
        same = codes[1:] == codes[:-1]
        if numeric:
            step = ordered[1:] - ordered[:-1]
            ups = np.bincount(codes[1:], weights=same & (step > 0), minlength=self.n)
            downs = np.bincount(codes[1:], weights=same & (step < 0), minlength=self.n)
            return None, ups, downs
        changed = same & (ordered[1:] != ordered[:-1])
        return np.bincount(codes[1:], weights=changed, minlength=self.n), None, None

    def customers(self, id_col: str, resolved, used: set[str]):
        """(one row per account, the load report's note, {left-out column: why})."""
        per_id = pd.Series(self.start).groupby(self.codes)
        first = per_id.min().reindex(range(self.n)).to_numpy(dtype="datetime64[ns]")
        ended = pd.Series(np.where(self.ended, self.end, np.datetime64("NaT", "ns")))
        last_end = ended.groupby(self.codes).max().reindex(range(self.n))
        until = np.where(self.churned, last_end.to_numpy(dtype="datetime64[ns]"), self.as_of)
        out: dict[str, object] = {
            id_col: pd.Series(self.id_values, dtype="str"),
            C.CHURNED: self.churned.astype(np.int8),
            C.TENURE: whole_months(first, until),
        }
        history = {SUBSCRIPTIONS: self.rows.astype(np.float64)}
        said, left_out = [], {}
        mrr_col = resolved.get(C.MONTHLY_REVENUE)
        mrr = _numbers(self.frame[mrr_col], self.decimal) if mrr_col not in (None, *used) else None
        if mrr is not None:
            used.add(mrr_col)
            out[C.MONTHLY_REVENUE] = self._active_sum_or_last(mrr)
            _, history[UPGRADES], history[DOWNGRADES] = self._changes(mrr, numeric=True)
            said.append(
                f"monthly_revenue the sum of '{mrr_col}' over active subscriptions (a churned "
                "account's last)"
            )
        total_col = resolved.get(C.TOTAL_REVENUE)
        total = None
        if total_col not in (None, *used):
            total = _numbers(self.frame[total_col], self.decimal)
        if total is not None:
            used.add(total_col)
            out[C.TOTAL_REVENUE] = np.bincount(self.codes, np.nan_to_num(total), minlength=self.n)
            said.append(f"total_revenue the sum of '{total_col}'")
        # per subscription ("status": active / ended; its length): the account's are derived
        statuses = set(alias_rank(C.CHURNED)) | set(alias_rank(C.TENURE))
        for column in self.names:
            if column not in used and (
                column in (resolved.get(C.CHURNED), resolved.get(C.TENURE))
                or norm(column) in statuses
            ):
                used.add(column)
                what = C.TENURE if norm(column) in alias_rank(C.TENURE) else C.CHURNED
                left_out[column] = f"per subscription in a log: {what} is derived per account"
        out[C.SIGNUP_DATE] = first
        current = []
        for column in self.names:
            if column in used:
                continue
            current.append(column)
            values = _numbers(self.frame[column], self.decimal)
            if values is not None and any(w in norm(column) for w in SEAT_WORDS):
                out[column] = self._active_sum_or_last(values)
                continue
            if values is not None:
                out[column] = values[self.current]
                continue
            text = self.frame[column].astype("str").str.strip()
            text = text.where(self.frame[column].notna()).to_numpy(dtype=object)
            out[column] = pd.Series(text[self.current], dtype="str")
            if PLAN_CHANGES not in history and any(w in norm(column) for w in PLAN_WORDS):
                filled = np.array(["" if pd.isna(t) else t for t in text], dtype=object)
                history[PLAN_CHANGES] = self._changes(filled, numeric=False)[0]
        out.update(history)
        as_of = (
            f"{'the given as-of date' if self.as_of_given else 'the latest date in the file'}, "
            f"{pd.Timestamp(self.as_of).date()}"
        )
        seats = [c for c in current if any(w in norm(c) for w in SEAT_WORDS)]
        note = "; ".join(
            [
                f"a subscription log of {self.file_rows:,} rows became {self.n:,} customers "
                f"(one per '{id_col}'): {int(self.churned.sum()):,} churned (every subscription "
                f"ended by {as_of})",
                "tenure_months from the first start to that date (to the last end if churned)",
                *said,
                f"plan history as features: {', '.join(history)}",
                *(
                    [f"{listing(current, 6)}: the current subscription's (the last one's if "
                     f"churned{'; seats summed over active ones' if seats else ''})"]
                    if current
                    else []
                ),
            ]
        )  # fmt: skip
        return pd.DataFrame(out), note, left_out

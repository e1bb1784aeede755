"""Validate a raw churn table into canonical form, explaining every repair.

Input: a raw frame (ingest.read.read_table gives every CSV cell as text; Parquet arrives typed).
Output: a Table whose frame uses the canonical names and dtypes of ../shared/METRICS.md.
Every problem a user can fix is a one-line DataError subclass naming the column, what was
found and what to do. Work is vectorised over each column's distinct values (pd.factorize),
never per cell, so a million rows validate in seconds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics import leaks
from analytics.ingest.aliases import BINARY_ONLY_ALIASES, norm
from analytics.ingest.canonical import (
    NUMERIC_CANONICAL,
    canonical_dates,
    check_revenue,
    complete_canonical,
    customer_ids,
    line_ids,
    missing_column,
    note_tenure_unit,
    numeric_canonical,
)
from analytics.ingest.errors import DataError, EmptyTableError, LabelError, MappingError
from analytics.ingest.feature_columns import Feature, as_feature, shadow_reason
from analytics.ingest.labels import decode_labels, is_binary
from analytics.ingest.mapping import (
    columns_to_drop,
    explicit_mapping,
    kept_columns,
    resolve,
    split_keep,
)
from analytics.ingest.messages import listing, named_column, rows_text
from analytics.ingest.subscriptions import customers_from_log
from analytics.ingest.views import View, column_view

# Keys read.read_table leaves in raw.attrs for validate: repairs made while reading, columns it
# left out ({name: why}), the decimal mark implied by the delimiter, and the file line of the
# first data row (for messages).
ATTR_NOTES = "retention_notes"
ATTR_DROPPED = "retention_dropped"
ATTR_DECIMAL = "retention_decimal"
ATTR_FIRST_LINE = "retention_first_line"


@dataclass(frozen=True)
class Table:
    """A validated table: canonical frame plus what was mapped, dropped and repaired."""

    frame: pd.DataFrame
    mapping: dict[str, str]
    source_columns: tuple[str, ...]
    features: tuple[str, ...]
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    dropped: dict[str, str] = field(default_factory=dict)
    coercions: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    # Probable label leaks (analytics.leaks): left out of the features unless kept by the user.
    leaks: tuple[leaks.Leak, ...] = ()
    keep: tuple[str, ...] = ()  # the columns the user keeps although they look like leaks

    @property
    def has_label(self) -> bool:
        return C.CHURNED in self.frame.columns

    @property
    def has_revenue(self) -> bool:
        return C.MONTHLY_REVENUE in self.frame.columns

    @property
    def has_dates(self) -> bool:
        """Both dates present: enough for the snapshot, trend, cohort and survival views."""
        return C.SIGNUP_DATE in self.frame.columns and C.CHURN_DATE in self.frame.columns


def _clean_names(names: Iterable[object]) -> list[str]:
    cleaned = [str(n).replace("\ufeff", "").strip() for n in names]
    dups = sorted(n for n, k in Counter(cleaned).items() if k > 1)
    if dups:
        raise DataError(f"duplicate column names: {listing(dups)}; rename them so each is unique")
    return cleaned


def validate(
    raw: pd.DataFrame,
    mapping: Mapping[str, str] | None = None,
    *,
    require_label: bool = True,
    drop: Sequence[str] = (),
) -> Table:
    """Validate a raw customer table and return it in canonical form (see module docstring).

    `mapping` may hold a "keep" entry (ingest.mapping.KEEP): columns kept as features although
    analytics.leaks finds them probable label leaks; every other leak is left out and listed in
    Table.leaks and Table.dropped with its figure.
    """
    raw, mapping, drop = customers_from_log(raw, mapping, drop)  # a log: one row per account
    notes: list[str] = list(raw.attrs.get(ATTR_NOTES, ()))
    decimal = raw.attrs.get(ATTR_DECIMAL)
    first_line = raw.attrs.get(ATTR_FIRST_LINE)
    names = _clean_names(raw.columns)
    if not names:
        raise EmptyTableError("the table has no columns")
    if len(raw) == 0:
        raise EmptyTableError("the table has a header but no rows")
    unread: dict[str, str] = dict(raw.attrs.get(ATTR_DROPPED, {}))
    mapping, keep_names = split_keep(mapping)
    explicit = explicit_mapping(names, mapping)
    drop = [d for d in drop if d not in unread]  # already left out by the reader
    dropped = {
        c: "dropped by the user (--drop)" for c in sorted(columns_to_drop(drop, names, explicit))
    }
    kept = kept_columns(keep_names, names)
    for column in kept:
        if column in dropped:
            raise MappingError(f"column '{column}' is both kept (--keep) and dropped (--drop)")
    columns = [c for c in names if c not in dropped]
    views: dict[str, View] = {c: column_view(raw.iloc[:, names.index(c)]) for c in columns}

    blank = np.logical_and.reduce([v.missing for v in views.values()]) if views else None
    if blank is None or blank.all():
        raise EmptyTableError("every row of the table is blank")
    resolved, map_notes = resolve(columns, explicit, lambda c: is_binary(views[c]))
    notes.extend(map_notes)
    # Some public churn tables have no id at all: number the customers by their line in the file
    # rather than refuse the table (an explicit mapping to a missing column is still an error).
    numbered = C.CUSTOMER_ID not in resolved

    coercions: dict[str, int] = {}
    keep = ~blank
    if blank.any():
        where = rows_text(np.flatnonzero(blank), first_line)
        notes.append(f"{int(blank.sum())} blank rows dropped ({where})")
    labels = _label_column(
        resolved, views, require_label, keep, first_line, dropped, notes, coercions
    )
    rows = np.flatnonzero(keep)
    views = {c: v.take(rows) for c, v in views.items()}
    _forget_empty_optional(resolved, views, dropped, notes)

    out: dict[str, object] = {}
    if numbered:
        ids = line_ids(rows, first_line)
        notes.append(
            f"no customer_id column: customers are named by their line in the file ({ids.iloc[0]}, "
            "...); map an id with --map customer_id=<column>"
        )
    else:
        ids = customer_ids(views[resolved[C.CUSTOMER_ID]], resolved, rows, first_line)
    out[C.CUSTOMER_ID] = ids
    if labels is not None:
        out[C.CHURNED] = labels[rows]
    for canonical in NUMERIC_CANONICAL:
        if canonical in resolved:
            out[canonical] = numeric_canonical(
                canonical, views[resolved[canonical]], resolved, decimal, coercions, notes
            )
    for canonical in C.DATE_COLUMNS:
        if canonical in resolved:
            out[canonical] = canonical_dates(
                canonical, views[resolved[canonical]], coercions, notes
            )
    check_revenue(out, ids, resolved)
    note_tenure_unit(out, resolved, notes)
    complete_canonical(out, resolved, columns, views, notes)

    features = [c for c in NUMERIC_CANONICAL if c in out]
    categorical: list[str] = []
    mapped = set(resolved.values())
    named_leaks: list[str] = []
    for column in columns:
        if column in mapped or column in dropped:
            continue
        reason = shadow_reason(column, resolved)
        if reason is None and leaks.name_says_leaving(column):
            named_leaks.append(column)
            if column not in kept:
                dropped[column] = leaks.name_leak(column).dropped_text()
                continue
        feature = (
            Feature(None, reason)
            if reason
            else as_feature(views[column], column, decimal, coercions, notes)
        )
        if feature.values is None:
            dropped[column] = feature.kind
            continue
        out[column] = feature.values
        features.append(column)
        if feature.kind == "categorical":
            categorical.append(column)
    found = _label_leaks(out, features, kept, named_leaks, notes)
    for leak in found:
        if leak.kept or leak.column not in features:  # kept, or a name leak already left out
            continue
        features.remove(leak.column)
        if leak.column in categorical:
            categorical.remove(leak.column)
        if leak.column not in NUMERIC_CANONICAL:  # canonical columns stay: value needs them
            del out[leak.column]
            dropped[leak.column] = leak.dropped_text()

    frame = _assemble(out)
    return Table(
        frame=frame,
        mapping=resolved,
        source_columns=tuple(names),
        features=tuple(features),
        categorical=tuple(categorical),
        numeric=tuple(f for f in features if f not in categorical),
        dropped={**{c: dropped[c] for c in names if c in dropped}, **unread},
        coercions=coercions,
        notes=tuple(n for n in notes if n),
        leaks=tuple(sorted(found, key=lambda leak: names.index(leak.column))),
        keep=tuple(kept),
    )


def _label_leaks(out: dict, features, keep, named_leaks, notes: list[str]) -> list[leaks.Leak]:
    """The probable label leaks among the features and the name-leak columns (analytics.leaks).

    With both dates, the canonical numbers are left to training: tenure is recomputed at the
    window's start and the label is the window's, so only there are their figures meaningful.
    """
    name_only = [leaks.name_leak(c) for c in named_leaks if c not in keep]
    label = out.get(C.CHURNED)
    if label is None:
        return name_only + [leaks.name_leak(c, kept=True) for c in named_leaks if c in out]
    dated = C.SIGNUP_DATE in out and C.CHURN_DATE in out
    judged = [f for f in features if not (dated and f in NUMERIC_CANONICAL)]
    found, leak_notes = leaks.find(
        {c: out[c] for c in judged},
        np.asarray(label),
        keep=keep,
        name_kept=[c for c in named_leaks if c in keep],
    )
    notes.extend(leak_notes)
    return name_only + found


def _label_column(resolved, views, require_label, keep, first_line, dropped, notes, coercions):
    """The label for every raw row (int8, -1 blank), dropping blank-label rows from keep."""
    source = resolved.get(C.CHURNED)
    if source is None:
        if require_label and C.CHURN_DATE not in resolved:
            hint = ""
            generic = [c for c in views if norm(c) in BINARY_ONLY_ALIASES]
            if generic:
                hint = f" ('{generic[0]}' is not two-valued, so it is not taken as the label)"
            raise missing_column(C.CHURNED, list(views), views, hint)
        return None
    view = views[source]
    if view.missing[keep].all():
        if require_label:
            raise LabelError(f"{named_column(C.CHURNED, resolved)} has no values")
        dropped[source] = "empty: no values (no label)"
        del resolved[C.CHURNED]
        return None
    labels = decode_labels(view, resolved)
    unlabelled = np.flatnonzero(keep & (labels < 0))
    if unlabelled.size:
        keep &= labels >= 0
        coercions[C.CHURNED] = int(unlabelled.size)
        notes.append(
            f"churned: {unlabelled.size} rows with a blank label dropped "
            f"({rows_text(unlabelled, first_line)})"
        )
    return labels


def _forget_empty_optional(resolved: dict, views, dropped: dict, notes: list[str]) -> None:
    """A mapped column with no values is treated as absent (its views explain themselves)."""
    for canonical in (*NUMERIC_CANONICAL, *C.DATE_COLUMNS):
        source = resolved.get(canonical)
        if source is not None and views[source].missing.all():
            del resolved[canonical]
            dropped[source] = "empty: no values"
            notes.append(f"{canonical}: column '{source}' has no values; treated as absent")


def _assemble(out: dict) -> pd.DataFrame:
    canonical = [c for c in C.CANONICAL if c in out]
    order = canonical + [c for c in out if c not in canonical]
    frame = pd.DataFrame({c: _series(c, out[c]) for c in order})
    return frame.reset_index(drop=True)


def _series(name: str, values) -> pd.Series:
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    if name == C.CHURNED:
        return pd.Series(values, dtype=np.int8)
    if name in C.DATE_COLUMNS:
        return pd.Series(values, dtype="datetime64[ns]")
    return pd.Series(values, dtype=np.float64)

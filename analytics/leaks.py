"""Probable label leaks (../shared/METRICS.md, "Leaks"): the one rule the loader and training call.

A column is a probable leak when its name says it is recorded when or after the customer left
(`Churn Reason`, `exit_date`, `cancellation_reason`, a second churn label), or when on its own it
tells churners apart almost perfectly: single-column ROC-AUC >= 0.95 in either direction, or, for
a two-valued column, equal to the label (or to its opposite) on >= 98% of rows. A leak is left
out of the model and named with its figure, unless the user keeps it (--keep COLUMN, a "keep"
entry of the mapping, or the admin's data page).

Honest figures: a numeric column is ranked as it is (blank cells placed at whichever end ranks
better, both tried); a categorical column's levels are ranked by their churn rate out of fold
(5 folds, smoothed toward the base rate), so an id-like or many-level column cannot score by
memorising its rows. Vectorised with numpy; ROC-AUC is measured on a stratified sample of at most
SAMPLE_ROWS rows (said in a note), the two-valued agreement on every row.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.ingest.aliases import BINARY_ONLY_ALIASES, alias_rank, norm

AUC_LIMIT = 0.95
EQUAL_LIMIT = 0.98
SAMPLE_ROWS = 200_000
# Below this many churners or stayers a column's figures are too noisy to judge (a random
# column reaches ROC-AUC 0.95 by chance on a dozen rows); the name rule still applies.
MIN_CLASS_ROWS = 20
FOLDS = 5
SMOOTHING = 20.0  # pseudo-rows of the base rate added to every level's out-of-fold churn rate
SEED = 0

NAME_WHY = "its name says it is recorded when or after a customer leaves"
# Anywhere in the name (case and punctuation ignored): churn_category, Churn Score, Attrition_Flag.
NAME_STEMS = ("churn", "attrit")
# A word of leaving beside a word of what was recorded about it: Cancellation Reason, exit_date,
# TerminationDate, leave_reason, reason_for_leaving, lost_reason, DateofTermination.
LEAVING_WORDS = frozenset(
    {
        "exit",
        "exited",
        "cancel",
        "canceled",
        "cancelled",
        "cancellation",
        "cancelation",
        "termination",
        "terminated",
        "term",
        "leave",
        "leaving",
        "left",
        "departure",
        "departed",
        "closure",
        "closed",
        "deactivation",
        "deactivated",
        "disconnect",
        "disconnected",
        "disconnection",
        "unsubscribe",
        "unsubscribed",
        "lapse",
        "lapsed",
        "defection",
        "defected",
        "lost",
        "quit",
        "winback",
    }
)
RECORD_PREFIXES = (
    "reason",
    "date",
    "cause",
    "category",
    "type",
    "code",
    "month",
    "survey",
    "feedback",
    "interview",
    "score",
)


@dataclass(frozen=True)
class Leak:
    """One probable leak: the column, why in words with its figure, and whether it was kept."""

    column: str
    why: str
    rule: str  # "name" | "equal" | "auc"
    figure: float | None = None
    kept: bool = False

    def line(self) -> str:
        """The sentence the load and training reports print."""
        if self.kept:
            return f"{self.column}: {self.why}; kept in the model as the user asked (--keep)"
        return (
            f"{self.column}: {self.why}; left out of the model "
            f"(keep it with --keep {shlex.quote(self.column)})"
        )

    def dropped_text(self) -> str:
        """Why the column is not used, for the loader's `dropped` listing."""
        return f"probable label leak: {self.why} (keep it with --keep {shlex.quote(self.column)})"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, data: Mapping) -> Leak:
        return cls(**{k: data[k] for k in ("column", "why", "rule", "figure", "kept") if k in data})


def _tokens(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    return [t for t in re.split(r"[^0-9a-z]+", spaced.lower()) if t]


def _label_lookalikes() -> frozenset[str]:
    names = set(alias_rank(C.CHURNED)) - {norm(a) for a in BINARY_ONLY_ALIASES}
    return frozenset(names | set(alias_rank(C.CHURN_DATE)) | {norm(C.CHURN_DATE)})


_LOOKALIKES = _label_lookalikes()


def name_says_leaving(column: str) -> bool:
    """True when the column's name says it is recorded when or after the customer left.

    Generic label names (status, target, class) are not enough on their own: such a column is
    judged by its figures instead.
    """
    key = norm(column)
    if any(stem in key for stem in NAME_STEMS) or key in _LOOKALIKES:
        return True
    tokens = _tokens(column)
    return any(t in LEAVING_WORDS for t in tokens) and any(
        t.startswith(RECORD_PREFIXES) for t in tokens
    )


def name_leak(column: str, kept: bool = False) -> Leak:
    return Leak(column, NAME_WHY, "name", None, kept)


# -- figures -------------------------------------------------------------------------------


def _auc_of_buckets(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC-AUC of buckets in increasing order (ties within a bucket count one half)."""
    total = pos.sum() * neg.sum()
    below = np.cumsum(neg) - neg
    return float((pos * (below + 0.5 * neg)).sum() / total)


def _buckets(codes: np.ndarray, y: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    pos = np.bincount(codes, weights=y, minlength=levels)
    return pos, np.bincount(codes, minlength=levels) - pos


def numeric_auc(values: np.ndarray, y: np.ndarray, *, either_way: bool = True) -> float:
    """ROC-AUC of a numeric column, or with `either_way` the better of it and 1 - ROC-AUC;
    blank cells are one bucket, placed below and above the numbers (both tried: blanks that
    mark churners are a leak)."""
    blank = np.isnan(values)
    filled = values[~blank]
    uniques, codes = np.unique(filled, return_inverse=True)
    pos, neg = _buckets(codes, y[~blank].astype(np.float64), len(uniques))
    blank_pos = float(y[blank].sum())
    blank_neg = float(blank.sum()) - blank_pos
    best = 0.0
    for low in (True, False) if blank.any() else (True,):
        p = np.concatenate([[blank_pos], pos] if low else [pos, [blank_pos]])
        n = np.concatenate([[blank_neg], neg] if low else [neg, [blank_neg]])
        auc = _auc_of_buckets(p, n)
        best = max(best, auc, 1.0 - auc if either_way else 0.0)
    return best


def categorical_auc(codes: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> float:
    """ROC-AUC of a category's levels ranked by their churn rate out of fold: each row gets its
    level's smoothed rate in the other folds, so a level seen in one row only (an id) gets the
    base rate and ranks nobody. One direction only: a row's own label is missing from its
    level's rate, which ranks a tiny level's churners below its stayers, never a leak."""
    codes = np.where(codes < 0, codes.max() + 1, codes)  # blank: a level of its own
    levels = int(codes.max()) + 1
    fold = rng.integers(0, FOLDS, size=len(codes))
    cell = fold * levels + codes
    yf = y.astype(np.float64)
    n_cell = np.bincount(cell, minlength=FOLDS * levels).reshape(FOLDS, levels)
    pos_cell = np.bincount(cell, weights=yf, minlength=FOLDS * levels).reshape(FOLDS, levels)
    other_n = n_cell.sum(axis=0) - n_cell
    other_pos = pos_cell.sum(axis=0) - pos_cell
    prior = yf.mean()
    rate = (other_pos + SMOOTHING * prior) / (other_n + SMOOTHING)
    return numeric_auc(rate[fold, codes], y, either_way=False)


def agreement(codes: np.ndarray, y: np.ndarray) -> float:
    """Share of rows on which a two-valued column (codes 0/1, -1 blank) equals the label or
    its opposite, whichever is higher; a blank cell equals neither."""
    same = float(np.count_nonzero(codes == y))
    opposite = float(np.count_nonzero(codes == 1 - y))
    return max(same, opposite) / len(y)


def _codes(values) -> tuple[np.ndarray, bool]:
    """(integer codes with -1 for blank, is categorical) or (float values, False)."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy(dtype=np.int64), True
    return np.asarray(values, dtype=np.float64), False


def _two_valued(values: np.ndarray, categorical: bool) -> np.ndarray | None:
    """0/1 codes (-1 blank) of a column holding exactly two distinct values, else None."""
    if categorical:
        present = np.unique(values[values >= 0])
        if len(present) != 2:
            return None
        return np.where(values < 0, -1, (values == present[1]).astype(np.int64))
    filled = values[~np.isnan(values)]
    if filled.size == 0:
        return None
    low, high = filled.min(), filled.max()
    if low == high or np.any((filled != low) & (filled != high)):
        return None
    return np.where(np.isnan(values), -1, (values == high).astype(np.int64))


def _percent(share: float) -> str:
    """99.8%, never a rounded-up 100% for a share below 1."""
    return "100%" if share >= 1 else f"{math.floor(share * 1000) / 10:.1f}%"


def _stratified(y: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    rows = []
    for cls in (0, 1):
        where = np.flatnonzero(y == cls)
        take = max(1, round(size * len(where) / len(y)))
        rows.append(rng.choice(where, size=min(take, len(where)), replace=False))
    return np.sort(np.concatenate(rows))


def find(
    columns: Mapping[str, object],
    label: Sequence[int] | np.ndarray,
    *,
    keep: Sequence[str] = (),
    name_kept: Sequence[str] = (),
) -> tuple[list[Leak], list[str]]:
    """(leaks among `columns`, notes). `columns` maps a name to its values (a numeric array or
    Series, or a categorical Series) aligned with `label` (0/1). A column in `keep` is reported
    with kept=True; one in `name_kept` is reported as a name leak the user kept even when its
    figures are unremarkable."""
    y = np.asarray(label, dtype=np.int64)
    kept = set(keep)
    churners = int(y.sum())
    judged = min(churners, len(y) - churners) >= MIN_CLASS_ROWS
    rng = np.random.default_rng(SEED)
    sample = _stratified(y, SAMPLE_ROWS, rng) if judged and len(y) > SAMPLE_ROWS else None
    ys = y if sample is None else y[sample]
    majority = max(churners, len(y) - churners) / max(len(y), 1)
    found: list[Leak] = []
    for name, values in columns.items():
        leak = None
        if judged:
            codes, categorical = _codes(values)
            leak = _judge(name, codes, categorical, y, ys, sample, majority, rng)
        if leak is None and name in name_kept:
            leak = name_leak(name)
        if leak is not None:
            found.append(Leak(leak.column, leak.why, leak.rule, leak.figure, name in kept))
    notes = []
    if sample is not None and columns:
        notes.append(
            f"leak check: each column's ROC-AUC measured on a stratified sample of "
            f"{len(sample):,} of {len(y):,} rows"
        )
    return found, notes


def _judge(name, codes, categorical, y, ys, sample, majority, rng) -> Leak | None:
    two = _two_valued(codes, categorical)
    if two is not None:
        share = agreement(two, y)
        # A column that is almost always 0 "equals" a rare label on most rows while saying
        # nothing about it: it must agree more often than the majority class alone does.
        if share >= EQUAL_LIMIT and share > majority:
            return Leak(name, f"equals the label on {_percent(share)} of rows", "equal", share)
    part = codes if sample is None else codes[sample]
    auc = categorical_auc(part, ys, rng) if categorical else numeric_auc(part, ys)
    if auc >= AUC_LIMIT:
        how = "its levels rank" if categorical else "it ranks"
        shown = math.floor(auc * 1000) / 1000  # 0.9996 is not a perfect 1.000
        return Leak(name, f"on its own {how} churners with ROC-AUC {shown:.3f}", "auc", auc)
    return None

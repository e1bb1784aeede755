"""Customer segments: k-means on standardised value and behaviour features, without the label.

Customers are clustered without the churn label (k-means on standardised value and behaviour
features; k chosen by silhouette within 3..8 unless set). Each segment gets a deterministic,
unique, business-readable name from its profile (e.g. by tenure and revenue relative to the
base), and a profile table shows what defines it. Segment churn rates are shown with counts and
Wilson 95% intervals.

Names come from the members, not the centroid. Each word claims a range of one column, cut at
the base's thirds ("New" = the base's newest third, "high-spend" = its top third; for tenure and
revenue also its halves, "lower-spend" = at most the base's median) and is used only when at
least FITS_NAME of the segment's members fit all the name's words; a dimension no word fits is
left out ("High-spend customers"). A segment whose most distinctive feature (members' mean
furthest from the base's, in base standard deviations) is not tenure or revenue is named by
that feature ("Recent price rise", "Many support tickets"). The profile gives each segment's
share of members that fit its name (fits_name).

Column rule (`default_columns`): tenure_months and monthly_revenue when present, then the other
numeric columns with at least MIN_DISTINCT distinct values, not named like a code, that are
not ids, the label, dates, scores or total_revenue (about tenure x monthly revenue, so it
would count both twice), fewest missing values first, then table order; at most 8 columns in
all. Columns whose values are non-negative and right-skewed (skewness > 1) are
log1p-transformed before scaling.

Speed: fitted on a fixed random sample of at most 50,000 rows; the silhouette for each k is
computed on a fixed sample of at most 5,000 of those; every row is then assigned with predict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.impute import SimpleImputer
from sklearn.metrics import silhouette_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from analytics import columns as C
from analytics.metrics.kpis import SMALL_GROUP, missing, safe_ratio, wilson_interval
from analytics.result import Unavailable

K_RANGE = range(3, 9)
MAX_COLUMNS = 8
FIT_SAMPLE = 50_000
SILHOUETTE_SAMPLE = 5_000
SKEW_FOR_LOG = 1.0
DEFINING_Z = 0.5  # features this far out are listed in "defined by" and may name a segment
# A word goes into a segment's name only when at least this share of its members fit it (as a
# centroid-based name did not: 1,506 of 8,019 "Loyal high-spend" demo customers were <= 5 months).
FITS_NAME = 0.6
TERTILES = (1 / 3, 2 / 3)  # a word's range: the base's lowest, middle or highest third
# k-means runs single-threaded: on small machines OpenMP threads beside OpenBLAS's oversubscribe
# the cores and a fit measured 50x slower (7.6 s vs 0.15 s for 23k rows on 2 cores).
ONE_THREAD = 1
NOT_FEATURES = frozenset(
    {
        C.CUSTOMER_ID,
        C.CHURNED,
        C.SIGNUP_DATE,
        C.CHURN_DATE,
        C.TOTAL_REVENUE,
        *C.SCORED_COLUMNS,
    }
)
ID_LIKE = re.compile(r"(^|[_\s-])(id|Id|ID)$|[a-z0-9](ID|Id)$")  # id, user_id, customerID
# Codes stored as numbers ("Area code": 408/415/510) and flags are not behaviour on a scale:
# a clustering column needs this many distinct values, and names like "code" are skipped.
MIN_DISTINCT = 6
CODE_LIKE = re.compile(r"(code|zip|postal|phone|number|no\.?)$", re.IGNORECASE)
# The name's dimensions, in name order: words for the base's thirds, then for its halves.
DIMENSION_WORDS = {
    C.TENURE: (("New", "Established", "Loyal"), ("Newer", "Longer-tenure")),
    C.MONTHLY_REVENUE: (("low-spend", "mid-spend", "high-spend"), ("lower-spend", "higher-spend")),
}
# Other features by their column name: (low, high) phrases; others read "Low x" / "High x".
PHRASES = (
    (
        re.compile(r"price.*(change|rise|increase)|(rise|increase).*price", re.IGNORECASE),
        ("Recent price cut", "Recent price rise"),
    ),
    (re.compile(r"ticket|complaint|call", re.IGNORECASE), ("Few {label}", "Many {label}")),
    (
        re.compile(r"usage|hours|minutes|sessions|logins", re.IGNORECASE),
        ("Light usage", "Heavy usage"),
    ),
    (re.compile(r"(^|_)age$", re.IGNORECASE), ("Younger customers", "Older customers")),
)


def log1p_columns(X, mask) -> np.ndarray:
    """log1p of the masked columns (negatives clipped to 0); the rest unchanged."""
    X = np.array(X, dtype=float, copy=True)
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        X[:, mask] = np.log1p(np.maximum(X[:, mask], 0.0))
    return X


def _is_number(series: pd.Series) -> bool:
    dtype = series.dtype
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def default_columns(frame: pd.DataFrame) -> list[str]:
    """The clustering columns by the rule in the module docstring."""
    chosen = [c for c in (C.TENURE, C.MONTHLY_REVENUE) if c in frame and _is_number(frame[c])]
    others = [
        c
        for c in frame.columns
        if c not in NOT_FEATURES
        and c not in chosen
        and not ID_LIKE.search(str(c))
        and not CODE_LIKE.search(str(c).strip())
        and _is_number(frame[c])
        and frame[c].nunique(dropna=True) >= MIN_DISTINCT
    ]
    others.sort(key=lambda c: frame[c].isna().mean())  # stable: table order breaks ties
    return chosen + others[: max(0, MAX_COLUMNS - len(chosen))]


def _label(column: str) -> str:
    if column == C.TENURE:
        return "tenure"
    if column == C.MONTHLY_REVENUE:
        return "revenue"
    return str(column).replace("_", " ")


def _fmt(x: float, unit: str = "") -> str:
    if not np.isfinite(x):
        return "n/a"
    text = f"{x:,.0f}" if abs(x) >= 10 or float(x).is_integer() else f"{x:,.1f}"
    return text + unit


@dataclass(eq=False)
class SegmentModel:
    """A fitted segmentation: assign any table with the same columns to named segments.

    pipeline: SimpleImputer(median) -> log1p of skewed columns -> StandardScaler -> KMeans;
    columns: its input columns; k; silhouette: {k: score} for each k tried; names:
    {cluster: name}; profile: segment, customers, share, the median of each column, defined_by,
    fits_name (the share of its members that fit its name; one row per segment, in `order`);
    order: the segment names as category order (median revenue descending, else median tenure
    descending); words: {segment name: the words of its name, each with the value range it
    claims}.
    """

    pipeline: Pipeline
    columns: tuple[str, ...]
    k: int
    silhouette: dict[int, float]
    names: dict[int, str]
    profile: pd.DataFrame
    order: tuple[str, ...]
    words: dict[str, tuple[NameWord, ...]]

    def clusters(self, frame: pd.DataFrame) -> np.ndarray:
        """The k-means cluster number of every row."""
        absent = [c for c in self.columns if c not in frame.columns]
        if absent:
            raise ValueError(f"segmenting needs the column(s) {', '.join(absent)}")
        if not len(frame):
            return np.zeros(0, dtype=np.int64)
        with threadpool_limits(limits=ONE_THREAD):
            return self.pipeline.predict(_numbers(frame, self.columns))

    def assign(self, frame: pd.DataFrame) -> pd.Series:
        """Each row's segment name: a category Series (categories in `order`), frame's index."""
        position = {name: i for i, name in enumerate(self.order)}
        lookup = np.array([position[self.names[c]] for c in range(self.k)], dtype=np.int64)
        codes = lookup[self.clusters(frame)] if len(frame) else np.zeros(0, dtype=np.int64)
        values = pd.Categorical.from_codes(codes, categories=list(self.order))
        return pd.Series(values, index=frame.index, name=C.SEGMENT)

    def fits_name(self, frame: pd.DataFrame, segment: pd.Series) -> np.ndarray:
        """1.0 where a row's values lie in every range its segment's name claims, else 0.0.

        segment: each row's segment name (e.g. the segment column); NaN for a name this model
        did not give.
        """
        names = segment.astype("object").to_numpy()
        out = np.full(len(frame), np.nan)
        for name, words in self.words.items():
            rows = names == name
            if rows.any():
                out[rows] = _fits_all(words, frame[rows])
        return out


def _numbers(frame: pd.DataFrame, columns) -> pd.DataFrame:
    return pd.DataFrame(
        {c: frame[c].to_numpy(dtype=float, na_value=np.nan) for c in columns}, index=frame.index
    )


def _sample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))


def _preprocessor(X: pd.DataFrame) -> list[tuple[str, object]]:
    skewed = [
        bool(X[c].min() >= 0 and X[c].skew() > SKEW_FOR_LOG) if X[c].notna().any() else False
        for c in X.columns
    ]
    return [
        ("impute", SimpleImputer(strategy="median")),
        ("log", FunctionTransformer(log1p_columns, kw_args={"mask": skewed})),
        ("scale", StandardScaler()),
    ]


def _choose_k(Z: np.ndarray, k: int | None, random_state: int) -> tuple[int, dict[int, float]]:
    """k with the best silhouette in 3..8 (ties: the smaller k), on a fixed sample of Z."""
    rng = np.random.default_rng(random_state)
    sample = _sample(len(Z), SILHOUETTE_SAMPLE, rng)
    distinct = len(np.unique(Z[sample], axis=0))
    if k is not None:
        if k < 1 or k > len(np.unique(Z, axis=0)):
            raise ValueError(f"k={k}: must be between 1 and the number of distinct customers")
        candidates = [k]
    else:
        candidates = [kk for kk in K_RANGE if kk < distinct]
        if not candidates:  # too few distinct customers to compare: as many segments as fit
            return max(1, min(min(K_RANGE), distinct - 1)), {}
    scores: dict[int, float] = {}
    for kk in candidates:
        if not 2 <= kk < distinct:
            continue
        labels = KMeans(kk, n_init=10, random_state=random_state).fit(Z).labels_[sample]
        if len(np.unique(labels)) > 1:
            scores[kk] = float(silhouette_score(Z[sample], labels))
    if k is not None:
        return k, scores
    best = max(scores, key=lambda kk: (scores[kk], -kk)) if scores else candidates[0]
    return best, scores


@dataclass(frozen=True)
class NameWord:
    """A word of a segment's name and the range of one column it claims for the members."""

    text: str
    column: str
    low: float  # inclusive
    high: float  # inclusive

    def fits(self, frame: pd.DataFrame) -> np.ndarray:
        """Whether each row's value lies in the word's range (a missing value does not)."""
        values = frame[self.column].to_numpy(dtype=float, na_value=np.nan)
        return (values >= self.low) & (values <= self.high)


def _fits_all(words, frame: pd.DataFrame) -> np.ndarray:
    """Whether each row fits every word (every row when there are none)."""
    fit = np.ones(len(frame), dtype=bool)
    for word in words:
        fit &= word.fits(frame)
    return fit


def _share_fitting(words, members: pd.DataFrame) -> float:
    """The share of members that fit every word."""
    return float(_fits_all(words, members).mean()) if len(members) else 0.0


def _above(x: float) -> float:
    return float(np.nextafter(x, np.inf))


def _below(x: float) -> float:
    return float(np.nextafter(x, -np.inf))


def _tertile_ranges(values: pd.Series) -> tuple[tuple[float, float], ...]:
    """(low, mid, high) value ranges: the base's thirds, cut at its 1/3 and 2/3 quantiles.

    When the two cuts coincide (most customers share one value, as with "no price change"),
    low is below it, mid is that value and high is above it.
    """
    clean = values.to_numpy(dtype=float, na_value=np.nan)
    clean = clean[np.isfinite(clean)]
    if not len(clean):
        return ((np.nan, np.nan),) * 3
    lo, hi = (float(q) for q in np.quantile(clean, TERTILES))
    if lo == hi:
        return (-np.inf, _below(lo)), (lo, lo), (_above(hi), np.inf)
    return (-np.inf, lo), (_above(lo), _below(hi)), (hi, np.inf)


def _half_ranges(values: pd.Series) -> tuple[tuple[float, float], ...]:
    """(low, high) value ranges: at most the base's median, and above it."""
    median = float(values.median())
    return (-np.inf, median), (_above(median), np.inf)


def _phrases(column: str) -> tuple[str, str]:
    """How a segment low / high on a column other than tenure and revenue is named."""
    label = re.sub(r"\s+\d+\s*d$", "", _label(column))  # "support tickets 90d" -> "... tickets"
    for pattern, (low, high) in PHRASES:
        if pattern.search(str(column)):
            return low.format(label=label), high.format(label=label)
    return f"Low {label}", f"High {label}"


def _dimension_words(column: str, values: pd.Series) -> tuple[NameWord, ...]:
    """Tenure or revenue words, most specific first: the base's thirds, then its halves."""
    thirds, halves = DIMENSION_WORDS[column]
    return tuple(
        NameWord(text, column, lo, hi)
        for texts, ranges in ((thirds, _tertile_ranges(values)), (halves, _half_ranges(values)))
        for text, (lo, hi) in zip(texts, ranges, strict=True)
    )


def _feature_words(column: str, values: pd.Series) -> tuple[NameWord, NameWord]:
    """(low, high) words of another column: its base's lowest and highest third."""
    (low_lo, low_hi), _, (high_lo, high_hi) = _tertile_ranges(values)
    low_text, high_text = _phrases(column)
    return NameWord(low_text, column, low_lo, low_hi), NameWord(high_text, column, high_lo, high_hi)


def _dimensions_fitting(members: pd.DataFrame, ranked, words) -> tuple[NameWord, ...]:
    """Tenure and revenue words that most members fit together, the more distinctive first.

    Per dimension the most specific word that keeps the shared fit at FITS_NAME or above (a
    third before a half; within those, the better fit); a dimension with none is left out.
    """
    chosen: list[NameWord] = []
    for column in (c for c in ranked if c in DIMENSION_WORDS):
        options = words[column]
        thirds, halves = options[:3], options[3:]
        for tier in (thirds, halves):
            fits = [(_share_fitting((*chosen, w), members), -i, w) for i, w in enumerate(tier)]
            best_fit, _, best = max(fits, key=lambda t: t[:2])
            if best_fit >= FITS_NAME:
                chosen.append(best)
                break
    return tuple(sorted(chosen, key=lambda w: list(DIMENSION_WORDS).index(w.column)))


def _segment_words(members: pd.DataFrame, distinct: pd.Series, words) -> tuple[NameWord, ...]:
    """The words naming one segment; at least FITS_NAME of its members fit them all.

    Features are taken in order of how far the members' mean lies from the base's (in base
    standard deviations, `distinct`). When tenure or revenue comes first the segment is named
    by those (`_dimensions_fitting`); when another feature does, and it is at least DEFINING_Z
    out, by that feature alone ("Recent price rise"). A word most members do not fit is passed
    over for the next feature.
    """
    ranked = sorted(distinct.index, key=lambda c: -abs(float(distinct[c])))  # stable on ties
    for column in ranked:
        if column in DIMENSION_WORDS:
            dimensions = _dimensions_fitting(members, ranked, words)
            if dimensions:
                return dimensions
            continue
        if abs(float(distinct[column])) < DEFINING_Z:
            continue
        low, high = words[column]
        word = high if distinct[column] > 0 else low
        if _share_fitting((word,), members) >= FITS_NAME:
            return (word,)
    return ()


def _name_text(words: tuple[NameWord, ...]) -> str:
    """'Loyal high-spend', 'High-spend customers', 'Recent price rise', 'Mixed customers'."""
    if not words:
        return "Mixed customers"
    if words[0].column not in DIMENSION_WORDS:
        return words[0].text
    text = " ".join(w.text for w in words)
    text = text[0].upper() + text[1:]
    return text if len(words) > 1 else f"{text} customers"


def _name_words(
    X: pd.DataFrame, labels: np.ndarray, distinct: pd.DataFrame
) -> list[tuple[NameWord, ...]]:
    """Each cluster's name words, from its members' values against the base's quantiles."""
    words = {
        c: _dimension_words(c, X[c]) if c in DIMENSION_WORDS else _feature_words(c, X[c])
        for c in X.columns
    }
    return [
        _segment_words(X[labels == cluster], distinct.loc[cluster], words)
        for cluster in distinct.index
    ]


def _distinctiveness(Z: np.ndarray, labels: np.ndarray, k: int, columns) -> pd.DataFrame:
    """Per cluster and column: members' mean minus the base's, in base standard deviations.

    Z is the model's scaled (and, for skewed columns, log) space, so every column counts alike.
    """
    z = pd.DataFrame(Z, columns=list(columns))
    spread = z.std(ddof=0).replace(0.0, 1.0)
    return ((z.groupby(labels).mean() - z.mean()) / spread).reindex(range(k)).fillna(0.0)


def _descriptors(member: int, group: list[int], z: pd.DataFrame) -> list[tuple[float, str]]:
    """Ways to tell `member` apart from the rest of its name group, most distinctive first.

    Each feature is scored by how far the member's mean lies from the others' (in standard
    deviations of the base), phrased against its group ("higher support calls"): a comparison
    between segments, not a range its members are claimed to fit. Features other than tenure
    and revenue come first: those are already in the name.
    """
    others = [m for m in group if m != member]
    ranked: list[tuple[int, float, str]] = []
    for col in z.columns:
        diff = float(z.at[member, col]) - float(z.loc[others, col].mean())
        if abs(diff) < 1e-9:  # any real difference beats a number in the name
            continue
        if col == C.TENURE:
            word = "longer tenure" if diff > 0 else "shorter tenure"
        else:
            word = f"{'higher' if diff > 0 else 'lower'} {_label(col)}"
        in_name = col in (C.TENURE, C.MONTHLY_REVENUE)
        ranked.append((int(in_name), -abs(diff), word))
    ranked.sort()
    return [(-score, word) for _, score, word in ranked]


def _unique_names(base: list[str], z: pd.DataFrame, sizes: np.ndarray) -> list[str]:
    """Base names, with clashing ones told apart by their most distinctive other feature."""
    names = list(base)
    for name in dict.fromkeys(base):
        group = [i for i, b in enumerate(base) if b == name]
        if len(group) < 2:
            continue
        options = {m: _descriptors(m, group, z) for m in group}
        pick = dict.fromkeys(group, 0)
        while True:
            current = {m: options[m][pick[m]] if pick[m] < len(options[m]) else None for m in group}
            if any(v is None for v in current.values()):
                break
            by_text: dict[str, list[int]] = {}
            for m, (_, text) in current.items():
                by_text.setdefault(text, []).append(m)
            clashes = [ms for ms in by_text.values() if len(ms) > 1]
            if not clashes:
                for m in group:
                    names[m] = f"{name}, {current[m][1]}"
                break
            for ms in clashes:  # the most distinctive keeps the word, the others move on
                ms.sort(key=lambda m: (-current[m][0], m))
                for m in ms[1:]:
                    pick[m] += 1
        if names[group[0]] == name:  # nothing else differs: number them by size
            ranked = sorted(group, key=lambda m: (-sizes[m], m))
            for i, m in enumerate(ranked, start=1):
                names[m] = f"{name} {i}"
    return names


def _defined_by(row: pd.Series, base_median: pd.Series, distinct: pd.Series) -> str:
    parts = []
    for col in (C.TENURE, C.MONTHLY_REVENUE):
        if col in row.index:
            unit = " mo" if col == C.TENURE else ""
            parts.append(
                f"{_label(col)} {_fmt(row[col], unit)} (base {_fmt(base_median[col], unit)})"
            )
    others = [
        (abs(float(distinct[c])), c)
        for c in row.index
        if c not in (C.TENURE, C.MONTHLY_REVENUE) and abs(float(distinct[c])) >= DEFINING_Z
    ]
    for _, col in sorted(others, key=lambda t: -t[0])[:2]:
        parts.append(f"{_label(col)} {_fmt(row[col])} (base {_fmt(base_median[col])})")
    return ", ".join(parts)


def fit_segments(
    frame: pd.DataFrame,
    columns=None,
    k: int | None = None,
    random_state: int = 42,
) -> SegmentModel:
    """Fit the segmentation on `frame` (the label, if present, is never used).

    columns: default `default_columns`; k: default the best silhouette in 3..8.
    Raises ValueError for an empty frame, absent or non-numeric columns, or an impossible k.
    """
    if not len(frame):
        raise ValueError("no customers to segment")
    rng = np.random.default_rng(random_state)
    fit_rows = frame.iloc[_sample(len(frame), FIT_SAMPLE, rng)]
    cols = list(columns) if columns is not None else default_columns(fit_rows)
    absent = [c for c in cols if c not in frame.columns]
    if absent:
        raise ValueError(f"segmenting needs the column(s) {', '.join(absent)}")
    if not cols:
        raise ValueError("no numeric columns to segment customers on")
    bad = [c for c in cols if not _is_number(frame[c])]
    if bad:
        raise ValueError(f"segment columns must be numeric: {', '.join(bad)}")
    X_fit = _numbers(fit_rows, cols)
    prep = Pipeline(_preprocessor(X_fit))
    Z = prep.fit_transform(X_fit)
    with threadpool_limits(limits=ONE_THREAD):
        k, scores = _choose_k(Z, k, random_state)
        pipeline = Pipeline(
            [*prep.steps, ("kmeans", KMeans(k, n_init=10, random_state=random_state))]
        ).fit(X_fit)
        X_all = _numbers(frame, cols)
        Z_all = pipeline[:-1].transform(X_all)
        labels = pipeline.named_steps["kmeans"].predict(Z_all)
    sizes = np.bincount(labels, minlength=k)
    medians = X_all.groupby(labels).median().reindex(range(k))
    distinct = _distinctiveness(Z_all, labels, k, cols)
    words = _name_words(X_all, labels, distinct)
    names = _unique_names([_name_text(w) for w in words], distinct, sizes)
    fits = [_share_fitting(words[c], X_all[labels == c]) for c in range(k)]

    rank_by = next((c for c in (C.MONTHLY_REVENUE, C.TENURE) if c in cols), None)
    key = medians[rank_by].fillna(-np.inf).to_numpy() if rank_by else sizes.astype(float)
    order = sorted(range(k), key=lambda c: (-key[c], c))
    profile = pd.DataFrame(
        {
            "segment": [names[c] for c in order],
            "customers": sizes[order].astype(np.int64),
            "share": sizes[order] / len(frame),
        }
    )
    for col in cols:
        profile[col] = medians[col].to_numpy()[order]
    base_median = X_all.median()
    profile["defined_by"] = [
        _defined_by(medians.loc[c], base_median, distinct.loc[c]) for c in order
    ]
    profile["fits_name"] = [fits[c] for c in order]
    return SegmentModel(
        pipeline=pipeline,
        columns=tuple(cols),
        k=k,
        silhouette=scores,
        names=dict(enumerate(names)),
        profile=profile,
        order=tuple(names[c] for c in order),
        words={names[c]: words[c] for c in range(k)},
    )


PROFILE_COLUMNS = (
    "segment",
    "customers",
    "share",
    "churned",
    "churn_rate",
    "ci_low",
    "ci_high",
    "small",
    "fits_name",
)


def segment_profile(
    frame: pd.DataFrame, columns=None, model: SegmentModel | None = None
) -> pd.DataFrame | Unavailable:
    """Per segment of the selection: size, share, churn rate with Wilson 95% interval, medians.

    Columns: segment, customers, share, churned, churn_rate, ci_low, ci_high, small
    (customers < 30), fits_name (the share of the segment's customers here that fit its name,
    by `model`'s words), then the median of tenure_months, monthly_revenue (those present) and
    of any `columns`. Segments in category order, those with no customers left out. Without a
    churned column the churn columns are NaN; without `model`, or without the columns its words
    are about, fits_name is NaN.
    """
    gap = missing(frame, C.SEGMENT)
    if gap is not None:
        return gap
    seg = frame[C.SEGMENT]
    if not isinstance(seg.dtype, pd.CategoricalDtype):
        seg = seg.astype("category")
    extra = [c for c in (C.TENURE, C.MONTHLY_REVENUE, *(columns or ())) if c in frame.columns]
    extra = list(dict.fromkeys(extra))
    codes = seg.cat.codes.to_numpy().astype(np.int64)
    n_levels = len(seg.cat.categories)
    customers = np.bincount(codes[codes >= 0], minlength=n_levels)
    out = pd.DataFrame({"segment": pd.array(list(seg.cat.categories), dtype="str")})
    out["customers"] = customers.astype(np.int64)
    out["share"] = safe_ratio(customers, len(frame)) if len(frame) else np.full(n_levels, np.nan)
    if C.CHURNED in frame.columns:
        y = (frame[C.CHURNED].to_numpy(dtype=float, na_value=np.nan) == 1).astype(float)
        churned = np.bincount(codes[codes >= 0], weights=y[codes >= 0], minlength=n_levels)
        low, high = wilson_interval(churned, customers)
        out["churned"] = churned.round().astype(np.int64)
        out["churn_rate"] = safe_ratio(churned, customers)
        out["ci_low"], out["ci_high"] = low, high
    else:
        for col in ("churned", "churn_rate", "ci_low", "ci_high"):
            out[col] = np.nan
    out["small"] = customers < SMALL_GROUP
    out["fits_name"] = _share_fitting_name(frame, seg, codes, n_levels, model)
    if extra:
        values = _numbers(frame, extra)
        medians = values.groupby(codes).median().reindex(range(n_levels))
        for col in extra:
            out[col] = medians[col].to_numpy()
    return out[out["customers"] > 0].reset_index(drop=True)


def _share_fitting_name(frame, seg: pd.Series, codes, n_levels: int, model) -> np.ndarray:
    """Per segment level: the share of its rows with a value fit known that fit its name."""
    needed = {w.column for words in (model.words.values() if model else ()) for w in words}
    if model is None or not needed <= set(frame.columns):
        return np.full(n_levels, np.nan)
    fits = model.fits_name(frame, seg)
    known = (codes >= 0) & np.isfinite(fits)
    fitting = np.bincount(codes[known], weights=fits[known], minlength=n_levels)
    return safe_ratio(fitting, np.bincount(codes[known], minlength=n_levels))

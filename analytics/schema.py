"""Map any churn table onto the canonical columns, validate it, and explain every repair.

Input: a raw frame (io.read_table gives every CSV cell as text; Parquet arrives typed).
Output: a Table whose frame uses the canonical names and dtypes of ../shared/METRICS.md.
Every problem a user can fix is a one-line DataError subclass naming the column, what was
found and what to do. Work is vectorised over each column's distinct values (pd.factorize),
never per cell, so a million rows validate in seconds.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analytics import columns as C

# Keys io.read_table leaves in raw.attrs for validate: repairs made while reading, the decimal
# mark implied by the delimiter, and the file line of the first data row (for messages).
ATTR_NOTES = "retention_notes"
ATTR_DECIMAL = "retention_decimal"
ATTR_FIRST_LINE = "retention_first_line"

NUMERIC_SHARE = 0.95  # a column is numeric when this share of its filled cells are numbers
CANONICAL_NUMERIC_SHARE = 0.5  # below this a mapped numeric column is the wrong column
ID_LIKE_LEVELS = 50  # text columns with more distinct values than this ...
ID_LIKE_RATIO = 0.5  # ... and more than this share of rows distinct identify rows
ROW_NUMBER_MIN_ROWS = 10  # below this a 1..n column may be a genuine feature
EXAMPLES = 5  # how many ids / rows / values a message shows

# Cells meaning "no value" in exports from Excel, R, SQL and Weka (compared lower-cased).
MISSING_TOKENS = frozenset({"", "?", "-", "--", "na", "n/a", "#n/a", "nan", "null", "<na>"})


class DataError(ValueError):
    """The table cannot be used as it is. The message is one line: what, where, what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).splitlines()))


class MissingColumnError(DataError):
    """A required canonical column is neither mapped nor recognised by an alias."""


class EmptyTableError(DataError):
    """No columns, no rows, or only blank rows."""


class NotATableError(DataError):
    """The file is not a delimited text table or Parquet file (binary, merge conflict, ...)."""


class DuplicateIdError(DataError):
    """customer_id repeats."""


class NegativeRevenueError(DataError):
    """monthly_revenue or total_revenue holds negative amounts."""


class LabelError(DataError):
    """The churn label is not two values of which one clearly means churn."""


class EncodingError(DataError):
    """The file's bytes are not UTF-8 / UTF-16 (with BOM) / Windows-1252 text."""


class FileTooLargeError(DataError):
    """The file exceeds the configured size limit (RETENTION_MAX_FILE_MB)."""


class MappingError(DataError):
    """An explicit mapping or --drop names something the table or the schema lacks."""


# Alias spellings, in order of preference: the first alias a column matches wins a tie.
# Matching ignores case and every non-alphanumeric character ("Customer ID" == "customer_id").
ALIASES: dict[str, tuple[str, ...]] = {
    C.CUSTOMER_ID: (
        "customer_id",
        "customerid",
        "customer id",
        "customer_number",
        "customer_no",
        "customer_code",
        "customer_key",
        "cust_id",
        "custid",
        "client_id",
        "clientnum",
        "client_number",
        "account_id",
        "account_number",
        "acct_id",
        "user_id",
        "subscriber_id",
        "member_id",
        "id",
        "phone number",
    ),
    C.CHURNED: (
        "churned",
        "churn",
        "exited",
        "attrition",
        "attrition_flag",
        "is_churn",
        "is_churned",
        "has_churned",
        "churn_flag",
        "churn_label",
        "churn_value",
        "churn_status",
        "churned_flag",
        "left",
        "has_left",
        "cancelled",
        "canceled",
        "is_cancelled",
        # generic names, taken as the label only when the column holds exactly two values
        "target",
        "label",
        "class",
        "outcome",
        "status",
    ),
    C.TENURE: (
        "tenure_months",
        "tenure",
        "tenure_in_months",
        "tenure_month",
        "months_as_customer",
        "months_on_book",
        "account length",
        "account_length_months",
        "customer_tenure",
        "months_active",
        "months_subscribed",
        "subscription_months",
        "membership_months",
        "lifetime_months",
        "lifetime",
    ),
    C.MONTHLY_REVENUE: (
        "monthly_revenue",
        "monthlycharges",
        "monthly_charges",
        "monthly_charge",
        "monthly_fee",
        "monthly_fees",
        "monthly_spend",
        "monthly_payment",
        "monthly_amount",
        "monthly_bill",
        "monthly_price",
        "monthly_recurring_revenue",
        "mrr",
        "arpu",
        "revenue_monthly",
    ),
    C.TOTAL_REVENUE: (
        "total_revenue",
        "totalcharges",
        "total_charges",
        "total_charge",
        "total_spend",
        "total_spent",
        "total_paid",
        "total_amount",
        "total_billed",
        "revenue_to_date",
        "lifetime_value_to_date",
        "ltv_to_date",
        "cumulative_revenue",
    ),
    C.SIGNUP_DATE: (
        "signup_date",
        "sign_up_date",
        "start_date",
        "join_date",
        "joined_date",
        "joining_date",
        "date_joined",
        "subscription_start",
        "subscription_start_date",
        "registration_date",
        "registered_at",
        "activation_date",
        "enrollment_date",
        "onboarding_date",
        "customer_since",
        "created_at",
        "account_created",
    ),
    C.CHURN_DATE: (
        "churn_date",
        "churned_at",
        "churned_date",
        "date_of_churn",
        "end_date",
        "cancel_date",
        "cancellation_date",
        "cancelled_at",
        "canceled_at",
        "termination_date",
        "exit_date",
        "leave_date",
        "left_date",
        "subscription_end",
        "subscription_end_date",
    ),
}
BINARY_ONLY_ALIASES = frozenset({"target", "label", "class", "outcome", "status"})

_NUMERIC_CANONICAL = (C.TENURE, C.MONTHLY_REVENUE, C.TOTAL_REVENUE)
# Canonical columns whose look-alikes would leak the outcome or identify rows if kept.
_EXCLUSIVE_CANONICAL = (C.CUSTOMER_ID, C.CHURNED, C.SIGNUP_DATE, C.CHURN_DATE)
_SCORED_COLUMNS = frozenset(
    (
        C.P_CHURN,
        C.P_MONTHLY,
        C.RISK_BAND,
        C.CLV,
        C.VALUE,
        C.EXPECTED_LOSS,
        C.HIGH_VALUE,
        C.SEGMENT,
        *C.REASONS,
    )
)
_LEAK_STEMS = ("churn", "attrit")
_PERSONAL = frozenset(
    {
        "name",
        "surname",
        "firstname",
        "lastname",
        "fullname",
        "customername",
        "clientname",
        "email",
        "emailaddress",
        "mail",
        "phone",
        "phonenumber",
        "telephone",
        "mobile",
        "mobilenumber",
        "address",
        "streetaddress",
        "street",
        "ipaddress",
        "ssn",
    }
)

# Label spellings: any negating word makes a value "not churned" ("Not churned", "Existing
# Customer", "No"); otherwise a churn word makes it "churned" ("Attrited Customer", "Yes").
_NEGATIVE_WORDS = frozenset(
    {
        "no",
        "n",
        "not",
        "non",
        "never",
        "false",
        "f",
        "stay",
        "stayed",
        "stays",
        "staying",
        "existing",
        "retained",
        "retain",
        "active",
        "current",
        "remain",
        "remained",
        "renewed",
        "loyal",
        "kept",
    }
)
_POSITIVE_WORDS = frozenset({"yes", "y", "true", "t"})
_POSITIVE_STEMS = (
    "churn",
    "attrit",
    "exit",
    "left",
    "leav",
    "cancel",
    "lost",
    "quit",
    "terminat",
    "gone",
    "closed",
    "inactive",
    "defect",
    "lapse",
    "depart",
)

_DATE_FORMATS = (
    "ISO8601",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%m-%d-%Y",
    "%Y/%m/%d",
    "%Y%m%d",
    "%m/%d/%y",
    "%d/%m/%y",
    "%d.%m.%y",
    "%b %d, %Y",
    "%d %b %Y",
    "%B %d, %Y",
    "%d %B %Y",
)
_EARLIEST = np.datetime64("1900-01-01")
_LATEST = np.datetime64("2200-01-01")


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


# ---------------------------------------------------------------------------------------------
# Column views: each raw column becomes codes into its distinct cleaned values (text), a float
# array (numeric dtypes) or a datetime64[ns] array, so every later step works on distinct values.


@dataclass(frozen=True)
class _Text:
    codes: np.ndarray  # per row, index into values; -1 = missing
    values: pd.Index  # distinct stripped strings, sorted

    @property
    def missing(self) -> np.ndarray:
        return self.codes < 0

    def take(self, rows: np.ndarray) -> _Text:
        return _compact(self.codes[rows], self.values)

    def counts(self) -> np.ndarray:
        return np.bincount(self.codes[self.codes >= 0], minlength=len(self.values))


@dataclass(frozen=True)
class _Numbers:
    values: np.ndarray  # float64, NaN = missing

    @property
    def missing(self) -> np.ndarray:
        return np.isnan(self.values)

    def take(self, rows: np.ndarray) -> _Numbers:
        return _Numbers(self.values[rows])


@dataclass(frozen=True)
class _Dates:
    values: np.ndarray  # datetime64[ns], NaT = missing

    @property
    def missing(self) -> np.ndarray:
        return np.isnat(self.values)

    def take(self, rows: np.ndarray) -> _Dates:
        return _Dates(self.values[rows])


_View = _Text | _Numbers | _Dates


def _compact(codes: np.ndarray, values: pd.Index) -> _Text:
    """Drop values no row uses any more (after rows were removed) and renumber the codes."""
    used = np.bincount(codes[codes >= 0], minlength=len(values)) > 0
    if used.all():
        return _Text(codes, values)
    new_index = np.full(len(values) + 1, -1, dtype=np.int64)
    new_index[:-1][used] = np.arange(int(used.sum()))
    return _Text(new_index[codes], values[used])


def _text_from_distinct(codes: np.ndarray, distinct: pd.Series) -> _Text:
    """Strip the distinct texts, turn missing tokens into missing, merge equal ones, sort."""
    texts = distinct.astype("str").str.strip()
    texts = texts.mask(texts.isna() | texts.str.lower().isin(MISSING_TOKENS))
    remap, values = pd.factorize(texts, sort=True)
    lookup = np.append(remap, -1).astype(np.int64)  # codes of -1 land on the appended -1
    return _Text(lookup[codes], pd.Index(values, dtype="str"))


def _text_view(s: pd.Series) -> _Text:
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return _text_from_distinct(codes, pd.Series(np.asarray(uniques, dtype=object)))


def _format_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else repr(float(x))


def _as_text(view: _View) -> _Text:
    """Any view as text (for ids and labels that arrive as numbers or dates in Parquet)."""
    if isinstance(view, _Text):
        return view
    codes, uniques = pd.factorize(view.values, use_na_sentinel=True)
    if isinstance(view, _Numbers):
        whole = np.isfinite(uniques) & (uniques == np.round(uniques)) & (np.abs(uniques) < 2**53)
        as_int = np.where(whole, uniques, 0).astype(np.int64).astype(str)
        distinct = pd.Series(np.where(whole, as_int, uniques.astype(str)), dtype="str")
    else:
        distinct = pd.Series(pd.DatetimeIndex(uniques).astype("str"), dtype="str")
    return _text_from_distinct(codes, distinct)


def _to_naive_ns(s: pd.Series) -> np.ndarray:
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    values = s.to_numpy(dtype="datetime64[ns]")
    return values


def _view(s: pd.Series) -> _View:
    if pd.api.types.is_bool_dtype(s.dtype):
        return _text_view(s)  # True/False are categories, like Yes/No
    if pd.api.types.is_numeric_dtype(s.dtype):
        return _Numbers(s.to_numpy(dtype=np.float64, na_value=np.nan))
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return _Dates(_to_naive_ns(s))
    return _text_view(s)


# ---------------------------------------------------------------------------------------------
# Parsing distinct values.


def parse_numbers(texts: pd.Series, decimal: str | None = None) -> np.ndarray:
    """Numbers from text, NaN where a cell is not one.

    Accepts currency signs, spaces, thousands separators ("1,234.50") and a decimal comma
    ("29,85", "1.234,50"). decimal="," (a ';'-delimited file) makes "1,234" mean 1.234.
    """
    cleaned = texts.astype("str").str.replace(r"[\s\u00a0$€£]", "", regex=True)
    out = pd.to_numeric(cleaned, errors="coerce").to_numpy(np.float64, na_value=np.nan, copy=True)
    has_comma = cleaned.str.contains(",", regex=False, na=False).to_numpy(dtype=bool)
    retry = np.isnan(out) & has_comma
    if retry.any():
        sub = cleaned[retry]
        grouped = sub.str.fullmatch(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?", na=False)
        grouped_comma = grouped.to_numpy(dtype=bool) & (decimal != ",")
        european = sub.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
        fixed = sub.str.replace(",", "", regex=False).where(grouped_comma, european)
        out[retry] = pd.to_numeric(fixed, errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    out[np.isinf(out)] = np.nan
    return out


def parse_dates(texts: pd.Series) -> tuple[np.ndarray, str]:
    """datetime64[ns] from text in the format that parses the most values (NaT otherwise).

    Returns the values and the format used. Ties go to the earlier format in _DATE_FORMATS
    (ISO first, then month-first like pandas).
    """
    texts = texts.astype("str")
    best, best_fmt, best_ok = None, _DATE_FORMATS[0], -1
    for fmt in _DATE_FORMATS:
        parsed = pd.to_datetime(texts, format=fmt, errors="coerce", utc=True)
        ok = int(parsed.notna().sum())
        if ok > best_ok:
            best, best_fmt, best_ok = parsed, fmt, ok
        if ok == len(texts):
            break
    assert best is not None
    values = best.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]", copy=True)
    values[(values < _EARLIEST) | (values >= _LATEST)] = np.datetime64("NaT")
    return values, best_fmt


def _label_class(text: str) -> int | None:
    """1 = churned, 0 = stayed, None = cannot tell (a single value in isolation)."""
    number = parse_numbers(pd.Series([text], dtype="str"))[0]
    if not np.isnan(number):
        return {1.0: 1, 0.0: 0}.get(float(number))
    words = re.findall(r"[a-z0-9]+", text.lower())
    if any(w in _NEGATIVE_WORDS or w == "0" for w in words):
        return 0
    if any(w in _POSITIVE_WORDS or w == "1" or w.startswith(_POSITIVE_STEMS) for w in words):
        return 1
    return None


def _label_keys(values: pd.Index) -> pd.Series:
    """One key per distinct label spelling: numbers by value, text case-folded."""
    numbers = parse_numbers(pd.Series(values, dtype="str"))
    text = pd.Series(values, dtype="str").str.casefold()
    as_number = pd.Series([f"#{x!r}" for x in numbers], dtype="str")
    return as_number.where(~np.isnan(numbers), text)


def _label_groups(view: _Text) -> tuple[pd.Series, pd.Series]:
    """(key per distinct value, cell count per key)."""
    keys = _label_keys(view.values)
    counts = pd.Series(view.counts()).groupby(keys.to_numpy()).sum()
    return keys, counts


def _is_binary(view: _View) -> bool:
    if isinstance(view, _Numbers):
        return np.unique(view.values[~view.missing]).size == 2
    if isinstance(view, _Dates):
        return False
    # case variants ("Yes", "yes") merge into one key, but never twenty of them
    return 2 <= len(view.values) <= 20 and _label_groups(view)[1].size == 2


# ---------------------------------------------------------------------------------------------
# Mapping.


def _norm(name: object) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def _listing(items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def _suggest(name: str, choices: Sequence[str]) -> str:
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
    return f"; did you mean '{lowered[close[0]]}'?" if close else ""


def _check_canonical(name: str, what: str) -> None:
    if name not in C.CANONICAL:
        raise MappingError(
            f"{what} names '{name}', which is not a canonical column: expected one of "
            f"{', '.join(C.CANONICAL)}{_suggest(name, C.CANONICAL)}"
        )


def parse_mapping_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """{"churned": "Exited"} from CLI pairs like "churned=Exited" (canonical=source column)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        canonical, sep, source = str(pair).partition("=")
        canonical, source = canonical.strip(), source.strip()
        if not sep or not canonical or not source:
            raise MappingError(
                f"--map expects canonical=column (e.g. churned=Exited), got '{pair}'"
            )
        _check_canonical(canonical, f"--map {pair}")
        if mapping.get(canonical, source) != source:
            raise MappingError(
                f"--map gives {canonical} twice: '{mapping[canonical]}' and '{source}'"
            )
        mapping[canonical] = source
    return mapping


def _match_column(source: str, columns: Sequence[str], canonical: str) -> str:
    """The column an explicit mapping means: exact name, else a unique case-insensitive one."""
    if source in columns:
        return source
    for key in (str.strip, str.lower, _norm):
        hits = [c for c in columns if key(c) == key(source.strip())]
        if len(hits) == 1:
            return hits[0]
    raise MappingError(
        f"mapping {canonical}={source}: the table has no column '{source}'"
        f"{_suggest(source, columns)} (columns found: {_listing(list(columns))})"
    )


def _explicit(columns: Sequence[str], explicit: Mapping[str, str] | None) -> dict[str, str]:
    resolved: dict[str, str] = {}
    for canonical, source in (explicit or {}).items():
        _check_canonical(str(canonical), f"the mapping {canonical}={source}")
        resolved[str(canonical)] = _match_column(str(source), columns, str(canonical))
    taken: dict[str, str] = {}
    for canonical, source in resolved.items():
        if source in taken:
            raise MappingError(
                f"the mapping sends column '{source}' to both {taken[source]} and {canonical}"
            )
        taken[source] = canonical
    return resolved


def _alias_rank(canonical: str) -> dict[str, tuple[int, str]]:
    """Normalised alias -> (preference, spelling); the first spelling of a form wins."""
    ranks: dict[str, tuple[int, str]] = {}
    for i, alias in enumerate(ALIASES[canonical]):
        ranks.setdefault(_norm(alias), (i, alias))
    return ranks


def _resolve(
    columns: Sequence[str],
    explicit: Mapping[str, str] | None,
    is_binary: Callable[[str], bool] | None,
) -> tuple[dict[str, str], list[str]]:
    """(canonical -> source, notes). Explicit entries win; aliases fill the rest in order."""
    mapping = _explicit(columns, explicit)
    notes: list[str] = []
    used = set(mapping.values())
    for canonical in C.CANONICAL:
        if canonical in mapping:
            continue
        ranks = _alias_rank(canonical)
        candidates = []
        for position, column in enumerate(columns):
            rank = ranks.get(_norm(column))
            if column in used or rank is None:
                continue
            if rank[1] in BINARY_ONLY_ALIASES and not (is_binary and is_binary(column)):
                continue
            spelled_otherwise = column.strip().lower() != rank[1]
            candidates.append((rank[0], spelled_otherwise, position, column))
        if not candidates:
            continue
        candidates.sort()
        chosen = candidates[0][3]
        mapping[canonical] = chosen
        used.add(chosen)
        if len(candidates) > 1:
            others = ", ".join(f"'{c[3]}'" for c in candidates[1:])
            notes.append(
                f"{canonical}: several columns match ('{chosen}', {others}); using '{chosen}'"
                f" (choose with --map {canonical}=<column>)"
            )
    return {c: mapping[c] for c in C.CANONICAL if c in mapping}, notes


def resolve_mapping(
    columns: Sequence[str], explicit: Mapping[str, str] | None = None
) -> dict[str, str]:
    """canonical -> source column, from the explicit mapping first, then the aliases.

    Names only: the generic label names in BINARY_ONLY_ALIASES ("target", "status", ...)
    need the data to check they hold two values, so only validate() takes them.
    """
    return _resolve([str(c).strip() for c in columns], explicit, None)[0]


# ---------------------------------------------------------------------------------------------
# Messages.


def _rows_text(positions: np.ndarray, first_line: int | None) -> str:
    """'lines 5, 9' (file lines, when io knows them) or 'rows 4, 8' (1-based)."""
    shown = [int(p) for p in positions[:EXAMPLES]]
    more = ", ..." if len(positions) > EXAMPLES else ""
    if first_line is not None:
        return "lines " + ", ".join(str(p + first_line) for p in shown) + more
    return "rows " + ", ".join(str(p + 1) for p in shown) + more


def _source(canonical: str, mapping: Mapping[str, str]) -> str:
    source = mapping.get(canonical)
    return f"{canonical} (column '{source}')" if source and source != canonical else canonical


def _missing_column(
    canonical: str, columns: Sequence[str], views: Mapping[str, _View], hint: str = ""
) -> MissingColumnError:
    tried = _listing(list(ALIASES[canonical]), limit=10)
    extra = ""
    if canonical == C.CHURNED:
        binary = [c for c in columns if _is_binary(views[c])]
        if binary:
            extra = f"; two-valued columns: {_listing(binary, 5)}"
    return MissingColumnError(
        f"no {canonical} column: no column matches {tried}{hint}; columns found: "
        f"{_listing(list(columns))}{extra}; map one with --map {canonical}=<column>"
    )


# ---------------------------------------------------------------------------------------------
# Canonical columns.


def _line_ids(pos: np.ndarray, first_line: int | None) -> pd.Series:
    """'line-2', 'line-3', ... (file lines when io knows them, else 1-based rows)."""
    start = first_line if first_line is not None else 1
    prefix = "line-" if first_line is not None else "row-"
    return pd.Series([f"{prefix}{int(p) + start}" for p in pos], dtype="str")


def _ids(view: _View, mapping: Mapping[str, str], pos, first_line) -> pd.Series:
    text = _as_text(view)
    blank = np.flatnonzero(text.missing)
    if blank.size:
        raise DataError(
            f"{_source(C.CUSTOMER_ID, mapping)} is blank on {blank.size} rows "
            f"({_rows_text(pos[blank], first_line)}): every customer needs an id"
        )
    counts = text.counts()
    dup = np.flatnonzero(counts > 1)
    if dup.size:
        order = dup[np.argsort(-counts[dup], kind="stable")][:EXAMPLES]
        examples = ", ".join(f"{text.values[i]} ({counts[i]} rows)" for i in order)
        raise DuplicateIdError(
            f"{_source(C.CUSTOMER_ID, mapping)} has {dup.size} duplicated ids, e.g. {examples}:"
            " one row per customer expected"
        )
    return pd.Series(text.values.take(text.codes), dtype="str")


def _labels(view: _View, mapping: Mapping[str, str]) -> np.ndarray:
    """int8 per row: 1 churned, 0 not, -1 blank."""
    text = _as_text(view)
    keys, counts = _label_groups(text)
    where = _source(C.CHURNED, mapping)
    first: dict[str, str] = {}  # one spelling per key, for messages
    for value, key in zip(text.values, keys, strict=True):
        first.setdefault(key, value)
    ranked = counts.sort_values(ascending=False, kind="stable")
    found = ", ".join(f"'{first[k]}' ({n} row{'s' if n != 1 else ''})" for k, n in ranked.items())
    if counts.size > 2:
        raise LabelError(
            f"{where} has {counts.size} distinct values, expected two (churned / not): "
            f"{found}; recode it or choose another column with --map churned=<column>"
        )
    classes = {k: _label_class(first[k]) for k in counts.index}
    known = {k: v for k, v in classes.items() if v is not None}
    if len(classes) == 2 and len(known) == 1:  # the other value is the complement
        ((k_known, v_known),) = known.items()
        classes = {k: (v_known if k == k_known else 1 - v_known) for k in classes}
    if None in classes.values() or (len(classes) == 2 and len(set(classes.values())) < 2):
        raise LabelError(
            f"cannot tell which value of {where} means churn: {found}; recode it as 1/0 or Yes/No"
        )
    per_value = np.array([classes[k] for k in keys] + [-1], dtype=np.int8)
    return per_value[text.codes]


def _numeric_canonical(
    canonical: str, view: _View, mapping, decimal, coercions: dict[str, int], notes: list[str]
) -> np.ndarray:
    if isinstance(view, _Numbers):
        return view.values.copy()
    text = _as_text(view)
    numbers = parse_numbers(pd.Series(text.values, dtype="str"), decimal)
    counts = text.counts()
    bad = np.isnan(numbers)
    filled = int(counts.sum())
    if filled and counts[~bad].sum() < CANONICAL_NUMERIC_SHARE * filled:
        examples = _listing([repr(v) for v in text.values[bad]], 3)
        raise DataError(
            f"{_source(canonical, mapping)} is not numeric: {int(counts[bad].sum())} of "
            f"{filled} values are not numbers, e.g. {examples}; "
            f"map the right column with --map {canonical}=<column>"
        )
    _note_coerced(canonical, text.values[bad], int(counts[bad].sum()), coercions, notes)
    return np.append(numbers, np.nan)[text.codes]


def _note_coerced(name, examples, n: int, coercions: dict[str, int], notes: list[str]) -> None:
    if n:
        coercions[name] = coercions.get(name, 0) + n
        shown = _listing([repr(v) for v in examples], 3)
        notes.append(f"{name}: {n} cells that are not numbers became missing (e.g. {shown})")


def _check_not_negative(
    canonical: str, values: np.ndarray, ids: pd.Series, mapping, error: type[DataError]
) -> None:
    negative = np.flatnonzero(values < 0)
    if negative.size:
        shown = _listing(list(ids.iloc[negative[:EXAMPLES]]), EXAMPLES)
        raise error(
            f"{_source(canonical, mapping)} has {negative.size} negative values, e.g. ids "
            f"{shown}{', ...' if negative.size > EXAMPLES else ''}: amounts must be >= 0"
        )


def _dates(canonical: str, view: _View, coercions: dict[str, int], notes: list[str]) -> np.ndarray:
    if isinstance(view, _Dates):
        return view.values.copy()
    text = _as_text(view)
    parsed, fmt = parse_dates(pd.Series(text.values, dtype="str"))
    bad = np.isnat(parsed)
    n_bad = int(text.counts()[bad].sum())
    if n_bad:
        coercions[canonical] = coercions.get(canonical, 0) + n_bad
        shown = _listing([repr(v) for v in text.values[bad]], 3)
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


def whole_months(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Whole calendar months from start to end (float, NaN where a date is missing)."""
    s, e = pd.DatetimeIndex(start), pd.DatetimeIndex(end)
    months = (e.year - s.year) * 12 + (e.month - s.month) - (e.day < s.day)
    out = np.asarray(months, dtype=np.float64)
    out[np.isnat(start) | np.isnat(end)] = np.nan
    return out


# ---------------------------------------------------------------------------------------------
# Other columns: features or dropped with a reason.


def _shadow_reason(column: str, mapping: Mapping[str, str]) -> str | None:
    """Why a column that looks like a canonical/scored column must not be a feature."""
    norm = _norm(column)
    if column in _SCORED_COLUMNS:
        return "an output of this dashboard's scoring, not an input"
    for canonical in C.CANONICAL:
        if norm == _norm(canonical):
            taken = mapping.get(canonical)
            return f"named like {canonical}" + (f", which is taken from '{taken}'" if taken else "")
        if canonical in _EXCLUSIVE_CANONICAL and norm in _alias_rank(canonical):
            taken = mapping.get(canonical)
            where = f"taken from '{taken}'" if taken else "not usable as such"
            return f"looks like another {canonical} column ({canonical} is {where})"
    if any(stem in norm for stem in _LEAK_STEMS):
        return "its name says it records churn: as a feature it would leak the outcome"
    return None


def _is_row_number(values: np.ndarray, column: str) -> bool:
    n = len(values)
    named = _norm(column) in {"rownumber", "rownum", "row", "rowid", "index", "unnamed0", "sno"}
    if n < (2 if named else ROW_NUMBER_MIN_ROWS) or np.isnan(values).any():
        return False
    if named:
        # A filtered export or dropped rows leave gaps: any distinct whole numbers in file order.
        whole = np.array_equal(values, np.floor(values))
        return bool(whole and np.all(np.diff(values) > 0))
    start = values.min()
    if start not in (0.0, 1.0) or values.max() - start != n - 1:
        return False
    return bool(np.array_equal(np.sort(values), np.arange(start, start + n)))


@dataclass(frozen=True)
class _Feature:
    values: pd.Series | None  # None when dropped
    kind: str  # "numeric" | "categorical" | reason it was dropped


def _numeric_feature(values: np.ndarray, column: str) -> _Feature:
    filled = values[~np.isnan(values)]
    if filled.size == 0:
        return _Feature(None, "empty: no values")
    if filled.size == values.size and np.unique(filled).size == 1:
        return _Feature(None, f"constant: every row is {_format_number(filled[0])}")
    if _is_row_number(values, column):
        return _Feature(None, "row number, not a customer attribute")
    return _Feature(pd.Series(values, dtype=np.float64), "numeric")


def _text_feature(
    text: _Text, column: str, decimal, coercions: dict[str, int], notes: list[str]
) -> _Feature:
    counts = text.counts()
    n_rows, levels = len(text.codes), len(text.values)
    if levels == 0:
        return _Feature(None, "empty: no values")
    if levels == 1 and counts[0] == n_rows:
        return _Feature(None, f"constant: every row is '{text.values[0]}'")
    numbers = parse_numbers(pd.Series(text.values, dtype="str"), decimal)
    ok = ~np.isnan(numbers)
    if counts[ok].sum() >= NUMERIC_SHARE * counts.sum():
        _note_coerced(column, text.values[~ok], int(counts[~ok].sum()), coercions, notes)
        return _numeric_feature(np.append(numbers, np.nan)[text.codes], column)
    if _norm(column) in _PERSONAL:
        return _Feature(None, "personal data (name / contact), not a customer attribute")
    if levels > ID_LIKE_LEVELS and levels > ID_LIKE_RATIO * n_rows:
        return _Feature(None, f"identifier-like: {levels} distinct values in {n_rows} rows")
    if _looks_like_dates(text.values):
        return _Feature(
            None,
            "dates are not features (map it with --map signup_date=... or --map churn_date=...)",
        )
    categories = pd.CategoricalDtype(pd.Index(text.values, dtype="str"))
    values = pd.Series(pd.Categorical.from_codes(text.codes, dtype=categories))
    return _Feature(values, "categorical")


def _looks_like_dates(values: pd.Index) -> bool:
    sample = pd.Series(values[:1000], dtype="str")
    if not sample.str.contains(r"\d", regex=True).all():
        return False
    return bool((~np.isnat(parse_dates(sample)[0])).mean() >= NUMERIC_SHARE)


def _feature(view: _View, column: str, decimal, coercions, notes) -> _Feature:
    if isinstance(view, _Dates):
        return _Feature(
            None,
            "dates are not features (map it with --map signup_date=... or --map churn_date=...)",
        )
    if isinstance(view, _Numbers):
        return _numeric_feature(view.values, column)
    return _text_feature(view, column, decimal, coercions, notes)


# ---------------------------------------------------------------------------------------------
# validate.


def _clean_names(names: Iterable[object]) -> list[str]:
    cleaned = [str(n).replace("\ufeff", "").strip() for n in names]
    dups = sorted(n for n, k in Counter(cleaned).items() if k > 1)
    if dups:
        raise DataError(f"duplicate column names: {_listing(dups)}; rename them so each is unique")
    return cleaned


def _drop_set(drop: Sequence[str], columns: Sequence[str], mapping: Mapping[str, str]) -> set[str]:
    result = set()
    for name in drop:
        name = str(name).strip()
        hits = [c for c in columns if c == name] or [c for c in columns if _norm(c) == _norm(name)]
        if len(hits) != 1:
            raise MappingError(
                f"--drop {name}: the table has no column '{name}'{_suggest(name, columns)} "
                f"(columns found: {_listing(list(columns))})"
            )
        if hits[0] in mapping.values():
            raise MappingError(f"column '{hits[0]}' is both mapped and dropped (--drop)")
        result.add(hits[0])
    return result


def validate(
    raw: pd.DataFrame,
    mapping: Mapping[str, str] | None = None,
    *,
    require_label: bool = True,
    drop: Sequence[str] = (),
) -> Table:
    """Validate a raw customer table and return it in canonical form (see module docstring)."""
    notes: list[str] = list(raw.attrs.get(ATTR_NOTES, ()))
    decimal = raw.attrs.get(ATTR_DECIMAL)
    first_line = raw.attrs.get(ATTR_FIRST_LINE)
    names = _clean_names(raw.columns)
    if not names:
        raise EmptyTableError("the table has no columns")
    if len(raw) == 0:
        raise EmptyTableError("the table has a header but no rows")
    explicit = _explicit(names, mapping)
    dropped = {c: "dropped by the user (--drop)" for c in sorted(_drop_set(drop, names, explicit))}
    columns = [c for c in names if c not in dropped]
    views: dict[str, _View] = {c: _view(raw.iloc[:, names.index(c)]) for c in columns}

    blank = np.logical_and.reduce([v.missing for v in views.values()]) if views else None
    if blank is None or blank.all():
        raise EmptyTableError("every row of the table is blank")
    resolved, map_notes = _resolve(columns, explicit, lambda c: _is_binary(views[c]))
    notes.extend(map_notes)
    # Some public churn tables have no id at all: number the customers by their line in the file
    # rather than refuse the table (an explicit mapping to a missing column is still an error).
    numbered = C.CUSTOMER_ID not in resolved

    coercions: dict[str, int] = {}
    keep = ~blank
    if blank.any():
        where = _rows_text(np.flatnonzero(blank), first_line)
        notes.append(f"{int(blank.sum())} blank rows dropped ({where})")
    labels = _label_column(
        resolved, views, require_label, keep, first_line, dropped, notes, coercions
    )
    rows = np.flatnonzero(keep)
    views = {c: v.take(rows) for c, v in views.items()}
    _forget_empty_optional(resolved, views, dropped, notes)

    out: dict[str, object] = {}
    if numbered:
        ids = _line_ids(rows, first_line)
        notes.append(
            f"no customer_id column: customers are named by their line in the file ({ids.iloc[0]}, "
            "...); map an id with --map customer_id=<column>"
        )
    else:
        ids = _ids(views[resolved[C.CUSTOMER_ID]], resolved, rows, first_line)
    out[C.CUSTOMER_ID] = ids
    if labels is not None:
        out[C.CHURNED] = labels[rows]
    for canonical in _NUMERIC_CANONICAL:
        if canonical in resolved:
            out[canonical] = _numeric_canonical(
                canonical, views[resolved[canonical]], resolved, decimal, coercions, notes
            )
    for canonical in C.DATE_COLUMNS:
        if canonical in resolved:
            out[canonical] = _dates(canonical, views[resolved[canonical]], coercions, notes)
    _check_revenue(out, ids, resolved)
    _note_tenure_unit(out, resolved, notes)
    _complete_canonical(out, resolved, columns, views, notes)

    features = [c for c in _NUMERIC_CANONICAL if c in out]
    categorical: list[str] = []
    mapped = set(resolved.values())
    for column in columns:
        if column in mapped or column in dropped:
            continue
        reason = _shadow_reason(column, resolved)
        feature = (
            _Feature(None, reason)
            if reason
            else _feature(views[column], column, decimal, coercions, notes)
        )
        if feature.values is None:
            dropped[column] = feature.kind
            continue
        out[column] = feature.values
        features.append(column)
        if feature.kind == "categorical":
            categorical.append(column)

    frame = _assemble(out)
    return Table(
        frame=frame,
        mapping=resolved,
        source_columns=tuple(names),
        features=tuple(features),
        categorical=tuple(categorical),
        numeric=tuple(f for f in features if f not in categorical),
        dropped={c: dropped[c] for c in names if c in dropped},
        coercions=coercions,
        notes=tuple(n for n in notes if n),
    )


def _label_column(resolved, views, require_label, keep, first_line, dropped, notes, coercions):
    """The label for every raw row (int8, -1 blank), dropping blank-label rows from keep."""
    source = resolved.get(C.CHURNED)
    if source is None:
        if require_label and C.CHURN_DATE not in resolved:
            hint = ""
            generic = [c for c in views if _norm(c) in BINARY_ONLY_ALIASES]
            if generic:
                hint = f" ('{generic[0]}' is not two-valued, so it is not taken as the label)"
            raise _missing_column(C.CHURNED, list(views), views, hint)
        return None
    view = views[source]
    if view.missing[keep].all():
        if require_label:
            raise LabelError(f"{_source(C.CHURNED, resolved)} has no values")
        dropped[source] = "empty: no values (no label)"
        del resolved[C.CHURNED]
        return None
    labels = _labels(view, resolved)
    unlabelled = np.flatnonzero(keep & (labels < 0))
    if unlabelled.size:
        keep &= labels >= 0
        coercions[C.CHURNED] = int(unlabelled.size)
        notes.append(
            f"churned: {unlabelled.size} rows with a blank label dropped "
            f"({_rows_text(unlabelled, first_line)})"
        )
    return labels


def _forget_empty_optional(resolved: dict, views, dropped: dict, notes: list[str]) -> None:
    """A mapped column with no values is treated as absent (its views explain themselves)."""
    for canonical in (*_NUMERIC_CANONICAL, *C.DATE_COLUMNS):
        source = resolved.get(canonical)
        if source is not None and views[source].missing.all():
            del resolved[canonical]
            dropped[source] = "empty: no values"
            notes.append(f"{canonical}: column '{source}' has no values; treated as absent")


# Tenure in months rarely stops this short; in years (a bank's "Tenure" of 0-10) it does.
SHORT_TENURE_MAX = 15


def _note_tenure_unit(out: dict, resolved, notes: list[str]) -> None:
    """A tenure column that does not say its unit and stops short may count years: say how it
    was read rather than guess (segments, CLV horizons and actions read it as months)."""
    source = resolved.get(C.TENURE)
    if source is None or C.TENURE not in out or "month" in str(source).lower():
        return
    values = np.asarray(out[C.TENURE], dtype="float64")
    values = values[~np.isnan(values)]
    if len(values) and values.max() <= SHORT_TENURE_MAX:
        notes.append(
            f"tenure_months: read from '{source}' as months, but its values stop at "
            f"{values.max():g}: if they count years, multiply them by 12 before loading"
        )


def _check_revenue(out: dict, ids: pd.Series, resolved) -> None:
    for canonical in (C.MONTHLY_REVENUE, C.TOTAL_REVENUE):
        if canonical in out:
            _check_not_negative(canonical, out[canonical], ids, resolved, NegativeRevenueError)
    if C.TENURE in out:
        _check_not_negative(C.TENURE, out[C.TENURE], ids, resolved, DataError)


def _complete_canonical(out: dict, resolved, columns, views, notes: list[str]) -> None:
    """Derive what the data implies: tenure from dates, total revenue, label from churn_date."""
    if C.TENURE not in out:
        if C.SIGNUP_DATE not in out:
            raise _missing_column(
                C.TENURE, columns, views, hint=" and there is no signup_date to derive it from"
            )
        signup = out[C.SIGNUP_DATE]
        dates = np.concatenate([out[c] for c in C.DATE_COLUMNS if c in out])
        if np.isnat(dates).all():
            raise _missing_column(
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

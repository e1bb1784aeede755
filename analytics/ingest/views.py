"""Column views: each raw column as codes into its distinct cleaned values.

A text column becomes codes into its distinct stripped values, a numeric one a float array, a
date one a datetime64[ns] array, so every later step works on distinct values, never per cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Cells meaning "no value" in exports from Excel, R, SQL and Weka (compared lower-cased).
MISSING_TOKENS = frozenset({"", "?", "-", "--", "na", "n/a", "#n/a", "nan", "null", "<na>"})


@dataclass(frozen=True)
class Text:
    codes: np.ndarray  # per row, index into values; -1 = missing
    values: pd.Index  # distinct stripped strings, sorted

    @property
    def missing(self) -> np.ndarray:
        return self.codes < 0

    def take(self, rows: np.ndarray) -> Text:
        return _compact(self.codes[rows], self.values)

    def counts(self) -> np.ndarray:
        return np.bincount(self.codes[self.codes >= 0], minlength=len(self.values))


@dataclass(frozen=True)
class Numbers:
    values: np.ndarray  # float64, NaN = missing

    @property
    def missing(self) -> np.ndarray:
        return np.isnan(self.values)

    def take(self, rows: np.ndarray) -> Numbers:
        return Numbers(self.values[rows])


@dataclass(frozen=True)
class Dates:
    values: np.ndarray  # datetime64[ns], NaT = missing

    @property
    def missing(self) -> np.ndarray:
        return np.isnat(self.values)

    def take(self, rows: np.ndarray) -> Dates:
        return Dates(self.values[rows])


View = Text | Numbers | Dates


def _compact(codes: np.ndarray, values: pd.Index) -> Text:
    """Drop values no row uses any more (after rows were removed) and renumber the codes."""
    used = np.bincount(codes[codes >= 0], minlength=len(values)) > 0
    if used.all():
        return Text(codes, values)
    new_index = np.full(len(values) + 1, -1, dtype=np.int64)
    new_index[:-1][used] = np.arange(int(used.sum()))
    return Text(new_index[codes], values[used])


def _text_from_distinct(codes: np.ndarray, distinct: pd.Series) -> Text:
    """Strip the distinct texts, turn missing tokens into missing, merge equal ones, sort."""
    texts = distinct.astype("str").str.strip()
    texts = texts.mask(texts.isna() | texts.str.lower().isin(MISSING_TOKENS))
    remap, values = pd.factorize(texts, sort=True)
    lookup = np.append(remap, -1).astype(np.int64)  # codes of -1 land on the appended -1
    return Text(lookup[codes], pd.Index(values, dtype="str"))


def _text_view(s: pd.Series) -> Text:
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return _text_from_distinct(codes, pd.Series(np.asarray(uniques, dtype=object)))


def format_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else repr(float(x))


def as_text(view: View) -> Text:
    """Any view as text (for ids and labels that arrive as numbers or dates in Parquet)."""
    if isinstance(view, Text):
        return view
    codes, uniques = pd.factorize(view.values, use_na_sentinel=True)
    if isinstance(view, Numbers):
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


def column_view(s: pd.Series) -> View:
    if pd.api.types.is_bool_dtype(s.dtype):
        return _text_view(s)  # True/False are categories, like Yes/No
    if pd.api.types.is_numeric_dtype(s.dtype):
        return Numbers(s.to_numpy(dtype=np.float64, na_value=np.nan))
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return Dates(_to_naive_ns(s))
    return _text_view(s)

"""Exports a manager opens in a spreadsheet: text cells cannot run as formulas.

`neutralised` is the one place that makes a frame safe to open; the dashboard's CSV downloads
(`safe_csv`, `list_csv`) and every file the CLI writes (`write_export`) go through it.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.formatting import export_header
from analytics.store import artifacts

# A cell starting with one of these is a formula in Excel, LibreOffice and Google Sheets
# (OWASP "CSV injection"); tab and carriage return can smuggle one in too.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# RFC 4180 line ends: the csv writer quotes a cell holding any character of the line end, so a
# cell with a bare "\r" is quoted; with pandas' default "\n" it is written raw, a spreadsheet
# starts a new row there, and a "=..." after it would run.
LINE_END = "\r\n"

# Decimals written for numbers that are not whole: a probability to 0.01 of a point, money to
# 1/100 of a cent; the full float (0.6935333927004965) is noise in a spreadsheet.
DECIMALS = 4


def _is_text(series: pd.Series) -> bool:
    kind = series.dtype
    return not (
        pd.api.types.is_numeric_dtype(kind)
        or pd.api.types.is_bool_dtype(kind)
        or pd.api.types.is_datetime64_any_dtype(kind)
    )


def _defused(text: pd.Series) -> pd.Series:
    """A formula-like cell gets a leading apostrophe: shown, not evaluated. Vectorised: the
    planner's export has hundreds of thousands of cells."""
    risky = text.str.startswith(FORMULA_STARTS).fillna(False)
    return text.mask(risky, "'" + text)


def neutralised(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` in which no header or text cell can run as a formula; numbers, flags
    and dates are left as they are (a spreadsheet never evaluates them)."""
    out = frame.copy()
    for column in out.columns:
        if _is_text(out[column]):
            out[column] = _defused(out[column].astype("string"))
    names = _defused(pd.Series([str(c) for c in out.columns], dtype="string"))
    out.columns = list(names)
    return out


def safe_csv(frame: pd.DataFrame) -> str:
    """CSV text of `frame`, neutralised; numbers are written as numbers (whole-valued columns
    as integers, others to DECIMALS places)."""
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if not pd.api.types.is_float_dtype(series):
            continue
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        known = values[~np.isnan(values)]
        whole = len(known) and np.all(np.abs(known) < 2**53) and np.all(known == known // 1)
        out[column] = series.astype("Int64") if whole else series.round(DECIMALS)
    return neutralised(out).to_csv(index=False, lineterminator=LINE_END)


def write_export(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write `frame`, neutralised, as CSV, CSV.GZ or Parquet by the file's suffix (atomic)."""
    artifacts.write_table(neutralised(frame), path, line_end=LINE_END)


def list_csv(frame: pd.DataFrame, currency: str) -> str:
    """The at-risk list or the planner's contact list as a manager reads it, the way the grid
    shows it: the grid's headers, the churn probability in percent under "Churn probability (%)"
    (to 0.01 of a point), money as plain numbers under a header naming the currency."""
    out = frame.copy()
    if C.P_CHURN in out.columns:
        out[C.P_CHURN] = (100 * out[C.P_CHURN].astype("float64")).round(2)
    out.columns = [export_header(c, currency) for c in out.columns]
    return safe_csv(out)

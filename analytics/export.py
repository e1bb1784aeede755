"""CSV exports a manager opens in a spreadsheet: text cells cannot run as formulas."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.formatting import export_header

# A cell starting with one of these is a formula in Excel, LibreOffice and Google Sheets
# (OWASP "CSV injection"); tab and carriage return can smuggle one in too.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# Decimals written for numbers that are not whole: a probability to 0.01 of a point, money to
# 1/100 of a cent; the full float (0.6935333927004965) is noise in a spreadsheet.
DECIMALS = 4


def safe_csv(frame: pd.DataFrame) -> str:
    """CSV text of `frame`; every text cell is neutralised, numbers are written as numbers
    (whole-valued columns as integers, others to DECIMALS places)."""
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if pd.api.types.is_float_dtype(series):
            values = series.to_numpy(dtype="float64", na_value=np.nan)
            known = values[~np.isnan(values)]
            whole = len(known) and np.all(np.abs(known) < 2**53) and np.all(known == known // 1)
            if whole:
                out[column] = series.astype("Int64")
            else:
                out[column] = series.round(DECIMALS)
            continue
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            continue
        if pd.api.types.is_datetime64_any_dtype(series):
            continue
        text = series.astype("string")
        # A formula-like cell gets a leading apostrophe: shown, not evaluated. Vectorised: the
        # planner's export has hundreds of thousands of cells.
        risky = text.str.startswith(FORMULA_STARTS).fillna(False)
        out[column] = text.mask(risky, "'" + text)
    return out.to_csv(index=False)


def list_csv(frame: pd.DataFrame, currency: str) -> str:
    """The at-risk list or the planner's contact list as a manager reads it, the way the grid
    shows it: the grid's headers, the churn probability in percent under "Churn probability (%)"
    (to 0.01 of a point), money as plain numbers under a header naming the currency."""
    out = frame.copy()
    if C.P_CHURN in out.columns:
        out[C.P_CHURN] = (100 * out[C.P_CHURN].astype("float64")).round(2)
    out.columns = [export_header(c, currency) for c in out.columns]
    return safe_csv(out)

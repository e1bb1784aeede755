"""CSV exports a manager opens in a spreadsheet: text cells cannot run as formulas."""

from __future__ import annotations

import pandas as pd

# A cell starting with one of these is a formula in Excel, LibreOffice and Google Sheets
# (OWASP "CSV injection"); tab and carriage return can smuggle one in too.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """Prefix a formula-like text cell with an apostrophe, so it is shown, not evaluated."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def safe_csv(frame: pd.DataFrame) -> str:
    """CSV text of `frame`; every text cell is neutralised, numbers are written as numbers."""
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            continue
        if pd.api.types.is_datetime64_any_dtype(series):
            continue
        out[column] = series.astype("string").map(neutralise, na_action="ignore")
    return out.to_csv(index=False)

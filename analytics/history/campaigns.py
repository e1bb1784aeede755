"""Campaigns with a control group and the measured save rate (../shared/METRICS.md "Campaigns
and the measured save rate").

A campaign holds out a random control group (share h, stratified by risk band) of its contact
list; the contacted customers are the treated ones. Once the window has passed, with churn
rates c_C (control) and c_T (treated): uplift = c_C - c_T with a Newcombe 95% interval for the
difference of two proportions; measured save rate s = (c_C - c_T) / c_C, and its interval is the
uplift interval divided by c_C.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics.metrics.kpis import SMALL_GROUP, wilson_interval

TREATED, CONTROL = "treated", "control"
GROUP_COLUMNS = (C.CUSTOMER_ID, "group", C.RISK_BAND, C.P_CHURN)


def assign_groups(frame: pd.DataFrame, control_share: float, seed: int) -> pd.DataFrame:
    """The contact list split into treated and control (columns GROUP_COLUMNS, in the list's
    order): in each risk band (a blank band is a stratum of its own) a random round(share x n)
    of its customers, rounded half up, are held out as control. The same list (in any order),
    share and seed give the same groups."""
    if not 0 < control_share <= 0.5:
        raise ValueError(f"control_share must be in (0, 0.5], got {control_share}")
    for column in (C.CUSTOMER_ID, C.RISK_BAND, C.P_CHURN):
        if column not in frame.columns:
            raise ValueError(f"the contact list has no {column} column: score the customers first")
    if frame.empty:
        raise ValueError("the contact list is empty: select at least one customer")
    ids = pd.Index(frame[C.CUSTOMER_ID].astype(str).to_numpy(dtype=object), dtype=object)
    if not ids.is_unique:
        raise ValueError(f"the contact list repeats customer_id {ids[ids.duplicated()][0]!r}")
    band = pd.Categorical(frame[C.RISK_BAND], categories=list(C.RISK_BANDS))
    # Rows ordered by (band, id), so the draw does not depend on the list's row order.
    by_id = np.argsort(ids.to_numpy(), kind="stable")
    order = by_id[np.argsort(band.codes[by_id], kind="stable")]
    rng = np.random.default_rng(seed)
    control = np.zeros(len(ids), dtype=bool)
    codes = band.codes[order]
    for code in np.unique(codes):  # -1 (blank band) first, then Low, Medium, High
        members = order[codes == code]
        k = math.floor(control_share * len(members) + 0.5)
        control[rng.choice(members, size=k, replace=False)] = True
    return pd.DataFrame(
        {
            C.CUSTOMER_ID: ids.to_numpy(),
            "group": np.where(control, CONTROL, TREATED),
            C.RISK_BAND: frame[C.RISK_BAND].to_numpy(),
            C.P_CHURN: frame[C.P_CHURN].to_numpy(dtype=float, na_value=np.nan),
        }
    )


def newcombe_interval(k1: int, n1: int, k2: int, n2: int, z: float = 1.96) -> tuple[float, float]:
    """Interval for p1 - p2 = k1/n1 - k2/n2 by Newcombe's hybrid score method (method 10 of
    Newcombe 1998), from each proportion's Wilson interval. 56/70 vs 48/80 -> (0.0524, 0.3339)."""
    for k, n in ((k1, n1), (k2, n2)):
        if not (n > 0 and 0 <= k <= n):
            raise ValueError(f"need 0 <= k <= n and n > 0 for each proportion, got {k}/{n}")
    p1, p2 = k1 / n1, k2 / n2
    low1, high1 = wilson_interval(k1, n1, z)
    low2, high2 = wilson_interval(k2, n2, z)
    d = p1 - p2
    return (
        d - math.sqrt((p1 - low1) ** 2 + (high2 - p2) ** 2),
        d + math.sqrt((high1 - p1) ** 2 + (p2 - low2) ** 2),
    )


def measure(groups: pd.DataFrame, outcome: pd.Series) -> dict:
    """Churn in each group after the campaign and the measured save rate.

    `outcome`: churned (0/1) by customer_id in the window after the campaign; a customer
    missing from it (or blank) is unknown, counted and left out. Returns treated and control
    {n, churned, churn_rate, unknown} (n = known outcomes), uplift = c_C - c_T with
    uplift_ci_low / uplift_ci_high (Newcombe 95%), save_rate = uplift / c_C with ci_low /
    ci_high = the uplift interval / c_C, unknown (both groups), and `note`: why save_rate is
    None when it cannot be measured (no outcomes, groups under 30, no control churners).
    """
    ids, group = _groups(groups)
    y = _outcome(outcome).reindex(ids).to_numpy(dtype=float)
    out: dict = {name: _tally(y[group == name]) for name in (TREATED, CONTROL)}
    out["unknown"] = out[TREATED]["unknown"] + out[CONTROL]["unknown"]
    treated, control = out[TREATED], out[CONTROL]
    out.update(uplift=None, uplift_ci_low=None, uplift_ci_high=None)
    out.update(save_rate=None, ci_low=None, ci_high=None, note=None)
    if not treated["n"] or not control["n"]:
        out["note"] = "No outcome is known yet for one of the groups: wait for the window to pass."
        return out
    uplift = control["churn_rate"] - treated["churn_rate"]
    low, high = newcombe_interval(
        control["churned"], control["n"], treated["churned"], treated["n"]
    )
    out.update(uplift=uplift, uplift_ci_low=low, uplift_ci_high=high)
    if min(treated["n"], control["n"]) < SMALL_GROUP:
        out["note"] = (
            f"Groups too small to measure a save rate: {control['n']} control and "
            f"{treated['n']} treated customers with a known outcome (at least {SMALL_GROUP} each)."
        )
    elif not control["churned"]:
        out["note"] = "No control customer churned: there are no would-be churners to save."
    else:
        c_c = control["churn_rate"]
        out.update(save_rate=uplift / c_c, ci_low=low / c_c, ci_high=high / c_c)
    return out


def _tally(y: np.ndarray) -> dict:
    known = ~np.isnan(y)
    n, churned = int(known.sum()), int(y[known].sum())
    return {
        "n": n,
        "churned": churned,
        "churn_rate": churned / n if n else None,
        "unknown": int((~known).sum()),
    }


def _groups(groups: pd.DataFrame) -> tuple[pd.Index, np.ndarray]:
    """(ids as text, group labels); one row per customer, groups treated / control only."""
    ids = pd.Index(groups[C.CUSTOMER_ID].astype(str).to_numpy(dtype=object), dtype=object)
    if not ids.is_unique:
        raise ValueError(f"the campaign lists customer_id {ids[ids.duplicated()][0]!r} twice")
    group = groups["group"].astype(str).to_numpy(dtype=object)
    odd = set(group) - {TREATED, CONTROL}
    if odd:
        raise ValueError(f"group must be 'treated' or 'control', got {sorted(odd)[0]!r}")
    return ids, group


def _outcome(outcome: pd.Series) -> pd.Series:
    """churned by customer_id as text; 0/1 or blank, one per customer."""
    index = pd.Index(outcome.index.astype(str).to_numpy(dtype=object), dtype=object)
    if not index.is_unique:
        raise ValueError(f"the outcome repeats customer_id {index[index.duplicated()][0]!r}")
    values = pd.to_numeric(outcome).to_numpy(dtype=float, na_value=np.nan)
    known = values[~np.isnan(values)]
    if ((known != 0) & (known != 1)).any():
        raise ValueError("the outcome must be churned 0 or 1 (blank when unknown)")
    return pd.Series(values, index=index)

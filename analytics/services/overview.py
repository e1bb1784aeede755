"""What a user asks of a selection's overview: KPIs, trend or survival, cohorts, segments,
drivers. Each is a plain function of (served base, filter query, options) -> plain data; the
API returns it as it is and the dashboard draws its figures from exactly it."""

from __future__ import annotations

from analytics import columns as C
from analytics.metrics import rates, survival
from analytics.plain import month_text, plain, records
from analytics.result import Unavailable
from analytics.services.base import ServedBase
from analytics.services.errors import InvalidInput

NO_MATCH = "No customers match these filters."
# Why a KPI that needs each customer's probability is null before the first model.
NEEDS_MODEL = "Not available until the churn model is trained."
MODEL_KPIS = ("mrr_at_risk", "avg_clv")
NO_DATES = "Not available because the data has no signup_date and churn_date columns."
KM_NOTE = "This table has no dates: retention is shown over tenure (Kaplan-Meier)."


def kpis(base: ServedBase, query: str) -> dict:
    """The KPI cards of the selection (METRICS.md), with why a KPI the data cannot give is off
    (before the first model: the risk figures, MRR at risk and average CLV)."""
    found = plain(base.kpis(query))
    if not base.has_model and C.MONTHLY_REVENUE in base.scored.columns:
        found["reasons"] = {**found["reasons"], **dict.fromkeys(MODEL_KPIS, NEEDS_MODEL)}
    return found


def trend(base: ServedBase, query: str, *, split: bool = False) -> dict:
    """Monthly churn and retention with dates ("kind": "monthly", one point per month and, when
    split, per segment); the Kaplan-Meier retention curve over tenure without ("kind":
    "survival"). An empty selection has no points and says why in "note". The split needs the
    segments, so the model (ModelPending before it)."""
    if split:
        base.require_model("the trend split by segment")
    by = C.SEGMENT if split else None
    if base.history is not None:
        selection = base.history_selection(query)
        if not selection.customers:
            return {"kind": "monthly", "split": split, "points": [], "note": NO_MATCH}
        tenure = base.tenure(query)
        table = base.cached(
            "trend", query, lambda: selection.monthly_trend(by=by, tenure=tenure), by
        )
        if not table["active_start"].sum():  # a tenure range no month holds anyone in
            return {"kind": "monthly", "split": split, "points": [], "note": NO_MATCH}
        if base.score_filters(query):  # today's scores: no month before the window has them
            table = table[table["month"] == table["month"].max()]
        points = records(table.rename(columns={"active_start": "customers"}))
        for point, month in zip(points, month_text(table["month"]), strict=True):
            point["month"] = month
        return {
            "kind": "monthly",
            "split": split,
            "points": points,
            "note": base.history_note(query),
        }
    frame = base.view(query, (C.TENURE, C.CHURNED, C.SEGMENT))
    if not len(frame):
        return {"kind": "survival", "split": split, "points": [], "note": NO_MATCH}
    km = base.cached("km", query, lambda: survival.kaplan_meier(frame, by=by), by)
    if isinstance(km, Unavailable):
        return {"kind": "survival", "split": split, "points": [], "note": km.reason}
    return {"kind": "survival", "split": split, "points": records(km), "note": KM_NOTE}


def cohorts(base: ServedBase, query: str) -> dict:
    """Cohort retention: per signup month, its size and the share still active k months after
    signup (only fully observed cells), k running over `months` (the tenure filter's range)."""
    if base.history is None:
        return {"months": [], "cohorts": [], "note": NO_DATES}
    selection = base.history_selection(query)
    if not selection.customers or not base.count(query):
        return {"months": [], "cohorts": [], "note": NO_MATCH}
    tenure = base.tenure(query)
    table = base.cached("cohorts", query, lambda: selection.cohort_retention(tenure=tenure))
    names = " and ".join(base.score_filters(query))
    if names and not len(table):
        return {
            "months": [],
            "cohorts": [],
            "note": f"Cohort retention needs customers who left in past months; the {names} "
            "filter keeps today's customers only (the score is today's). Clear it to see "
            "cohorts.",
        }
    cells = [c for c in table.columns if c != "customers"]
    rows = []
    for month, (_, row) in zip(month_text(table.index), table.iterrows(), strict=True):
        shares = [plain(float(row[k])) for k in cells]
        while shares and shares[-1] is None:  # unobserved cells end each row
            shares.pop()
        rows.append({"cohort": month, "customers": int(row["customers"]), "retention": shares})
    months = [int(k) for k in cells]
    return {"months": months, "cohorts": rows, "note": ""}


def segments(base: ServedBase, query: str) -> dict:
    """Each segment's customers, churned, churn rate with its Wilson interval, and what defines
    it; the counts add up to the selection's KPI count. The segments are fitted with the model
    (ModelPending before it)."""
    base.require_model("the segments")
    frame = base.view(query, (C.CHURNED, C.SEGMENT))
    whole = base.kpis("")["churn_rate"]
    if not len(frame):
        return {"segments": [], "base_churn_rate": plain(whole), "note": NO_MATCH}
    table = base.cached("segments", query, lambda: rates.churn_by_segment(frame))
    if isinstance(table, Unavailable):
        return {"segments": [], "base_churn_rate": plain(whole), "note": table.reason}
    profile = base.ws.model.segments.profile
    defined = dict(zip(profile["segment"].astype(str), profile["defined_by"], strict=True))
    items = []
    for row in records(table):
        name = str(row.pop("level"))
        items.append({"name": name, **row, "defined_by": defined.get(name, "")})
    return {"segments": items, "base_churn_rate": plain(whole), "note": ""}


def drivers(base: ServedBase, query: str, factor: str | None) -> dict:
    """Churn rate by one factor's levels (numbers in quantile bins) with intervals, the base's
    rate ("all customers") and the selection's beside it, and the model's global importance
    (before the first model: none, and "importance_note" says why)."""
    importance = base.ws.model.importance if base.has_model else None
    out = {
        "factor": factor,
        "base_churn_rate": plain(base.kpis("")["churn_rate"]),
        "selection_churn_rate": plain(base.kpis(query)["churn_rate"]),
        "levels": [],
        "importance": records(importance) if importance is not None else [],
        "note": "",
    }
    if not base.has_model:
        out["importance_note"] = NEEDS_MODEL
    if not factor:
        out["note"] = "Choose a factor."
        return out
    if factor == C.SEGMENT:  # the segments are fitted with the model
        base.require_model("churn by segment")
    if factor not in factors(base):
        known = ", ".join(factors(base))
        raise InvalidInput("factor", f"unknown factor {factor!r}; known: {known}")
    frame = base.view(query, (C.CHURNED, factor))
    if not len(frame):
        out["note"] = NO_MATCH
        return out
    table = base.cached("factor", query, lambda: rates.churn_by_factor(frame, factor), factor)
    if isinstance(table, Unavailable):
        out["note"] = table.reason
        return out
    out["levels"] = records(table)
    return out


def factors(base: ServedBase) -> list[str]:
    """The factors the drivers view offers: the table's features, then the segment."""
    offered = [*base.ws.table.features, C.SEGMENT]
    return [f for f in dict.fromkeys(offered) if f in base.scored.columns]

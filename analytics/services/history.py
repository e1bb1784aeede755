"""What a user asks of the product over time: the snapshots, a view of one of them, "vs last
month", movers, revenue retention, monitoring, campaigns. Plain functions of (history, served
base, filter query) -> plain data; the API returns it as it is and the dashboard draws from it.

A snapshot is served like the live base (analytics.services.base.ServedBase over its stored
rows), so every view, filter and scope rule applies to it unchanged. Snapshots are immutable:
what is computed from one is cached by its id for the life of the process.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from analytics import access, budget, filters
from analytics import columns as C
from analytics.config import Settings
from analytics.formatting import NAME_RULE, plain_name
from analytics.history import campaigns as campaign_rules
from analytics.history import monitoring as monitor
from analytics.history import movers as mover_rules
from analytics.history import revenue as revenue_rules
from analytics.ingest.validate import Table
from analytics.plain import plain, records
from analytics.services import planner as planner_service
from analytics.services.base import _LRU, ServedBase
from analytics.services.errors import InvalidInput
from analytics.store import snapshots as store
from analytics.store.artifacts import ArtifactError
from analytics.workflow import Workspace

log = logging.getLogger("analytics.services.history")

PARAM = "snapshot"
AS_OF = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits: \d takes any script's
MAX_SHOWN = 40  # of a bad ?snapshot= value, quoted back in the 400
NO_SNAPSHOTS = "No snapshots yet: one is recorded each time a model version goes live."
NO_PREVIOUS = "No earlier snapshot to compare with."
MOVERS_LIMIT = 50
# A request reads at most this many months of snapshots (each a file of up to a million rows):
# revenue the last MAX_MONTHS months, monitoring the newest MAX_MONTHS realised checks. The
# history grows every month; a request must not.
MAX_MONTHS = 24
DECAY_MARGIN = 0.05  # realised ROC-AUC this far below the model's cross-validated one: decaying
LARGE_PSI = 0.25


def unreadable(info: store.SnapshotInfo, exc: Exception) -> str:
    """Log why a snapshot's file was refused (missing, or changed since it was written) and
    say it in one line. The views that read it say so; the others, and the live views, go on."""
    log.warning("snapshot %s (%s) refused: %s", info.id, info.label, exc)
    return (
        f"The snapshot of {info.label} cannot be read: its file is missing or changed since it "
        "was written (the server's log says which)."
    )


@dataclasses.dataclass(frozen=True)
class UnknownSegments:
    """A snapshot keeps each customer's segment, not how its model defined the segments."""

    order: tuple = ()

    @property
    def profile(self) -> pd.DataFrame:
        return pd.DataFrame({"segment": pd.Series(dtype=str), "defined_by": pd.Series(dtype=str)})


@dataclasses.dataclass(frozen=True)
class Scoring:
    """What a snapshot keeps of the model that scored it: ServedBase reads `meta`; the views
    of segments and drivers find no definitions and no importance (not a 500)."""

    version: str
    meta: dict
    pipeline: None = None
    scorer: None = None
    importance: None = None
    segments: UnknownSegments = UnknownSegments()


class History:
    """The snapshots of one state database, as the services read them (one per process)."""

    def __init__(self, engine: Engine, state_dir: Path, settings: Settings) -> None:
        self.engine, self.state_dir, self.settings = engine, Path(state_dir), settings
        self._bases = _LRU(3)  # a million-row snapshot is hundreds of MB
        self._small = _LRU(512)  # figures per snapshot (immutable, so never stale)

    # -- which snapshot ----------------------------------------------------------------------

    def all(self) -> list[store.SnapshotInfo]:
        return store.snapshots(self.engine)

    def chosen(self, live_version: str | None = None) -> list[store.SnapshotInfo]:
        """One snapshot per as_of, oldest first: the live version's when it scored that date,
        else the last recorded."""
        picked: dict[date, store.SnapshotInfo] = {}
        for info in self.all():
            held = picked.get(info.as_of)
            if held is None or held.model_version != live_version:
                picked[info.as_of] = info
        return [picked[d] for d in sorted(picked)]

    def resolve(self, text: str | None, base: ServedBase) -> store.SnapshotInfo | None:
        """The snapshot `?snapshot=<as_of>` names (None: not asked); 400 for a bad or unknown
        date, naming the dates there are."""
        if text is None:
            return None
        text = str(text)
        try:  # fromisoformat alone also reads 20261031 and week dates (2026-W44-6)
            when = date.fromisoformat(text) if AS_OF.fullmatch(text) else None
        except ValueError:
            when = None
        if when is None:
            shown = repr(text[:MAX_SHOWN]) + ("…" if len(text) > MAX_SHOWN else "")
            raise InvalidInput(PARAM, f"expected a date YYYY-MM-DD, got {shown}")
        for info in self.chosen(_version(base)):
            if info.as_of == when:
                return info
        known = ", ".join(i.label for i in self.chosen(_version(base))[-6:]) or "none yet"
        raise InvalidInput(PARAM, f"no snapshot as of {when}; the latest: {known}")

    def current(self, base: ServedBase) -> store.SnapshotInfo | None:
        """The snapshot `base` is: itself for a snapshot's base, else the live version's
        newest snapshot (None until its snapshot job has run)."""
        if isinstance(base.ws.model, Scoring) and base.ws.source.startswith("snapshot "):
            return store.snapshot(self.engine, base.ws.source.split(" ", 1)[1])
        version = _version(base)
        mine = [i for i in self.chosen(version) if i.model_version == version]
        return mine[-1] if mine else None

    def previous(self, info: store.SnapshotInfo, base: ServedBase) -> store.SnapshotInfo | None:
        earlier = [i for i in self.chosen(_version(base)) if i.as_of < info.as_of]
        return earlier[-1] if earlier else None

    def base(self, info: store.SnapshotInfo) -> ServedBase:
        """The snapshot served like the live base (cached by id)."""
        return self._bases.get(info.id, lambda: ServedBase(self._workspace(info)))

    def _workspace(self, info: store.SnapshotInfo) -> Workspace:
        frame = store.read_frame(self.state_dir, info)
        summary = info.summary
        categorical = tuple(c for c in summary.get("categorical", []) if c in frame)
        numeric = tuple(c for c in summary.get("numeric", []) if c in frame)
        table = Table(frame, {}, tuple(frame.columns), categorical + numeric, categorical, numeric)
        meta = {"threshold": summary["threshold"], "window_months": summary["window_months"]}
        scoring = Scoring(info.model_version, meta)
        return Workspace(table, scoring, frame, None, self.settings,  # type: ignore[arg-type]
                         f"snapshot {info.id}", f"snapshot {info.label}")  # fmt: skip

    def figures(self, key: tuple, make):
        return self._small.get(key, make)


def _version(base: ServedBase) -> str | None:
    model = base.ws.model
    return getattr(model, "version", None) if model is not None else None


def pick(history: History | None, base: ServedBase, text: str | None) -> ServedBase:
    """The base a request reads: the snapshot `?snapshot=` names, else the live one."""
    if text is None:
        return base
    if history is None:
        raise InvalidInput(PARAM, NO_SNAPSHOTS)
    info = history.resolve(text, base)
    try:
        picked = history.base(info)
    except ArtifactError as exc:
        raise InvalidInput(PARAM, unreadable(info, exc) + " Pick another date.") from None
    # A snapshot of another dataset may lack the scope's column (or all its values).
    problem = picked.scope_problem(access.current_scope())
    if problem:
        raise InvalidInput(PARAM, f"the snapshot of {info.label} holds none of your customers: "
                                  f"{problem}")  # fmt: skip
    return picked


# -- the list ---------------------------------------------------------------------------------


def snapshot_list(history: History, base: ServedBase) -> dict:
    """Every as_of with its snapshot, newest first, with its customers and predicted and
    realised churn (the trend's "predicted beside realised"): the whole base's, or within a
    manager's scope the scope's."""
    chosen = history.chosen(_version(base))
    current = history.current(base)
    scope = access.current_scope()
    items = []
    for info in reversed(chosen):
        budget.check()  # a scope's figures read each snapshot's file once
        items.append({
            **info.public(),
            **_list_figures(history, info, scope),
            "current": current is not None and info.id == current.id,
        })  # fmt: skip
    return {"snapshots": items, "note": "" if items else NO_SNAPSHOTS}


def _list_figures(history: History, info: store.SnapshotInfo, scope) -> dict:
    """customers, predicted_churn and realised_churn of a snapshot. The summary holds the
    whole base's, which a scoped manager must not see: theirs are read from the file (three
    columns, once per snapshot and scope)."""
    s = info.summary
    if scope is None:
        return {
            "customers": info.rows,
            "predicted_churn": s.get("predicted_churn"),
            "realised_churn": s.get("realised_churn"),
        }

    def make() -> dict:
        wanted = {scope.column, C.P_CHURN, C.CHURNED}
        frame = store.read_frame(history.state_dir, info, columns=wanted)
        if scope.column in frame:
            inside = frame[frame[scope.column].astype(str).isin(scope.values).to_numpy()]
        else:  # nobody is in scope (as analytics.alerting.in_scope says)
            inside = frame.iloc[:0]
        p = inside[C.P_CHURN].to_numpy(dtype=float) if C.P_CHURN in inside else np.array([])
        churned = inside.get(C.CHURNED)
        known = churned is not None and len(inside) > 0 and bool(churned.notna().all())
        return {
            "customers": len(inside),
            "predicted_churn": float(np.nanmean(p)) if len(p) else None,
            "realised_churn": float(churned.mean()) if known else None,
        }

    try:
        return history.figures(("list", info.id, str(scope)), make)
    except ArtifactError as exc:
        unreadable(info, exc)
        return {"customers": None, "predicted_churn": None, "realised_churn": None}


# -- vs last month ------------------------------------------------------------------------------


def kpis_with_change(history: History | None, base: ServedBase, query: str, found: dict) -> dict:
    """`found` (the KPIs of the selection) with vs_previous: the same KPIs on the previous
    snapshot for the same filters (METRICS.md: points for rates, relative for amounts)."""
    if history is None:
        return {**found, "vs_previous": None, "vs_previous_note": NO_SNAPSHOTS}
    current = history.current(base)
    if current is None:
        note = "The live model's snapshot is being recorded; comparisons follow."
        return {**found, "vs_previous": None, "vs_previous_note": note}
    before = history.previous(current, base)
    if before is None:
        return {**found, "vs_previous": None, "vs_previous_note": NO_PREVIOUS}
    try:
        earlier = history.base(before)
    except ArtifactError as exc:
        return {**found, "vs_previous": None, "vs_previous_note": unreadable(before, exc)}
    try:
        previous = plain(earlier.kpis(query))
    except (filters.FilterError, KeyError, ValueError) as exc:
        note = f"The snapshot of {before.label} cannot take these filters: {exc}"
        return {**found, "vs_previous": None, "vs_previous_note": note}
    change = mover_rules.kpi_change(found, previous)
    return {
        **found,
        "as_of": current.label,
        "previous_as_of": before.label,
        "vs_previous": plain(change),
        "previous": previous,
        "vs_previous_note": "",
    }


def movers(
    history: History | None, base: ServedBase, query: str, *, limit: int = MOVERS_LIMIT
) -> dict:
    """Customers whose risk rose most since the previous snapshot (in the selection), and the
    ones newly on the high-value at-risk list, with their reasons then and now."""
    base.require_model("movers")
    out = {"items": [], "newly_at_risk": [], "as_of": None, "previous_as_of": None}
    current = history.current(base) if history is not None else None
    before = history.previous(current, base) if current is not None else None
    if before is None:
        return {**out, "note": NO_SNAPSHOTS if current is None else NO_PREVIOUS}
    try:
        then = history.base(before).scored
    except ArtifactError as exc:
        return {**out, "note": unreadable(before, exc)}
    key = ("movers", current.id, before.id, base.state(query).key(), limit)
    return history.figures(key, lambda: _movers(base, query, then, current, before, limit, out))


def _movers(base, query, then, current, before, limit, out) -> dict:
    now = base.view(query)
    ranked = mover_rules.movers(now, then, limit=limit)
    in_both = _is_in(now[C.CUSTOMER_ID], then[C.CUSTOMER_ID])
    newly, newly_total = _newly(now, then, limit)
    return {
        **out,
        "as_of": current.label,
        "previous_as_of": before.label,
        "items": records(ranked),
        "total": int(in_both.sum()),
        "newly_at_risk": records(newly),
        "newly_at_risk_total": newly_total,
        "note": "" if len(ranked) else "No customer of this selection is in both snapshots.",
    }


def _is_in(ids: pd.Series, others: pd.Series) -> np.ndarray:
    """ids.astype(str).isin(others.astype(str)) in a twentieth of the time on a million ids
    (pandas' string isin builds Python lists; Arrow hashes them in C)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    found = pc.is_in(pa.array(ids.astype(str)), value_set=pa.array(others.astype(str)))
    return found.to_numpy(zero_copy_only=False)


def _newly(now: pd.DataFrame, then: pd.DataFrame, limit: int) -> tuple[pd.DataFrame, int]:
    """The first `limit` of the selection's customers newly on the at-risk list, in its order,
    with their probability before (None for one the previous snapshot did not have); and how
    many there are."""
    every = mover_rules.newly_at_risk(now, then)
    ids = every[:limit]
    keyed = now.set_index(now[C.CUSTOMER_ID].astype(str))
    rows = keyed.loc[ids]
    before = then.drop_duplicates(C.CUSTOMER_ID).set_index(then[C.CUSTOMER_ID].astype(str))
    found = before[C.P_CHURN].reindex(ids).to_numpy(dtype=float)
    band = before[C.RISK_BAND].astype("string").reindex(ids).to_numpy()
    out = pd.DataFrame({
        C.CUSTOMER_ID: ids.to_numpy(),
        C.P_CHURN: rows[C.P_CHURN].to_numpy(dtype=float),
        "p_churn_previous": found,
        "rise": rows[C.P_CHURN].to_numpy(dtype=float) - found,
        C.RISK_BAND: rows[C.RISK_BAND].astype("string").to_numpy(),
        "risk_band_previous": band,
        C.EXPECTED_LOSS: rows[C.EXPECTED_LOSS].to_numpy(dtype=float),
        C.VALUE: rows[C.VALUE].to_numpy(dtype=float),
        "reasons": [[r for r in row if isinstance(r, str) and r] for row in
                    rows[[c for c in C.REASONS if c in rows]].itertuples(index=False)],
        "newly_at_risk": True,
    })  # fmt: skip
    return out, len(every)


# -- revenue ------------------------------------------------------------------------------------

REVENUE_COLUMNS = (C.CUSTOMER_ID, C.MONTHLY_REVENUE)


def revenue(history: History | None, base: ServedBase, query: str) -> dict:
    """ChartMogul's movements per month between consecutive snapshots, for the selection."""
    if history is None:
        return {"months": [], "note": NO_SNAPSHOTS}
    every = history.chosen(_version(base))
    chosen = every[-(MAX_MONTHS + 1) :]
    state = base.state(query)
    scope = access.current_scope()
    key = ("revenue", state.key(), str(scope), tuple(i.id for i in chosen))
    try:
        found = history.figures(key, lambda: _revenue(history, chosen, state, skip=False))
    except ArtifactError:  # not cached: the months come back once the file does
        found = _revenue(history, chosen, state, skip=True)
    if len(every) > len(chosen):
        shown = f"The last {MAX_MONTHS} months are shown, from the snapshot of {chosen[0].label}."
        return {**found, "note": " ".join(n for n in (found["note"], shown) if n)}
    return found


def _revenue(history: History, chosen, state, *, skip: bool) -> dict:
    """`skip`: leave out a snapshot whose file is refused, and the month on each side of it
    (they would span two months), rather than raise."""
    frames, gaps, notes = [], set(), []
    for info in chosen:
        budget.check()  # between files: a request past its budget ends (503), not the worker
        try:
            frame = _columns(history, info, state)
        except ArtifactError as exc:
            if not skip:
                raise
            notes.append(unreadable(info, exc))
            gaps.add(frames[-1][0].isoformat()[:7] if frames else None)
            continue
        if C.MONTHLY_REVENUE not in frame:
            return {"months": [], "note": f"The snapshot of {info.label} has no monthly_revenue."}
        if any(c not in frame for c, v in state.levels.items() if v):
            keep = np.zeros(len(frame), dtype=bool)  # a column another dataset lacks: nobody
        else:
            keep = filters.mask(frame, state) if not state.is_empty else slice(None)
        frames.append((info.as_of, frame.loc[keep, list(REVENUE_COLUMNS)]))
    if notes:
        notes.append("The months next to it are left out.")
    if len(frames) < 2:
        return {"months": [], "note": " ".join(notes) or "Revenue movements need two snapshots."}
    months = revenue_rules.revenue_months(frames)
    out = records(months)
    for row in out:
        row["month"] = str(row["month"])[:7]
    return {"months": [r for r in out if r["month"] not in gaps], "note": " ".join(notes)}


def _columns(history: History, info, state, needed=REVENUE_COLUMNS) -> pd.DataFrame:
    """The columns a view needs of a snapshot (`needed` and what the filters read), without
    building a served base for each month."""
    wanted = set(needed) | {c for c, v in state.levels.items() if v}
    if state.tenure_min is not None or state.tenure_max is not None:
        wanted.add(C.TENURE)
    return store.read_frame(history.state_dir, info, columns=wanted)


# -- monitoring ------------------------------------------------------------------------------


def monitoring(history: History | None, base: ServedBase | None = None, query: str = "") -> dict:
    """Realised performance of every snapshot whose window has passed (for the selection of
    `base`'s filters and scope), the drift of the watched model (the one that scored the newest
    snapshot of data it was not trained on) and whether it is decaying. The banner suggesting a
    retrain is raised only when the watched model is the live one: a model already replaced
    by one trained on newer data needs no retraining."""
    out = {"snapshots": [], "drift": [], "watched_model": None, "decay": None, "banner": None}
    if history is None:
        return {**out, "note": NO_SNAPSHOTS}
    known = [i for i in history.all() if i.summary.get("outcome_known")]
    chosen = known[-MAX_MONTHS:]
    rows, notes = [], []
    if len(known) > len(chosen):
        notes.append(f"The newest {MAX_MONTHS} realised checks are shown.")
    for info in chosen:
        budget.check()
        try:
            found = _realised(history, info, base, query)
        except ArtifactError as exc:  # the others are still shown
            notes.append(unreadable(info, exc))
            continue
        if found is None:
            continue
        rows.append({
            "as_of": info.label,
            "model_version": info.model_version,
            "in_sample": bool(info.summary.get("in_sample")),
            "expected_roc_auc": info.summary.get("expected_roc_auc"),
            **{f"realised_{k}": v for k, v in found.items() if k != "calibration"},
            "calibration": found.get("calibration", []),
        })  # fmt: skip
    outside = [r for r in rows if not r["in_sample"]]
    watched = _watched(history, base)
    drift = watched.summary.get("drift", []) if watched is not None else []
    decay = None
    if watched is not None:
        mine = [r for r in outside if r["model_version"] == watched.model_version]
        decay = plain(monitor.decay(
            [{"as_of": r["as_of"], "roc_auc": r.get("realised_roc_auc")} for r in mine],
            watched.summary.get("expected_roc_auc"),
            DECAY_MARGIN,
        ))  # fmt: skip
    return {
        **out,
        "snapshots": plain(rows),
        "drift": plain(drift),
        "watched_model": watched.model_version if watched is not None else None,
        "drift_as_of": watched.label if watched is not None else None,
        "decay": decay,
        "banner": _banner(watched, drift, decay) if _is_live(watched, base) else None,
        "note": " ".join([*notes, _replaced(watched, base)]).strip()
        or ("" if rows else "No snapshot whose window has passed yet."),
    }


def _is_live(watched, base: ServedBase | None) -> bool:
    return watched is not None and (base is None or watched.model_version == _version(base))


def _replaced(watched, base: ServedBase | None) -> str:
    if watched is None or _is_live(watched, base):
        return ""
    return (
        f"The drift and decay are those of model {watched.model_version}, which scored the "
        f"snapshot of {watched.label}; the live model {_version(base)} has replaced it, so no "
        "retrain is suggested."
    )


def _watched(history: History, base: ServedBase | None) -> store.SnapshotInfo | None:
    """The newest snapshot the model in use scored on data it was not trained on; before it
    has one, the newest any model scored so (the model it replaced, say)."""
    outside = [i for i in history.all() if not i.summary.get("in_sample")]
    live = _version(base) if base is not None else None
    mine = [i for i in outside if i.model_version == live]
    candidates = mine or outside
    return max(candidates, key=lambda i: (i.as_of, i.created_at or "")) if candidates else None


def _realised(history: History, info, base: ServedBase | None, query: str):
    """Realised figures of one snapshot for the selection, from the three or four columns
    they need (not a served base per snapshot: there may be dozens of a million rows)."""
    if base is not None:
        state = base.state(query)
    else:  # the whole base, or the scope set around the call (an alert rule a manager owns)
        state = filters.FilterState(levels=access.within({}, access.current_scope()))
    key = ("realised", info.id, state.key())

    def make():
        frame = _columns(history, info, state, (C.P_CHURN, C.CHURNED))
        if any(c not in frame for c, v in state.levels.items() if v):
            return None  # a filter or scope column this snapshot lacks: nobody in it
        keep = filters.mask(frame, state) if not state.is_empty else slice(None)
        return monitor.realised(frame.loc[keep])

    return history.figures(key, make)


def _banner(watched, drift, decay) -> str | None:
    if watched is None:
        return None
    large = [d for d in drift if (d.get("psi") or 0) > LARGE_PSI]
    parts = []
    if decay and decay.get("decayed"):
        parts.append(str(decay.get("message") or "realised ROC-AUC fell below the expected one"))
    if large:
        named = ", ".join(f"{d['feature']} (PSI {d['psi']:.2f})" for d in large[:3])
        parts.append(f"large drift in {named}")
    if not parts:
        return None
    return (
        f"Model {watched.model_version} on the snapshot of {watched.label}: "
        + "; ".join(parts)
        + ". Retraining on recent data is suggested."
    )


# -- campaigns ------------------------------------------------------------------------------

DEFAULT_CONTROL_SHARE = 0.10
PAST_SNAPSHOT = (
    "a campaign contacts customers now: create it from the live scoring, without ?snapshot="
)
MAX_SEED = 2**31 - 1  # campaigns.seed is an integer column: 32 bits in PostgreSQL
# Members written in the request that makes the campaign (and its treated ids in the answer):
# about 2 s at this size; a whole million-row base would hold a worker for minutes.
MAX_CAMPAIGN = 100_000


def create_campaign(
    history: History,
    base: ServedBase,
    query: str,
    body: dict,
    actor: str,
    address: str | None,
) -> dict:
    """A campaign from the planner's contact list of the selection (its best N, or the first
    `limit`): a random control group stratified by risk band is held out; only the treated
    are returned for contact. Only from the live scoring: a campaign drawn from an older
    snapshot, whose outcome is known, would "measure" a save rate nobody's contact caused, and
    the planner would then offer it."""
    base.require_model("campaigns")
    if isinstance(base.ws.model, Scoring):
        raise InvalidInput(PARAM, PAST_SNAPSHOT)
    current = history.current(base)
    if current is None:
        raise InvalidInput("snapshot", NO_SNAPSHOTS)
    name = str(body.get("name") or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("name", "a name of 1 to 200 characters is required")
    if not plain_name(name):
        raise InvalidInput("name", NAME_RULE)
    share = _number(body, "control_share", DEFAULT_CONTROL_SHARE)
    if not 0 < share <= 0.5:
        raise InvalidInput("control_share", f"must be above 0 and at most 0.5; got {share:g}")
    seed = body.get("seed")
    if seed is None:
        seed = _seed()
    elif isinstance(seed, bool) or not isinstance(seed, int) or not 1 <= seed <= MAX_SEED:
        raise InvalidInput("seed", f"expected a whole number from 1 to {MAX_SEED:,}, got {seed!r}")
    contacts = _contact_list(base, query, body)
    groups = campaign_rules.assign_groups(contacts, share, seed)
    scope = access.current_scope()
    info = store.add_campaign(
        history.engine,
        name=name,
        snapshot=current,
        control_share=share,
        seed=seed,
        inputs={k: body[k] for k in body if k != "name"} | {"filters": query},
        members=groups,
        scope=(scope.column, scope.values) if scope else None,
        actor=actor,
        address=address,
    )
    treated = groups[groups["group"] == "treated"]["customer_id"].astype(str).tolist()
    return {
        "campaign_id": info.id,
        "name": info.name,
        "as_of": info.as_of.isoformat(),
        "treated": info.treated,
        "control": info.control,
        "treated_ids": treated,
    }


def _seed() -> int:
    return int(np.random.default_rng().integers(1, MAX_SEED))


def _number(body: dict, name: str, default: float) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(name, f"expected a number, got {value!r}")
    return float(value)


def _contact_list(base: ServedBase, query: str, body: dict) -> pd.DataFrame:
    defaults = planner_service.Assumptions.defaults(base.ws.settings)
    given = {k: body.get(k) for k in planner_service.Assumptions.LIMITS}
    assumptions = planner_service.Assumptions.checked(
        **{k: getattr(defaults, k) if v is None else v for k, v in given.items()}
    )
    if "limit" in body:
        limit = body["limit"]
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CAMPAIGN:
            raise InvalidInput(
                "limit",
                f"expected a whole number of contacts, 1 to {MAX_CAMPAIGN:,}, got {limit!r}",
            )
        frame = _top_by_expected_loss(base, query, limit)
    else:
        frame = planner_service.contacts_frame(base, query, assumptions)
    if not len(frame):
        raise InvalidInput("filters", "the plan contacts nobody in this selection")
    if len(frame) > MAX_CAMPAIGN:
        raise InvalidInput(
            "limit",
            f"the plan contacts {len(frame):,} customers and a campaign holds at most "
            f"{MAX_CAMPAIGN:,}: give a limit or narrow the selection",
        )
    return frame[[C.CUSTOMER_ID, C.RISK_BAND, C.P_CHURN]].reset_index(drop=True)


def _top_by_expected_loss(base: ServedBase, query: str, limit: int) -> pd.DataFrame:
    """The planner's order (METRICS.md: active customers by expected loss, descending), its
    first `limit`, whether or not contacting them all pays."""
    rows = base.ranked(query, C.EXPECTED_LOSS)
    loss = base.scored[C.EXPECTED_LOSS].to_numpy(dtype=float, na_value=np.nan)[rows]
    rows = rows[base.active[rows] & np.isfinite(loss)][:limit]
    return base.scored.iloc[rows]


def campaign_list(history: History | None, base: ServedBase) -> dict:
    """Every campaign the user may see, each measured once a later snapshot says who left."""
    if history is None:
        return {"campaigns": [], "note": NO_SNAPSHOTS}
    scope = access.current_scope()
    items = [
        _measured(history, info, base)
        for info in store.campaigns(history.engine)
        if _visible(info, scope)
    ]
    return {"campaigns": items, "note": "" if items else "No campaigns yet."}


def _visible(info: store.CampaignInfo, scope: access.Scope | None) -> bool:
    """Everyone sees a campaign made without a scope (a manager: measured on their scope's
    members only); a manager's campaign is seen by managers of the same scope."""
    if scope is None or info.scope_column is None:
        return True
    return info.scope_column == scope.column and set(info.scope_values or ()) <= set(scope.values)


def _measured(history: History, info: store.CampaignInfo, base: ServedBase) -> dict:
    outcome_info = _outcome_snapshot(history, info, base)
    scope = access.current_scope()
    treated, control = info.treated, info.control
    if scope is not None and info.scope_column is None:  # the counts a manager may see
        treated, control = _scope_counts(history, info, scope)
    out = {
        "campaign_id": info.id,
        "name": info.name,
        "as_of": info.as_of.isoformat(),
        "control_share": info.control_share,
        "treated": treated,
        "control": control,
        "created_by": info.created_by,
        "created_at": info.created_at,
        "outcome_as_of": outcome_info.label if outcome_info is not None else None,
    }
    if outcome_info is None:
        note = "Waiting for a later snapshot that says who left."
        return {**out, "measured_save_rate": None, "ci_low": None, "ci_high": None, "note": note}

    def make():
        members = store.members(history.engine, info.id)
        wanted = {C.CUSTOMER_ID, C.CHURNED} | ({scope.column} if scope else set())
        frame = store.read_frame(history.state_dir, outcome_info, columns=wanted)
        frame = frame.set_index(frame[C.CUSTOMER_ID].astype(str))
        if scope is not None:  # a manager reads their scope's members only
            inside = frame.get(scope.column, pd.Series(dtype=str)).astype(str).isin(scope.values)
            members = members[members["customer_id"].astype(str).isin(inside[inside].index)]
        return plain(campaign_rules.measure(members, frame[C.CHURNED]))

    try:
        found = dict(history.figures(("campaign", info.id, outcome_info.id, str(scope)), make))
    except ArtifactError as exc:
        note = unreadable(outcome_info, exc)
        return {**out, "measured_save_rate": None, "ci_low": None, "ci_high": None, "note": note}
    groups = {"treated_outcome": found.pop("treated"), "control_outcome": found.pop("control")}
    return {**out, **found, **groups, "measured_save_rate": found.get("save_rate")}


def _scope_counts(history: History, info: store.CampaignInfo, scope) -> tuple[int, int]:
    """(treated, control) of a campaign's members in `scope`, as the snapshot they were drawn
    from places them: a manager sees no count of customers outside their scope, whether or not
    the campaign has been measured yet (0, 0 when that snapshot cannot be read)."""

    source = store.snapshot(history.engine, info.snapshot_id)

    def make():
        members = store.members(history.engine, info.id)
        frame = store.read_frame(history.state_dir, source, columns={C.CUSTOMER_ID, scope.column})
        if scope.column not in frame:
            return 0, 0
        inside = frame[frame[scope.column].astype(str).isin(scope.values).to_numpy()]
        mine = members[members["customer_id"].astype(str).isin(inside[C.CUSTOMER_ID].astype(str))]
        groups = mine["group"].astype(str)
        return int((groups == "treated").sum()), int((groups == "control").sum())

    try:
        return history.figures(("scope counts", info.id, str(scope)), make)
    except ArtifactError as exc:
        unreadable(source, exc)
        return 0, 0


def _outcome_snapshot(history: History, info: store.CampaignInfo, base: ServedBase):
    later = [
        i
        for i in history.chosen(_version(base))
        if i.as_of > info.as_of and i.summary.get("outcome_known")
    ]
    return later[0] if later else None


def measured_save_rate(history: History | None, base: ServedBase) -> dict | None:
    """The newest campaign's measured save rate the user may see (for the planner), or None."""
    if history is None:
        return None
    for item in campaign_list(history, base)["campaigns"]:
        if item.get("measured_save_rate") is not None:
            # A campaign that made churn worse measured s < 0: the planner takes s in [0, 1]
            # (and says the measured figure beside it).
            return {
                "save_rate": min(max(float(item["measured_save_rate"]), 0.0), 1.0),
                "measured": item["measured_save_rate"],
                "ci_low": item.get("ci_low"),
                "ci_high": item.get("ci_high"),
                "campaign": item["name"],
                "campaign_id": item["campaign_id"],
            }
    return None

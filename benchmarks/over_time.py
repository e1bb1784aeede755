"""The over-time views (issue 13) at 1,000,000 customers, through Flask's test client.

    flock /tmp/bench.lock .venv/bin/python -m benchmarks.over_time --customers 1000000

The base and its model are dashboard_speed's (3.2 generated rows per current customer, cached
under benchmarks/out/). The newest of --snapshots monthly snapshots is that scored base; each
earlier month is the one after it with p_churn jittered, about 2.5% of its customers not yet
there (new), 2.5% more who left during it (churned = 1, drawn by p_churn, so realised ROC-AUC
is real), 3% with another monthly revenue, the value columns recomputed. They are recorded in a
fresh SQLite state database under benchmarks/out/over_time/ (recreated each run). Then, as an
analyst with a token, each request is timed on its first ask (cold) and as the p50 of 5 repeats
(warm), unfiltered and with --filter. Prints markdown; peak memory is the process's max RSS.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import time

import numpy as np
import pandas as pd

from analytics import columns as C
from analytics import snapshots, synthetic
from analytics.config import settings_from_env
from analytics.history import campaigns as campaign_rules
from analytics.history import monitoring
from analytics.metrics import value
from analytics.services.history import History
from analytics.store import accounts, artifacts, db, lifecycle
from analytics.store import snapshots as store
from analytics.workflow import load_or_train
from benchmarks.dashboard_speed import OUT
from dashboard.api import history as history_api
from dashboard.app import create_app
from dashboard.server import settle

MOVED = 0.025  # of a month's customers: new since the month before; as many left during it
REPRICED = 0.03  # of a month's customers: a different monthly revenue the month before
REPEATS = 5
CONTACTS = 5000


def base_workspace(customers: int, seed: int):
    """dashboard_speed's generated table (customers x 3.2 rows) and its cached model."""
    OUT.mkdir(parents=True, exist_ok=True)
    rows = customers * 16 // 5
    path = OUT / f"customers-{rows}.csv.gz"
    if not path.exists():
        artifacts.write_table(synthetic.generate(rows, seed=seed), path)
    return load_or_train(path, settings_from_env(env={}), models_dir=OUT / f"models-{rows}",
                         key=artifacts.installation_key(),
                         progress=lambda m: print(f"  {m}", file=sys.stderr))  # fmt: skip


def month_before(frame: pd.DataFrame, month: int, rng, ws) -> pd.DataFrame:
    """The plausible month before `frame`: vectorised, a second or two at 1,000,000 rows."""
    stayed = frame.loc[rng.random(len(frame)) >= MOVED].reset_index(drop=True)
    p = np.clip(stayed[C.P_CHURN].to_numpy(dtype=float), 1e-6, 1 - 1e-6)
    p = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + rng.normal(0, 0.3, len(p)))))
    stayed[C.P_CHURN] = p
    stayed[C.CHURNED] = 0
    left = stayed.iloc[rng.choice(len(p), int(MOVED * len(p)), replace=False, p=p / p.sum())]
    left = left.copy()
    ids = f"left-{month:02d}-" + pd.Series(np.arange(len(left))).astype(str)
    left[C.CUSTOMER_ID] = ids.to_numpy()
    left[C.CHURNED] = 1
    out = pd.concat([stayed, left], ignore_index=True)
    moved = rng.random(len(out)) < REPRICED
    factor = rng.choice([0.8, 0.9, 1.1, 1.25], size=int(moved.sum()))
    out.loc[moved, C.MONTHLY_REVENUE] = (out.loc[moved, C.MONTHLY_REVENUE] * factor).round(2)
    out[C.TENURE] = np.maximum(out[C.TENURE] - 1, 0)
    meta, settings = ws.model.meta, ws.settings
    return value.add_value_columns(out, threshold=meta["threshold"], margin=settings.margin,
                                   discount=settings.discount,
                                   window_months=meta.get("window_months", 1))  # fmt: skip


def record_months(engine, state, ws, count: int, seed: int) -> dict:
    """Record `count` monthly snapshots, newest (the scored base) first; the one-off costs."""
    info = lifecycle.DatasetInfo(id="bench-over-time", name="benchmark base", kind="file",
                                 file_sha256="0" * 64, path="", mapping={}, rows=len(ws.scored),
                                 report={})  # fmt: skip
    lifecycle.add_dataset(engine, info, "benchmark")
    newest = pd.Period(snapshots.as_of_of(ws.table, info), "M")
    rng = np.random.default_rng(seed)
    frame, made, costs = ws.scored.reset_index(drop=True), [], {"generate": []}
    for k in range(count):
        if k:
            t0 = time.perf_counter()
            frame = month_before(frame, k, rng, ws)
            costs["generate"].append(time.perf_counter() - t0)
        drift = []
        if k == 1:  # monitoring reads the drift of the newest out-of-time snapshot only
            features = ws.model.meta["features"]
            drift = snapshots._records(monitoring.drift(ws.model.scored, frame, features))
        summary = snapshots.summary(frame, ws.model, ws.table, in_sample=k == 0, drift=drift)
        t0 = time.perf_counter()
        snap, _ = store.add_snapshot(engine, state, frame, as_of=(newest - k).end_time.date(),
                                     model_version=ws.model.version, dataset_id=info.id,
                                     kind="manual", summary=summary, actor="benchmark")  # fmt: skip
        costs.setdefault("write", time.perf_counter() - t0)
        made.append(snap)
        if k == 3:  # a past campaign, as the demo's history has: the list measures it
            past_campaign(engine, snap, frame, seed)
    t0 = time.perf_counter()
    store.read_frame(state, made[1])
    costs["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    History(engine, state, ws.settings).base(made[1])  # a fresh cache: read + ServedBase
    costs["read_and_serve"] = time.perf_counter() - t0
    costs["mb"] = (state / made[0].path).stat().st_size / 1e6
    return costs


def past_campaign(engine, snap, frame: pd.DataFrame, seed: int) -> None:
    """5,000 contacts by expected loss from an older snapshot, a tenth held out."""
    top = frame.nlargest(CONTACTS, C.EXPECTED_LOSS)
    members = campaign_rules.assign_groups(top, 0.1, seed)
    store.add_campaign(engine, name="past campaign", snapshot=snap, control_share=0.1,
                       seed=seed, inputs={}, members=members, scope=None,
                       actor="benchmark")  # fmt: skip


def analyst(ws, engine, state):
    """The app as tests/test_over_time.py builds it, and an analyst's token client."""
    server = create_app(ws, state=engine)
    server.extensions[history_api.EXTENSION] = History(engine, state, ws.settings)
    settle()
    accounts.add_user(engine, "bench", "analyst", "benchmark-password", actor="benchmark")
    client = server.test_client()
    token = accounts.create_token(engine, "bench")[1]
    client.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token
    return client


def timed(client, method: str, url: str, body=None) -> tuple[float, float, int]:
    """(cold ms, warm p50 ms over REPEATS, status of the first ask)."""
    times, status = [], None
    for _ in range(1 + REPEATS):
        t0 = time.perf_counter()
        response = client.open(url, method=method, json=body)
        times.append((time.perf_counter() - t0) * 1000)
        status = status or response.status_code
        if response.status_code >= 400 and response.status_code != 503:
            raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:300]}")
    return times[0], statistics.median(times[1:]), status


def requests(older: str, where: str) -> list[tuple[str, str, dict | None]]:
    """The requests, in the order asked (each view's cold ask follows the ones before it)."""

    def q(path: str, *params: str) -> str:
        found = "&".join(p for p in (*params, where) if p)
        return f"{path}?{found}" if found else path

    plan = {"name": "benchmark", "limit": CONTACTS}
    return [
        ("GET", "/api/v1/snapshots", None),
        ("GET", q("/api/v1/kpis"), None),
        ("GET", q("/api/v1/kpis", f"snapshot={older}"), None),
        ("GET", q("/api/v1/customers/movers", "limit=50"), None),
        ("GET", q("/api/v1/revenue"), None),
        ("GET", q("/api/v1/monitoring"), None),
        ("GET", "/api/v1/campaigns", None),
        ("POST", q("/api/v1/campaigns"), plan),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="current base (about)")
    parser.add_argument("--snapshots", type=int, default=13, help="monthly snapshots (>= 5)")
    parser.add_argument("--filter", default="region=North&contract=Monthly")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    ws = base_workspace(args.customers, args.seed)
    prepare = time.perf_counter() - t0
    root = OUT / "over_time"
    shutil.rmtree(root, ignore_errors=True)
    engine = db.open_state(db.database_url(root, None))[0]
    t0 = time.perf_counter()
    costs = record_months(engine, root, ws, args.snapshots, args.seed)
    record = time.perf_counter() - t0
    client = analyst(ws, engine, root)
    dates = [s["as_of"] for s in client.get("/api/v1/snapshots").get_json()["snapshots"]]
    rows = []
    for where in ("", args.filter):
        for method, url, body in requests(dates[3], where):
            if where and "?" not in url:
                continue  # the list of snapshots and of campaigns take no filters
            rows.append((method, url, *timed(client, method, url, body)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux
    print(f"# Over time: {len(ws.scored):,} customers, {args.snapshots} monthly snapshots\n")
    print(f"- load the base and model: {prepare:.1f} s; record the snapshots: {record:.1f} s")
    print(f"- make one earlier month (vectorised): {statistics.median(costs['generate']):.2f} s")
    print(f"- record the newest snapshot (add_snapshot, {costs['mb']:.0f} MB Parquet): "
          f"{costs['write']:.1f} s")  # fmt: skip
    print(f"- read one back (read_frame): {costs['read']:.1f} s; read_frame + its ServedBase "
          f"(History.base): {costs['read_and_serve']:.1f} s")  # fmt: skip
    print(f"- peak resident memory: {peak:.1f} GB\n")
    print("| request | cold ms | warm p50 ms | status |\n|---|---:|---:|---|")
    for method, url, cold, warm, status in rows:
        print(f"| {method} {url} | {cold:,.0f} | {warm:,.1f} | {status} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Server-side speed of the dashboard through the real Dash request path.

    .venv/bin/python -m benchmarks.dashboard_speed --customers 320000

Generates a base (rows = customers ever signed up; about 31% are in the current base), trains
once (cached under benchmarks/out/), builds the app and then, with Flask's test client, times:

- the first page: GET /, the layout, the dependencies and every callback the page fires on load
  for the Overview tab;
- filter changes: for distinct, never-seen filter states (no cache hits), the filter callback and
  every callback that listens to the filter store, per tab;
- the at-risk grid's page request.

Each figure is wall time in this process for the POST /_dash-update-component round trip
(JSON parsing, the callback, serialising the response), p50 and p95 over the changes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from analytics import columns as C
from analytics import filters, synthetic
from analytics.config import PROJ_ROOT, settings_from_env
from analytics.store import accounts, artifacts
from analytics.workflow import load_or_train
from dashboard import ids
from dashboard.app import STATE_DB, create_app, dash_app, served_base
from dashboard.layout import components_by_id
from dashboard.server import settle

OUT = PROJ_ROOT / "benchmarks" / "out"


def component_props(layout) -> dict:
    """id (str or JSON) -> the component's props as set in the layout."""
    return {
        key: {p: getattr(node, p, None) for p in node._prop_names}
        for key, node in components_by_id(layout).items()
    }


def matches(pattern: dict, cid: dict) -> bool:
    return all(k in cid and (v == ["ALL"] or v == cid[k]) for k, v in pattern.items()) and set(
        cid
    ) == set(pattern)


class Page:
    """The browser's view of the component props, enough to build callback requests."""

    def __init__(self, app) -> None:
        self.app = app
        self.props = component_props(app.layout())

    def value(self, cid, prop):
        key = json.dumps(cid, sort_keys=True) if isinstance(cid, dict) else cid
        return self.props.get(key, {}).get(prop)

    def set(self, cid, prop, value) -> None:
        self.props.setdefault(cid, {})[prop] = value

    def deps(self, deps: list[dict]) -> list:
        out = []
        for dep in deps:
            cid = dep["id"]
            if isinstance(cid, str) and cid.startswith("{"):
                cid = json.loads(cid)
            if isinstance(cid, dict):
                group = [
                    {
                        "id": json.loads(k),
                        "property": dep["property"],
                        "value": v.get(dep["property"]),
                    }
                    for k, v in self.props.items()
                    if k.startswith("{") and matches(cid, json.loads(k))
                ]
                out.append(group)
            else:
                out.append(
                    {
                        "id": cid,
                        "property": dep["property"],
                        "value": self.value(cid, dep["property"]),
                    }
                )
        return out

    def outputs(self, spec) -> list | dict:
        parts = spec["output"].strip(".").split("...")
        result = []
        for part in parts:
            cid, prop = part.rsplit(".", 1)
            if cid.startswith("{"):
                pattern = json.loads(cid)
                result.append(
                    [
                        {"id": json.loads(k), "property": prop}
                        for k in self.props
                        if k.startswith("{") and matches(pattern, json.loads(k))
                    ]
                )
            else:
                result.append({"id": cid, "property": prop})
        return result if spec["output"].startswith("..") else result[0]

    def request(self, client, spec, changed: list[str]) -> tuple[float, bool]:
        """Time one callback request; returns (seconds, whether it updated anything)."""
        body = {
            "output": spec["output"],
            "outputs": self.outputs(spec),
            "inputs": self.deps(spec["inputs"]),
            "state": self.deps(spec["state"]),
            "changedPropIds": changed,
        }
        start = time.perf_counter()
        response = client.post("/_dash-update-component", json=body)
        elapsed = time.perf_counter() - start
        if response.status_code not in (200, 204):
            raise RuntimeError(
                f"{spec['output']}: HTTP {response.status_code}: "
                f"{response.get_data(as_text=True)[:300]}"
            )
        return elapsed, response.status_code == 200


def listens_to(spec, cid: str, prop: str) -> bool:
    """Whether `spec` has the plain (not pattern-matching) input cid.prop."""
    return any(d["id"] == cid and d["property"] == prop for d in spec["inputs"])


NAMES = {
    ids.KPI: "KPI cards",
    ids.TREND: "trend",
    ids.COHORT: "cohort heatmap",
    ids.DOUGHNUT: "segments (doughnut, churn by segment, profiles)",
    ids.FACTOR_GRAPH: "drivers (churn by factor, importance)",
    ids.SCATTER: "value x risk scatter",
    ids.AT_RISK_COUNT: "at-risk count line",
    ids.PLAN_ERROR: "retention planner",
    ids.CONFUSION: "model: threshold, confusion matrix, lift",
}


def name_of(spec) -> str:
    first = spec["output"].strip(".").split("...")[0].rsplit(".", 1)[0]
    if first.startswith("{"):
        first = json.loads(first)["type"]
    return NAMES.get(first, first)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def filter_states(data, n: int, seed: int = 0) -> list[str]:
    """Distinct filter queries that each select someone, built from the data's own levels."""
    rng = np.random.default_rng(seed)
    columns = [c for c in data.filter_columns if len(data.allowed[c]) > 1]
    lo, hi = data.tenure_range
    seen, out = set(), []
    while len(out) < n:
        levels = {}
        for col in rng.choice(columns, size=rng.integers(1, 3), replace=False):
            levels[col] = tuple(rng.choice(data.allowed[col], size=1))
        tmin = float(rng.integers(lo, max(lo + 1, hi // 2))) if rng.random() < 0.5 else None
        state = filters.FilterState(levels=levels, tenure_min=tmin)
        query = filters.to_query(state)
        if query in seen or not filters.mask(data.scored, state).any():
            continue
        seen.add(query)
        out.append(query)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--customers",
        type=int,
        default=320_000,
        help="rows to generate (about 31%% form the current base)",
    )
    parser.add_argument("--changes", type=int, default=20, help="distinct filter changes")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)

    OUT.mkdir(parents=True, exist_ok=True)
    data_path = OUT / f"customers-{args.customers}.csv.gz"
    if not data_path.exists():
        artifacts.write_table(synthetic.generate(args.customers, seed=args.seed), data_path)
    t0 = time.perf_counter()
    ws = load_or_train(
        data_path,
        settings_from_env(env={}),
        models_dir=OUT / f"models-{args.customers}",
        key=artifacts.installation_key(),  # the CLI's and the server's: the cached model loads
        progress=lambda m: print(f"  {m}", file=sys.stderr),
    )
    prepare = time.perf_counter() - t0
    t0 = time.perf_counter()
    server = create_app(ws)
    app = dash_app(server)
    settle()  # as the servers do before serving (wsgi.py, python -m dashboard)
    build = time.perf_counter() - t0
    # An analyst's token: every request passes the login guard as in production (one indexed
    # token lookup in the state database per request is part of each figure).
    engine = server.extensions[STATE_DB]
    accounts.add_user(engine, "bench", "analyst", "benchmark-password", actor="benchmark")
    client = server.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = (
        "Bearer " + accounts.create_token(engine, "bench")[1]
    )
    specs = [
        s for s in app._callback_list if not s.get("clientside_function") and not s.get("no_output")
    ]
    data = served_base(server)

    # First page: the HTML, layout, dependencies and the callbacks fired on load (Overview).
    page = Page(app)
    t0 = time.perf_counter()
    for path in ("/", "/_dash-layout", "/_dash-dependencies"):
        assert client.get(path).status_code == 200
    page.set(ids.FILTER_QUERY, "data", "")
    page.set(ids.URL, "search", "")
    page.set(ids.TABS, "active_tab", "overview")
    initial = [s for s in specs if not s.get("prevent_initial_call")]
    for spec in initial:
        page.request(client, spec, [])
    first_page = time.perf_counter() - t0

    # Filter changes, per tab, on states never seen before.
    queries = filter_states(data, args.changes * 6, seed=args.seed)
    per_callback: dict[str, list[float]] = {}
    per_change: dict[str, list[float]] = {}
    sync = next(s for s in specs if listens_to(s, ids.RESET, "n_clicks"))
    tabs = ("overview", "drivers", "customers", "planner", "model")
    for t, tab in enumerate(tabs):
        page.set(ids.TABS, "active_tab", tab)
        listeners = [s for s in specs if listens_to(s, ids.FILTER_QUERY, "data")]
        for query in queries[t * args.changes : (t + 1) * args.changes]:
            page.set(ids.URL, "search", query)
            total, _ = page.request(client, sync, [f"{ids.URL}.search"])
            per_callback.setdefault("filters (URL/controls sync)", []).append(total)
            page.set(ids.FILTER_QUERY, "data", query)
            for spec in listeners:
                elapsed, updated = page.request(client, spec, [f"{ids.FILTER_QUERY}.data"])
                if updated:  # callbacks of hidden tabs answer 204 at once: not reported
                    per_callback.setdefault(f"{name_of(spec)} [{tab}]", []).append(elapsed)
                total += elapsed
            if tab == "customers" and C.MONTHLY_REVENUE in data.scored:
                grid = next(s for s in specs if listens_to(s, ids.AT_RISK_GRID, "getRowsRequest"))
                page.set(
                    ids.AT_RISK_GRID,
                    "getRowsRequest",
                    {"startRow": 0, "endRow": 50, "sortModel": [], "filterModel": {}},
                )
                elapsed, _ = page.request(client, grid, [f"{ids.AT_RISK_GRID}.getRowsRequest"])
                per_callback.setdefault("at-risk grid page", []).append(elapsed)
                total += elapsed
            per_change.setdefault(tab, []).append(total)

    print(
        f"# Dashboard speed: {len(ws.scored):,} customers in the current base "
        f"({len(ws.table.frame):,} rows with history)\n"
    )
    print(f"- prepare (load data; train only when no model is cached): {prepare:.1f} s")
    print(f"- build the app: {build:.2f} s")
    print(
        f"- first page (HTML, layout, dependencies, {len(initial)} initial callbacks): "
        f"{first_page * 1000:.0f} ms\n"
    )
    print("| callback (on a filter change) | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|")
    for name, values in sorted(per_callback.items()):
        print(
            f"| {name} | {pct(values, 50):.1f} | {pct(values, 95):.1f} | {max(values) * 1000:.1f} |"
        )
    print("\n| tab: whole filter change (all its requests) | p50 ms | p95 ms |")
    print("|---|---|---|")
    for tab, values in per_change.items():
        print(f"| {tab} | {pct(values, 50):.1f} | {pct(values, 95):.1f} |")
    print(
        f"\n{args.changes} distinct filter states per tab; median of the whole change "
        f"across tabs {statistics.median(np.concatenate(list(per_change.values()))) * 1000:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time to the first useful dashboard on a new table: gunicorn started on a table it has never
seen (a new state directory, no model), measured from the start command.

    .venv/bin/python -m benchmarks.first_dashboard [--customers 100000] [--workers 2]

Generates `--customers` synthetic customers (analytics.synthetic), starts gunicorn with
gunicorn.conf.py on a free loopback port, logs in through the form as an admin made with the
accounts CLI, and times, from the moment gunicorn is started:
- health answering (the server is up, "status": "training");
- the overview through the browser's route: the page, /_dash-layout, and the KPI, trend and
  cohort figures through the API (the same services);
- the model being live (the training job done and every worker swapped to it).
Prints a markdown table. The server's log goes to benchmarks/out/first_dashboard-gunicorn.log.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from analytics import synthetic
from analytics.config import PROJ_ROOT
from analytics.store import artifacts
from benchmarks.api_load import HOST, free_port

OUT = PROJ_ROOT / "benchmarks" / "out"
PASSWORD = "first-dashboard-benchmark"


def _get(port: int, path: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def _until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = predicate()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def _log_in(port: int, name: str) -> str:
    """The session cookie after the login form."""
    _, page, headers = _get(port, "/login")
    token = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page).group(1).decode()
    cookie = headers.get("Set-Cookie", "").split(";")[0]
    body = urlencode({"username": name, "password": PASSWORD, "csrf_token": token})
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    conn.request(
        "POST",
        "/login",
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
    )
    response = conn.getresponse()
    response.read()
    cookies = [v.split(";")[0] for k, v in response.getheaders() if k.lower() == "set-cookie"]
    conn.close()
    if response.status != 302:
        raise SystemExit(f"login failed: {response.status}")
    return "; ".join(cookies)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="first-dashboard-"))
    data = work / f"customers-{args.customers}.csv"
    artifacts.write_table(synthetic.generate(args.customers, seed=7), data)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTION_")}
    env.update(
        RETENTION_HOST=HOST,
        RETENTION_PORT=str(port),
        RETENTION_WORKERS=str(args.workers),
        RETENTION_DATA=str(data),
        RETENTION_MODELS_DIR=str(work / "models"),
        RETENTION_STATE_DIR=str(work / "state"),
        RETENTION_SECRET_KEY="first-dashboard-benchmark-" + "k" * 24,
    )
    subprocess.run(
        [sys.executable, "-m", "dashboard", "users", "add", "bench", "--role", "admin"],
        cwd=PROJ_ROOT,
        env={**env, "RETENTION_NEW_PASSWORD": PASSWORD},
        check=True,
        capture_output=True,
    )
    log = OUT / "first_dashboard-gunicorn.log"
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--no-control-socket"],
            cwd=PROJ_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    rows = []
    try:
        health = _until(lambda: json.loads(_get(port, "/api/v1/health")[1]), 120, "health")
        rows.append(("health answers", time.monotonic() - started, health.get("status")))
        cookie = _log_in(port, "bench")
        auth = {"Cookie": cookie}
        for path in ("/", "/_dash-layout", "/api/v1/kpis", "/api/v1/trend", "/api/v1/cohorts"):
            status, body, _ = _get(port, path, auth)
            if status != 200:
                raise SystemExit(f"{path}: {status} {body[:200]!r}")
        kpis = json.loads(_get(port, "/api/v1/kpis", auth)[1])
        rows.append(
            (
                "overview answered (page, layout, KPIs, trend, cohorts)",
                time.monotonic() - started,
                f"{kpis.get('customers'):,} customers",
            )
        )
        ready = _until(
            lambda: all(
                json.loads(_get(port, "/api/v1/health")[1]).get("status") == "ready"
                for _ in range(6)
            ),
            3600,
            "the model",
        )
        assert ready
        version = json.loads(_get(port, "/api/v1/health")[1]).get("model_version")
        rows.append(("model live on every worker", time.monotonic() - started, version))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    print(f"\nFirst dashboard on a new table of {args.customers:,} customers, {args.workers} "
          f"gunicorn workers (seconds from starting gunicorn):\n")  # fmt: skip
    print("| step | seconds | |\n|---|---:|---|")
    for what, seconds, note in rows:
        print(f"| {what} | {seconds:.1f} | {note} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

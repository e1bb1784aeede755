"""Throughput and latency of POST /api/v1/predict under gunicorn (loopback only).

    .venv/bin/python -m benchmarks.api_load [--seconds 60] [--clients 16] [--workers 2]
                                            [--data FILE]

Starts gunicorn with gunicorn.conf.py (preload, gthread) on a free loopback port over the demo
base, or --data (model cached in benchmarks/out/models-<file name>; trained once at start when
missing), then:

- single-row predictions: `--clients` threads, each with one keep-alive http.client connection,
  POST one customer object at a time for `--seconds`; requests/s, p50/p99 latency, errors;
- batch predictions: {"customers": [...]} of `--batch` rows (default 10,000, the default
  RETENTION_BATCH_LIMIT), timed `--repeats` times one after another; the median.

Prints a markdown table. The server's log goes to benchmarks/out/api_load-gunicorn.log.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

from analytics.config import DEMO_DATA, PROJ_ROOT
from analytics.ingest import read

OUT = PROJ_ROOT / "benchmarks" / "out"
HOST = "127.0.0.1"
PREDICT = "/api/v1/predict"
HEADERS = {"Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_gunicorn(
    port: int, workers: int, models_dir: Path, log: Path, data: Path
) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTION_")}
    env.update(
        RETENTION_HOST=HOST,
        RETENTION_PORT=str(port),
        RETENTION_WORKERS=str(workers),
        RETENTION_MODELS_DIR=str(models_dir),
        RETENTION_DATA=str(data),
    )
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--no-control-socket"],
            cwd=PROJ_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def request(conn: http.client.HTTPConnection, method: str, path: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers=HEADERS if data else {})
    response = conn.getresponse()
    return response.status, response.read()


def wait_ready(proc: subprocess.Popen, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            if request(conn, "GET", "/api/v1/health")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"gunicorn not ready after {timeout:.0f} s")


def customers(models_dir: Path, data: Path, n: int) -> list[dict]:
    """Rows of the table with exactly the model's input features, inside the ranges and levels
    it saw (the API refuses values far outside them)."""
    version = (models_dir / "CURRENT").read_text().strip()
    meta = json.loads((models_dir / version / "model.json").read_text())
    frame = read.load_table(data).frame[meta["features"]].dropna()
    keep = pd.Series(True, index=frame.index)
    for col, (low, high) in meta["feature_ranges"].items():
        keep &= frame[col].isna() | frame[col].between(low, high)
    for col, levels in meta["feature_levels"].items():
        keep &= frame[col].isna() | frame[col].astype(str).isin(levels)
    return json.loads(frame[keep].head(n).to_json(orient="records"))


def single_row_load(port: int, rows: list[dict], clients: int, seconds: float) -> dict:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    deadline = time.monotonic() + seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        i = k
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                status, _ = request(conn, "POST", PREDICT, rows[i % len(rows)])
            except (OSError, http.client.HTTPException):
                status = None
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=30)
            if status == 200:
                latencies[k].append(time.perf_counter() - started)
            else:
                errors[k] += 1
            i += clients
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    flat = sorted(x for per in latencies for x in per)
    q = statistics.quantiles(flat, n=100) if len(flat) > 1 else [float("nan")] * 99
    return {
        "requests": len(flat),
        "rps": len(flat) / elapsed,
        "p50_ms": 1000 * q[49],
        "p99_ms": 1000 * q[98],
        "errors": sum(errors),
    }


def batch_timing(port: int, rows: list[dict], repeats: int) -> dict:
    conn = http.client.HTTPConnection(HOST, port, timeout=300)
    body = {"customers": rows}
    status, payload = request(conn, "POST", PREDICT, body)  # warm-up (and a check)
    if status != 200:
        raise SystemExit(f"batch predict answered {status}: {payload[:300]!r}")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        status, _ = request(conn, "POST", PREDICT, body)
        times.append(time.perf_counter() - started)
        if status != 200:
            raise SystemExit(f"batch predict answered {status}")
    conn.close()
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.api_load", description=__doc__)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--data", type=Path, default=DEMO_DATA, help="default: the demo base")
    p.add_argument("--models-dir", type=Path, help="default: benchmarks/out/models-<data name>")
    args = p.parse_args(argv)
    if args.models_dir is None:
        name = "demo" if args.data == DEMO_DATA else args.data.name.split(".")[0]
        args.models_dir = OUT / f"models-{name}"

    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / "api_load-gunicorn.log"
    port = free_port()
    proc = start_gunicorn(port, args.workers, args.models_dir, log, args.data.resolve())
    try:
        wait_ready(proc, port, timeout=600)  # a first run trains the demo model
        rows = customers(args.models_dir, args.data, max(args.batch, 1000))
        rows = (rows * (1 + args.batch // max(len(rows), 1)))[: max(args.batch, 1000)]
        print(f"gunicorn: {args.workers} workers on {HOST}:{port}; log in {log}", flush=True)
        single = single_row_load(port, rows[:1000], args.clients, args.seconds)
        batch = batch_timing(port, rows[: args.batch], args.repeats)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)

    print()
    print(f"data: {args.data}")
    print(f"| POST {PREDICT} | result |")
    print("|---|---|")
    print(
        f"| single row, {args.clients} keep-alive clients, {args.seconds:.0f} s "
        f"| {single['rps']:.1f} requests/s ({single['requests']:,} requests) |"
    )
    print(f"| single row p50 latency | {single['p50_ms']:.1f} ms |")
    print(f"| single row p99 latency | {single['p99_ms']:.1f} ms |")
    print(f"| single row errors | {single['errors']} |")
    print(
        f"| batch of {args.batch:,} rows, median of {args.repeats} "
        f"| {batch['median_s']:.2f} s (min {batch['min_s']:.2f}, max {batch['max_s']:.2f}) |"
    )
    print(f"| gunicorn exit status after SIGTERM | {proc.returncode} |")
    return 0 if single["errors"] == 0 and proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Every benchmark in one run, written to one markdown report.

    .venv/bin/python -m benchmarks [--quick] [--out FILE]

Sections, in order: model quality (benchmarks.model_quality), scale (benchmarks.scale),
dashboard speed (benchmarks.dashboard_speed) on current bases of about 10,000, 100,000 and
1,000,000 customers, and the REST API under load (benchmarks.api_load). Each section's markdown
is what its own command prints; progress goes to stderr. A section that fails is reported as a
failure line with its error and the command exits non-zero.

On a fresh clone the models are trained first and cached under benchmarks/out/: the
1,000,000-customer base takes about 15 minutes of that, once; with the models cached the whole
run took 3 min 50 s on a 2-core machine. --quick: smaller sizes, no 1,000,000-customer
dashboard, a short API run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from importlib import metadata
from pathlib import Path

from analytics.config import PROJ_ROOT

DEFAULT_OUT = PROJ_ROOT / "benchmarks" / "out" / "report.md"
LIBRARIES = ("dash", "pandas", "numpy", "scikit-learn", "joblib", "plotly", "gunicorn")


def _memory() -> str:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def header(quick: bool) -> str:
    libs = ", ".join(f"{name} {_version(name)}" for name in LIBRARIES)
    return "\n".join(
        [
            "# Benchmark report",
            "",
            f"- date: {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
            f"- machine: {os.cpu_count()} cores, {_memory()} memory, {platform.platform()}",
            f"- Python {platform.python_version()}; {libs}",
            f"- command: `python -m benchmarks{' --quick' if quick else ''}`"
            + (" (quick: smaller sizes)" if quick else ""),
            "",
        ]
    )


def _demote(markdown: str) -> str:
    """One more '#' on every heading line outside code fences (sections nest under the report)."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            line = "#" + line
        out.append(line)
    return "\n".join(out)


def run_section(title: str, main: Callable[[list[str]], int], argv: list[str]) -> tuple[str, bool]:
    """(markdown, ok): the section's stdout, and a failure line when it raised or returned != 0."""
    buffer = io.StringIO()
    started = time.perf_counter()
    error = None
    try:
        with contextlib.redirect_stdout(buffer):
            code = main(argv)
        if code:
            error = f"exited with status {code}"
    except SystemExit as exc:  # argparse errors and sys.exit inside the section
        if exc.code not in (0, None):
            error = f"exited with status {exc.code}"
    except Exception as exc:  # any failure is reported; the others still run
        traceback.print_exc(file=sys.stderr)
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    output = buffer.getvalue().strip()
    command = " ".join(["python -m", main.__module__, *argv])
    parts = []
    if not output.startswith("# "):
        parts.append(f"## {title}\n")
    if output:
        parts.append(_demote(output) + "\n")
    if error:
        parts.append(f"**FAILED**: {error}\n")
    parts.append(f"_Section `{command}` took {seconds:.0f} s._\n")
    return "\n".join(parts), error is None


def sections(quick: bool) -> list[tuple[str, str, list[str]]]:
    """(title, module, argv) for every benchmark present."""
    out = [("Model quality", "benchmarks.model_quality", [])]
    if importlib.util.find_spec("benchmarks.scale") is not None:
        out.append(("Scale", "benchmarks.scale", ["--sizes", "10000"] if quick else []))
    # Generated rows hold the whole history; about 31 % of them are the current base.
    rows = (20_000,) if quick else (32_000, 320_000, 3_200_000)
    for n in rows:
        argv = ["--customers", str(n), "--changes", "5" if quick else "20"]
        title = f"Dashboard speed ({n:,} rows with history)"
        out.append((title, "benchmarks.dashboard_speed", argv))
    if importlib.util.find_spec("benchmarks.api_load") is not None:
        api = ["--seconds", "10", "--batch", "1000", "--repeats", "3"] if quick else []
        out.append(("REST API under load", "benchmarks.api_load", api))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes (scale: 10,000; dashboard: 20,000 rows, 5 changes)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"report file (default: {DEFAULT_OUT.relative_to(PROJ_ROOT)})",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    parts = [header(args.quick)]
    ok = True
    for title, module, section_argv in sections(args.quick):
        print(f"[benchmarks] {title} ...", file=sys.stderr, flush=True)
        try:
            entry = importlib.import_module(module).main
        except Exception as exc:  # an import error is the section's failure
            parts.append(
                f"## {title}\n\n**FAILED**: cannot import {module}: {type(exc).__name__}: {exc}\n"
            )
            ok = False
            continue
        markdown, section_ok = run_section(title, entry, section_argv)
        parts.append(markdown)
        ok = ok and section_ok
    total = time.perf_counter() - started
    parts.append(
        f"Total run time: {total / 60:.1f} min"
        + ("" if ok else "; **some sections FAILED** (see above)")
        + ".\n"
    )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(parts), encoding="utf-8")
    print(f"report written to {args.out}" + ("" if ok else " (some sections failed)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""benchmarks/scale.py honours the input size limit, so it can load a 10,000,000-customer base."""

import json
import subprocess
from types import SimpleNamespace

import pytest

from benchmarks import scale

MB = 1024 * 1024


class Stop(Exception):
    """Raised by a stand-in once it has seen what it was called with."""


def test_the_limit_comes_from_the_environment_and_the_flag_wins(monkeypatch):
    monkeypatch.delenv("RETENTION_MAX_FILE_MB", raising=False)
    assert scale.run_settings().max_file_mb == 512.0
    monkeypatch.setenv("RETENTION_MAX_FILE_MB", "4096")
    assert scale.run_settings().max_file_bytes == 4096 * MB
    assert scale.run_settings(8192).max_file_bytes == 8192 * MB


def test_business_settings_stay_at_their_defaults_so_runs_compare(monkeypatch):
    monkeypatch.setenv("RETENTION_MARGIN", "0.5")
    assert scale.run_settings(4096).margin == 1.0


def test_one_size_reads_its_file_with_the_configured_limit(monkeypatch, tmp_path):
    monkeypatch.setattr(scale, "OUT", tmp_path)
    (tmp_path / "scale-10.csv.gz").write_bytes(b"cached")
    monkeypatch.setattr(
        scale.workflow, "load_or_train", lambda *a, **k: SimpleNamespace(model=None)
    )
    seen = {}

    def load_table(path, *, max_bytes):
        seen["max_bytes"] = max_bytes
        raise Stop

    monkeypatch.setattr(scale.read, "load_table", load_table)
    with pytest.raises(Stop):
        scale.one(10, seed=5, settings=scale.run_settings(4096))
    assert seen["max_bytes"] == 4096 * MB


def test_the_flag_reaches_every_child_process(monkeypatch, capsys):
    monkeypatch.setattr(scale.workflow, "load_or_train", lambda *a, **k: None)
    commands = []
    row = {
        "size": 10,
        "rows": 10,
        "file_mb": 0.1,
        "generate_s": 0.0,
        "load_validate_s": 0.1,
        "score_s": 0.1,
        "peak_mb": 200.0,
        "how": "numpy",
    }

    def run(command, **kwargs):
        commands.append(command)
        return subprocess.CompletedProcess(command, 0, stdout=json.dumps(row), stderr="")

    monkeypatch.setattr(scale.subprocess, "run", run)
    assert scale.main(["--sizes", "10", "20", "--max-file-mb", "4096"]) == 0
    assert len(commands) == 2
    for command in commands:
        flag = command.index("--max-file-mb")
        assert float(command[flag + 1]) == 4096
    assert "| 10 |" in capsys.readouterr().out

"""Shared fixtures. The IBM Telco sample lives in ../shared and is never copied here."""

from pathlib import Path

import pytest

from analytics.config import PROJ_ROOT

TELCO = PROJ_ROOT.parent / "shared" / "data" / "telco" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"


@pytest.fixture(scope="session")
def telco_path() -> Path:
    if not TELCO.is_file():
        pytest.skip(f"IBM Telco sample not found at {TELCO} (../shared is absent on this machine)")
    return TELCO

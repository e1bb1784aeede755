"""Shared fixtures. The IBM Telco sample lives in ../shared and is never copied here."""

import os
import shutil
from pathlib import Path

import pytest

from analytics.config import PROJ_ROOT

TELCO = PROJ_ROOT.parent / "shared" / "data" / "telco" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"


@pytest.fixture(scope="session")
def telco_path() -> Path:
    if not TELCO.is_file():
        pytest.skip(f"IBM Telco sample not found at {TELCO} (../shared is absent on this machine)")
    return TELCO


def _workspace(tmp_path_factory, data: Path, name: str, **kwargs):
    from analytics.config import settings_from_env
    from analytics.workflow import load_or_train
    from tests.support import MODEL_KEY

    models = tmp_path_factory.mktemp(f"models-{name}")
    return load_or_train(
        data, settings_from_env(env={}), models_dir=models, key=MODEL_KEY, **kwargs
    )


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory):
    """The built-in base, trained once per test session (about 12 s)."""
    from analytics.config import DEMO_DATA

    return _workspace(tmp_path_factory, DEMO_DATA, "demo")


@pytest.fixture(scope="session")
def telco_workspace(tmp_path_factory, telco_path):
    """The IBM Telco file unchanged: no dates, so survival views."""
    return _workspace(tmp_path_factory, telco_path, "telco")


@pytest.fixture(scope="session")
def no_revenue_workspace(tmp_path_factory):
    """A table without revenue: value views must explain why they are off."""
    import pandas as pd

    from analytics.config import DEMO_DATA

    frame = pd.read_csv(DEMO_DATA)
    frame = frame.drop(columns=["monthly_revenue", "total_revenue", "signup_date", "churn_date"])
    frame = frame.sample(6000, random_state=3)
    path = tmp_path_factory.mktemp("norev") / "no_revenue.csv"
    frame.to_csv(path, index=False)
    return _workspace(tmp_path_factory, path, "norev")


# -- browser tests (dash.testing's dash_duo, headless Debian Chromium) -----------------------

CHROME_FLAGS = (
    "--window-size=1280,900",  # AG Grid virtualises columns: the 780x580 default hides some
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--log-level=3",
)


def pytest_setup_options():
    """Options for dash_duo's Chrome (a dash.testing hook)."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    if Path("/usr/bin/chromium").exists():
        options.binary_location = "/usr/bin/chromium"
    return options


def pytest_collection_modifyitems(config, items):
    """Browser tests need chromium and chromedriver; say so instead of failing obscurely."""
    if shutil.which("chromedriver"):
        return
    skip = pytest.mark.skip(
        reason="chromedriver not found: install Debian's chromium and chromium-driver "
        "(`make test` does this when run as root)"
    )
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


# .ci/run starts PostgreSQL and sets this; elsewhere the PostgreSQL half skips and says why.
POSTGRES = os.environ.get("CI_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_state(request, tmp_path):
    """An empty state database: an SQLite file, and a real PostgreSQL with a fresh schema."""
    from sqlalchemy import text

    from analytics.store import db

    if request.param == "sqlite":
        engine = db.make_engine(db.database_url(tmp_path / "state", None))
    else:
        if not POSTGRES:
            if os.environ.get("CI") == "true":  # CI must test the real thing, never skip it
                pytest.fail("CI_POSTGRES_URL is not set: .ci/run starts PostgreSQL and sets it")
            pytest.skip("CI_POSTGRES_URL is not set (.ci/run starts PostgreSQL)")
        engine = db.make_engine(POSTGRES)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    yield engine
    engine.dispose()

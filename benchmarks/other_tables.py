"""Two churn tables in other public schemas, generated, for model quality beyond Telco.

    .venv/bin/python -m benchmarks.other_tables   # writes them to benchmarks/out/

The product must hold its own on tables it has not seen, whose signal is shaped differently
from Telco's (where a spline logistic regression is hard to beat):

- bank-style (the "Churn_Modelling" columns: RowNumber, CustomerId, Surname, CreditScore,
  Geography, Gender, Age, Tenure in years, Balance, NumOfProducts, HasCrCard, IsActiveMember,
  EstimatedSalary, Exited; 10,000 rows): a hump in age, a non-monotone product count, an
  interaction of balance with a single product; trees win here;
- telecom-style (the "churn-bigml" columns: State, Account length, International plan, day /
  evening / night / international minutes, calls and charges, Customer service calls, Churn as
  True/False; 3,333 rows): churn set by thresholds (day minutes over 245, 4+ service calls with
  low usage, international plan with heavy international use); many small steps, few rows.

Both are read exactly like a user's file (no mapping given). Fixed seeds: the same files on
every run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from analytics.config import PROJ_ROOT

OUT = PROJ_ROOT / "benchmarks" / "out"


def bank_style(n: int = 10_000, seed: int = 123) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    geo = rng.choice(["France", "Germany", "Spain"], n, p=[0.5, 0.25, 0.25])
    gender = rng.choice(["Female", "Male"], n, p=[0.45, 0.55])
    age = np.clip(rng.normal(39, 10, n).round(), 18, 92)
    balance = np.where(rng.random(n) < 0.36, 0.0, rng.normal(120_000, 30_000, n).clip(0))
    products = rng.choice([1, 2, 3, 4], n, p=[0.50, 0.46, 0.027, 0.013])
    active = (rng.random(n) < 0.51).astype(int)
    credit = np.clip(rng.normal(650, 96, n).round(), 350, 850)
    effect = np.select([products == 1, products == 2, products == 3], [0.3, -1.4, 2.5], 4.0)
    logit = (
        -2.2
        + 2.7 * np.exp(-((age - 55) ** 2) / 150)
        + 0.04 * (age - 39)
        + effect
        + 0.8 * (geo == "Germany")
        + 0.5 * (gender == "Female")
        - 1.0 * active
        + 0.5 * (balance > 0) * (products == 1)
        - 0.0008 * (credit - 650)
        + 0.3 * active * (age > 50)
    )
    exited = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "RowNumber": np.arange(1, n + 1),
            "CustomerId": 15_600_000 + rng.permutation(n),
            "Surname": rng.choice(["Smith", "Hill", "Onio", "Chu", "Bartlett", "Obinna"], n),
            "CreditScore": credit.astype(int),
            "Geography": geo,
            "Gender": gender,
            "Age": age.astype(int),
            "Tenure": rng.integers(0, 11, n),
            "Balance": balance.round(2),
            "NumOfProducts": products,
            "HasCrCard": (rng.random(n) < 0.7).astype(int),
            "IsActiveMember": active,
            "EstimatedSalary": rng.uniform(10, 200_000, n).round(2),
            "Exited": exited,
        }
    )


def telecom_style(n: int = 3_333, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    intl = rng.choice(["No", "Yes"], n, p=[0.9, 0.1])
    voicemail = rng.choice(["No", "Yes"], n, p=[0.72, 0.28])
    day = rng.normal(180, 54, n).clip(0, 351).round(1)
    eve = rng.normal(200, 50, n).clip(0).round(1)
    night = rng.normal(200, 50, n).clip(0).round(1)
    intl_min = rng.normal(10, 2.8, n).clip(0, 20).round(1)
    intl_calls = rng.poisson(4.5, n)
    service = rng.poisson(1.56, n)
    logit = (
        -3.2
        + 3.0 * (day > 245)
        + 1.2 * (day > 280)
        + 2.2 * (intl == "Yes") * ((intl_min > 13) | (intl_calls < 3))
        + 0.6 * (intl == "Yes")
        - 0.9 * (voicemail == "Yes")
        + 2.3 * (service >= 4) * (day < 200)
        + 0.7 * (service >= 4)
        + 0.004 * (eve - 200)
        + 0.002 * (night - 200)
    )
    churn = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "State": rng.choice([f"S{i:02d}" for i in range(51)], n),
            "Account length": rng.integers(1, 243, n),
            "Area code": rng.choice([408, 415, 510], n),
            "International plan": intl,
            "Voice mail plan": voicemail,
            "Number vmail messages": np.where(voicemail == "Yes", rng.integers(10, 51, n), 0),
            "Total day minutes": day,
            "Total day calls": rng.normal(100, 20, n).clip(0).round(),
            "Total day charge": (day * 0.17).round(2),
            "Total eve minutes": eve,
            "Total eve charge": (eve * 0.085).round(2),
            "Total night minutes": night,
            "Total night charge": (night * 0.045).round(2),
            "Total intl minutes": intl_min,
            "Total intl calls": intl_calls,
            "Total intl charge": (intl_min * 0.27).round(2),
            "Customer service calls": service,
            "Churn": np.where(churn, "True", "False"),
        }
    )


TABLES = {
    "Bank-style schema (generated)": ("bank_style.csv", bank_style),
    "Telecom-style schema (generated)": ("telecom_style.csv", telecom_style),
}


def write_all(out: Path = OUT) -> dict[str, Path]:
    """title -> file, written once (same seeds, same files)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for title, (name, make) in TABLES.items():
        path = out / name
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            make().to_csv(tmp, index=False)
            tmp.replace(path)
        paths[title] = path
    return paths


if __name__ == "__main__":
    for title, path in write_all().items():
        print(f"{title}: {path}")
    sys.exit(0)

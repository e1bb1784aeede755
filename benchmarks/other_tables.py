"""Churn tables in other public schemas, generated, for model quality beyond Telco.

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
  low usage, international plan with heavy international use); many small steps, few rows;
- e-commerce (the Kaggle "E-commerce customer churn" columns: CustomerID, Churn, Tenure,
  PreferredLoginDevice, CityTier, WarehouseToHome, PreferredPaymentMode, Gender, HourSpendOnApp,
  NumberOfDeviceRegistered, PreferedOrderCat, SatisfactionScore, MaritalStatus, NumberOfAddress,
  Complain, OrderAmountHikeFromlastYear, CouponUsed, OrderCount, DaySinceLastOrder,
  CashbackAmount; 5,630 rows, 16.8 % churn): about 5 % of the cells of seven numeric columns
  left blank, as in the real file, and its overlapping spellings of one level ("Phone" and
  "Mobile Phone", "CC" and "Credit Card"); churn steep in the first months, with a complaint,
  for singles, on recent orders and low cashback;
- bank records (the "Customer-Churn-Records" columns: the bank-style ones plus Complain,
  Satisfaction Score, Card Type, Point Earned; 10,000 rows): Complain equals Exited on 99.8 %
  of rows (a label leak the product must catch), the other three added columns carry no
  signal, as in the real file; without Complain it is the bank-style table's signal.

All are read exactly like a user's file (no mapping given). Fixed seeds: the same files on
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


def _blank(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    """values as float with about `share` of them missing (the real file's blank cells)."""
    out = values.astype(float)
    out[rng.random(len(out)) < share] = np.nan
    return out


def ecommerce(n: int = 5_630, seed: int = 2021) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # A third of the customers are in their first months, the rest spread over five years.
    tenure = np.where(rng.random(n) < 0.3, rng.integers(0, 4, n), rng.integers(4, 62, n))
    complain = (rng.random(n) < 0.285).astype(int)
    marital = rng.choice(["Married", "Single", "Divorced"], n, p=[0.53, 0.32, 0.15])
    city = rng.choice([1, 2, 3], n, p=[0.65, 0.04, 0.31])
    category = rng.choice(
        ["Laptop & Accessory", "Mobile Phone", "Fashion", "Mobile", "Grocery", "Others"],
        n,
        p=[0.364, 0.226, 0.147, 0.144, 0.072, 0.047],
    )
    payment = rng.choice(
        ["Debit Card", "Credit Card", "E wallet", "UPI", "COD", "CC", "Cash on Delivery"],
        n,
        p=[0.411, 0.267, 0.109, 0.074, 0.065, 0.048, 0.026],
    )
    device = rng.choice(["Mobile Phone", "Computer", "Phone"], n, p=[0.491, 0.29, 0.219])
    gender = rng.choice(["Male", "Female"], n, p=[0.6, 0.4])
    warehouse = np.clip(rng.lognormal(2.75, 0.45, n), 5, 127).round()
    devices = rng.choice([1, 2, 3, 4, 5, 6], n, p=[0.04, 0.05, 0.30, 0.42, 0.15, 0.04])
    hours = rng.choice([0, 1, 2, 3, 4, 5], n, p=[0.01, 0.01, 0.27, 0.49, 0.21, 0.01])
    satisfaction = rng.choice([1, 2, 3, 4, 5], n, p=[0.21, 0.10, 0.30, 0.19, 0.20])
    addresses = np.clip(rng.poisson(3.2, n) + 1, 1, 22)
    hike = rng.integers(11, 27, n)
    orders = np.clip(rng.geometric(0.33, n), 1, 16)
    coupons = np.minimum(orders, rng.poisson(1.2, n))
    # Recent buyers churn more in the real file (a last order before leaving).
    days_since = np.clip(rng.exponential(4.5, n) + 0.25 * orders, 0, 46).round()
    cashback = np.clip(
        120 + 2.0 * tenure + 25 * (category == "Grocery") + rng.normal(0, 35, n), 0, 325
    ).round(2)
    mobile = np.isin(category, ["Mobile Phone", "Mobile"])
    logit = (
        -3.55
        + np.select([tenure <= 1, tenure <= 4, tenure <= 12], [2.6, 1.3, 0.2], -0.6)
        + 1.1 * complain
        + 0.8 * complain * (tenure <= 4)
        + np.select([marital == "Single", marital == "Divorced"], [0.8, 0.25], 0.0)
        + np.select([city == 3, city == 2], [0.55, 0.25], 0.0)
        + 0.5 * mobile
        - 0.8 * (category == "Grocery")
        + 0.45 * np.isin(payment, ["COD", "Cash on Delivery", "E wallet"])
        + 0.3 * (devices - 3.5)
        + 0.15 * (satisfaction - 3)
        + 0.12 * (addresses - 4) * (addresses <= 10)
        + 0.9 * (addresses > 10) * (tenure <= 12)
        - 0.09 * np.minimum(days_since, 15)
        - 0.008 * (cashback - 160)
        + 0.012 * (warehouse - 15)
        + 0.15 * (gender == "Male")
    )
    churn = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "CustomerID": 50_001 + np.arange(n),
            "Churn": churn,
            "Tenure": _blank(rng, tenure, 0.047),
            "PreferredLoginDevice": device,
            "CityTier": city,
            "WarehouseToHome": _blank(rng, warehouse, 0.045),
            "PreferredPaymentMode": payment,
            "Gender": gender,
            "HourSpendOnApp": _blank(rng, hours, 0.045),
            "NumberOfDeviceRegistered": devices,
            "PreferedOrderCat": category,
            "SatisfactionScore": satisfaction,
            "MaritalStatus": marital,
            "NumberOfAddress": addresses,
            "Complain": complain,
            "OrderAmountHikeFromlastYear": _blank(rng, hike, 0.047),
            "CouponUsed": _blank(rng, coupons, 0.045),
            "OrderCount": _blank(rng, orders, 0.046),
            "DaySinceLastOrder": _blank(rng, days_since, 0.055),
            "CashbackAmount": cashback,
        }
    )


# The real "Customer-Churn-Records" file: Complain differs from Exited on 0.2 % of rows.
COMPLAIN_AGREEMENT = 0.998


def bank_records(n: int = 10_000, seed: int = 321) -> pd.DataFrame:
    frame = bank_style(n, seed)
    rng = np.random.default_rng(seed + 1)
    complain = frame["Exited"].to_numpy().copy()
    flip = rng.choice(n, round(n * (1 - COMPLAIN_AGREEMENT)), replace=False)
    complain[flip] = 1 - complain[flip]
    return frame.assign(
        Complain=complain,
        **{
            "Satisfaction Score": rng.integers(1, 6, n),
            "Card Type": rng.choice(["DIAMOND", "GOLD", "SILVER", "PLATINUM"], n),
            "Point Earned": rng.integers(119, 1001, n),
        },
    )


TABLES = {
    "Bank-style schema (generated)": ("bank_style.csv", bank_style),
    "Telecom-style schema (generated)": ("telecom_style.csv", telecom_style),
    "E-commerce schema (generated)": ("ecommerce.csv", ecommerce),
    "Bank records with a leaking Complain column (generated)": (
        "bank_records_leak.csv",
        bank_records,
    ),
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

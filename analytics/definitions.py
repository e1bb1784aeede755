"""The product's definitions in words, exactly as ../shared/METRICS.md states them.

Tooltips, the API's model document and the README quote these; change a meaning here and in
METRICS.md at once.
"""

KPI_DEFINITIONS = {
    "customers": "Customers = |S|, the customers the filters select.",
    "active_customers": "Active customers = customers in S with churned = 0.",
    "churn_rate": "Churn rate = churned in S / |S|, over the data's observation window.",
    "retention_rate": "Retention rate = 1 - churn rate.",
    "mrr": "MRR = sum of monthly_revenue over active customers.",
    "avg_clv": "Average CLV = mean of CLV_i over active customers.",
    "mrr_at_risk": "MRR at risk = sum over active customers of p_i x monthly_revenue_i.",
}

KPI_TITLES = {
    "customers": "Customers",
    "active_customers": "Active customers",
    "churn_rate": "Churn rate",
    "retention_rate": "Retention rate",
    "mrr": "MRR",
    "avg_clv": "Average CLV",
    "mrr_at_risk": "MRR at risk",
}

TERMS = {
    "p": "p_i = the model's probability that customer i churns in the next observation window.",
    "threshold": (
        "Decision threshold t: chosen on out-of-fold predictions; default maximises F1 of the "
        "churn class; configurable as a target recall instead."
    ),
    "risk_band": "Risk band: High if p_i >= t; Medium if t/2 <= p_i < t; Low otherwise.",
    "clv": (
        "CLV_i (risk-adjusted expected future value) = m x monthly_revenue_i x (1 - p_i) / "
        "(d + p_i), with gross margin m and monthly discount rate d."
    ),
    "value": (
        "Value_i (the customer's size at the average risk) = m x monthly_revenue_i x (1 - p0) / "
        "(d + p0), p0 = churn rate of the whole base."
    ),
    "high_value": "High value = Value_i at or above the 75th percentile of active customers.",
    "value_tier": (
        "Value tier: High = Value_i at or above the 75th percentile of active customers, "
        "Low = below the 25th, Mid = between."
    ),
    "expected_loss": "Expected loss_i = p_i x Value_i.",
    "at_risk_list": (
        "The high-value at-risk list = active, high value, risk band High, sorted by expected "
        "loss, descending."
    ),
    "net_benefit": (
        "net benefit(N) = sum over the top N active customers by expected loss of "
        "(s x p_i x Value_i) - N x c, with save rate s and cost per contact c."
    ),
    "importance": "Global importance: permutation importance on held-out folds (drop in ROC-AUC).",
    "drivers": (
        "Per-customer drivers: for each feature, the change in p_i when that feature is set to "
        "the base's typical value (median or mode); the top increases are the reasons shown."
    ),
    "churn_by_factor": (
        "Churn rate by each feature's value (numeric features in quantile bins), with counts and "
        "Wilson 95% intervals; groups under 30 customers are marked as too small to read."
    ),
    "monthly_churn": (
        "Monthly churn rate for month t = customers whose churn_date falls in t / customers "
        "active at the start of t. Monthly retention = 1 - that."
    ),
    "cohort": (
        "Cohort retention: cohort = signup month; cell k = share of the cohort still active k "
        "months after signup; only fully observed cells are shown."
    ),
    "kaplan_meier": (
        "Kaplan-Meier retention curve over tenure_months (event = churned, censored otherwise), "
        "with at-risk counts."
    ),
    "segments": (
        "Customers are clustered without the churn label (k-means on standardised value and "
        "behaviour features; k chosen by silhouette within 3..8)."
    ),
}

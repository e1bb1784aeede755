"""The product's rules, each defined once (../shared/METRICS.md): value (probability per window,
CLV, value, expected loss, risk bands, value tiers), KPIs, churn rates by factor, the monthly
trend and cohorts, survival, and the retention planner."""

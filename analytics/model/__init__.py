"""The churn model: features, candidates and training, evaluation, explanations, fast scoring,
scoring new customers, and customer segments."""

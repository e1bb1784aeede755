"""Analytics core: loading, validation, segmentation, churn model, value and KPIs.

Pure pandas / numpy / scikit-learn. Nothing here imports dash or plotly.
"""

__version__ = "0.1.0"

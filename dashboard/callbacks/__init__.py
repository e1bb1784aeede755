"""Callbacks, thin: parse inputs, call one analytics function, build outputs."""

from dashboard.callbacks import (
    campaigns,
    changes,
    customers,
    drivers,
    filters,
    model,
    monitoring,
    overview,
    planner,
    predict,
    snapshots,
)


def register(app, data, schema) -> None:
    filters.register(app, data)
    overview.register(app, data)
    drivers.register(app, data)
    customers.register(app, data)
    planner.register(app, data)
    model.register(app, data)
    predict.register(app, data, schema)
    snapshots.register(app, data)
    changes.register(app, data)
    campaigns.register(app, data)
    monitoring.register(app, data)

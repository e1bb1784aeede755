"""Callbacks, thin: parse inputs, call one analytics function, build outputs."""

from dashboard.callbacks import customers, drivers, filters, model, overview, planner, predict


def register(app, data, schema) -> None:
    filters.register(app, data)
    overview.register(app, data)
    drivers.register(app, data)
    customers.register(app, data)
    planner.register(app, data)
    model.register(app, data)
    predict.register(app, data, schema)

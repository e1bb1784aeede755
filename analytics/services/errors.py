"""The one error a service raises for a bad request: the API answers 400, the page says it."""


class InvalidInput(ValueError):
    """A request the service cannot answer as asked; `field` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ModelPending(RuntimeError):
    """A view needs the churn model and this server has none yet (it is training, or no job
    has been started): the API answers 503 with the training's progress, the page says it."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} needs the churn model, which is not trained yet")
        self.what = what

"""The one error a service raises for a bad request: the API answers 400, the page says it."""


class InvalidInput(ValueError):
    """A request the service cannot answer as asked; `field` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

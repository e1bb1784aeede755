"""The errors a user can fix in their table or file: one line each, what, where, what to do."""

from __future__ import annotations


class DataError(ValueError):
    """The table cannot be used as it is. The message is one line: what, where, what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).splitlines()))


class MissingColumnError(DataError):
    """A required canonical column is neither mapped nor recognised by an alias."""


class EmptyTableError(DataError):
    """No columns, no rows, or only blank rows."""


class NotATableError(DataError):
    """The file is not a delimited text table or Parquet file (binary, merge conflict, ...)."""


class DuplicateIdError(DataError):
    """customer_id repeats."""


class NegativeRevenueError(DataError):
    """monthly_revenue or total_revenue holds negative amounts."""


class LabelError(DataError):
    """The churn label is not two values of which one clearly means churn."""


class EncodingError(DataError):
    """The file's bytes are not UTF-8 / UTF-16 (with BOM) / Windows-1252 text."""


class FileTooLargeError(DataError):
    """The file exceeds the configured size limit (RETENTION_MAX_FILE_MB)."""


class TableTooLargeError(FileTooLargeError):
    """The table has more rows or columns than configured (RETENTION_MAX_ROWS, _MAX_COLUMNS)."""


class MappingError(DataError):
    """An explicit mapping or --drop names something the table or the schema lacks."""

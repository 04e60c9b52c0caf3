"""The one error type that bad or missing data raises."""

from __future__ import annotations


class DataError(ValueError):
    """Bad or missing data, as one line that names the file, the row and the problem.

    A `ValueError` subclass so that callers that already catch `ValueError` for user errors
    (the CLI) report it the same way; the message never spans lines.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def where(path: object, row: int | None = None) -> str:
    """`file`, or `file, row N` (N counts lines of the file from 1, header included)."""
    return f"{path}" if row is None else f"{path}, row {row}"

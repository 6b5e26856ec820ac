"""The collector's exceptions. Errors of other libraries are translated where they are called."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class CollectorError(Exception):
    """Base of every error the collector raises on purpose."""


class StoreError(CollectorError):
    """The database cannot be opened, read or written; the message names the file and the cause."""


class Rejected(CollectorError):
    """Input the collector will not store. ``code`` keys ``api.<code>`` in the message catalog;
    ``where`` points into the input (``parts[3].samples[17].labels``)."""

    def __init__(self, code: str, status: int = 400, where: str = "", **fields: object) -> None:
        super().__init__(f"{code} at {where}" if where else code)
        self.code = code
        self.status = status
        self.where = where
        self.fields = fields


class ConfigFileError(CollectorError):
    """A configuration file (rules, receivers) is wrong: ``<file>: <key>: <what was expected>``."""

    def __init__(self, file: str, key: str, message: str) -> None:
        super().__init__(f"{file}: {key}: {message}" if key else f"{file}: {message}")
        self.file = file
        self.key = key
        self.message = message


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a configuration file: the file, the dotted key inside it, what was expected."""

    file: Path
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}" if self.key else f"{self.file}: {self.message}"


class InventoryError(CollectorError):
    """The inventory is wrong. Carries every problem found; ``str()`` lists them, the first on line one.

    ``file``, ``key`` and ``message`` are those of the first problem.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("InventoryError needs at least one problem")
        self.problems: list[Problem] = list(problems)
        first = self.problems[0]
        self.file: Path = first.file
        self.key: str = first.key
        self.message: str = first.message
        super().__init__("\n".join(str(p) for p in self.problems))

"""The exception tree shared by every Cashmatch package.

CashmatchError
    ImportFormatError       a statement or master-data file cannot be read
    StatementBalanceError   a statement's lines do not reproduce its balances
    AllocationConflict      a booking would exceed a line or an order
    ModelNotReady           no trained model or too few labels
"""

from __future__ import annotations

from dataclasses import dataclass


class CashmatchError(Exception):
    """Base of every error Cashmatch raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, at a line and a field."""

    file: str
    line: int | None
    field: str | None
    value: str | None
    reason: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [where]
        if self.field:
            parts.append(f"field {self.field}")
        if self.value is not None:
            parts.append(f"value {self.value!r}")
        return ", ".join(parts) + f": {self.reason}"


class ImportFormatError(CashmatchError):
    """A file that cannot be read; carries every problem found in it."""

    def __init__(self, problems: list[Problem] | Problem):
        if isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        shown = "\n  ".join(str(p) for p in self.problems[:20])
        more = len(self.problems) - 20
        if more > 0:
            shown += f"\n  ... and {more} more"
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            f"{count} {noun}; nothing was imported:\n  {shown}"
        )

    @classmethod
    def at(
        cls,
        file: str,
        *,
        line: int | None = None,
        field: str | None = None,
        value: str | None = None,
        reason: str,
    ) -> "ImportFormatError":
        """Build an error for a single problem."""
        return cls(Problem(file, line, field, value, reason))


class StatementBalanceError(ImportFormatError):
    """The opening balance plus the lines does not equal the closing balance."""


class AllocationConflict(CashmatchError):
    """A booking would allocate beyond a line's amount or an order's open amount."""


class ModelNotReady(CashmatchError):
    """No model can serve, or too few labels exist to train one."""

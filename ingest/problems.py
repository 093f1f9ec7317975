"""Collecting the problems of one file so they are reported together."""

from __future__ import annotations

from models.errors import ImportFormatError, Problem


class ProblemList:
    """Problems found in one file, split into line problems and file problems.

    A line problem concerns one statement line, and it is skipped when the
    caller asks to skip bad lines. A file problem always rejects the file.
    """

    def __init__(self, file_name: str):
        self.file_name = file_name
        self.line_problems: list[Problem] = []
        self.file_problems: list[Problem] = []
        # Index of the statement being read, so skipped lines are listed
        # on the statement they came from.
        self.statement_index = 0
        self.line_statements: list[int] = []

    def line(
        self,
        line: int | None,
        field: str | None,
        value: object,
        reason: str,
    ) -> None:
        """Record a problem that concerns one statement line."""
        self.line_problems.append(self._problem(line, field, value, reason))
        self.line_statements.append(self.statement_index)

    def file(
        self,
        reason: str,
        *,
        line: int | None = None,
        field: str | None = None,
        value: object = None,
    ) -> None:
        """Record a problem that rejects the whole file."""
        self.file_problems.append(self._problem(line, field, value, reason))

    def raise_if_any(self, *, skip_bad_lines: bool = False) -> None:
        """Raise ImportFormatError unless only skippable line problems exist."""
        if self.file_problems:
            raise ImportFormatError(self.file_problems + self.line_problems)
        if self.line_problems and not skip_bad_lines:
            raise ImportFormatError(self.line_problems)

    def _problem(
        self, line: int | None, field: str | None, value: object, reason: str
    ) -> Problem:
        shown = None if value is None else str(value)
        if shown is not None and len(shown) > 200:
            shown = shown[:200] + "..."
        return Problem(self.file_name, line, field, shown, reason)

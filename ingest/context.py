"""The read context: file name, caller options and the problem list."""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from ingest.problems import ProblemList

DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_CURRENCY = "CNY"


@dataclass
class ReadContext:
    """File name, caller options and problem list of one read."""

    file_name: str
    account: str | None = None
    profile: str | None = None
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    currency: str = DEFAULT_CURRENCY
    problems: ProblemList = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.problems is None:
            self.problems = ProblemList(self.file_name)

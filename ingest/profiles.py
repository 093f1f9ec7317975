"""Bank profiles: declarative descriptions of CSV and Excel exports.

A profile is a TOML file in `ingest/profiles/`. It names the header titles
that identify the export, which columns hold the date, the amount (or
debit and credit), the counterparty, the memo and the bank's id, and the
date and number formats. An export without a header row gives column
numbers under `[positions]` instead, with a `[layout]` that recognises its
rows. Adding a bank means adding a file, not code; see
docs/statement-formats.md for the keys.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ingest.tabular import Row

PROFILE_DIR = Path(__file__).with_name("profiles")

FIELDS = (
    "date", "value_date", "amount", "debit", "credit", "direction",
    "counterparty_name", "counterparty_account", "memo", "reference",
    "balance", "balance_before", "currency", "type", "status", "account",
)
# Named groups that a `[memo] pattern` may fill from the memo text.
MEMO_GROUPS = ("type", "counterparty_name", "counterparty_account")


def normalise_title(text: str) -> str:
    """Return a header title without spaces, in NFKC form and lower case."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(folded.split())


@dataclass(frozen=True)
class Profile:
    """One bank or wallet export layout."""

    name: str
    title: str
    order: int
    channel: str
    encodings: tuple[str, ...]
    delimiters: tuple[str, ...]
    currency: str | None
    require: tuple[tuple[str, ...], ...]
    columns: dict[str, tuple[str, ...]]
    date_formats: tuple[str, ...]
    decimal: str
    amount_sign: int
    direction_in: tuple[str, ...] = ()
    direction_out: tuple[str, ...] = ()
    known_types: tuple[str, ...] = ()
    known_type_prefixes: tuple[str, ...] = ()
    skip_status: tuple[str, ...] = ()
    account_patterns: tuple[str, ...] = ()
    year_pattern: str | None = None
    split_counterparty: bool = False
    blank_values: tuple[str, ...] = ("", "/", "-", "--", "—")
    header_rows: int = 60
    positions: dict[str, tuple[int, ...]] = field(default_factory=dict)
    layout_cells: int | None = None
    layout_patterns: tuple[tuple[int, str], ...] = ()
    layout_rows: int = 20
    opening_labels: tuple[str, ...] = ()
    closing_labels: tuple[str, ...] = ()
    memo_pattern: str | None = None
    quote_chars: str = ""
    source: str = field(default="", compare=False)

    @property
    def positional(self) -> bool:
        """Whether the export has no header row and columns are numbered."""
        return bool(self.positions)

    def matches(self, cells: list[str]) -> bool:
        """Tell whether a row contains a title of every group the profile requires."""
        titles = {normalise_title(cell) for cell in cells if cell}
        return all(
            any(normalise_title(option) in titles for option in group)
            for group in self.require
        )

    def fits_layout(self, rows: Sequence[Row]) -> bool:
        """Tell whether the first non-blank rows all have the profile's layout.

        Only a positional profile has a layout. A file with a header row
        fails it, because the header's cells do not fit the patterns.
        """
        checked = 0
        for row in rows:
            if row.is_blank():
                continue
            if not self._fits_row(row.cells):
                return False
            checked += 1
            if checked == self.layout_rows:
                break
        return checked > 0

    def _fits_row(self, cells: list[str]) -> bool:
        if self.layout_cells is not None and len(cells) != self.layout_cells:
            return False
        for index, pattern in self.layout_patterns:
            cell = cells[index] if index < len(cells) else ""
            if not re.search(pattern, cell):
                return False
        return True

    def balance_kind(self, label: str) -> str | None:
        """Return "opening" or "closing" when `label` names a balance row."""
        key = normalise_title(label)
        if not key:
            return None
        for kind, labels in (("opening", self.opening_labels),
                             ("closing", self.closing_labels)):
            if any(key.startswith(normalise_title(text)) for text in labels):
                return kind
        return None


def _tuple(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(item) for item in value)


def _positions(path: Path, data: dict) -> dict[str, tuple[int, ...]]:
    """Return the `[positions]` table as 0-based column indexes per field."""
    table = data.get("positions", {})
    unknown = set(table) - set(FIELDS)
    if unknown:
        raise ValueError(f"profile {path.name}: unknown positions {sorted(unknown)}")
    positions = {}
    for name, value in table.items():
        numbers = value if isinstance(value, list) else [value]
        if not numbers or not all(isinstance(n, int) and n >= 1 for n in numbers):
            raise ValueError(
                f"profile {path.name}: position of {name} must be a column "
                f"number from 1, or a list of them; got {value!r}"
            )
        positions[name] = tuple(n - 1 for n in numbers)
    return positions


def _layout(path: Path, data: dict, positional: bool):
    layout = data.get("layout", {})
    patterns = tuple(
        (int(number) - 1, str(pattern))
        for number, pattern in layout.get("patterns", {}).items()
    )
    for _index, pattern in patterns:
        re.compile(pattern)
    cells = layout.get("cells")
    if positional and cells is None and not patterns:
        # Without a layout a positional profile would claim every file.
        raise ValueError(
            f"profile {path.name}: a profile with [positions] needs a [layout] "
            "with `cells` or `patterns` that recognises its rows"
        )
    return (None if cells is None else int(cells), patterns,
            int(layout.get("rows", 20)))


def load_profile(path: Path) -> Profile:
    """Read one profile file; raises ValueError naming what to fix."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    columns = _columns(path, data)
    positions = _positions(path, data)
    _check_sections(path, data, positions)
    cells, patterns, layout_rows = _layout(path, data, bool(positions))

    header = data.get("header", {})
    direction = data.get("direction", {})
    types = data.get("types", {})
    balances = data.get("balances", {})
    return Profile(
        name=data["name"],
        title=data.get("title", data["name"]),
        order=int(data.get("order", 50)),
        channel=data.get("channel", "transfer"),
        encodings=_tuple(data.get("encodings", ["gb18030"])),
        delimiters=_tuple(data.get("delimiters", [","])),
        currency=data.get("currency"),
        require=tuple(_tuple(group) for group in header.get("require", ())),
        columns=columns,
        date_formats=_tuple(data.get("dates", {}).get("formats")),
        decimal=data.get("numbers", {}).get("decimal", "."),
        amount_sign=int(data.get("numbers", {}).get("amount_sign", 1)),
        direction_in=_tuple(direction.get("in")),
        direction_out=_tuple(direction.get("out")),
        known_types=_tuple(types.get("known")),
        known_type_prefixes=_tuple(types.get("known_prefixes")),
        skip_status=_tuple(data.get("skip", {}).get("status")),
        account_patterns=_tuple(data.get("account", {}).get("patterns")),
        year_pattern=data.get("dates", {}).get("year_pattern"),
        split_counterparty=bool(data.get("split_counterparty", False)),
        header_rows=int(header.get("within_rows", 60)),
        positions=positions,
        layout_cells=cells,
        layout_patterns=patterns,
        layout_rows=layout_rows,
        opening_labels=_tuple(balances.get("opening")),
        closing_labels=_tuple(balances.get("closing")),
        memo_pattern=data.get("memo", {}).get("pattern"),
        quote_chars=str(data.get("quote_chars", "")),
        source=path.name,
    )


def _columns(path: Path, data: dict) -> dict[str, tuple[str, ...]]:
    unknown = set(data.get("columns", {})) - set(FIELDS)
    if unknown:
        raise ValueError(f"profile {path.name}: unknown columns {sorted(unknown)}")
    return {key: _tuple(data.get("columns", {}).get(key)) for key in FIELDS}


def _check_sections(path: Path, data: dict, positions: dict) -> None:
    if positions and data.get("columns"):
        raise ValueError(
            f"profile {path.name}: give either [columns] titles or [positions], "
            "not both"
        )
    if not positions and not data.get("header", {}).get("require"):
        raise ValueError(f"profile {path.name}: [header] require is missing")
    memo_pattern = data.get("memo", {}).get("pattern")
    if memo_pattern is not None:
        _check_memo_pattern(path, memo_pattern)


def _check_memo_pattern(path: Path, pattern: str) -> None:
    groups = set(re.compile(pattern).groupindex)
    unknown = groups - set(MEMO_GROUPS)
    if unknown or not groups:
        raise ValueError(
            f"profile {path.name}: [memo] pattern needs named groups from "
            f"{', '.join(MEMO_GROUPS)}; found {sorted(groups)}"
        )


@cache
def load_profiles() -> tuple[Profile, ...]:
    """Return every profile, specific layouts first and generic ones last."""
    profiles = [load_profile(path) for path in sorted(PROFILE_DIR.glob("*.toml"))]
    return tuple(sorted(profiles, key=lambda p: (p.order, p.name)))


def list_profiles() -> list[str]:
    """Return the names of the bank profiles, in the order they are tried."""
    return [profile.name for profile in load_profiles()]


def get_profile(name: str) -> Profile | None:
    """Return the profile called `name`, or None."""
    return next((p for p in load_profiles() if p.name == name), None)

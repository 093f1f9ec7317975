"""Bank profiles: declarative descriptions of CSV and Excel exports.

A profile is a TOML file in `ingest/profiles/`. It names the header titles
that identify the export, which columns hold the date, the amount (or
debit and credit), the counterparty, the memo and the bank's id, and the
date and number formats. Adding a bank means adding a file, not code; see
docs/statement-formats.md for the keys.
"""

from __future__ import annotations

import tomllib
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

PROFILE_DIR = Path(__file__).with_name("profiles")

FIELDS = (
    "date", "value_date", "amount", "debit", "credit", "direction",
    "counterparty_name", "counterparty_account", "memo", "reference",
    "balance", "currency", "type", "status",
)


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
    source: str = field(default="", compare=False)

    def matches(self, cells: list[str]) -> bool:
        """Tell whether a row contains a title of every group the profile requires."""
        titles = {normalise_title(cell) for cell in cells if cell}
        return all(
            any(normalise_title(option) in titles for option in group)
            for group in self.require
        )


def _tuple(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(item) for item in value)


def _load(path: Path) -> Profile:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    columns = {key: _tuple(data.get("columns", {}).get(key)) for key in FIELDS}
    unknown = set(data.get("columns", {})) - set(FIELDS)
    if unknown:
        raise ValueError(f"profile {path.name}: unknown columns {sorted(unknown)}")
    header = data.get("header", {})
    direction = data.get("direction", {})
    types = data.get("types", {})
    return Profile(
        name=data["name"],
        title=data.get("title", data["name"]),
        order=int(data.get("order", 50)),
        channel=data.get("channel", "transfer"),
        encodings=_tuple(data.get("encodings", ["gb18030"])),
        delimiters=_tuple(data.get("delimiters", [","])),
        currency=data.get("currency"),
        require=tuple(_tuple(group) for group in header["require"]),
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
        source=path.name,
    )


@cache
def load_profiles() -> tuple[Profile, ...]:
    """Return every profile, specific layouts first and generic ones last."""
    profiles = [_load(path) for path in sorted(PROFILE_DIR.glob("*.toml"))]
    return tuple(sorted(profiles, key=lambda p: (p.order, p.name)))


def list_profiles() -> list[str]:
    """Return the names of the bank profiles, in the order they are tried."""
    return [profile.name for profile in load_profiles()]


def get_profile(name: str) -> Profile | None:
    """Return the profile called `name`, or None."""
    return next((p for p in load_profiles() if p.name == name), None)

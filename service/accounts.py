"""The currency and time zone an import requests for our bank accounts.

An account gets its currency and time zone when an import creates it. Its
stored lines were read in that time zone and flagged against that
currency, so a later import may repeat the values but never change them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from models.errors import CashmatchError
from models.tables import BankAccount


class InvalidAccountSetup(CashmatchError):
    """A currency or time zone given for an account that cannot be used."""


class AccountSetupConflict(CashmatchError):
    """A currency or time zone given for an account that differs from its own."""


@dataclass(frozen=True)
class AccountSetup:
    """The currency and time zone requested for the accounts of an import.

    None leaves a value to the stored account, or for a new account to the
    `default_currency` and `time_zone` settings.
    """

    currency: str | None = None
    time_zone: str | None = None


NO_SETUP = AccountSetup()


def account_setup(
    *, currency: str | None = None, time_zone: str | None = None
) -> AccountSetup:
    """Return the requested account setup, with the currency in capitals.

    Raises InvalidAccountSetup for a currency that is not three letters or
    a time zone that is not in the IANA database.
    """
    if currency is not None and not re.fullmatch(r"[A-Za-z]{3}", currency):
        raise InvalidAccountSetup(
            f"currency {currency!r} is invalid; give a three-letter ISO 4217 "
            "code such as EUR or CNY"
        )
    if time_zone is not None:
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            # ZoneInfo raises ValueError for a malformed key or a file that
            # is no zone, and IsADirectoryError for a folder such as Europe.
            raise InvalidAccountSetup(
                f"time zone {time_zone!r} is not found; give an IANA name such "
                "as Europe/Berlin or Asia/Shanghai"
            ) from exc
    return AccountSetup(
        currency=currency.upper() if currency else None, time_zone=time_zone
    )


def check_account_setup(stored: BankAccount, setup: AccountSetup) -> None:
    """Raise AccountSetupConflict when `setup` differs from a stored account.

    The values are compared, not changed, because the stored lines of the
    account were read and flagged with the stored ones.
    """
    requested = {"currency": setup.currency, "time zone": setup.time_zone}
    current = {"currency": stored.currency, "time zone": stored.time_zone}
    for name, value in requested.items():
        if value is not None and value != current[name]:
            raise AccountSetupConflict(
                f"account {stored.account} is stored with {name} {current[name]}, "
                f"but the import gives {value}; import without a {name}, or "
                "into another account; nothing was imported"
            )

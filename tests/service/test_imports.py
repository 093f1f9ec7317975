"""Storing statement files: idempotent, all or nothing, on both databases."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, select
from typer.testing import CliRunner

from ingest.records import CustomerRecord
from models.db import session_scope
from models.errors import ImportFormatError, StatementBalanceError
from models.tables import (
    AuditEvent,
    BankAccount,
    ImportBatch,
    ReviewTask,
    StatementLine,
)
from service import master
from service.accounts import AccountSetupConflict, InvalidAccountSetup
from service.cli import app
from service.imports import FOREIGN_CURRENCY, import_bytes
from service.matching import match_lines
from service.serving import current_model
from service.settings import Settings

HEADER = (
    "line_ref,booking_date,amount,currency,counterparty_name,"
    "counterparty_account,memo,bank_reference\n"
)

C01_MT940 = b""":20:STMT-A
:25:CN0012345678
:28C:1/1
:60F:C250115CNY1000,00
:61:2501150115C120,00NTRFORD-5531//BREF-0001
:86:PAYMENT FOR ORD-5531 SHANGHAI YUANJING TRADING
:61:2501150115C80,00NTRFORD-5532//BREF-0002
:86:PAYMENT FOR ORD-5532 SHANGHAI YUANJING TRADING
:62F:C250115CNY1200,00
-
"""

C08_WECHAT = (
    "微信支付账单明细,,,,,,,,,,\n"
    "微信昵称：[远景贸易],,,,,,,,,,\n"
    "----------------------微信支付账单明细列表--------------------,,,,,,,,,,\n"
    "交易时间,交易类型,交易对方,商品,收/支,金额(元),支付方式,当前状态,交易单号,商户单号,备注\n"
    "2025-03-05 10:12:00,转账,上海远景贸易有限公司,/,收入,¥120.00,/,已收钱,"
    "1000050001\t,SO-1201\t,/\n"
    "2025-03-06 11:00:00,转账-退款,杭州明达科技有限公司,/,收入,¥38.00,/,已退款,"
    "1000050002\t,/\t,/\n"
    "2025-03-07 09:30:00,企业付款到零钱,广州华南物流有限公司,/,收入,¥5.00,/,已到账,"
    "1000050003\t,/\t,/\n"
)


def _csv(*rows: str) -> bytes:
    return (HEADER + "".join(row + "\n" for row in rows)).encode()


def _mt940(
    statement_id: str,
    day: str,
    *lines: tuple[str, str],
    opening: str = "0,00",
    closing: str | None = None,
) -> bytes:
    """Return an MT940 statement of credits; `lines` are (amount, bank ref)."""
    body = "".join(
        f":61:{day}{day[2:]}C{amount}NTRFNONREF//{ref}\n:86:PAYMENT {ref}\n"
        for amount, ref in lines
    )
    if closing is None:
        total = sum(Decimal(a.replace(",", ".")) for a, _ in lines)
        closing = f"{Decimal(opening.replace(',', '.')) + total:.2f}".replace(".", ",")
    return (
        f":20:{statement_id}\n:25:CN0012345678\n:28C:1/1\n"
        f":60F:C{day}CNY{opening}\n{body}:62F:C{day}CNY{closing}\n-\n"
    ).encode()


def _ofx(*transactions: str, account: str = "9988776655") -> bytes:
    """Return an OFX 1.02 statement in CNY around STMTTRN blocks."""
    return f"""OFXHEADER:100
DATA:OFXSGML
VERSION:102
SECURITY:NONE
ENCODING:USASCII
CHARSET:1252
COMPRESSION:NONE
OLDFILEUID:NONE
NEWFILEUID:NONE

<OFX>
<BANKMSGSRSV1><STMTTRNRS><TRNUID>1<STATUS><CODE>0<SEVERITY>INFO</STATUS>
<STMTRS><CURDEF>CNY
<BANKACCTFROM><BANKID>11111111<ACCTID>{account}<ACCTTYPE>CHECKING</BANKACCTFROM>
<BANKTRANLIST><DTSTART>20250601<DTEND>20250630
{"".join(transactions)}
</BANKTRANLIST>
<LEDGERBAL><BALAMT>1000.00<DTASOF>20250630</LEDGERBAL>
</STMTRS></STMTTRNRS></BANKMSGSRSV1>
</OFX>
""".encode()


def _ofx_tx(
    amount: str,
    fitid: str,
    *,
    memo: str = "",
    kind: str = "CREDIT",
    posted: str = "20250612",
) -> str:
    return (
        f"<STMTTRN><TRNTYPE>{kind}<DTPOSTED>{posted}<TRNAMT>{amount}"
        f"<FITID>{fitid}<NAME>Payer<MEMO>{memo}</STMTTRN>"
    )


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path)


def _import(engine, settings, data: bytes, name: str = "statement.csv", **options):
    with session_scope(engine) as session:
        return import_bytes(
            session, data, settings, file_name=name, actor="tester", **options
        )


def _lines(engine) -> list[StatementLine]:
    with Session(engine) as session:
        return list(session.exec(select(StatementLine).order_by(StatementLine.id)))


def _count(engine, table) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(table)).one()


def _events(engine, action: str) -> list[AuditEvent]:
    with Session(engine) as session:
        query = select(AuditEvent).where(AuditEvent.action == action)
        return list(session.exec(query.order_by(AuditEvent.id)))


def _nothing_stored(engine) -> None:
    for table in (StatementLine, ImportBatch, BankAccount, AuditEvent):
        assert _count(engine, table) == 0, table.__name__


# Idempotency ------------------------------------------------------------------


def test_import_same_file_twice_adds_nothing(engine, settings):
    first = _import(engine, settings, C01_MT940, "c01.sta")
    second = _import(engine, settings, C01_MT940, "c01.sta")

    assert (first.lines_new, first.lines_already_imported) == (2, 0)
    assert (second.lines_new, second.lines_already_imported) == (0, 2)
    assert len(_lines(engine)) == 2
    assert second.already_imported_by == {first.batch_ids[0]: 2}
    assert f"2 lines stored by batch {first.batch_ids[0]}" in second.details()[0]


def test_import_c10_identical_lines_stay_distinct(engine, settings):
    march = _csv(",2025-03-28,18.00,CNY,,,WRENFIELD CLUB SUBS,")
    april = _csv(
        ",2025-04-02,18.00,CNY,,,WRENFIELD CLUB SUBS,",
        ",2025-04-02,18.00,CNY,,,WRENFIELD CLUB SUBS,",
    )

    _import(engine, settings, march, "march.csv")
    first = _import(engine, settings, april, "april.csv")
    again = _import(engine, settings, april, "april.csv")

    lines = _lines(engine)
    assert len(lines) == 3
    assert lines[0].booking_date == date(2025, 3, 28)
    assert lines[0].batch_id == 1
    assert first.lines_new == 2
    assert again.lines_new == 0
    assert "2 already imported" in again.summary()


def test_import_c11_shared_fitid_stores_both(engine, settings):
    data = _ofx(
        _ofx_tx("300.00", "FIT-77", memo="SO-9401"),
        _ofx_tx("-4.50", "FIT-77", memo="FEE", kind="FEE"),
    )

    first = _import(engine, settings, data, "c11.ofx")
    again = _import(engine, settings, data, "c11.ofx")

    lines = _lines(engine)
    assert [line.line_ref for line in lines] == ["FIT-77", "FIT-77#2"]
    assert sum(line.amount for line in lines) == Decimal("295.50")
    assert first.lines_new == 2
    assert again.lines_new == 0


def test_import_reused_statement_id_is_not_reimport(engine, settings):
    january = _mt940("STMT-7", "250115", ("120,00", "BREF-1"))
    february = _mt940("STMT-7", "250215", ("120,00", "BREF-1"))

    _import(engine, settings, january, "jan.sta")
    second = _import(engine, settings, february, "feb.sta")

    assert second.lines_new == 1
    assert [line.booking_date.month for line in _lines(engine)] == [1, 2]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(
            _csv(
                ",2025-05-01,10.00,CNY,A,,rent,",
                ",2025-05-02,20.00,CNY,B,,fee,",
                ",2025-05-02,20.00,CNY,B,,fee,",
            ),
            _csv(
                ",2025-05-02,20.00,CNY,B,,fee,",
                ",2025-05-02,20.00,CNY,B,,fee,",
                ",2025-05-03,30.00,CNY,C,,SO-1,",
            ),
            id="fingerprint",
        ),
        pytest.param(
            _csv(
                "R1,2025-05-01,10.00,CNY,A,,rent,R1",
                "R2,2025-05-02,20.00,CNY,B,,fee,R2",
            ),
            _csv(
                "R2,2025-05-02,20.00,CNY,B,,fee,R2",
                "R3,2025-05-03,30.00,CNY,C,,SO-1,R3",
            ),
            id="bank-id",
        ),
    ],
)
def test_import_overlapping_statements_add_each_once(engine, settings, first, second):
    before = _import(engine, settings, first, "may-a.csv")
    after = _import(engine, settings, second, "may-b.csv")

    amounts = [line.amount for line in _lines(engine)]
    assert after.lines_new == 1
    assert after.lines_already_imported == after.lines_total - 1
    assert len(amounts) == before.lines_total + 1
    assert amounts[-1] == Decimal("30.00")


def test_import_same_file_at_once_stores_once(engine, settings):
    rows = [
        f"R{i},2025-06-{1 + i % 28:02d},{i}.00,CNY,P,,m,R{i}" for i in range(1, 3001)
    ]
    data = _csv(*rows)
    barrier = threading.Barrier(2)
    reports, errors = [], []

    def run() -> None:
        try:
            barrier.wait()
            reports.append(_import(engine, settings, data, "same.csv"))
        except Exception as exc:  # noqa: BLE001 - the assertions name it
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert _count(engine, StatementLine) == 3000
    assert sorted(r.lines_new for r in reports) == [0, 3000]
    assert sorted(r.lines_already_imported for r in reports) == [0, 3000]


# Atomicity --------------------------------------------------------------------


def test_import_bad_line_imports_nothing(engine, settings):
    data = _csv("L1,2025-03-01,10.00,CNY,,,ok,", "L2,2025-13-45,12.00,CNY,,,bad,")

    with pytest.raises(ImportFormatError, match="statement.csv:3, field booking_date"):
        _import(engine, settings, data)

    _nothing_stored(engine)


def test_import_skip_bad_lines_lists_them(engine, settings):
    data = _csv(
        "L1,2025-03-01,10.00,CNY,,,ok,",
        "L2,2025-13-45,12.00,CNY,,,bad,",
        "L3,2025-03-02,x,CNY,,,bad,",
    )

    report = _import(engine, settings, data, skip_bad_lines=True)

    [event] = _events(engine, "import")
    skipped = event.detail["skipped"]
    assert report.lines_new == 1
    assert report.lines_rejected == 2
    assert "3 lines, 1 new, 0 already imported, 2 rejected" in report.summary()
    assert [p["line"] for p in skipped] == [3, 4]
    assert skipped[0]["field"] == "booking_date"
    assert skipped[0]["value"] == "2025-13-45"
    assert report.details()[0].startswith("rejected: statement.csv:3")
    with Session(engine) as session:
        assert session.get(ImportBatch, report.batch_ids[0]).lines_rejected == 2


def test_import_failure_mid_insert_changes_nothing(engine, settings):
    rows = [f"R{i},2025-06-01,{i}.00,CNY,P,,m{i},R{i}" for i in range(1, 3001)]
    rows[2499] = "R2500,2025-06-01,1.00,CNY,P,,FAIL HERE,R2500"
    _install_failing_trigger(engine)

    with pytest.raises(DBAPIError, match="injected failure"):
        _import(engine, settings, _csv(*rows))

    _nothing_stored(engine)


def _install_failing_trigger(engine) -> None:
    if engine.dialect.name == "sqlite":
        statements = [
            (
                "CREATE TRIGGER fail_line BEFORE INSERT ON statement_line "
                "WHEN NEW.memo = 'FAIL HERE' "
                "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            ),
        ]
    else:
        statements = [
            (
                "CREATE FUNCTION fail_line() RETURNS trigger AS $$ BEGIN "
                "IF NEW.memo = 'FAIL HERE' THEN RAISE EXCEPTION 'injected failure'; "
                "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            ),
            (
                "CREATE TRIGGER fail_line BEFORE INSERT ON statement_line "
                "FOR EACH ROW EXECUTE FUNCTION fail_line()"
            ),
        ]
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def test_import_unbalanced_rejected_by_default(engine, settings):
    data = _mt940("STMT-U", "250115", ("120,00", "BREF-1"), closing="100,00")

    with pytest.raises(StatementBalanceError, match="closing balance is 100.00"):
        _import(engine, settings, data, "u.sta")

    _nothing_stored(engine)


def test_import_accept_unbalanced_records_difference(engine, settings):
    data = _mt940("STMT-U", "250115", ("120,00", "BREF-1"), closing="100,00")

    report = _import(engine, settings, data, "u.sta", accept_unbalanced=True)

    [event] = _events(engine, "accept_unbalanced")
    batch_id = report.batch_ids[0]
    assert report.lines_new == 1
    assert report.balance_differences == {batch_id: Decimal("-20.00")}
    assert event.entity_id == str(batch_id)
    assert event.actor == "tester"
    assert event.detail["difference"] == "-20.00"
    assert any("difference -20.00" in note for note in report.notes)


def test_import_long_memo_is_cut_with_note(engine, settings):
    memo = "SO-1 " + "x" * 2500

    report = _import(engine, settings, _csv(f"L1,2025-03-01,1.00,CNY,,,{memo},"))

    [line] = _lines(engine)
    assert len(line.memo) == 2000
    assert line.memo.startswith("SO-1 ")
    assert any("memo was cut from 2505 to 2000" in note for note in report.notes)


def test_import_long_line_ref_is_rejected(engine, settings):
    ref = "R" * 250

    with pytest.raises(ImportFormatError, match="field line_ref.*longer than 200"):
        _import(engine, settings, _csv(f"{ref},2025-03-01,1.00,CNY,,,m,"))

    _nothing_stored(engine)


# What a batch keeps --------------------------------------------------------------

MARCH_MT940 = b""":20:STMT-M
:25:CN0012345678
:28C:3/1
:60F:C250227CNY1000,00
:61:2503280328C200,00NTRFNONREF//BREF-0328
:86:PAYMENT SO-0328
:62F:C250331CNY1200,00
-
"""


@pytest.mark.parametrize(
    ("data", "name", "closing", "closing_date"),
    [
        pytest.param(MARCH_MT940, "m.sta", "1200.00", date(2025, 3, 31), id="mt940"),
        pytest.param(
            _ofx(_ofx_tx("10.00", "T-1", memo="SO-1")),
            "s.ofx",
            "1000.00",
            date(2025, 6, 30),
            id="ofx",
        ),
        pytest.param(
            _csv("L1,2025-03-01,10.00,CNY,,,SO-1,"), "s.csv", None, None, id="csv"
        ),
    ],
)
def test_import_batch_keeps_closing_date(
    engine, settings, data, name, closing, closing_date
):
    report = _import(engine, settings, data, name)

    with Session(engine) as session:
        batch = session.get(ImportBatch, report.batch_ids[0])
    expected = None if closing is None else Decimal(closing)
    assert batch.closing_balance == expected
    assert batch.closing_date == closing_date


# What a line keeps ---------------------------------------------------------------


def test_import_amounts_keep_sign_and_currency(engine, settings):
    data = _csv(
        "L1,2025-03-01,-12.50,CNY,,,fee,",
        "L2,2025-03-01,30.00,USD,,,SO-2,",
        "L3,2025-03-01,7.00,,,,SO-3,",
    )

    report = _import(engine, settings, data)

    fee, dollars, plain = _lines(engine)
    assert fee.amount == Decimal("-12.50")
    assert (dollars.amount, dollars.currency) == (Decimal("30.00"), "USD")
    assert plain.currency == "CNY"
    assert dollars.anomaly_reasons == [FOREIGN_CURRENCY]
    assert fee.anomaly_reasons is None
    assert report.foreign_currency == ["L2"]


def test_import_foreign_currency_follows_account(engine, settings):
    with session_scope(engine) as session:
        session.add(BankAccount(account="USD-1", currency="USD"))
    data = _csv("L1,2025-03-01,30.00,USD,,,a,", "L2,2025-03-01,40.00,,,,b,")

    report = _import(engine, settings, data, account="USD-1")

    first, second = _lines(engine)
    assert second.currency == "USD"
    assert first.anomaly_reasons is None
    assert second.anomaly_reasons is None
    assert report.foreign_currency == []


def test_import_foreign_currency_line_goes_to_review(engine, settings):
    _customer(engine)
    with session_scope(engine) as session:
        session.add(BankAccount(account="default", currency="CNY"))
    _import(
        engine,
        settings,
        _csv("L1,2025-03-05,500.00,USD,上海远景贸易有限公司,6222001,advance,"),
    )

    [line] = _match(engine, settings)

    assert line.decision == "review"
    assert FOREIGN_CURRENCY in line.anomaly_reasons


def test_import_unknown_type_stored_then_reviewed(engine, settings):
    _customer(engine)
    _import(engine, settings, C08_WECHAT.encode("gb18030"), "c08.csv")

    lines = _match(engine, settings)

    unknown = lines[2]
    assert [line.unknown_type for line in lines] == [False, False, True]
    assert unknown.amount == Decimal("5.00")
    assert "unknown_type" in unknown.anomaly_reasons
    assert unknown.status in ("review", "unmatched")
    with Session(engine) as session:
        task = session.exec(
            select(ReviewTask).where(ReviewTask.line_id == unknown.id)
        ).one()
    assert task.status == "open"
    assert "unknown transaction type" in task.reason


def _customer(engine) -> None:
    with session_scope(engine) as session:
        master.upsert_customers(
            session,
            [CustomerRecord("C1", "上海远景贸易有限公司", bank_accounts=("6222001",))],
        )


def _match(engine, settings) -> list[StatementLine]:
    with session_scope(engine) as session:
        lines = list(session.exec(select(StatementLine).order_by(StatementLine.id)))
        match_lines(session, lines, current_model(session, settings), settings)
    return _lines(engine)


# Time zones ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        pytest.param(None, date(2025, 6, 13), id="default-shanghai"),
        pytest.param("Europe/Berlin", date(2025, 6, 12), id="account-berlin"),
    ],
)
def test_import_dates_in_account_time_zone(engine, settings, zone, day):
    if zone is not None:
        with session_scope(engine) as session:
            session.add(BankAccount(account="9988776655", time_zone=zone))
    data = _ofx(_ofx_tx("88.00", "FIT-1", posted="20250612200000[0:UTC]"))

    _import(engine, settings, data, "tz.ofx")

    [line] = _lines(engine)
    assert line.account == "9988776655"
    assert line.booking_date == day


def test_import_new_account_gets_settings_zone(engine, tmp_path):
    settings = Settings(data_dir=tmp_path, time_zone="America/New_York")
    data = _ofx(_ofx_tx("88.00", "FIT-1", posted="20250612200000[0:UTC]"))

    _import(engine, settings, data, "tz.ofx")

    [line] = _lines(engine)
    with Session(engine) as session:
        account = session.get(BankAccount, "9988776655")
    assert account.time_zone == "America/New_York"
    assert account.currency == "CNY"
    assert line.booking_date == date(2025, 6, 12)


# The command line ----------------------------------------------------------------


@pytest.fixture
def cli(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CASHMATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("CASHMATCH_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    return invoke


def test_cli_import_prints_counts_and_reasons(cli, tmp_path):
    path = tmp_path / "statement.csv"
    path.write_bytes(
        _csv("L1,2025-03-01,10.00,CNY,,,ok,", "L2,2025-03-01,x,CNY,,,bad,")
    )

    first = cli("import", str(path), "--skip-bad-lines")
    second = cli("import", str(path), "--skip-bad-lines")

    assert first.exit_code == 0, first.output
    assert "2 lines, 1 new, 0 already imported, 1 rejected; batch 1" in first.output
    assert "rejected: statement.csv:3, field amount, value 'x'" in first.output
    assert "0 new, 1 already imported, 1 rejected; batch 2" in second.output
    assert "already imported: 1 line stored by batch 1" in second.output


def test_cli_import_bad_line_fails_without_skip(cli, tmp_path):
    path = tmp_path / "statement.csv"
    path.write_bytes(
        _csv("L1,2025-03-01,10.00,CNY,,,ok,", "L2,2025-03-01,x,CNY,,,bad,")
    )

    result = cli("import", str(path))

    assert result.exit_code == 1
    assert "statement.csv:3, field amount" in result.output
    assert "nothing was imported" in result.output


def test_cli_import_accept_unbalanced(cli, tmp_path):
    path = tmp_path / "u.sta"
    path.write_bytes(_mt940("STMT-U", "250115", ("120,00", "B1"), closing="100,00"))

    rejected = cli("import", str(path))
    accepted = cli("import", str(path), "--accept-unbalanced")

    assert rejected.exit_code == 1
    assert "accept unbalanced statements" in rejected.output
    assert accepted.exit_code == 0, accepted.output
    assert "1 new" in accepted.output
    assert (
        "unbalanced: batch 1 was accepted with a difference of -20.00"
        in accepted.output
    )


# Account currency and time zone ----------------------------------------------------

GERMAN_CSV = (
    b"Buchungstag;Name Zahlungsbeteiligter;Verwendungszweck;Betrag\n"
    b"17.06.2025;Kestrel Tools GmbH;SO-4411 Anzahlung;1.250,00\n"
)


def test_import_currency_and_zone_set_new_account(engine, settings):
    data = _ofx(_ofx_tx("88.00", "FIT-1", posted="20250612230000[0:UTC]"))

    report = _import(
        engine, settings, data, "tz.ofx", currency="eur", time_zone="Europe/Berlin"
    )

    [line] = _lines(engine)
    with Session(engine) as session:
        account = session.get(BankAccount, "9988776655")
    assert account.currency == "EUR"
    assert account.time_zone == "Europe/Berlin"
    assert line.booking_date == date(2025, 6, 13)
    assert line.currency == "CNY"
    assert line.anomaly_reasons == [FOREIGN_CURRENCY]
    assert report.foreign_currency == ["FIT-1"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(
            {"currency": "EUR"},
            "account ACC-DE is stored with currency CNY, but the import gives EUR",
            id="currency",
        ),
        pytest.param(
            {"time_zone": "Europe/Berlin"},
            "account ACC-DE is stored with time zone Asia/Shanghai, but the "
            "import gives Europe/Berlin",
            id="time-zone",
        ),
    ],
)
def test_import_setup_differs_from_stored_account(engine, settings, options, message):
    with session_scope(engine) as session:
        session.add(BankAccount(account="ACC-DE"))

    with pytest.raises(AccountSetupConflict, match=message):
        _import(engine, settings, GERMAN_CSV, "de.csv", account="ACC-DE", **options)

    assert _count(engine, StatementLine) == 0
    assert _count(engine, ImportBatch) == 0
    with Session(engine) as session:
        account = session.get(BankAccount, "ACC-DE")
    assert (account.currency, account.time_zone) == ("CNY", "Asia/Shanghai")


def test_import_setup_equal_to_stored_account(engine, settings):
    with session_scope(engine) as session:
        session.add(BankAccount(account="ACC-DE", currency="EUR"))

    report = _import(
        engine, settings, GERMAN_CSV, "de.csv", account="ACC-DE", currency="EUR"
    )

    [line] = _lines(engine)
    assert report.lines_new == 1
    assert (line.amount, line.currency) == (Decimal("1250.00"), "EUR")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"currency": "EURO"}, "currency 'EURO' is invalid", id="currency"),
        pytest.param(
            {"time_zone": "Europe/Berln"},
            "time zone 'Europe/Berln' is not found",
            id="time-zone",
        ),
        pytest.param(
            {"time_zone": "Europe"}, "time zone 'Europe' is not found", id="zone-folder"
        ),
    ],
)
def test_import_invalid_setup_is_rejected(engine, settings, options, message):
    with pytest.raises(InvalidAccountSetup, match=message):
        _import(engine, settings, GERMAN_CSV, "de.csv", account="ACC-DE", **options)

    _nothing_stored(engine)


# Line references ------------------------------------------------------------------


def _export_csv(*rows: str) -> bytes:
    body = "".join(row + "\n" for row in rows)
    return ("Buchungstag;Betrag;Verwendungszweck\n" + body).encode()


C10A_EXPORT = _export_csv("01.03.2025;18,00;WRENFIELD CLUB SUBS")
C10B_EXPORT = _export_csv(
    "01.04.2025;18,00;WRENFIELD CLUB SUBS", "02.04.2025;20,00;SO-1"
)


def test_import_same_file_name_keeps_refs_unique(engine, settings):
    first = _import(engine, settings, C10A_EXPORT, "export.csv", account="ACC-C10")
    second = _import(engine, settings, C10B_EXPORT, "export.csv", account="ACC-C10")
    again = _import(engine, settings, C10B_EXPORT, "export.csv", account="ACC-C10")

    batch = second.batch_ids[0]
    refs = [line.line_ref for line in _lines(engine)]
    assert refs == [
        "export.csv:1",
        f"export.csv:1@batch{batch}",
        f"export.csv:2@batch{batch}",
    ]
    assert first.notes == []
    assert second.notes == [
        (
            "account ACC-C10 already has lines with line_ref export.csv:1, so "
            f"batch {batch} stores its new lines with line_refs ending in "
            f"@batch{batch}"
        )
    ]
    assert (again.lines_new, again.lines_already_imported) == (0, 2)
    assert again.notes == []


def test_import_same_file_name_other_account_keeps_ref(engine, settings):
    _import(engine, settings, C10A_EXPORT, "export.csv", account="ACC-C10")
    _import(engine, settings, C10B_EXPORT, "export.csv", account="ACC-UP")

    lines = _lines(engine)
    assert [line.line_ref for line in lines] == [
        "export.csv:1",
        "export.csv:1",
        "export.csv:2",
    ]
    assert [line.account for line in lines] == ["ACC-C10", "ACC-UP", "ACC-UP"]


def test_import_renamed_ref_fits_column(engine, settings):
    ref = "R" * 200
    _import(engine, settings, _csv(f"{ref},2025-03-01,1.00,CNY,,,a,"), "a.csv")

    report = _import(engine, settings, _csv(f"{ref},2025-03-02,2.00,CNY,,,b,"), "b.csv")

    suffix = f"@batch{report.batch_ids[0]}"
    second = _lines(engine)[1]
    assert second.line_ref == "R" * (200 - len(suffix)) + suffix


def test_cli_import_currency_and_zone_create_account(cli, engine, tmp_path):
    path = tmp_path / "de.csv"
    path.write_bytes(GERMAN_CSV)

    result = cli(
        "import",
        str(path),
        "--account",
        "ACC-DE",
        "--currency",
        "EUR",
        "--time-zone",
        "Europe/Berlin",
    )

    assert result.exit_code == 0, result.output
    assert "1 line, 1 new" in result.output
    [line] = _lines(engine)
    with Session(engine) as session:
        account = session.get(BankAccount, "ACC-DE")
    assert (account.currency, account.time_zone) == ("EUR", "Europe/Berlin")
    assert (line.amount, line.currency) == (Decimal("1250.00"), "EUR")
    assert line.anomaly_reasons is None


def test_cli_import_currency_differs_fails(cli, engine, tmp_path):
    path = tmp_path / "de.csv"
    path.write_bytes(GERMAN_CSV)
    with session_scope(engine) as session:
        session.add(BankAccount(account="ACC-DE"))

    result = cli("import", str(path), "--account", "ACC-DE", "--currency", "EUR")

    assert result.exit_code == 1
    assert (
        "error: account ACC-DE is stored with currency CNY, but the import gives "
        "EUR; import without a currency, or into another account; nothing was "
        "imported"
    ) in result.output
    assert _count(engine, StatementLine) == 0


def _add_line(session: Session, ref: str, account: str, key: str) -> int:
    line = StatementLine(
        account=account,
        line_ref=ref,
        dedupe_key=key,
        booking_date=date(2025, 3, 1),
        amount=Decimal("18.00"),
        memo="WRENFIELD CLUB SUBS",
    )
    session.add(line)
    session.flush()
    return line.id


def _stored_duplicates(engine) -> list[int]:
    """Store two lines of ACC-C10 with one line_ref, as older imports did."""
    with session_scope(engine) as session:
        return [
            _add_line(session, "export.csv:1", "ACC-C10", key) for key in ("k1", "k2")
        ]


def test_cli_explain_duplicate_ref_lists_line_ids(cli, engine):
    first, second = _stored_duplicates(engine)

    result = cli("explain", "export.csv:1", "--account", "ACC-C10")

    assert result.exit_code == 1
    assert (
        f"error: 2 lines have line_ref 'export.csv:1' (line ids {first}, {second}; "
        f"accounts ACC-C10); pick one with --line-id, such as --line-id {first}"
    ) in result.output


def test_cli_explain_duplicate_ref_in_two_accounts(cli, engine):
    with session_scope(engine) as session:
        first = _add_line(session, "export.csv:1", "ACC-C10", "k1")
        second = _add_line(session, "export.csv:1", "ACC-UP", "k2")

    result = cli("explain", "export.csv:1")

    assert result.exit_code == 1
    assert (
        f"(line ids {first}, {second}; accounts ACC-C10, ACC-UP); pick one with "
        f"--line-id, such as --line-id {first}, or name its account with "
        "--account ACC-C10"
    ) in result.output


def test_cli_explain_line_id_reaches_each_line(cli, engine):
    first, second = _stored_duplicates(engine)
    with session_scope(engine) as session:
        session.get(StatementLine, second).status = "dismissed"

    explained = [
        cli("explain", "--line-id", str(line_id)) for line_id in (first, second)
    ]

    assert [result.exit_code for result in explained] == [0, 0], explained[1].output
    assert "export.csv:1  2025-03-01  18.00 CNY" in explained[0].output
    assert "status new" in explained[0].output
    assert "status dismissed" in explained[1].output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            [],
            "missing LINE_REF; name the line by its line_ref or with --line-id",
            id="neither",
        ),
        pytest.param(
            ["L1", "--line-id", "1"],
            "give a LINE_REF or --line-id, not both",
            id="both",
        ),
        pytest.param(
            ["--line-id", "999"], "statement line 999 does not exist", id="unknown-id"
        ),
    ],
)
def test_cli_explain_bad_line_choice(cli, args, message):
    result = cli("explain", *args)

    assert result.exit_code == 1
    assert f"error: {message}" in result.output

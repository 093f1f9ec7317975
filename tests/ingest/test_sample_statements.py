"""Every file of the public sample statements imports or is rejected cleanly.

A file that imports has the pinned number of statements, lines and total,
and each statement with both balances reproduces its closing balance. A
file that is rejected raises ImportFormatError whose problems name the
file, the field and the reason; no file raises anything else.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ingest import dedupe_keys, read_statements
from models.errors import ImportFormatError, StatementBalanceError

pytestmark = pytest.mark.samples

# (statements, lines, total of all lines), or None for a file that is
# rejected: files whose balances do not add up, batch details that do not
# add up to their entry, and files that are no statements.
EXPECTED = {
    "camt/ch-camt053v08-redacted-amt-without-ccy.xml": (1, 1, "1284.30"),
    "camt/ch-raiffeisen-camt053v04-redacted-date-with-tz.xml": (1, 16, "-3679.85"),
    "camt/de-sparkasse-camt052v02-redacted.xml": (1, 5, "-251.40"),
    "camt/genkgo-camt053v02-three-decimal-amounts.xml": None,
    "camt/genkgo-camt053v08-sts-cd-dttm-strd-ref.xml": None,
    "camt/genkgo-camt054v08-ch-isr-refs.xml": None,
    "camt/lt-centralbank-camt053v08-singleline-no-cdtdbtind-bal.xml": (2, 3, "822737.81"),
    "camt/oca-camt053-zipped.zip": None,
    "camt/oca-camt053v02-abnamro-nl.xml": None,
    "camt/oca-camt053v04-ch-batch-txdtls-qrref.xml": (1, 2, "3483.00"),
    "camt/oca-camt054v04-nl-structured-ref.xml": (1, 1, "5.00"),
    "china/abc-debit.csv": (1, 5, "-2355.88"),
    "china/alipay-personal-2023-gbk.csv": (1, 5, "222066.86"),
    "china/alipay-web-2019-gbk.csv": (1, 5, "-218.57"),
    "china/boc-credit.csv": (1, 14, "-241.97"),
    "china/bocom-debit.csv": (1, 6, "-102.75"),
    "china/ccb-debit.xls": (1, 6, "-703.26"),
    "china/cmb-credit.csv": (1, 6, "-7675.98"),
    "china/cmb-debit.csv": (1, 5, "-779.14"),
    "china/hsbchk-debit.csv": (1, 10, "21978.95"),
    "china/icbc-debit-v2.csv": (1, 11, "-1399.34"),
    "china/spdb-debit.xls": (1, 4, "-1.64"),
    "china/wechat-personal-bill-official.xlsx": (1, 17, "-2926.63"),
    "china/wechat-personal-bill.csv": (1, 16, "-2876.04"),
    "csv/de-commerzbank-bom.csv": (1, 7, "-73.74"),
    "csv/de-gls-business-account.csv": (1, 18, "-590.22"),
    "csv/de-paypal-activity.csv": (1, 11, "-24.77"),
    "csv/de-sparkasse-csv-camt-v2.csv": (1, 10, "-921.27"),
    "csv/de-targobank-no-header.csv": (2, 11, "-618.18"),
    "csv/fr-style-metadata-header-debit-credit.csv": None,
    "csv/nl-asn-no-header.csv": (1, 11, "-46.20"),
    "csv/us-dcu-checking-dollar-sign.csv": (1, 10, "500.00"),
    "csv/us-schwab-checking-withdrawal-deposit.csv": (1, 2, "-1.00"),
    "mt940/abnamro-multi-statement.sta": None,
    "mt940/de-dresdner-sepa-26-statements.sta": (26, 97, "-9269135.90"),
    "mt940/de-february-30-crlf.sta": (1, 1, "-6.00"),
    "mt940/de-pl-cmxl-three-statements.sta": (3, 16, "12327.30"),
    "mt940/de-with-binary-character.sta": (2, 4, "-179066.75"),
    "mt940/hu-raiffeisen-cp852.sta": None,
    "mt940/hu-sberbank-ns-fields-crlf.sta": (1, 3, "-9437.00"),
    "mt940/knab-invoice-orderid-in-86.sta": None,
    "mt940/pl-mbank-faktura-wrapped.sta": None,
    "mt940/pl-mbank-soh-etx.sta": (1, 3, "0.03"),
    "mt940/pl-mbank.mt942": (1, 3, "0.03"),
    "mt940/postfinance-chf.sta": None,
    "mt940/rabobank-structured-86.sta": (2, 4, "-70.00"),
    "mt940/triodos-gt-subfields.sta": None,
    "ofx/capitalone-360checking.qfx": (1, 4, "1233.55"),
    "ofx/sgml-v102-cad-unclosed-tags-tz.ofx": (1, 3, "-345.27"),
    "ofx/sgml-v102-cba-empty-tags-leading-blank-lines.ofx": (1, 1, "12.34"),
    "ofx/sgml-v102-checking-intu-tabs.ofx": (1, 3, "-59.50"),
    "ofx/xml-v200-decimal-comma.ofx": (1, 2, "-500.00"),
    "ofx/xml-v200-suncorp-au-cdata-crlf.ofx": (1, 1, "-16.85"),
    "ofx/xml-v203-anz-creditcard-unclosed.ofx": (1, 1, "-5.50"),
    "ofx/xml-v211-multiple-accounts.ofx": (2, 0, "0.00"),
    "ofx/xml-v211-odoo-multiple-banktranlist.ofx": (2, 4, "-360.00"),
    "reconciliation/beancount-import-matching/checking2.ofx": (1, 13, "-388.64"),
    "reconciliation/beancount-import-matching/import_results.beancount": None,
    "reconciliation/beancount-import-matching/journal.beancount": None,
    "reconciliation/ch-esr-v11-invoice-references.v11": None,
    "reconciliation/oca-psp-statement-transactionid-commission.csv": (1, 3, "496.40"),
}


def _sample_files(samples_dir: Path) -> list[Path]:
    return sorted(p for p in samples_dir.rglob("*")
                  if p.is_file() and p.name != "SOURCES.md")


def test_samples_all_expected_files_present(samples_dir):
    found = {p.relative_to(samples_dir).as_posix() for p in _sample_files(samples_dir)}

    assert found == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_samples_import_or_reject_cleanly(samples_dir, name):
    path = samples_dir / name
    expected = EXPECTED[name]

    if expected is None:
        with pytest.raises(ImportFormatError) as info:
            read_statements(path)
        for problem in info.value.problems:
            assert problem.file == path.name
            assert problem.field
            assert problem.reason
        return

    statements = read_statements(path)
    count, lines, total = expected
    assert len(statements) == count
    assert sum(len(s.lines) for s in statements) == lines
    assert sum((s.total for s in statements), Decimal("0")) == Decimal(total)
    for statement in statements:
        if statement.opening_balance is not None and \
                statement.closing_balance is not None:
            assert statement.opening_balance + statement.total == \
                statement.closing_balance
        refs = [line.line_ref for line in statement.lines]
        assert len(refs) == len(set(refs))
        keys = dedupe_keys(statement, account=statement.account)
        assert len(keys) == len(set(keys))


def test_samples_french_balances_rejected_by_default(samples_dir):
    path = samples_dir / "csv/fr-style-metadata-header-debit-credit.csv"

    with pytest.raises(StatementBalanceError, match="is 31070.09, but the "
                       "closing balance is 31070.11"):
        read_statements(path)


def test_samples_french_accepted_when_unbalanced_allowed(samples_dir):
    path = samples_dir / "csv/fr-style-metadata-header-debit-credit.csv"

    [statement] = read_statements(path, accept_unbalanced=True)

    assert [line.amount for line in statement.lines] == [
        Decimal("-50.00"), Decimal("-100.00"), Decimal("-80.68"),
        Decimal("1300.00")]
    assert statement.opening_balance == Decimal("30000.77")
    assert statement.closing_balance == Decimal("31070.11")
    assert statement.balance_difference == Decimal("0.02")
    assert statement.account == "08088804068"
    assert any("ends above it" in note for note in statement.notes)


# The closing date of each statement of a file, in file order. The MT940
# dates are those of :62F:, the camt ones of the CLBD balance, the OFX ones
# of LEDGERBAL DTASOF in the Asia/Shanghai default zone. Formats and files
# without a dated closing balance give None.
CLOSING_DATES = {
    "mt940/de-february-30-crlf.sta": [date(2016, 3, 1)],
    "mt940/rabobank-structured-86.sta": [date(2013, 1, 8), date(2013, 1, 15)],
    "mt940/pl-mbank.mt942": [None],
    "camt/oca-camt053v04-ch-batch-txdtls-qrref.xml": [date(2017, 3, 23)],
    "camt/de-sparkasse-camt052v02-redacted.xml": [date(2021, 2, 5)],
    "camt/oca-camt054v04-nl-structured-ref.xml": [None],
    "ofx/xml-v200-suncorp-au-cdata-crlf.ofx": [date(2013, 12, 15)],
    "ofx/capitalone-360checking.qfx": [date(2023, 3, 10)],
    "ofx/xml-v211-multiple-accounts.ofx": [date(2012, 6, 4), date(2012, 6, 4)],
    "ofx/sgml-v102-cba-empty-tags-leading-blank-lines.ofx": [None],
    "csv/fr-style-metadata-header-debit-credit.csv": [None],
    "china/icbc-debit-v2.csv": [None],
}


@pytest.mark.parametrize("name", sorted(CLOSING_DATES))
def test_samples_closing_dates(samples_dir, name):
    statements = read_statements(samples_dir / name, accept_unbalanced=True)

    assert [s.closing_date for s in statements] == CLOSING_DATES[name]


def test_samples_targobank_split_by_our_account(samples_dir):
    path = samples_dir / "csv/de-targobank-no-header.csv"

    first, second = read_statements(path)

    assert first.profile == "targobank-csv"
    assert first.account == "DE67000000000000000000"
    assert second.account == "DE72000000000000000000"
    assert second.lines[0].line_ref == "de-targobank-no-header.csv:4"
    assert first.lines[0].counterparty_name == "CHRISTIAN MUSTERMANN"
    assert first.lines[0].counterparty_account == "DE70000000000000000000"
    assert first.lines[-1].amount == Decimal("83.16")


def test_samples_asn_reads_positions(samples_dir):
    path = samples_dir / "csv/nl-asn-no-header.csv"

    [statement] = read_statements(path)

    first = statement.lines[0]
    assert statement.profile == "asn-csv"
    assert statement.account == "NL00ASNB9999999999"
    assert first.amount == Decimal("223.77")
    assert first.currency == "EUR"
    assert first.balance == Decimal("354.21")
    assert statement.lines[3].memo == "DIVIDEND 27/06/2022"


# Files rejected only because their balances do not add up, with the
# (statements, lines) they give when unbalanced statements are accepted.
UNBALANCED = {
    "camt/genkgo-camt053v02-three-decimal-amounts.xml": (1, 1),
    "camt/genkgo-camt053v08-sts-cd-dttm-strd-ref.xml": (1, 1),
    "camt/oca-camt053-zipped.zip": (2, 6),
    "camt/oca-camt053v02-abnamro-nl.xml": (1, 4),
    "csv/fr-style-metadata-header-debit-credit.csv": (1, 4),
    "mt940/abnamro-multi-statement.sta": (2, 10),
    "mt940/hu-raiffeisen-cp852.sta": (1, 7),
    "mt940/knab-invoice-orderid-in-86.sta": (2, 3),
    "mt940/pl-mbank-faktura-wrapped.sta": (1, 2),
    "mt940/postfinance-chf.sta": (2, 4),
    "mt940/triodos-gt-subfields.sta": (1, 2),
}


@pytest.mark.parametrize("name", sorted(UNBALANCED))
def test_samples_unbalanced_import_when_accepted(samples_dir, name):
    statements = read_statements(samples_dir / name, accept_unbalanced=True)

    count, lines = UNBALANCED[name]
    assert EXPECTED[name] is None
    assert len(statements) == count
    assert sum(len(s.lines) for s in statements) == lines
    assert any(s.balance_difference for s in statements)

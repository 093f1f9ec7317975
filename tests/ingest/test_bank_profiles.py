"""Chinese bank and wallet exports read through declarative profiles."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import openpyxl
import pytest

from ingest import list_profiles, read_statements
from ingest.profiles import load_profile
from models.errors import ImportFormatError, StatementBalanceError

GENERIC_BANK = (
    "单位网上银行 账户明细查询\n"
    "账号：31050161393600001234\n"
    "户名：上海远景贸易有限公司\n"
    "币种：人民币\n"
    "\n"
    "交易日期,交易流水号,对方户名,对方账号,借方发生额,贷方发生额,余额,摘要,用途\n"
    "2025-06-02,FL0001,杭州明达科技有限公司,6222020000001111,,\"1,200.00\",5200.00,"
    "汇入,货款 SO-4101\n"
    "2025-06-03,FL0002,中国电信股份有限公司,31001234,86.50,,5113.50,扣款,电话费\n"
    "合计,,,,86.50,\"1,200.00\",,,\n"
)


def test_generic_bank_finds_table_after_title_rows():
    data = GENERIC_BANK.encode("gb18030")

    [statement] = read_statements(data, file_name="对公明细.csv")

    income, fee = statement.lines
    assert statement.profile == "generic-cn-bank"
    assert statement.account == "31050161393600001234"
    assert income.amount == Decimal("1200.00")
    assert income.line_ref == "FL0001"
    assert income.counterparty_name == "杭州明达科技有限公司"
    assert income.memo == "汇入 货款 SO-4101"
    assert income.balance == Decimal("5200.00")
    assert fee.amount == Decimal("-86.50")
    assert any("totals row" in note for note in statement.notes)


def test_generic_bank_alternative_titles():
    data = ("交易时间,对方单位名称,对方账号,借方发生额,贷方发生额,附言\n"
            "2025/06/02 10:00:00,深圳华南物流有限公司,755900001,,300.00,SO-5001\n"
            ).encode("utf-8")

    [statement] = read_statements(data, file_name="x.csv")

    [line] = statement.lines
    assert line.booking_date == date(2025, 6, 2)
    assert line.counterparty_name == "深圳华南物流有限公司"
    assert line.memo == "SO-5001"


ALIPAY = (
    "------------------------------------------------------------------------------------\n"
    "导出信息：\n"
    "支付宝账户：finance@yuanjing.example\n"
    "------------------------支付宝（中国）网络技术有限公司  电子客户回单------------------------\n"
    "交易时间            ,交易分类    ,交易对方    ,对方账号    ,商品说明    ,收/支    ,金额    ,"
    "收/付款方式    ,交易状态    ,交易订单号     ,商家订单号     ,备注    ,\n"
    "2025-06-02 09:00:00 ,转账 ,杭州明达科技有限公司 ,md***@163.com ,货款 ,收入 ,500.00 ,"
    "余额 ,交易成功 ,2025060200001\t,SO-6001\t, ,\n"
    "2025-06-03 09:00:00 ,日用百货 ,某商店 ,/ ,文具 ,支出 ,20.00 ,余额 ,交易关闭 ,"
    "2025060300002\t,T1\t, ,\n"
    "2025-06-04 09:00:00 ,投资理财 ,余额宝 ,/ ,转入 ,不计收支 ,100.00 ,余额 ,交易成功 ,"
    "2025060400003\t, \t, ,\n"
)


def test_alipay_gbk_bill():
    data = ALIPAY.encode("gbk")

    [statement] = read_statements(data, file_name="alipay.csv")

    [line] = statement.lines
    assert statement.profile == "alipay-2023"
    assert statement.account == "finance@yuanjing.example"
    assert line.channel == "alipay"
    assert line.amount == Decimal("500.00")
    assert line.line_ref == "2025060200001"
    assert "SO-6001" in line.memo
    assert len(statement.notes) == 2


def test_bocom_debit_credit_marks():
    data = ("序号,交易日期,交易时间,交易类型,借贷,交易金额,余额,对方账号,对方户名,交易地点,摘要\n"
            "1,2025-06-01,09:00:00,转账,贷 Cr,300.00,1300.00,6222001,远景贸易,网银,SO-1\n"
            "2,2025-06-02,09:00:00,转账,借 Dr,45.00,1255.00,6222002,明达,网银,\n"
            ).encode()

    [statement] = read_statements(data, file_name="bocom.csv")

    assert [line.amount for line in statement.lines] == [Decimal("300.00"),
                                                         Decimal("-45.00")]


def test_cmb_credit_dates_take_year_from_title():
    data = ("招商银行信用卡对账单（个人消费卡账户 2025年01月）\n"
            "交易日,记账日,交易摘要,人民币金额,卡号末四位,交易地金额\n"
            "12/30,12/31,还款,-500.00,1234,-500.00\n"
            "01/02,01/03,办公用品,56.78,1234,56.78\n").encode()

    [statement] = read_statements(data, file_name="cmb.csv")

    repayment, purchase = statement.lines
    assert repayment.booking_date == date(2024, 12, 31)
    assert repayment.amount == Decimal("500.00")
    assert purchase.booking_date == date(2025, 1, 3)
    assert purchase.amount == Decimal("-56.78")


def test_cmb_credit_without_title_rejects_file():
    data = ("交易日,记账日,交易摘要,人民币金额,卡号末四位,交易地金额\n"
            "01/02,01/03,办公用品,56.78,1234,56.78\n").encode()

    with pytest.raises(ImportFormatError, match="statement month is missing"):
        read_statements(data, file_name="cmb.csv")


def test_wechat_xlsx_bill():
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["微信支付账单明细"])
    sheet.append(["交易时间", "交易类型", "交易对方", "商品", "收/支", "金额(元)",
                  "支付方式", "当前状态", "交易单号", "商户单号", "备注"])
    sheet.append(["2025-06-02 10:00:00", "转账", "远景贸易", "/", "收入", "¥88.00",
                  "/", "已收钱", "4200000001\t", "SO-8801\t", "/"])
    buffer = io.BytesIO()
    book.save(buffer)

    [statement] = read_statements(buffer.getvalue(), file_name="wechat.csv")

    [line] = statement.lines
    assert statement.format == "xlsx"
    assert line.amount == Decimal("88.00")
    assert line.line_ref == "4200000001"
    assert line.channel == "wechat"


def test_explicit_profile_is_used():
    data = "Date,Amount,Memo\n2025-06-02,5.00,x\n".encode()

    with pytest.raises(ImportFormatError, match="no known statement layout"):
        read_statements(data, file_name="x.csv", profile="wechat")


def test_unknown_profile_lists_known_ones():
    with pytest.raises(ImportFormatError, match="unknown profile; use one of"):
        read_statements(b"a,b\n1,2\n", file_name="x.csv", profile="nope")


def test_list_profiles_puts_generic_last():
    names = list_profiles()

    assert {"wechat", "alipay-2023", "alipay-2019", "icbc-debit"} <= set(names)
    assert names[-2:] == ["generic-cn-bank", "generic-csv"]


def test_explicit_profile_reads_xlsx():
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["交易日期", "对方户名", "借方发生额", "贷方发生额", "摘要"])
    sheet.append(["2025-06-02", "远景贸易", "", "66.00", "SO-66"])
    buffer = io.BytesIO()
    book.save(buffer)

    [statement] = read_statements(buffer.getvalue(), file_name="x.xlsx",
                                  profile="generic-cn-bank")

    assert statement.profile == "generic-cn-bank"
    assert statement.lines[0].amount == Decimal("66.00")


def test_profile_for_mt940_is_noted():
    data = b":20:S\n:25:A1\n:28C:1\n:60F:C250101CNY0,00\n:62F:C250101CNY0,00\n-\n"

    [statement] = read_statements(data, file_name="x.sta", profile="wechat")

    assert any("was not used" in note for note in statement.notes)


TARGOBANK = (
    "03.11.2025;Echtzeitüberweisung   ANNA MUSTER   DE70000000000000000011   "
    "TRBKDEBBXXX  RE 4711;-5,00;;;;'DE67000000000000000000'\r\n"
    "04.11.2025;Entgelt Kontoführung   für Oktober 2025;-6,95;;;;"
    "'DE67000000000000000000'\r\n"
    "10.11.2025;Gutschrift   TEAG   VK 251000326342;;1.083,16;;;"
    "'DE67000000000000000000'\r\n"
)


def test_positional_profile_reads_headerless_rows():
    [statement] = read_statements(TARGOBANK.encode(), file_name="umsatz.csv")

    transfer, fee, credit = statement.lines
    assert statement.profile == "targobank-csv"
    assert statement.account == "DE67000000000000000000"
    assert statement.currency == "EUR"
    assert transfer.booking_date == date(2025, 11, 3)
    assert transfer.amount == Decimal("-5.00")
    assert transfer.counterparty_name == "ANNA MUSTER"
    assert transfer.counterparty_account == "DE70000000000000000011"
    assert transfer.transaction_type == "Echtzeitüberweisung"
    assert "RE 4711" in transfer.memo
    assert fee.counterparty_name == ""
    assert fee.memo == "Entgelt Kontoführung für Oktober 2025"
    assert credit.amount == Decimal("1083.16")
    assert credit.counterparty_name == "TEAG"
    assert credit.line_ref == "umsatz.csv:3"


def test_positional_profile_leaves_file_with_header():
    data = ("Buchungstag;Text;Soll;Haben;;;Konto\r\n" + TARGOBANK).encode()

    [statement] = read_statements(data, file_name="umsatz.csv")

    assert statement.profile == "generic-csv"
    assert len(statement.lines) == 3


def test_positional_profile_needs_every_row_to_fit():
    data = TARGOBANK + "11.11.2025;Gutschrift;;3,00;;\r\n"

    with pytest.raises(ImportFormatError, match="no known statement layout"):
        read_statements(data.encode(), file_name="umsatz.csv")


def test_positional_profile_bad_row_rejects_file():
    data = TARGOBANK.replace("-6,95", "-6,9x")

    with pytest.raises(ImportFormatError, match="umsatz.csv:2, field debit/credit"):
        read_statements(data.encode(), file_name="umsatz.csv",
                        profile="targobank-csv")


BALANCE_ROWS = (
    "Account Number : 0808,Account Name : Owner,,,,\n"
    "Balance at end of period,,,,\"+1070,00\",\n"
    "Date,Operation Number,Label,Debit,Credit,Detail\n"
    "01/04/20,OP 1,LABEL 1,\"-30,00\",,D1\n"
    "02/04/20,OP 2,LABEL 2,,\"100,00\",D2\n"
    "Balance at start of period,,,,\"+1000,00\",\n"
    "Generated by the bank,,,,,\n"
)


def test_balance_rows_end_table_and_are_checked():
    [statement] = read_statements(BALANCE_ROWS.encode(), file_name="fr.csv")

    assert [line.amount for line in statement.lines] == [
        Decimal("-30.00"), Decimal("100.00")]
    assert statement.opening_balance == Decimal("1000.00")
    assert statement.closing_balance == Decimal("1070.00")
    assert statement.account == "0808"
    assert statement.lines[0].line_ref == "OP 1"
    assert statement.lines[0].memo == "LABEL 1 D1"
    [note] = [note for note in statement.notes if note.startswith("row 6")]
    assert "holds the opening balance" in note
    assert "the 1 non-blank row below it was left out" in note


def test_balance_rows_that_disagree_reject_file():
    data = BALANCE_ROWS.replace("+1070,00", "+1070,05").encode()

    with pytest.raises(StatementBalanceError, match="is 1070.00, but the closing "
                       "balance is 1070.05"):
        read_statements(data, file_name="fr.csv")


def test_unbalanced_accepted_on_request():
    data = BALANCE_ROWS.replace("+1070,00", "+1070,05").encode()

    [statement] = read_statements(data, file_name="fr.csv", accept_unbalanced=True)

    assert len(statement.lines) == 2
    assert statement.balance_difference == Decimal("0.05")
    assert any("imported anyway" in note for note in statement.notes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param('name = "p"\n[positions]\ndate = 1\namount = 2\n',
                     "needs a \\[layout\\]", id="no-layout"),
        pytest.param('name = "p"\n[layout]\ncells = 2\n[positions]\ndate = 0\n',
                     "must be a column number from 1", id="zero-position"),
        pytest.param('name = "p"\n[layout]\ncells = 2\n[positions]\ndate = 1\n'
                     '[columns]\namount = ["Betrag"]\n',
                     "either \\[columns\\] titles or \\[positions\\]", id="both"),
        pytest.param('name = "p"\n[header]\nrequire = [["Datum"]]\n'
                     '[memo]\npattern = "(?P<iban>DE\\\\d+)"\n',
                     "needs named groups", id="memo-groups"),
    ],
)
def test_profile_file_errors_name_the_fix(tmp_path, text, message):
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ValueError, match=message):
        load_profile(path)

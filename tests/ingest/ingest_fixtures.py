"""Small statement files written inline for the ingest tests."""

from __future__ import annotations


def camt053(entries: str, *, summary: str = "", opening: str = "0.00",
            closing: str = "0.00", account: str = "CN0012345678") -> bytes:
    """Return a camt.053.001.02 document around the given <Ntry> elements."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
<BkToCstmrStmt>
<GrpHdr><MsgId>MSG-1</MsgId><CreDtTm>2025-06-30T18:00:00+08:00</CreDtTm></GrpHdr>
<Stmt>
<Id>STMT-2025-06</Id>
<Acct><Id><Othr><Id>{account}</Id></Othr></Id><Ccy>CNY</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">{opening}</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2025-06-01</Dt></Dt></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">{closing}</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2025-06-30</Dt></Dt></Bal>
{summary}
{entries}
</Stmt>
</BkToCstmrStmt>
</Document>
""".encode()


def camt_entry(amount: str, ref: str, *, details: str = "",
               booked: str = "<Dt>2025-06-10</Dt>", mark: str = "CRDT") -> str:
    """Return one <Ntry> element."""
    return f"""<Ntry>
<Amt Ccy="CNY">{amount}</Amt><CdtDbtInd>{mark}</CdtDbtInd><Sts>BOOK</Sts>
<BookgDt>{booked}</BookgDt><ValDt><Dt>2025-06-10</Dt></ValDt>
<AcctSvcrRef>{ref}</AcctSvcrRef>
<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>
{details}
</Ntry>"""


def camt_tx(memo: str, *, amount: str | None = None, tx_amount: str | None = None,
            payer: str = "上海远景贸易有限公司") -> str:
    """Return one <TxDtls> element with its amount in TxDtls/Amt or AmtDtls."""
    amount_xml = f'<Amt Ccy="CNY">{amount}</Amt>' if amount else ""
    tx_xml = (f'<AmtDtls><TxAmt><Amt Ccy="CNY">{tx_amount}</Amt></TxAmt></AmtDtls>'
              if tx_amount else "")
    return f"""<TxDtls>
<Refs><EndToEndId>E2E-{memo}</EndToEndId></Refs>{amount_xml}{tx_xml}
<RltdPties><Dbtr><Nm>{payer}</Nm></Dbtr>
<DbtrAcct><Id><Othr><Id>6222020000001234</Id></Othr></Id></DbtrAcct></RltdPties>
<RmtInf><Ustrd>{memo}</Ustrd></RmtInf>
</TxDtls>"""


def ofx_v1(transactions: str, *, charset: str = "1252", account: str = "9988776655",
           encoding: str = "USASCII") -> str:
    """Return an OFX 1.02 SGML file around the given STMTTRN blocks."""
    return f"""OFXHEADER:100
DATA:OFXSGML
VERSION:102
SECURITY:NONE
ENCODING:{encoding}
CHARSET:{charset}
COMPRESSION:NONE
OLDFILEUID:NONE
NEWFILEUID:NONE

<OFX>
<SIGNONMSGSRSV1><SONRS><STATUS><CODE>0<SEVERITY>INFO</STATUS>
<DTSERVER>20250601120000<LANGUAGE>ENG</SONRS></SIGNONMSGSRSV1>
<BANKMSGSRSV1><STMTTRNRS><TRNUID>1<STATUS><CODE>0<SEVERITY>INFO</STATUS>
<STMTRS><CURDEF>EUR
<BANKACCTFROM><BANKID>11111111<ACCTID>{account}<ACCTTYPE>CHECKING</BANKACCTFROM>
<BANKTRANLIST><DTSTART>20250601<DTEND>20250630
{transactions}
</BANKTRANLIST>
<LEDGERBAL><BALAMT>1000.00<DTASOF>20250630</LEDGERBAL>
</STMTRS></STMTTRNRS></BANKMSGSRSV1>
</OFX>
"""


def ofx_tx(amount: str, fitid: str, *, name: str = "", memo: str = "",
           kind: str = "CREDIT", posted: str = "20250612") -> str:
    """Return one STMTTRN block of an OFX 1.x file."""
    return (f"<STMTTRN><TRNTYPE>{kind}<DTPOSTED>{posted}<TRNAMT>{amount}"
            f"<FITID>{fitid}<NAME>{name}<MEMO>{memo}</STMTTRN>")


# An MT940 statement with two credits whose :61: customer references name
# orders; opening 1000.00 plus 120.00 and 80.00 gives the closing 1200.00.
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

# A WeChat Pay bill with a transfer naming SO-1201, a refunded transfer and
# a row of a type the profile does not know.
C08_WECHAT = (
    "微信支付账单明细,,,,,,,,,,\n"
    "微信昵称：[远景贸易],,,,,,,,,,\n"
    "起始时间：[2025-03-01 00:00:00] 终止时间：[2025-03-31 23:59:59],,,,,,,,,,\n"
    ",,,,,,,,,,\n"
    "----------------------微信支付账单明细列表--------------------,,,,,,,,,,\n"
    "交易时间,交易类型,交易对方,商品,收/支,金额(元),支付方式,当前状态,交易单号,商户单号,备注\n"
    "2025-03-05 10:12:00,转账,上海远景贸易有限公司,/,收入,¥120.00,/,已收钱,"
    "1000050001\t,SO-1201\t,/\n"
    "2025-03-06 11:00:00,转账-退款,杭州明达科技有限公司,/,收入,¥38.00,/,已退款,"
    "1000050002\t,/\t,/\n"
    "2025-03-07 09:30:00,企业付款到零钱,广州华南物流有限公司,/,收入,¥5.00,/,已到账,"
    "1000050003\t,/\t,/\n"
)

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

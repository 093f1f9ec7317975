"""Finding the format of a statement file from its content.

Extensions lie (a camt file saved as .txt, an Excel file named .csv), so
only the bytes decide. Table formats (CSV, XLS, XLSX) are distinguished by
their header row later, when a profile claims them.
"""

from __future__ import annotations

import io
import re
import zipfile

MT940 = "mt940"
CAMT = "camt"
CAMT_ZIP = "camt-zip"
OFX = "ofx"
XLS = "xls"
XLSX = "xlsx"
TEXT_TABLE = "text"
TABLES = (XLS, XLSX, TEXT_TABLE)

_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MT940_START = re.compile(r"(?m)^\s*:20[A-Z]?:")
_MT940_BODY = re.compile(r"(?m)^:(?:25[A-Z]?|28C?|60[FM]|61|62[FM]):")


def detect_format(data: bytes) -> str:
    """Return the format of `data`: one of the constants of this module."""
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return _zip_kind(data)
    if data.startswith(_OLE):
        return XLS

    # Latin-1 maps every byte, so the markers are found whatever the
    # encoding of the rest of the file.
    head = data[:65536].decode("latin-1").lstrip("\ufeff\xef\xbb\xbf \t\r\n")
    upper = head[:4096].upper()
    if "OFXHEADER" in upper or "<OFX>" in upper:
        return OFX
    if head.startswith("<") and ("camt.05" in head or "<BkToCstmr" in head):
        return CAMT
    if _MT940_START.search(head) and _MT940_BODY.search(head):
        return MT940
    return TEXT_TABLE


def _zip_kind(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return TEXT_TABLE
    if "xl/workbook.xml" in names:
        return XLSX
    return CAMT_ZIP

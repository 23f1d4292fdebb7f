"""From an uploaded file to rows of text cells: format and encoding detection, CSV and XLSX reading.

A file is CSV or XLSX, judged by its content and its name (``.csv``/``.txt`` or ``.xlsx``);
legacy ``.xls`` and anything binary is refused. CSV text is UTF-8 (with or without a BOM),
GB18030 (which also reads GBK and GB2312) or Big5: UTF-8 wins when the whole file decodes as
UTF-8, else the one of GB18030 and Big5 that decodes the whole file, and when both do, the one
whose sample reads as common characters (GB2312 level-1 hanzi for GB18030, Big5's frequent
block for Big5). XLSX is read with openpyxl in read-only mode, first worksheet, cell values
turned into text the way a person would type them (13800000000, not 1.38e10).

Every reader yields the header row first, then each data row as a list of strings.
"""

from __future__ import annotations

import codecs
import csv
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

from crowdpack.customer.v1 import import_service_pb2 as pb
from services.common.errors import InvalidArgument

MAX_BYTES = 100 * 1024 * 1024
CHUNK = 1024 * 1024
SAMPLE = 256 * 1024
CSV_SUFFIXES = (".csv", ".txt")
XLSX_SUFFIX = ".xlsx"
ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# Python codec for each encoding the import reads.
CODECS: dict[int, str] = {
    pb.IMPORT_ENCODING_UTF8: "utf-8-sig",
    pb.IMPORT_ENCODING_GB18030: "gb18030",
    pb.IMPORT_ENCODING_BIG5: "big5hkscs",
}
ENCODING_NAMES: dict[int, str] = {pb.IMPORT_ENCODING_UTF8: "UTF-8", pb.IMPORT_ENCODING_GB18030: "GB18030",
                                  pb.IMPORT_ENCODING_BIG5: "Big5"}
csv.field_size_limit(1024 * 1024)


@dataclass(frozen=True)
class FileInfo:
    format: int
    # 0 for XLSX.
    encoding: int
    header: list[str]
    row_count: int


def sniff_format(path: Path, file_name: str) -> int:
    """IMPORT_FORMAT_CSV or IMPORT_FORMAT_XLSX, or INVALID_ARGUMENT naming ``file`` or ``file_name``."""
    name = file_name.lower()
    with open(path, "rb") as f:
        head = f.read(SAMPLE)
    if not head:
        raise InvalidArgument("is empty", field="file")
    if head.startswith(OLE_MAGIC) or name.endswith(".xls"):
        raise InvalidArgument("is a legacy .xls workbook; save it as .xlsx or CSV", field="file")
    if name.endswith(XLSX_SUFFIX):
        if not head.startswith(ZIP_MAGIC):
            raise InvalidArgument("is named .xlsx but is not an Excel workbook", field="file")
        return pb.IMPORT_FORMAT_XLSX
    if not name.endswith(CSV_SUFFIXES):
        raise InvalidArgument("must end in .csv or .xlsx", field="file_name")
    if head.startswith(ZIP_MAGIC) or b"\x00" in head:
        raise InvalidArgument("is not a CSV file (it holds binary data)", field="file")
    return pb.IMPORT_FORMAT_CSV


def _line_of(path: Path, offset: int) -> int:
    """The 1-based line a byte offset falls on."""
    line, seen = 1, 0
    with open(path, "rb") as f:
        while seen < offset:
            block = f.read(min(CHUNK, offset - seen))
            if not block:
                break
            line += block.count(b"\n")
            seen += len(block)
    return line


def decode_problem(path: Path, encoding: int) -> str:
    """Where the file stops being ``encoding`` text, as a sentence naming the line; "" when it all decodes."""
    decoder = codecs.getincrementaldecoder(CODECS[encoding])(errors="strict")
    offset = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(CHUNK)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as err:
                bad = offset + max(err.start, 0)
                return (f"the file is not {ENCODING_NAMES[encoding]} text (line {_line_of(path, bad)}, "
                        f"byte {bad}); choose another encoding")
            if not block:
                return ""
            offset += len(block)


def check_decodes(path: Path, encoding: int) -> None:
    """INVALID_ARGUMENT (field ``encoding``) naming the line where the file stops being ``encoding`` text."""
    problem = decode_problem(path, encoding)
    if problem:
        raise InvalidArgument(problem, field="encoding")


def _decodes(path: Path, encoding: int) -> bool:
    try:
        check_decodes(path, encoding)
    except InvalidArgument:
        return False
    return True


def _common_share(text: str, encoding: str, low: int, high: int) -> float:
    """Share of the non-ASCII characters in ``text`` that are ideographs coded in ``encoding`` within [low, high].

    Text read in the wrong one of two double-byte encodings turns into rare ideographs, symbols, kana
    and private-use characters, so its share drops.
    """
    wide = common = 0
    for ch in text:
        if ch < "\x80":
            continue
        wide += 1
        if "\u4e00" <= ch <= "\u9fff":
            code = int.from_bytes(ch.encode(encoding)[:2], "big")
            common += low <= code <= high
    return common / wide if wide else 0.0


def detect_encoding(path: Path) -> int:
    with open(path, "rb") as f:
        sample = f.read(SAMPLE)
    if sample.startswith(codecs.BOM_UTF8):
        check_decodes(path, pb.IMPORT_ENCODING_UTF8)
        return pb.IMPORT_ENCODING_UTF8
    if _decodes(path, pb.IMPORT_ENCODING_UTF8):
        return pb.IMPORT_ENCODING_UTF8
    gb, big5 = _decodes(path, pb.IMPORT_ENCODING_GB18030), _decodes(path, pb.IMPORT_ENCODING_BIG5)
    if gb and big5:
        gb_text = sample.decode("gb18030", errors="ignore")
        big5_text = sample.decode("big5hkscs", errors="ignore")
        # GB2312 level 1 (the 3,755 most used hanzi) and Big5's block of frequently used characters.
        gb_score = _common_share(gb_text, "gb18030", 0xB0A1, 0xD7FE)
        big5_score = _common_share(big5_text, "big5hkscs", 0xA440, 0xC67E)
        return pb.IMPORT_ENCODING_BIG5 if big5_score > gb_score else pb.IMPORT_ENCODING_GB18030
    if gb:
        return pb.IMPORT_ENCODING_GB18030
    if big5:
        return pb.IMPORT_ENCODING_BIG5
    raise InvalidArgument("is not UTF-8, GB18030 or Big5 text", field="file")


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", "\t", ";")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def csv_rows(path: Path, encoding: int, errors: str = "strict") -> Iterator[list[str]]:
    """The rows; ``errors="replace"`` shows bytes the encoding cannot read as U+FFFD (the preview's garbled view)."""
    with open(path, encoding=CODECS[encoding], errors=errors, newline="") as f:
        first = f.readline()
        f.seek(0)
        yield from csv.reader(f, delimiter=_delimiter(first))


def cell_text(value: object) -> str:
    """An XLSX cell as the text a person would have typed."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e18 else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value)


def xlsx_rows(path: Path) -> Iterator[list[str]]:
    from openpyxl import load_workbook

    try:
        with warnings.catch_warnings():
            # Workbooks written by other tools often lack styles openpyxl expects; that is harmless.
            warnings.simplefilter("ignore")
            workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001 - openpyxl raises many kinds for a damaged workbook
        raise InvalidArgument(f"is not a readable Excel workbook ({type(err).__name__})", field="file") from None
    try:
        if not workbook.worksheets:
            raise InvalidArgument("has no worksheet", field="file")
        sheet = workbook.worksheets[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for values in sheet.iter_rows(values_only=True):
                yield [cell_text(v) for v in values]
    finally:
        workbook.close()


def open_rows(path: Path, fmt: int, encoding: int, errors: str = "strict") -> Iterator[list[str]]:
    """The header row, then every data row."""
    if fmt == pb.IMPORT_FORMAT_XLSX:
        return xlsx_rows(path)
    return csv_rows(path, encoding, errors)


def inspect(path: Path, file_name: str, encoding: int = 0) -> FileInfo:
    """Format, encoding (detected unless given), header and data row count, reading the whole file once."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise InvalidArgument("is larger than 100 MB", field="file")
    fmt = sniff_format(path, file_name)
    if fmt == pb.IMPORT_FORMAT_CSV:
        if encoding:
            check_decodes(path, encoding)
        else:
            encoding = detect_encoding(path)
    else:
        encoding = 0
    rows = open_rows(path, fmt, encoding)
    try:
        header = next(rows, None)
        if header is None:
            raise InvalidArgument("has no header row", field="file")
        count = sum(1 for _ in rows)
    except csv.Error as err:
        raise InvalidArgument(f"is not well-formed CSV ({err})", field="file") from None
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()
    return FileInfo(fmt, encoding, header, count)

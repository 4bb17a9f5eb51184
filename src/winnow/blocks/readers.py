"""Web-archive reader: WARC (any version, gzip per record or plain), ARC and WET files → HTML documents.

Built on fastwarc (≈ 15× faster than warcio) but robust to damaged input: gzip members are split here,
one at a time, so a truncated member, garbage bytes between members or a corrupt record costs that record
only; the reader resynchronises on the next gzip member and goes on with the rest of the file.

Accounting (datatrove stats of this block, gathered into summary.json by src/winnow/pipelines/stages/base.py):
  documents             document records yielded (response/conversion records with an HTML or text payload)
  failed_<reason>       document records that could not be turned into a document (counted as read)
  skipped_<reason>      records or bytes that are not documents (request, metadata, revisit, garbage, ...)
  decoded_<how>         how payloads were decoded (informational)
"""

from __future__ import annotations

import io
import re
import tempfile
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.readers import JsonlReader, ParquetReader
from datatrove.pipeline.readers.base import BaseDiskReader
from datatrove.utils.logging import logger

GZIP_MAGIC = b"\x1f\x8b\x08"
HTML_TYPES = ("text/html", "application/xhtml+xml")
READ_CHUNK = 1 << 20
FEED_CHUNK = 1 << 16
MAX_RESYNC_BYTES = 64 * 2**20  # bytes of one member kept to find the next header after corruption
# Common Crawl truncates payloads at 1 MiB; a record 10× that is not a web page we can use.
MAX_RECORD_BYTES = 10 * 2**20
ARC_ID_NAMESPACE = uuid.UUID("6f1d3a5e-2b7c-4f00-9a77-1c6b0f0c2a10")  # ids for ARC records, which have none


@dataclass
class Member:
    """One gzip member (or an uncompressed file): its decompressed bytes, or what went wrong.

    A member larger than the record cap (a whole file gzipped as one stream, or one huge record) is written to
    `spool`, a temporary file parsed record by record; `data` then holds only its head.
    """

    data: bytes
    offset: int
    problem: str | None = None  # truncated_gzip | corrupt_gzip | garbage_bytes | not_an_archive
    spool: BinaryIO | None = None


def gzip_members(f, max_bytes: int = MAX_RECORD_BYTES) -> Iterator[Member]:
    """Split a gzip file into its members. Never raises on bad data: damage comes back as a Member.problem."""
    data, pos, base = b"", 0, 0  # read buffer, position in it, file offset of data[0]
    exhausted = False

    def refill() -> bool:  # append the next chunk, dropping what was consumed (no copying of the whole buffer)
        nonlocal data, pos, base, exhausted
        chunk = b"" if exhausted else f.read(READ_CHUNK)
        exhausted = not chunk
        if chunk:
            data, base, pos = data[pos:] + chunk, base + pos, 0
        return bool(chunk)

    while True:
        while len(data) - pos < 3 and refill():
            pass
        if pos >= len(data):
            return
        if data[pos : pos + 3] != GZIP_MAGIC:  # garbage: skip to the next gzip header
            start = base + pos
            while (i := data.find(GZIP_MAGIC, pos + 1)) < 0:
                pos = max(pos, len(data) - 2)  # the header may straddle two chunks
                if not refill():
                    pos = len(data)
                    break
            else:
                pos = i
            yield Member(b"", start, "garbage_bytes")
            continue
        member_start, raw = base + pos, bytearray()  # raw: this member's bytes, to resync after corruption
        inflater = zlib.decompressobj(31)
        parts, size, problem, spool = [], 0, None, None
        while True:
            if pos >= len(data) and not refill():
                problem = "truncated_gzip"
                break
            piece = data[pos : pos + FEED_CHUNK]  # small pieces: a corrupt member still yields the head that names it
            if len(raw) < MAX_RESYNC_BYTES:
                raw += piece
            try:
                out = inflater.decompress(piece)
            except zlib.error:
                problem = "corrupt_gzip"
                break
            size += len(out)
            if spool is None and size > max_bytes:  # too big for memory: continue on disk
                spool = tempfile.TemporaryFile()
                spool.writelines(parts)
            if spool is not None:
                spool.write(out)
            elif out:
                parts.append(out)
            if inflater.eof:
                pos += len(piece) - len(inflater.unused_data)
                break
            pos += len(piece)
        if problem == "corrupt_gzip":  # resync on the next gzip header after this member's start
            nxt = raw.find(GZIP_MAGIC, 1)
            if 0 < nxt and member_start + nxt >= base:
                pos = member_start + nxt - base
            elif 0 < nxt:  # already dropped from the buffer: it is in raw
                data, base, pos = bytes(raw[nxt:]) + data[pos + len(piece) :], member_start + nxt, 0
            else:
                pos += len(piece)
        if spool is not None:
            spool.seek(0)
            parts = [spool.read(8192)]  # the head names the record
        try:
            yield Member(b"".join(parts), member_start, problem, spool)
        finally:
            if spool is not None:
                spool.close()
        if problem == "truncated_gzip":
            return


def _record_type_of(head: bytes) -> str | None:
    """WARC-Type of a (possibly partial) WARC record, read from its header bytes."""
    m = re.search(rb"\r?\nWARC-Type:[ \t]*([A-Za-z]+)", head[:8192])
    return m.group(1).decode().lower() if m else None


def decode_payload(payload: bytes, declared: str | None) -> tuple[str, str]:
    """Bytes → str: the declared charset, else UTF-8, else detection; never fails (invalid bytes replaced)."""
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    for how, charset in (("declared", declared), ("utf8", "utf-8")):
        if charset:
            try:
                return payload.decode(charset), how
            except (UnicodeDecodeError, LookupError):
                pass
    detected = detect_encoding(payload, from_html_meta=True)
    try:
        return payload.decode(detected), "detected"
    except (UnicodeDecodeError, LookupError):
        return bytes_to_str(payload, detected or "utf-8", errors="replace"), "replaced_invalid_bytes"


def _is_html(content_type: str | None, payload: bytes) -> bool:
    if content_type:
        return content_type.split(";")[0].strip().lower() in HTML_TYPES
    head = payload[:2048].lstrip().lower()  # no type at all: sniff
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head or b"<body" in head


class WebArchiveReader(BaseDiskReader):
    """Read WARC/ARC/WET files (gzip per record, or uncompressed) into documents with the page HTML as text.

    Documents: `id` (WARC-Record-ID), text (decoded HTML, or plain text for WET conversion records, flagged
    with metadata content_type=text/plain), metadata url, date, content_type, file_path.

    Args:
        data_folder / paths_file / glob_pattern / recursive / limit: as datatrove's readers
        max_record_bytes: records larger than this (decompressed) are counted failed_record_too_large
        default_metadata: added to every document (e.g. {"dump": "CC-MAIN-2024-10"})
    """

    name = "🕷 Web archive (fastwarc)"
    _requires_dependencies = ["fastwarc", "resiliparse"]

    def __init__(
        self,
        data_folder,
        paths_file=None,
        limit: int = -1,
        max_record_bytes: int = MAX_RECORD_BYTES,
        default_metadata: dict | None = None,
        recursive: bool = True,
        glob_pattern: str | None = None,
    ):
        super().__init__(
            data_folder,
            paths_file,
            limit=limit,
            default_metadata=default_metadata,
            recursive=recursive,
            glob_pattern=glob_pattern,
        )
        self.max_record_bytes = max_record_bytes

    # -- files -------------------------------------------------------------------------------------
    def read_file(self, filepath: str) -> DocumentsPipeline:
        with self.data_folder.open(filepath, "rb", compression=None) as f:
            head = f.read(4)
            f.seek(0)
            if not head:
                self.stat_update("skipped_empty_file")
                return
            if head.startswith(GZIP_MAGIC):
                members = gzip_members(f, self.max_record_bytes)
            else:
                members = iter([self._plain_file(f)])
            for member in members:
                yield from self._read_member(member, filepath)

    def _plain_file(self, f) -> Member:
        head = f.read(4096)
        f.seek(0)
        if head.lstrip().startswith(b"WARC/"):
            return Member(head, 0, None, spool=f)  # parsed as a stream, never loaded whole
        if head.lstrip().startswith(b"filedesc://"):
            return Member(f.read(), 0)
        return Member(head, 0, "not_an_archive")

    def _read_member(self, member: Member, filepath: str) -> DocumentsPipeline:
        data = member.data
        if member.problem in ("garbage_bytes", "not_an_archive"):
            self.stat_update(f"skipped_{member.problem}")
            return
        if not member.problem and not data.strip():
            self.stat_update("skipped_empty_record")
            return
        if member.problem:  # the record is damaged: a failed document if it was one, skipped otherwise
            kind = "arc" if data.startswith(b"filedesc://") else _record_type_of(data)
            is_document = kind in ("response", "conversion", None)
            self.stat_update(f"{'failed' if is_document else 'skipped'}_{member.problem}")
            logger.warning(f"{filepath} @ byte {member.offset}: {member.problem} ({kind or 'unknown'} record)")
            return
        if data.lstrip().startswith(b"WARC/"):
            yield from self._warc_records(member.spool or data, filepath, member.offset)
        elif self._looks_like_arc(data):
            if member.spool is not None:
                member.spool.seek(0)
                data = member.spool.read()
            yield from self._arc_records(data, filepath, member.offset)
        else:
            self.stat_update("skipped_not_an_archive")
            logger.warning(f"{filepath} @ byte {member.offset}: neither WARC nor ARC data, skipped")

    # -- WARC ----------------------------------------------------------------------------------------
    def _warc_records(self, source: bytes | BinaryIO, filepath: str, offset: int) -> DocumentsPipeline:
        from fastwarc.warc import ArchiveIterator, WarcRecordType

        stream = io.BytesIO(source) if isinstance(source, bytes) else source
        n_seen = 0
        for auto_decode in ("all", "none"):  # a broken Content-Encoding: fall back to the raw body
            try:
                stream.seek(0)
                records = ArchiveIterator(
                    stream,
                    record_types=WarcRecordType.any_type,
                    parse_http=True,
                    quirks_mode=True,
                    auto_decode=auto_decode,
                    max_content_length=None,
                )
                for i, record in enumerate(records):
                    if i < n_seen:
                        continue
                    doc = self._warc_record(record, filepath, offset, i)
                    n_seen = i + 1
                    if doc is not None:
                        yield doc
                return
            except (OSError, ValueError, UnicodeError):  # e.g. "Content-Encoding: gzip" on a plain body
                self.stat_update(f"decoded_raw_body_{auto_decode}_failed")
        self.stat_update("failed_unparsable_record")

    def _warc_record(self, record, filepath: str, offset: int, index: int):
        from fastwarc.warc import WarcRecordType

        kind = record.record_type
        headers = record.headers
        if (
            kind in (WarcRecordType.response, WarcRecordType.conversion)
            and record.content_length > self.max_record_bytes
        ):
            self.stat_update("failed_record_too_large")  # its payload is never read into memory
            logger.warning(
                f"{filepath} @ byte {offset}: {record.content_length} byte record "
                f"{headers.get('WARC-Target-URI')} exceeds max_record_bytes, counted failed"
            )
            return None
        if kind == WarcRecordType.conversion:  # WET: text already extracted by Common Crawl
            text, how = decode_payload(record.reader.read(), "utf-8")
            self.stat_update(f"decoded_{how}")
            if not text.strip():
                self.stat_update("failed_empty_payload")
                return None
            return self._document(headers, text, "text/plain", filepath, offset, index)
        if kind != WarcRecordType.response:
            name = str(kind)  # request, metadata, revisit, warcinfo, resource, ...
            if name == "metadata" and (headers.get("Content-Type") or "").startswith("application/json"):
                name = "wat_metadata"
            self.stat_update(f"skipped_{name}")
            return None
        if not record.is_http:
            self.stat_update("skipped_non_http_response")
            return None
        payload = record.reader.read()
        identified = (headers.get("WARC-Identified-Payload-Type") or "").strip() or None  # empty counts as absent
        if not _is_html(identified or record.http_content_type, payload):
            self.stat_update("skipped_non_html_payload")
            return None
        if not payload.strip():
            self.stat_update("failed_empty_payload")
            return None
        text, how = decode_payload(payload, record.http_charset)
        self.stat_update(f"decoded_{how}")
        return self._document(headers, text, "text/html", filepath, offset, index)

    def _document(self, headers, text: str, content_type: str, filepath: str, offset: int, index: int):
        url = (headers.get("WARC-Target-URI") or "").strip().strip("<>")  # wget writes <url>
        record_id = headers.get("WARC-Record-ID") or f"<urn:uuid:{uuid.uuid5(ARC_ID_NAMESPACE, f'{url}/{offset}')}>"
        data = {
            "text": text,
            "id": record_id.strip(),
            "url": url,
            "date": headers.get("WARC-Date"),
            "content_type": content_type,
        }
        return self.get_document_from_dict(data, filepath, f"{offset}/{index}")

    # -- ARC (the Internet Archive's format before WARC) -----------------------------------------------
    @staticmethod
    def _looks_like_arc(data: bytes) -> bool:
        first = data.split(b"\n", 1)[0].split(b" ")
        return len(first) == 5 and first[4].strip().isdigit()

    def _arc_records(self, data: bytes, filepath: str, offset: int) -> DocumentsPipeline:
        pos, index = 0, 0
        while pos < len(data):
            if data[pos : pos + 1] in (b"\n", b"\r"):
                pos += 1
                continue
            end = data.find(b"\n", pos)
            fields = data[pos : end if end >= 0 else len(data)].split(b" ")
            if end < 0 or len(fields) != 5 or not fields[4].strip().isdigit():
                self.stat_update("failed_bad_arc_header")
                return
            url, _ip, date, _ctype, length = (x.decode("latin-1").strip() for x in fields)
            body = data[end + 1 : end + 1 + int(length)]
            pos, index = end + 1 + int(length), index + 1
            if url.startswith("filedesc://"):
                self.stat_update("skipped_arc_filedesc")
                continue
            head, _, payload = body.partition(b"\r\n\r\n")
            m = re.search(rb"(?im)^content-type:\s*([^\r\n;]+)(?:;\s*charset=([^\s;]+))?", head)
            if not _is_html(m.group(1).decode("latin-1") if m else None, payload):
                self.stat_update("skipped_non_html_payload")
                continue
            text, how = decode_payload(payload, m.group(2).decode("latin-1").strip("\"'") if m and m.group(2) else None)
            self.stat_update(f"decoded_{how}")
            record_id = f"<urn:uuid:{uuid.uuid5(ARC_ID_NAMESPACE, f'{url} {date} {offset}/{index}')}>"
            yield self.get_document_from_dict(
                {"text": text, "id": record_id, "url": url, "date": date, "content_type": "text/html"},
                filepath,
                f"{offset}/{index}",
            )


class _CountsEmptyRows:
    """datatrove's readers drop rows without text silently; count them (`failed_empty_text`) so nothing is lost."""

    def get_document_from_dict(self, data: dict, source_file: str, id_in_file):
        document = super().get_document_from_dict(data, source_file, id_in_file)
        if document is None:
            self.stat_update("failed_empty_text")
            logger.warning(f"{source_file} #{id_in_file}: row without text ({self.text_key!r}), counted failed")
        return document


class AccountedJsonlReader(_CountsEmptyRows, JsonlReader):
    """datatrove's JsonlReader, counting rows without text as `failed_empty_text`."""


class AccountedParquetReader(_CountsEmptyRows, ParquetReader):
    """datatrove's ParquetReader, counting rows without text as `failed_empty_text`."""


def document_reader(fmt: str):
    """The reader class for already-extracted documents (`jsonl` | `parquet`)."""
    return {"jsonl": AccountedJsonlReader, "parquet": AccountedParquetReader}[fmt]

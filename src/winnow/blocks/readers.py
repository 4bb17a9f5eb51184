"""Readers that account for every record and row: web archives (WARC, ARC, WET) and documents (JSONL, Parquet).

WebArchiveReader: WARC (any version, gzip per record or plain), ARC and WET files → HTML documents. Built on
fastwarc (≈ 15× faster than warcio) but robust to damaged input: gzip members are split here, one at a time, so
a truncated member, garbage bytes between members or a corrupt record costs that record only; the reader
resynchronises on the next gzip member and goes on with the rest of the file. Members are inflated with zlib-ng
(≈ 2× zlib's speed, the same bytes and the same damage reports) where it is installed, else with zlib.

StreamingParquetReader: datatrove's ParquetReader with memory bounded by one row group, not by the file. pyarrow's
ParquetFile pre-buffers (`pre_buffer=True`, the default) the column chunks of every row group a batch iterator
covers, so iterating a whole file holds the whole file's compressed columns. Measured reading one file of
1,000-row groups (~3.5 KB of text per row) to the end: datatrove's reader peaks at 246 MB (20k rows) and 521 MB
(120k rows), this one at 191 and 194 MB. winnow reads the Parquet of its own stages through it (or through
AccountedParquetReader, also unbuffered).

AccountedJsonlReader / AccountedParquetReader: datatrove's JSONL and Parquet readers, reading line by line (JSONL)
or row group by row group (Parquet) so that a bad line, value or row group costs that row (or group) only, never
the file or the task. Invalid UTF-8 is replaced, not dropped (the policy is in AccountedJsonlReader). Failed rows
are logged as `<file>:<line>: <reason>` and, given a `failure_writer`, written with their `filter_reason`.

Accounting (datatrove stats of these blocks, gathered into summary.json by src/winnow/pipelines/stages/base.py):
  documents             documents yielded (WARC: response/conversion records with an HTML or text payload)
  failed_<reason>       records or rows read that could not be turned into a document (counted as read)
  skipped_<reason>      what is not a document (request, metadata, revisit, garbage bytes, blank lines,
                        unreadable files whose rows are unknown, ...)
  decoded_<how>         how payloads or lines were decoded (informational)
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import math
import re
import tempfile
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from datatrove.data import Document, DocumentsPipeline
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


def inflate_module():
    """The zlib-compatible module that inflates gzip members: `zlib_ng` (zlib-ng, ≈ 1.9× zlib's speed on Common
    Crawl records) when installed (`pip install winnow-curate[fast]`), else the standard `zlib`.

    zlib-ng rather than ISA-L (`isal`, ≈ 2.3×): installing isal makes fsspec, and with it datatrove's JSONL readers
    and writers, switch every `.gz` file to ISA-L's gzip, which drops the lines it had read before a cut-off end."""
    try:
        from zlib_ng import zlib_ng
    except ImportError:
        return zlib
    return zlib_ng


class _Inflation:
    """One gzip member's output as its compressed pieces are fed: in memory, or on disk past `max_bytes`."""

    def __init__(self, inflate, max_bytes: int):
        self.inflater = inflate.decompressobj(31)  # 31: a gzip header and trailer (CRC-32 and length checked)
        self.max_bytes = max_bytes
        self.parts: list[bytes] = []
        self.size = 0
        self.spool: BinaryIO | None = None

    def feed(self, piece: bytes) -> None:
        """Inflate one piece; raises the module's error on corrupt data."""
        out = self.inflater.decompress(piece)
        self.size += len(out)
        if self.spool is None and self.size > self.max_bytes:  # too big for memory: continue on disk
            self.spool = tempfile.TemporaryFile()
            self.spool.writelines(self.parts)
        if self.spool is not None:
            self.spool.write(out)
        elif out:
            self.parts.append(out)

    def discard(self) -> None:
        if self.spool is not None:
            self.spool.close()


def gzip_members(f, max_bytes: int = MAX_RECORD_BYTES, inflate=None) -> Iterator[Member]:
    """Split a gzip file into its members. Never raises on bad data: damage comes back as a Member.problem.

    `inflate`: a zlib-compatible module (`decompressobj`, `error`), by default inflate_module(). Whichever it is,
    the members are zlib's: the same bytes, and a member another module finds damaged is read again by zlib from
    its start, so that its problem, offset, partial bytes and where reading resumes are zlib's whatever that
    module does with damage (zlib-ng does as zlib; ISA-L holds back the last byte of a stream that breaks off and
    calls some broken headers truncated where zlib calls them corrupt). tests/test_base_speed.py compares zlib-ng
    and zlib on every shared WARC, whole and damaged."""
    inflate = inflate or inflate_module()
    origin = f.tell() if inflate is not zlib and f.seekable() else None  # None: no second reading possible
    data, pos, base = b"", 0, 0  # read buffer, position in it, file offset of data[0] (from where f started)
    exhausted = False

    def refill() -> bool:  # append the next chunk, dropping what was consumed (no copying of the whole buffer)
        nonlocal data, pos, base, exhausted
        chunk = b"" if exhausted else f.read(READ_CHUNK)
        exhausted = not chunk
        if chunk:
            data, base, pos = data[pos:] + chunk, base + pos, 0
        return bool(chunk)

    def inflate_member(module) -> tuple[_Inflation, str | None]:
        """Inflate the member at `pos`, leaving `pos` after it (or, if it is corrupt, at the next gzip header)."""
        nonlocal data, pos, base
        member_start, raw = base + pos, bytearray()  # raw: this member's bytes, to resync after corruption
        inflation, problem = _Inflation(module, max_bytes), None
        while True:
            if pos >= len(data) and not refill():
                problem = "truncated_gzip"
                break
            piece = data[pos : pos + FEED_CHUNK]  # small pieces: a corrupt member still yields the head that names it
            if len(raw) < MAX_RESYNC_BYTES:
                raw += piece
            try:
                inflation.feed(piece)
            except (zlib.error, module.error):
                problem = "corrupt_gzip"
                break
            if inflation.inflater.eof:
                pos += len(piece) - len(inflation.inflater.unused_data)
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
        return inflation, problem

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
        member_start, before = base + pos, (data, pos, base, exhausted)  # (bytes are immutable: no copy)
        inflation, problem = inflate_member(inflate)
        if problem and origin is not None:  # read it again as zlib would, from the same state
            inflation.discard()
            data, pos, base, exhausted = before
            f.seek(origin + base + len(data))
            inflation, problem = inflate_member(zlib)
        parts, spool = inflation.parts, inflation.spool
        if spool is not None:
            spool.seek(0)
            parts = [spool.read(8192)]  # the head names the record
        try:
            yield Member(b"".join(parts), member_start, problem, spool)
        finally:
            inflation.discard()
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
            if not payload.strip():  # e.g. a record cut short: nothing to become a document's text
                self.stat_update("failed_empty_payload")
                continue
            text, how = decode_payload(payload, m.group(2).decode("latin-1").strip("\"'") if m and m.group(2) else None)
            self.stat_update(f"decoded_{how}")
            record_id = f"<urn:uuid:{uuid.uuid5(ARC_ID_NAMESPACE, f'{url} {date} {offset}/{index}')}>"
            yield self.get_document_from_dict(
                {"text": text, "id": record_id, "url": url, "date": date, "content_type": "text/html"},
                filepath,
                f"{offset}/{index}",
            )


# ---- documents already extracted: JSONL and Parquet, every row accounted ---------------------------------------

MAX_FAILED_ROW_CHARS = 100_000  # a failed row is kept (in failed/reader/) up to this many characters
MAX_WARNINGS_PER_FILE = 100  # log lines per file; a file of a million bad rows still counts and keeps every one
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class RowFailure(Exception):
    """One row that cannot become a document: `reason` names its counter (`failed_<reason>`)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def _repair_surrogates(value) -> tuple[object, int]:
    """A parsed JSON value with every lone surrogate (JSON "\\ud800") replaced by U+FFFD, and how many there were:
    Python's json accepts them, but no UTF-8 writer (Parquet, JSONL) can write them."""
    if isinstance(value, str):
        return _LONE_SURROGATE.subn("\ufffd", value)
    if isinstance(value, list):
        items = [_repair_surrogates(v) for v in value]
        return [v for v, _ in items], sum(n for _, n in items)
    if isinstance(value, dict):
        items = [(_repair_surrogates(k), _repair_surrogates(v)) for k, v in value.items()]
        return {k: v for (k, _), (v, _) in items}, sum(a + b for (_, a), (_, b) in items)
    return value, 0


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metadata_problem(metadata: dict) -> str | None:
    """What is wrong with the metadata the next blocks rely on: the URL filter parses `url` as a string; datatrove's
    stats add up `token_count`, and the FineWeb-schema writers cast it and `language_score` to numbers."""
    url = metadata.get("url")
    if url is not None and not isinstance(url, str):
        return f"url is a {type(url).__name__}"
    for key in ("token_count", "language_score"):
        value = metadata.get(key)
        if value is not None and not (_is_number(value) and math.isfinite(value)):
            return f"{key} is not a number: {str(value)[:50]!r}"
    return None


def _error_text(e: Exception) -> str:
    """An exception as one short log line (pyarrow's messages span several)."""
    return f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"


def _decode_media(data: dict) -> None:
    """datatrove's JSONL convention: media bytes travel base64-encoded."""
    for media in data.get("media", []):
        if media["media_bytes"] is not None:
            media["media_bytes"] = base64.decodebytes(media["media_bytes"].encode("ascii"))


class _AccountedRows:
    """What JSONL and Parquet share: every row becomes a document or a named failure; the reader never raises on
    bad data.

    The adapter (datatrove's default, or the one given) is wrapped so that its result is checked before datatrove
    builds the Document: text must be a non-empty string, an id a string (numbers are turned into strings; null
    means "none given", so datatrove's `<file>/<row>` id is used), the metadata later blocks read of the right type
    (_metadata_problem). A failed row is counted (`failed_<reason>`),
    logged as `<file>:<line>: <reason> (<detail>)` and, with a `failure_writer`, written with `filter_reason` (the
    raw row as text, decoded with replacement and cut at MAX_FAILED_ROW_CHARS; `id` = `<file>:<line>`, which keeps
    the location in the FineWeb schema; metadata `file_path` and `line`/`row`).
    """

    def __init__(self, *args, failure_writer=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.failure_writer = failure_writer
        self._source_adapter = self.adapter  # the given adapter, or datatrove's default
        self.adapter = self._checked_adapter
        self._failed, self._rank, self._warnings_left = None, 0, MAX_WARNINGS_PER_FILE

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._rank = rank  # read_file has no rank, the failure writer needs one
        with self.failure_writer or contextlib.nullcontext() as failed:
            self._failed = failed
            yield from super().run(data, rank, world_size)

    def _checked_adapter(self, data: dict, path: str, id_in_file) -> dict:
        parsed = self._source_adapter(data, path, id_in_file)
        text = parsed.get("text")
        if text is None or text == "":
            raise RowFailure("empty_text", f"no text ({self.text_key!r})")
        if not isinstance(text, str):
            raise RowFailure("text_not_a_string", f"text is a {type(text).__name__}")
        doc_id = parsed.get("id")
        if doc_id is None:
            parsed["id"] = f"{path}/{id_in_file}"
        elif _is_number(doc_id):
            parsed["id"] = str(doc_id)
        elif not isinstance(doc_id, str):
            raise RowFailure("bad_id", f"id is a {type(doc_id).__name__}")
        if problem := _metadata_problem(parsed.get("metadata") or {}):
            raise RowFailure("bad_metadata", problem)
        return parsed

    def _document(self, data: dict, filepath: str, id_in_file, where: str, raw, line: dict):
        """The row's Document, or None after counting, logging and keeping its failure."""
        try:
            return self.get_document_from_dict(data, filepath, id_in_file)
        except RowFailure as failure:
            self._fail(failure.reason, where, str(failure), raw, filepath, line)
        except Exception as e:  # the adapter or Document() rejected this row (odd media, extra keys): its loss only
            self._fail("adapter_error", where, _error_text(e), raw, filepath, line)
        return None

    def _fail(self, reason: str, where: str, detail: str, raw, filepath: str, line: dict) -> None:
        self.stat_update(f"failed_{reason}")
        self._warn(f"{where}: {reason} ({detail})")
        if self._failed is None:
            return
        if isinstance(raw, bytes):
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        else:
            text = json.dumps(raw, ensure_ascii=False, default=str)
        metadata = {
            **(self.default_metadata or {}),
            "file_path": self.data_folder.resolve_paths(filepath),
            **line,
            "filter_reason": reason,
        }
        self._failed.write(Document(text=text[:MAX_FAILED_ROW_CHARS], id=where, metadata=metadata), self._rank)

    def _warn(self, message: str) -> None:
        if self._warnings_left > 0:
            logger.warning(message)
        elif self._warnings_left == 0:
            logger.warning("more failures in this file: counted and kept, not logged")
        self._warnings_left -= 1


class AccountedJsonlReader(_AccountedRows, JsonlReader):
    """datatrove's JsonlReader (plain or compressed: gzip, zstd, ... by extension), accounting for every line.

    Decoding policy: a line is UTF-8. A line with invalid bytes is decoded with U+FFFD in their place and goes on
    as a document (one bad byte should not cost the text around it); so does a string with a lone surrogate
    escape (JSON "\\ud800", which no UTF-8 writer accepts). Both count `decoded_with_replacement`; valid lines
    are not counted (no work is spent on them).

    Counters: `failed_not_json`, `failed_not_an_object` (a JSON array, number, string), `failed_text_not_a_string`,
    `failed_empty_text` (missing, null or ""), `failed_bad_id` (a list, object or bool), `failed_bad_metadata`
    (a `url` that is not a string, a `token_count`/`language_score` that is not a number), `failed_bad_media`,
    `failed_adapter_error`; `skipped_blank_line`; `skipped_unreadable_file` / `skipped_unreadable_rest_of_file`
    (a damaged compressed stream: what follows cannot be split into rows, so it is not counted as documents).

    Args: as datatrove's JsonlReader, plus
        failure_writer: a datatrove DiskWriter (e.g. ExcludedParquetWriter) for the rows that failed
    """

    def read_file(self, filepath: str) -> DocumentsPipeline:
        self._warnings_left = MAX_WARNINGS_PER_FILE
        with self.data_folder.open(filepath, "rb", compression=self.compression) as f:
            for lineno, raw in enumerate(self._lines(f, filepath), start=1):
                with self.track_time():
                    document = self._line_document(raw, filepath, lineno)
                if document is not None:
                    yield document

    def _lines(self, f, filepath: str) -> Iterator[bytes]:
        """The file's lines, as bytes. A damaged compressed stream ends the file after the last byte that could be
        decompressed: the cut line is still yielded (and fails as not_json), the rest is counted skipped."""
        # read1 hands back each decompressed piece as soon as it exists, so an error loses no bytes before it
        # (readline's buffer would drop the lines it already held)
        read = getattr(f, "read1", f.read)
        pending, n_lines = [], 0  # pieces of an unfinished line (joined once: a long line is not copied per chunk)
        while True:
            try:
                chunk = read(READ_CHUNK)
            except Exception as e:  # gzip/zstd/bz2 raise their own types (EOFError, BadGzipFile, ZstdError, ...)
                what = "rest_of_file" if n_lines or any(pending) else "file"
                self.stat_update(f"skipped_unreadable_{what}")
                logger.warning(f"{filepath}:{n_lines + 1}: unreadable {what} ({_error_text(e)}), skipped")
                break
            if not chunk:
                break
            lines = chunk.split(b"\n")
            if len(lines) == 1:
                pending.append(chunk)
                continue
            lines[0] = b"".join(pending) + lines[0]
            pending = [lines.pop()]
            n_lines += len(lines)
            yield from lines
        if tail := b"".join(pending):
            yield tail

    def _line_document(self, raw: bytes, filepath: str, lineno: int):
        import orjson

        where, line = f"{filepath}:{lineno}", {"line": lineno}
        if not raw.strip():
            self.stat_update("skipped_blank_line")
            return None
        try:
            data = orjson.loads(raw)  # the fast path: valid UTF-8, valid JSON
        except orjson.JSONDecodeError:
            try:
                data = self._parse_damaged_line(raw)
            except RowFailure as failure:
                self._fail(failure.reason, where, str(failure), raw, filepath, line)
                return None
        if not isinstance(data, dict):
            self._fail("not_an_object", where, f"a JSON {type(data).__name__}", raw, filepath, line)
            return None
        try:
            _decode_media(data)
        except (TypeError, KeyError, AttributeError, ValueError) as e:
            self._fail("bad_media", where, _error_text(e), raw, filepath, line)
            return None
        # datatrove's ids are <file>/<0-based line>: keep them for rows without an id
        return self._document(data, filepath, lineno - 1, where, raw, line)

    def _parse_damaged_line(self, raw: bytes):
        """What orjson refused: invalid UTF-8 (replaced), lone surrogates and NaN (Python's json), or not JSON."""
        import orjson

        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="replace")
            self.stat_update("decoded_with_replacement")
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError:
                pass
        try:
            data, repaired = _repair_surrogates(json.loads(text))
        except (ValueError, RecursionError) as e:  # RecursionError: nesting deeper than Python's stack
            raise RowFailure("not_json", _error_text(e)) from None
        if repaired:
            self.stat_update("decoded_with_replacement")
        return data


class StreamingParquetReader(ParquetReader):
    """datatrove's ParquetReader (same arguments, same documents), holding one batch of one row group at a time
    instead of the whole file's column chunks (see the module docstring). Documents without an id are named
    `<file>/<row>` after their row in the file."""

    def read_file(self, filepath: str) -> DocumentsPipeline:
        import pyarrow.parquet as pq

        columns = None if self.read_metadata else [self.text_key, self.id_key]
        with self.data_folder.open(filepath, "rb") as f, pq.ParquetFile(f, pre_buffer=False) as parquet:
            row = 0
            for batch in parquet.iter_batches(batch_size=self.batch_size, columns=columns):
                with self.track_time("batch"):
                    documents = []
                    for values in batch.to_pylist():
                        document = self.get_document_from_dict(values, filepath, row)
                        row += 1
                        if document:
                            documents.append(document)
                yield from documents


class AccountedParquetReader(_AccountedRows, ParquetReader):
    """datatrove's ParquetReader, accounting for every row, read one row group at a time so that damage costs
    only the rows it touches.

    Counters: `skipped_unreadable_file` (not Parquet, or a damaged footer: counted as a file, its rows are
    unknown); `failed_missing_text_column` (every row of a file without the text column, from its metadata, with
    the default adapter); `failed_unreadable_row_group` (the rows of a row group, or of its rest, that fail to
    decode: counted from the metadata); per row `failed_text_not_a_string`, `failed_empty_text`, `failed_bad_id`,
    `failed_bad_metadata`, `failed_adapter_error`. File- and row-group-level failures are one log line each and
    write no rows (the source file holds them); failed rows are written to `failure_writer` as JSON text.

    Args: as datatrove's ParquetReader, plus
        failure_writer: a datatrove DiskWriter (e.g. ExcludedParquetWriter) for the rows that failed
    """

    def read_file(self, filepath: str) -> DocumentsPipeline:
        import pyarrow.parquet as pq

        self._warnings_left = MAX_WARNINGS_PER_FILE
        with self.data_folder.open(filepath, "rb") as f:
            try:
                parquet = pq.ParquetFile(f, pre_buffer=False)  # memory per row group, not per file
                names = parquet.schema_arrow.names
            except Exception as e:  # not Parquet, a cut-off file, damaged metadata (ArrowInvalid, OSError, ...)
                self.stat_update("skipped_unreadable_file")
                logger.warning(f"{filepath}: not a readable Parquet file ({_error_text(e)}), skipped")
                return
            with parquet:
                if self._source_adapter == self._default_adapter and self.text_key not in names:
                    rows = parquet.metadata.num_rows
                    self.stat_update("failed_missing_text_column", value=rows)
                    logger.warning(f"{filepath}: no column {self.text_key!r} (columns: {names}): {rows} rows failed")
                    return
                columns = None if self.read_metadata else [c for c in (self.text_key, self.id_key) if c in names]
                first = 0  # the group's first row in the file: failure locations and datatrove's `<file>/<row>` ids
                for group in range(parquet.num_row_groups):
                    index, first = first, first + parquet.metadata.row_group(group).num_rows
                    for rows in self._row_group(parquet, group, columns, filepath):
                        documents = []
                        with self.track_time("batch"):
                            for row in rows:
                                where, line = f"{filepath}:row {index}", {"row": index}
                                document = self._document(dict(row), filepath, index, where, row, line)
                                index += 1
                                if document is not None:
                                    documents.append(document)
                        yield from documents

    def _row_group(self, parquet, group: int, columns, filepath: str) -> Iterator[list[dict]]:
        """One row group as lists of row dicts; rows that fail to decode are counted from the metadata."""
        expected = parquet.metadata.row_group(group).num_rows
        done = 0
        batches = parquet.iter_batches(batch_size=self.batch_size, row_groups=[group], columns=columns)
        while True:
            try:  # only the decoding is guarded: a damaged page, bad compression, invalid UTF-8, dates out of range
                batch = next(batches, None)
                rows = None if batch is None else batch.to_pylist()
            except Exception as e:
                lost = max(expected - done, 0)
                self.stat_update("failed_unreadable_row_group", value=lost)
                self._warn(f"{filepath}: row group {group}: {lost} rows unreadable ({_error_text(e)})")
                return
            if rows is None:
                return
            done += len(rows)
            yield rows


def document_reader(fmt: str):
    """The reader class for already-extracted documents (`jsonl` | `parquet`)."""
    return {"jsonl": AccountedJsonlReader, "parquet": AccountedParquetReader}[fmt]

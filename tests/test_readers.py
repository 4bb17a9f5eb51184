"""The readers: the web-archive reader on every real odd archive in shared/data and on damaged copies built here,
and the JSONL/Parquet readers on bad rows, bad row groups and bad files.

Each case checks what came out (documents, their text) and the named counter that accounts for every record
or row that did not become a document; the readers never raise on bad input.
"""

import gzip
import json
import uuid

import pyarrow.parquet as pq
import pytest

from winnow.blocks.readers import WebArchiveReader


def read(folder, pattern, **kwargs):
    reader = WebArchiveReader(str(folder), glob_pattern=pattern, **kwargs)
    docs = list(reader.run())
    counters = {k: (v.total if hasattr(v, "total") else v) for k, v in reader.stats.stats.items()}
    failed = sum(v for k, v in counters.items() if k.startswith("failed_"))
    return docs, counters, failed


def skipped(counters):
    return {k.removeprefix("skipped_"): v for k, v in counters.items() if k.startswith("skipped_")}


# file → (documents, skipped reasons ⊇, a url among the documents)
REAL_FILES = {
    "cc/whirlwind.warc.gz": (1, {"warcinfo": 1, "request": 1, "metadata": 1}, "https://an.wikipedia.org/wiki/Escopete"),
    "cc/whirlwind.warc.wet.gz": (1, {"warcinfo": 1}, "https://an.wikipedia.org/wiki/Escopete"),
    "cc/whirlwind.warc.wat.gz": (0, {"warcinfo": 1, "wat_metadata": 1}, None),
    "cc/resiliparse-warcfile.warc.gz": (16, {"warcinfo": 1, "request": 17, "metadata": 16}, "http://01spb.ru/company/"),
    # datatrove 0.10.1 reads 0 documents here (empty WARC-Identified-Payload-Type on every record)
    "edge/resiliparse-clueweb-quirk.warc.gz": (29, {"warcinfo": 1}, None),
    "edge/dolma-sample-0000.warc.gz": (
        22,
        {"warcinfo": 1, "request": 22, "metadata": 1, "resource": 2},
        "https://soldaini.net/",
    ),
    "edge/dolma-sample-0001.warc.gz": (
        15,
        {"warcinfo": 1, "request": 15, "resource": 2},
        "https://creativecommons.org/",
    ),
    "edge/warcio-example.warc.gz": (1, {"warcinfo": 2, "request": 2, "revisit": 1}, "http://example.com/"),
    "edge/warcio-example-iana.org-chunked.warc": (1, {"warcinfo": 1, "request": 1}, "http://www.iana.org/"),
    "edge/warcio-example.arc.gz": (1, {"arc_filedesc": 1}, "http://example.com/"),
}


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_every_real_archive_file_is_read_and_accounted(shared_data, name):
    n_docs, expected_skips, url = REAL_FILES[name]
    folder, pattern = (shared_data / "warc" / name).parent, name.split("/")[1]
    docs, counters, failed = read(folder, pattern)
    assert len(docs) == n_docs and failed == 0
    assert counters.get("documents", 0) == n_docs
    for reason, count in expected_skips.items():
        assert skipped(counters).get(reason) == count, (reason, skipped(counters))
    if url:
        assert url in {d.metadata["url"] for d in docs}
    for d in docs:
        assert d.id and d.metadata["date"] and d.text.strip()
        assert not d.metadata["url"].startswith("<")  # wget's <url> form is unwrapped


def test_charsets_chunked_encoding_and_wet_text(shared_data):
    docs, _, _ = read(shared_data / "warc" / "cc", "resiliparse-warcfile.warc.gz")
    russian = next(d for d in docs if d.metadata["url"] == "http://01spb.ru/company/")  # windows-1251 page
    assert sum("а" <= c <= "я" for c in russian.text) > 100
    docs, _, _ = read(shared_data / "warc" / "edge", "resiliparse-clueweb-quirk.warc.gz")  # EUC-JP, WARC/0.18
    assert all(any("\u3040" <= c <= "\u30ff" for c in d.text) for d in docs)
    assert docs[0].metadata["date"] == "2008-10-294T05:21:46-0700"  # kept as written, not a crash
    (page,), _, _ = read(shared_data / "warc" / "edge", "warcio-example-iana.org-chunked.warc")
    assert page.text.lstrip().startswith("<!doctype html>") and page.text.rstrip().endswith("</html>")
    (wet,), _, _ = read(shared_data / "warc" / "cc", "whirlwind.warc.wet.gz")
    assert wet.metadata["content_type"] == "text/plain" and wet.text.startswith("Escopete")


# ---- damaged copies ---------------------------------------------------------------------------------


def page_members(shared_data, n):
    """The first n response records of pages-00000 as their raw gzip members (from the shard's index)."""
    index = [json.loads(line) for line in gzip.open(shared_data / "warc" / "pages" / "pages-index.jsonl.gz", "rt")]
    raw = (shared_data / "warc" / "pages" / "pages-00000.warc.gz").read_bytes()
    rows = [r for r in index if r["warc_file"] == "pages-00000.warc.gz"][:n]
    return [raw[r["offset"] : r["offset"] + r["length"]] for r in rows], rows


def warc_response(url: str, html: bytes, charset: str = "utf-8") -> bytes:
    http = (
        f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset={charset}\r\nContent-Length: {len(html)}\r\n\r\n"
    ).encode() + html
    head = (
        f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:{uuid.uuid4()}>\r\n"
        f"WARC-Date: 2024-02-20T00:00:00Z\r\nWARC-Target-URI: {url}\r\n"
        f"Content-Type: application/http; msgtype=response\r\nContent-Length: {len(http)}\r\n\r\n"
    ).encode()
    return gzip.compress(head + http + b"\r\n\r\n", compresslevel=1)


def test_truncated_gzip_member_keeps_the_records_before_it(shared_data, tmp_path):
    members, rows = page_members(shared_data, 6)
    (tmp_path / "truncated.warc.gz").write_bytes(b"".join(members[:5]) + members[5][: len(members[5]) // 2])
    docs, counters, failed = read(tmp_path, "truncated.warc.gz")
    assert [d.metadata["url"] for d in docs] == [r["url"] for r in rows[:5]]
    assert counters["failed_truncated_gzip"] == 1 and failed == 1


def test_garbage_between_members_is_skipped_and_reading_resumes(shared_data, tmp_path):
    members, rows = page_members(shared_data, 8)
    garbage = b"\x00\xffNOT A GZIP MEMBER\x1f" * 500
    (tmp_path / "garbage.warc.gz").write_bytes(b"".join(members[:4]) + garbage + b"".join(members[4:]))
    docs, counters, failed = read(tmp_path, "garbage.warc.gz")
    assert [d.metadata["url"] for d in docs] == [r["url"] for r in rows]
    assert counters["skipped_garbage_bytes"] == 1 and failed == 0


def test_corrupt_bytes_inside_a_member_fail_that_record_only(shared_data, tmp_path):
    members, rows = page_members(shared_data, 8)
    broken = bytearray(members[3])
    broken[len(broken) // 2 : len(broken) // 2 + 64] = b"\x00" * 64
    (tmp_path / "corrupt.warc.gz").write_bytes(b"".join(members[:3]) + bytes(broken) + b"".join(members[4:]))
    docs, counters, failed = read(tmp_path, "corrupt.warc.gz")
    urls = [d.metadata["url"] for d in docs]
    assert urls == [r["url"] for i, r in enumerate(rows) if i != 3]
    assert counters["failed_corrupt_gzip"] == 1 and failed == 1


def test_a_30_mb_page_is_counted_and_the_next_pages_are_read(tmp_path):
    huge = b"<html><body>" + b"<p>" + b"x" * (30 * 2**20) + b"</p></body></html>"
    normal = [
        warc_response(f"http://example.org/{i}", f"<html><body><p>page {i}</p></body></html>".encode())
        for i in range(3)
    ]
    (tmp_path / "huge.warc.gz").write_bytes(
        normal[0] + warc_response("http://example.org/huge", huge) + b"".join(normal[1:])
    )
    docs, counters, failed = read(tmp_path, "huge.warc.gz")
    assert [d.metadata["url"] for d in docs] == [f"http://example.org/{i}" for i in range(3)]
    assert counters["failed_record_too_large"] == 1 and failed == 1


def test_invalid_utf8_is_decoded_not_dropped(tmp_path):
    html = "<html><body><p>Grüße aus Köln</p>".encode() + b"\xff\xfe\xc3(" + b"<p>and more text</p></body></html>"
    (tmp_path / "bad-utf8.warc.gz").write_bytes(warc_response("http://example.org/bad", html, charset="utf-8"))
    (doc,), counters, failed = read(tmp_path, "bad-utf8.warc.gz")
    assert "and more text" in doc.text and failed == 0
    assert counters.get("decoded_declared", 0) == 0  # the declared charset did not fit; detection took over


def test_empty_and_non_warc_files_are_skipped_with_a_reason(tmp_path, shared_data):
    (tmp_path / "empty.warc.gz").write_bytes(b"")
    (tmp_path / "readme.warc.gz").write_bytes((shared_data / "README.md").read_bytes()[:5000])
    (tmp_path / "text.warc.gz").write_bytes(gzip.compress(b"just some gzipped text, no archive\n" * 10))
    docs, counters, failed = read(tmp_path, "*.warc.gz")
    assert docs == [] and failed == 0
    assert counters["skipped_empty_file"] == 1
    assert counters["skipped_not_an_archive"] == 2


def test_a_whole_shard_gzipped_as_one_stream_is_read_record_by_record(shared_data, tmp_path):
    raw = gzip.decompress((shared_data / "warc" / "pages" / "pages-00001.warc.gz").read_bytes())
    assert len(raw) > 10 * 2**20  # larger than the per-record cap: streamed from disk, not refused
    (tmp_path / "one-stream.warc.gz").write_bytes(gzip.compress(raw, compresslevel=1))
    (tmp_path / "plain.warc").write_bytes(raw)
    for name in ("one-stream.warc.gz", "plain.warc"):
        docs, counters, failed = read(tmp_path, name)
        assert len(docs) == 250 and failed == 0 and counters["skipped_warcinfo"] == 1, name


def test_an_arc_record_without_payload_fails_and_the_next_is_read(tmp_path):
    def arc_record(url: str, body: bytes) -> bytes:
        http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + body
        return f"{url} 93.184.216.34 20140216050221 text/html {len(http)}\n".encode() + http + b"\n"

    filedesc = b"filedesc://test.arc 127.0.0.1 20140216050221 text/plain 0\n\n"
    page = b"<html><body><p>a page</p></body></html>"
    data = filedesc + arc_record("http://example.com/empty", b"") + arc_record("http://example.com/", page)
    (tmp_path / "empty-payload.arc.gz").write_bytes(gzip.compress(data))
    (doc,), counters, failed = read(tmp_path, "empty-payload.arc.gz")
    assert doc.metadata["url"] == "http://example.com/" and "a page" in doc.text
    assert counters["failed_empty_payload"] == 1 and failed == 1


def test_jsonl_rows_without_text_are_counted_not_dropped(tmp_path):
    from winnow.blocks.readers import document_reader

    rows = [{"id": "a", "text": "some text"}, {"id": "b", "text": ""}, {"id": "c"}, {"id": "d", "text": "more"}]
    (tmp_path / "docs.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    reader = document_reader("jsonl")(str(tmp_path))
    assert [d.id for d in reader.run()] == ["a", "d"]
    assert reader.stats.stats["failed_empty_text"].total == 2


# ---- JSONL and Parquet: every row a document or a named failure ------------------------------------------------


def read_documents(fmt, folder, **kwargs):
    from winnow.blocks.readers import document_reader
    from winnow.blocks.writers.parquet import ExcludedParquetWriter

    reader = document_reader(fmt)(str(folder), failure_writer=ExcludedParquetWriter(str(folder / "failed")), **kwargs)
    docs = list(reader.run())
    counters = {k: (v.total if hasattr(v, "total") else v) for k, v in reader.stats.stats.items()}
    failed_rows = [r for f in sorted((folder / "failed").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    return docs, counters, failed_rows


def test_each_bad_jsonl_line_fails_alone_with_its_reason_and_location(tmp_path):
    lines = [
        b'{"id": "a", "text": "first"}',
        b'{"id": "b", "text": "caf\xe9"}',  # invalid UTF-8: replaced, still a document
        b"",
        b"[1, 2, 3]",
        b'{"id": "c", "text": 42}',
        b'{"id": "d", "text": ["a list"]}',
        b'{"id": 7, "text": "numeric id"}',
        b'{"id": {"x": 1}, "text": "object id"}',
        b'{"id": "e", "text": "lone \\ud800 surrogate"}',
        b"not json at all",
        b'{"id": "f", "text": ""}',
        b'{"text": "no id"}',
        b'{"id": "h", "text": "url a list", "url": ["http://example.com/"]}',
        b'{"id": "i", "text": "a token count that is no number", "token_count": "many"}',
        b'{"id": "g", "text": "last"}',
    ]
    (tmp_path / "docs.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    docs, counters, failed = read_documents("jsonl", tmp_path, glob_pattern="*.jsonl")
    assert [d.id for d in docs] == ["a", "b", "7", "e", "docs.jsonl/11", "g"]
    assert docs[1].text == "caf\ufffd" and docs[3].text == "lone \ufffd surrogate"
    assert counters["decoded_with_replacement"] == 2 and counters["skipped_blank_line"] == 1
    expected = {
        "docs.jsonl:4": "not_an_object",
        "docs.jsonl:5": "text_not_a_string",
        "docs.jsonl:6": "text_not_a_string",
        "docs.jsonl:8": "bad_id",
        "docs.jsonl:10": "not_json",
        "docs.jsonl:11": "empty_text",
        "docs.jsonl:13": "bad_metadata",
        "docs.jsonl:14": "bad_metadata",
    }
    assert {r["id"]: r["filter_reason"] for r in failed} == expected
    assert {k: v for k, v in counters.items() if k.startswith("failed_")} == {
        "failed_not_an_object": 1,
        "failed_text_not_a_string": 2,
        "failed_bad_id": 1,
        "failed_not_json": 1,
        "failed_empty_text": 1,
        "failed_bad_metadata": 2,
    }
    assert next(r for r in failed if r["id"] == "docs.jsonl:10")["text"] == "not json at all"


def test_a_gzipped_jsonl_cut_short_keeps_every_line_before_the_cut(tmp_path):
    rows = [json.dumps({"id": str(i), "text": f"document {i} " * 50}).encode() for i in range(2000)]
    packed = gzip.compress(b"\n".join(rows) + b"\n")
    (tmp_path / "cut.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    (tmp_path / "not-gzip.jsonl.gz").write_bytes(b'{"id": "x", "text": "plain"}\n')
    docs, counters, failed = read_documents("jsonl", tmp_path, glob_pattern="*.jsonl.gz")
    assert [d.id for d in docs] == [str(i) for i in range(len(docs))] and len(docs) > 100
    assert counters["skipped_unreadable_rest_of_file"] == 1 and counters["skipped_unreadable_file"] == 1
    assert [r["filter_reason"] for r in failed] == ["not_json"]  # the line the cut went through


def test_bad_parquet_files_row_groups_and_values_cost_only_themselves(tmp_path):
    import io

    import pyarrow as pa

    texts = [f"text number {i} " * 20 for i in range(6)]
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(6)], "text": texts}), buf, row_group_size=2)
    data = bytearray(buf.getvalue())
    chunk = pq.ParquetFile(io.BytesIO(bytes(data))).metadata.row_group(1).column(1)  # texts of rows 2 and 3
    start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    data[start : start + chunk.total_compressed_size] = b"\xff" * chunk.total_compressed_size
    (tmp_path / "a-damaged.parquet").write_bytes(data)
    pq.write_table(pa.table({"id": [1, 2, 3], "text": [1, 2, 3]}), tmp_path / "b-ints.parquet")
    pq.write_table(pa.table({"id": ["n1", "n2"], "body": ["x", "y"]}), tmp_path / "c-no-text.parquet")
    (tmp_path / "d-not.parquet").write_bytes(b"PAR1 this is not a Parquet file")
    pq.write_table(pa.table({"id": [10, 11], "text": ["int ids", None]}), tmp_path / "e-ok.parquet")
    docs, counters, failed = read_documents("parquet", tmp_path, glob_pattern="*.parquet")
    assert [d.id for d in docs] == ["d0", "d1", "d4", "d5", "10"]
    assert counters["failed_unreadable_row_group"] == 2
    assert counters["failed_text_not_a_string"] == 3
    assert counters["failed_missing_text_column"] == 2
    assert counters["failed_empty_text"] == 1
    assert counters["skipped_unreadable_file"] == 1
    assert sorted((r["id"], r["filter_reason"]) for r in failed) == [
        ("b-ints.parquet:row 0", "text_not_a_string"),
        ("b-ints.parquet:row 1", "text_not_a_string"),
        ("b-ints.parquet:row 2", "text_not_a_string"),
        ("e-ok.parquet:row 1", "empty_text"),
    ]


def test_streaming_parquet_reader_yields_datatrove_readers_documents(shared_data, tmp_path):
    """The unbuffered reader (memory per row group) yields exactly what datatrove's ParquetReader yields: the same
    ids, texts and metadata, in order, over many row groups, with empty texts skipped by both."""
    import pyarrow as pa
    from datatrove.pipeline.readers import ParquetReader

    from winnow.blocks.readers import StreamingParquetReader

    with gzip.open(shared_data / "fineweb" / "fineweb-sample-10BT" / "fineweb-legal-docs.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    rows[3]["text"] = ""  # skipped by both readers
    table = pa.Table.from_pylist([{"id": r["id"], "text": r["text"], "url": r.get("url")} for r in rows])
    pq.write_table(table, tmp_path / "docs.parquet", row_group_size=max(1, len(rows) // 7))
    assert pq.ParquetFile(tmp_path / "docs.parquet").num_row_groups >= 7

    def read(cls, **kwargs):
        reader = cls(str(tmp_path), glob_pattern="*.parquet", recursive=False, batch_size=5, **kwargs)
        return [(d.id, d.text, {k: v for k, v in d.metadata.items()}) for d in reader.run(rank=0, world_size=1)]

    for kwargs in ({}, {"read_metadata": False}):
        expected = read(ParquetReader, **kwargs)
        assert len(expected) == len(rows) - 1
        assert read(StreamingParquetReader, **kwargs) == expected

"""The web-archive reader on every real odd archive in shared/data and on damaged copies built here.

Each case checks what came out (documents, their text) and the named counter that accounts for every record
that did not become a document; the reader never raises on bad input.
"""

import gzip
import json
import uuid

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


def test_jsonl_rows_without_text_are_counted_not_dropped(tmp_path):
    from winnow.blocks.readers import document_reader

    rows = [{"id": "a", "text": "some text"}, {"id": "b", "text": ""}, {"id": "c"}, {"id": "d", "text": "more"}]
    (tmp_path / "docs.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    reader = document_reader("jsonl")(str(tmp_path))
    assert [d.id for d in reader.run()] == ["a", "d"]
    assert reader.stats.stats["failed_empty_text"].total == 2

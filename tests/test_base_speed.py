"""The base stage's speed-ups change no output: zlib-ng inflates every shared WARC to zlib's bytes (whole and
damaged), language ID on a sample decides as full-text language ID on every shared document, and the GPT-2 token
counter counts what the tokenizer counts, for kept documents only.

Timings are in benchmarks/bench_base.py (`make bench-base`), not here: a test asserts what came out.
"""

import csv
import gzip
import io
import json
import random
import zlib

import pytest
from datatrove.data import Document

from winnow.blocks.filters.language import FastTextLanguageFilter, LanguagePrescreen, text_sample
from winnow.blocks.formatters import GPT2TokenCounter, gpt2_tokenizer
from winnow.blocks.readers import WebArchiveReader, gzip_members

# ---------------------------------------------------------------------------------------------- gzip inflate


class Unseekable(io.BytesIO):
    """A stream gzip_members cannot rewind: a member is inflated once, by the module given, damaged or not."""

    def seekable(self):
        return False


def members(blob: bytes, inflate, max_bytes: int = 10 * 2**20, stream=io.BytesIO) -> list[tuple]:
    """Every member gzip_members finds in `blob`: (offset, problem, bytes, spooled bytes)."""
    found = []
    for member in gzip_members(stream(blob), max_bytes=max_bytes, inflate=inflate):
        spooled = None
        if member.spool is not None:
            member.spool.seek(0)
            spooled = member.spool.read()
        found.append((member.offset, member.problem, member.data, spooled))
    return found


def damaged_copies(blob: bytes, rng: random.Random) -> dict[str, bytes]:
    """The file (its first MiB) cut off at random places, with a flipped byte in random places, with a wrong CRC-32
    and length in its first member's trailer, and with garbage bytes (and a false gzip header) after its first
    member."""
    blob, copies = blob[: 2**20], {}
    for _ in range(4):
        cut = rng.randrange(1, len(blob))
        copies[f"cut at {cut}"] = blob[:cut]
    for _ in range(6):
        at = rng.randrange(len(blob))
        copies[f"byte {at} flipped"] = blob[:at] + bytes([blob[at] ^ 0xFF]) + blob[at + 1 :]
    inflater = zlib.decompressobj(31)
    inflater.decompress(blob)
    end = len(blob) - len(inflater.unused_data)  # the first member's end
    for back, field in ((1, "length"), (5, "crc")):
        copies[f"wrong {field}"] = blob[: end - back] + bytes([blob[end - back] ^ 1]) + blob[end - back + 1 :]
    copies["garbage between members"] = blob[:end] + b"junk\x1f\x8b\x08junk" + blob[end:]
    return copies


@pytest.mark.slow
def test_zlib_ng_inflates_every_shared_warc_to_zlibs_members_whole_and_damaged(shared_data):
    zlib_ng = pytest.importorskip("zlib_ng.zlib_ng")
    rng = random.Random(17)
    files = sorted((shared_data / "warc").rglob("*.gz"))
    assert len(files) >= 15  # cc/, edge/, pages/ (the index is a gzip file too)
    problems = set()
    for path in files:
        blob = path.read_bytes()
        for name, copy in {"whole": blob, **damaged_copies(blob, rng)}.items():
            expected = members(copy, zlib)
            assert members(copy, zlib_ng, stream=Unseekable) == expected, f"{path.name}, {name}"  # zlib-ng alone
            problems |= {problem for _, problem, _, _ in expected}
            if name == "whole":
                assert all(problem is None for _, problem, _, _ in expected), path.name
    assert {"truncated_gzip", "corrupt_gzip", "garbage_bytes"} <= problems  # the damage was seen, and handled alike


class HoldsBackALastByte:
    """A zlib-compatible module that, like ISA-L, keeps the last byte of each piece until the next piece: the same
    members when whole, one byte short when a member breaks off."""

    error = zlib.error

    class decompressobj:
        def __init__(self, wbits):
            self.inner, self.held = zlib.decompressobj(wbits), b""

        def decompress(self, piece):
            out = self.held + self.inner.decompress(piece)
            self.held = b"" if self.inner.eof else out[-1:]
            return out if self.inner.eof else out[:-1]

        def __getattr__(self, name):  # eof, unused_data
            return getattr(self.inner, name)


def test_a_member_another_inflate_finds_damaged_is_read_again_by_zlib(shared_data):
    blob = (shared_data / "warc" / "pages" / "pages-00000.warc.gz").read_bytes()
    cut = blob[: len(blob) // 3]  # the last member is cut off mid-stream
    expected = members(cut, zlib, max_bytes=4096)  # every page record is larger: spooled to disk
    assert expected[-1][1] == "truncated_gzip" and sum(spooled is not None for *_, spooled in expected) > 50
    assert members(cut, HoldsBackALastByte, stream=Unseekable, max_bytes=4096) != expected  # one byte short
    assert members(cut, HoldsBackALastByte, max_bytes=4096) == expected  # rewound and read again by zlib


def test_reader_gives_the_same_documents_with_either_inflate(shared_data, monkeypatch):
    zlib_ng = pytest.importorskip("zlib_ng.zlib_ng")
    import winnow.blocks.readers as readers

    def documents():
        reader = WebArchiveReader(str(shared_data / "warc" / "pages"), glob_pattern="pages-00000.warc.gz")
        return [(d.id, d.text, d.metadata["url"]) for d in reader.run()]

    assert readers.inflate_module() is zlib_ng  # the `fast` extra is installed (make setup: .[all,test])
    fast = documents()
    monkeypatch.setattr(readers, "inflate_module", lambda: zlib)
    assert documents() == fast and len(fast) == 250


# ---------------------------------------------------------------------------------------------- language ID


def shared_texts(shared_data) -> dict[str, list[str]]:
    """Every document text of ../shared/data: FineWeb, FineWeb-Edu, FineWeb-2, the multilingual and reasoning
    annotation sets, and resiliparse's main text of every WARC page (what the pre-screen judges)."""
    from resiliparse.extract.html2text import extract_plain_text

    def jsonl(path):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return [json.loads(line)["text"] for line in f if line.strip()]

    data = shared_data
    texts = {path.name: jsonl(path) for path in sorted((data / "fineweb" / "fineweb-2").glob("*.jsonl.gz"))}
    texts["fineweb-sample-10BT"] = jsonl(data / "fineweb" / "fineweb-sample-10BT" / "fineweb-legal-docs.jsonl.gz")
    texts["fineweb-edu-llama3"] = [
        t for s in ("train", "val") for t in jsonl(data / f"annotations/fineweb-edu-llama3/{s}.jsonl.gz")
    ]
    texts["llama31-multilingual"] = jsonl(data / "annotations" / "llama31-multilingual" / "cc_merged.jsonl.gz")
    csv.field_size_limit(2**30)
    with gzip.open(data / "annotations" / "llama33-reasoning" / "training_data.csv.gz", "rt", encoding="utf-8") as f:
        texts["llama33-reasoning"] = [row["text"] for row in csv.DictReader(f)]
    reader = WebArchiveReader(str(data / "warc" / "pages"), glob_pattern="pages-*.warc.gz")
    pages = (extract_plain_text(doc.text, main_content=True) for doc in reader.run())
    texts["warc pages (resiliparse text)"] = [text for text in pages if text.strip()]
    return texts


@pytest.fixture(scope="module")
def texts(shared_data):
    return shared_texts(shared_data)


def outcome(block, text: str) -> tuple:
    doc = Document(text=text, id="doc", metadata={})
    result = block.filter(doc)
    return (
        result is True,
        None if result is True else result[1],
        doc.metadata.get("language"),
        doc.metadata.get("language_score"),
    )


@pytest.mark.slow
def test_language_filter_on_a_sample_decides_as_on_the_full_text_on_every_shared_document(texts):
    sampled, full = FastTextLanguageFilter(), FastTextLanguageFilter(sample_pieces=0)  # FineWeb: en, > 0.65
    on_sample = 0
    for name, docs in texts.items():
        for text in docs:
            got, expected = outcome(sampled, text), outcome(full, text)
            assert got[:2] == expected[:2], f"{name}: {text[:80]!r}"  # keep or remove, and the reason
            if got[0]:
                assert got == expected  # a kept document carries the full text's language and score
        on_sample = sampled.stats.stats["decided_on_sample"].total
    assert sum(map(len, texts.values())) > 7500
    assert on_sample > 1000  # the sample decided (the German, Norwegian, multilingual and page texts)


@pytest.mark.slow
def test_prescreen_on_a_sample_removes_the_pages_full_text_scoring_removes(shared_data):
    reader = WebArchiveReader(str(shared_data / "warc" / "pages"), glob_pattern="pages-*.warc.gz")
    pages = list(reader.run())

    def passed(block) -> list[str]:  # run as in a pipeline: in batches of 64 pages
        copies = (Document(text=p.text, id=p.id, metadata=dict(p.metadata)) for p in pages)
        return [doc.id for doc in block.run(copies)]

    sampled, full = LanguagePrescreen(), LanguagePrescreen(sample_pieces=0, batch_size=1)
    kept = passed(sampled)
    assert kept == passed(full)
    assert len(pages) == 1481 and len(pages) - len(kept) > 700
    assert sampled.stats.stats["decided_on_sample"].total > 500


def test_text_sample_spreads_whole_words_over_the_text():
    text = " ".join(f"w{i}" for i in range(1000))
    pieces = text_sample(text, 4, 200)
    assert [p.split()[0] for p in pieces] == ["w0", "w960", "w335", "w648"]  # start, end, then between
    assert pieces[1].endswith("w999") and all(150 <= len(p) <= 200 for p in pieces)
    assert all(word in text.split() for p in pieces for word in p.split())  # no word cut


def test_both_language_blocks_share_one_model_per_process():
    assert FastTextLanguageFilter().model.model is LanguagePrescreen().model.model


# ---------------------------------------------------------------------------------------------- token counts


def test_token_counter_counts_gpt2_tokens_in_batches(shared_data):
    with gzip.open(shared_data / "annotations" / "fineweb-edu-llama3" / "val.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [Document(text=json.loads(line)["text"], id=str(i), metadata={}) for i, line in enumerate(f)][:300]
    counted = list(GPT2TokenCounter(batch_size=64).run(iter(docs)))
    tokenizer = gpt2_tokenizer()
    assert [d.metadata["token_count"] for d in counted] == [
        len(tokenizer.encode(d.text, add_special_tokens=False).ids) for d in docs
    ]


def test_base_stage_counts_tokens_of_kept_documents_only(tmp_path, shared_data):
    from winnow.pipelines.config import RunConfig
    from winnow.pipelines.stages.base import build_pipeline

    cfg = RunConfig.model_validate(
        {"name": "t", "output_dir": str(tmp_path), "input": {"paths": [str(shared_data / "warc/cc/*.gz")]}}
    )
    cfg.source_file = "t"
    _, roles = build_pipeline(cfg)
    names = [name for _, name in roles]
    assert names[-2:] == ["token_count", "writer"]  # after every filter (and PII): kept documents only
    assert all(names.index(name) < names.index("token_count") for name in cfg.filters.enabled)

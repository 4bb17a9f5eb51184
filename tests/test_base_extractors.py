"""Extractors account for every page: extracted, removed (no main text) or failed (timeout/error), never lost."""

import pyarrow.parquet as pq
import pytest
from datatrove.data import Document

from winnow.blocks.extractors import EXTRACTORS, build_extractor
from winnow.blocks.filters import build_filter
from winnow.blocks.readers import WebArchiveReader
from winnow.blocks.writers.parquet import ExcludedParquetWriter


@pytest.fixture(scope="module")
def pristine_pages(shared_data):
    return list(
        WebArchiveReader(str(shared_data / "warc" / "pages"), glob_pattern="pages-00000.warc.gz", limit=12).run()
    )


@pytest.fixture
def pages(pristine_pages):  # extractors replace doc.text: every test gets its own copies
    return [Document(text=p.text, id=p.id, metadata=dict(p.metadata)) for p in pristine_pages]


def counters(block):
    return {k: v.total for k, v in block.stats.stats.items()}


@pytest.mark.parametrize("name", ["trafilatura", "resiliparse"])
def test_extractors_return_main_text(name, pages):
    block = build_extractor(name, timeout=5.0)
    html_chars = sum(len(p.text) for p in pages)
    out = list(block.run(iter(pages)))
    c = counters(block)
    assert (
        c["total"]
        == len(pages)
        == len(out) + c.get("dropped_no_main_text", 0) + sum(v for k, v in c.items() if k.startswith("failed_"))
    )
    assert all("<" not in d.text[:200] and d.metadata["content_type"] == "text/plain" for d in out)
    assert len(out) >= 8 and sum(len(d.text) for d in out) < html_chars / 3  # markup and boilerplate gone


def test_timeouts_and_empty_pages_are_written_with_a_reason(pages, tmp_path):
    empty = Document(
        text="<html><body><script>var x = 1;</script></body></html>",
        id="empty",
        metadata={"url": "http://example.org/empty"},
    )
    block = EXTRACTORS["trafilatura"](
        timeout=1e-4,
        exclusion_writer=ExcludedParquetWriter(str(tmp_path / "removed")),
        failure_writer=ExcludedParquetWriter(str(tmp_path / "failed")),
    )
    # the three largest pages: each takes 16-110 ms of CPU in trafilatura here, far above the CPU timer's few-ms
    # tick, so they time out however warm trafilatura's caches are (a small page can finish inside one tick)
    largest = sorted(pages, key=lambda p: len(p.text))[-3:]
    out = list(block.run(iter(largest + [empty])))
    c = counters(block)
    assert len(out) + c["failed_timeout"] + c.get("dropped_no_main_text", 0) == 4 and c["failed_timeout"] >= 2
    failed = pq.read_table(tmp_path / "failed" / "00000.parquet").to_pylist()
    assert {r["filter_reason"] for r in failed} == {"timeout"} and len(failed) == c["failed_timeout"]


def test_no_main_text_is_a_removal(tmp_path):
    empty = Document(text="<html><body><nav>Home | About</nav></body></html>", id="e", metadata={"url": "http://x.org"})
    block = build_extractor("resiliparse", exclusion_writer=ExcludedParquetWriter(str(tmp_path / "removed")))
    assert list(block.run(iter([empty]))) == []
    assert counters(block)["dropped_no_main_text"] == 1
    assert pq.read_table(tmp_path / "removed" / "00000.parquet").to_pylist()[0]["filter_reason"] == "no_main_text"


def test_language_prescreen_skips_only_clear_other_language_pages(pages):
    screen = build_filter("language_prescreen")
    results = [screen.filter(Document(text=p.text, id=p.id, metadata=dict(p.metadata))) for p in pages]
    removed = [p for p, r in zip(pages, results) if r is not True]
    assert removed and all(r in (True, (False, "other_language")) for r in results)
    language = build_filter("language")
    for page in removed:  # trafilatura's text of each screened page would have failed the language filter too
        text = build_extractor("trafilatura").extract(page.text) or ""
        assert not text or language.filter(Document(text=text, id=page.id, metadata={})) is not True
    wet = Document(text="Plain English text already.", id="w", metadata={"content_type": "text/plain"})
    assert screen.filter(wet) is True


def test_cpu_timeout_is_not_swallowed_by_the_library():
    from winnow.blocks.extractors.base import CpuTimeout, ExtractionTimeout

    def stubborn(text):  # like trafilatura's readability fallback: catches every Exception and goes on
        while True:
            try:
                sum(range(10_000))
            except Exception:
                pass

    with CpuTimeout(0.2) as guard, pytest.raises(ExtractionTimeout):
        guard.process_document("<html></html>", stubborn)

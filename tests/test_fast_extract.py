"""The fast extractor on real pages of the shared shards: what a reader of each page calls its main text must
come out, the page's navigation, teasers and footers must not (expectations written by reading the pages).
Then the block as a pipeline step: every record of every shared archive is extracted, removed or failed,
never lost, and the config name `fast` builds it."""

import json

import pytest
from fastwarc.warc import ArchiveIterator, WarcRecordType

from winnow.blocks.extractors import EXTRACTORS, build_extractor
from winnow.blocks.extractors.fast import FastExtractor, blocks_of
from winnow.blocks.readers import WebArchiveReader
from winnow.pipelines.tools.eval_extract import decode_html

# url (prefix) → (shard, must appear, must not appear)
PAGES = {
    # a German federal office's press note: the article with its table, not the office's menus
    "https://www.bafa.de/SharedDocs/Kurzmeldungen/DE/Energie/Mineraloel/2021_11_mineraloelinfo.html": (
        "pages-00002.warc.gz",
        [
            "sank der Absatz von Mineralölprodukten in der Bundesrepublik Deutschland",
            "Dieselkraftstoff 32,23 Mio. t 32,28 Mio. t 0,1 %",
            "der Grenzübergangspreis von Rohöl um 55,8 % von 276,95 Euro auf 431,42 Euro pro Tonne gestiegen.",
        ],
        ["Springe direkt zu", "Servicemenü", "Hauptmenü", "Unternavigationspunkte"],
    ),
    # a fashion school's blog post: the post, not the list of other posts with their "WEITERLESEN" buttons
    "https://www.ldt.de/ldtblog/fall-in-love-with-black/": (
        "pages-00004.warc.gz",
        [
            "das berühmte „kleine Schwarze“ mit dem man bei jedem Event bestens gekleidet ist",
            "Lass dich von ihren Outfits inspirieren.",
        ],
        ["WEITERLESEN", "Gerry Weber Modeschulen-Ratgeber", "ZUR LDT HOMEPAGE", "Fashion News"],
    ),
    # an English interview: questions and answers, not the blog's category menu or the series' other posts
    "https://github.blog/2019-03-29-leader-spotlight-erin-spiceland/": (
        "pages-00001.warc.gz",
        [
            "Erin Spiceland is a Software Engineer for SpaceX.",
            "How would you summarize your career (so far) in a single sentence?",
        ],
        [
            "Back to GitHub.com",
            "Share on Twitter",
            "Laura Frank Tacho, Director of Engineering at CloudBees",
            "Editor tools",
        ],
    ),
    # a technical blog post with code and short headings: the headings and the shell line stay, the
    # site's bio/contact menu, the "other posts" list and the comment prompt go
    "https://anarc.at/blog/2020-10-18-cdpath-replacement/": (
        "pages-00000.warc.gz",
        [
            'export CDPATH=".:~:~/src:~/dist:~/wikis:~/go/src:~/src/tor"',
            "Shell jumpers",
            "Emacs plugins not integrated with the shell",
        ],
        ["Add a comment", "SSH 2FA with Google Authenticator and Yubikey", "Presentation tools"],
    ),
    # a jobs site's article: the article, not the newsletter prompt, the copyright line or the "trending" box
    "http://www.jobsnhire.com/articles/35030/20160214/need-know-cvs-health.htm": (
        "pages-00000.warc.gz",
        [
            "There are four main areas where CVS Health accomplishes this objective:",
            "4. CVS/specialty",
            "The company's net revenues increased 11 percent to a record of $41.1 billion.",
        ],
        [
            "Get the Most Popular Jobs&Hire Stories in a Weekly Newsletter",
            "All rights reserved",
            "TRENDING ON THE WEB",
            "Join the Conversation",
        ],
    ),
    # an angling magazine's article: it ends where its rating widget and author box begin
    "https://angelmagazin.de/fische-schmerzen/": (
        "pages-00000.warc.gz",
        [
            "Ob Fische Schmerzen fühlen, ist eine berechtigte Frage",
            "sollte im Umgang mit Fischen versucht werden, schädliche Stressreaktionen weitgehend zu reduzieren.",
        ],
        ["Fandest du den Artikel hilfreich?", "Über den Autor", "Ich bin Christoph, leidenschaftlicher Angler"],
    ),
}


def page_html(shared_data, url_prefix, shard):
    with open(shared_data / "warc" / "pages" / shard, "rb") as f:
        for record in ArchiveIterator(f, record_types=WarcRecordType.response):
            if record.headers.get("WARC-Target-URI", "").startswith(url_prefix):
                return decode_html(record.reader.read(), record.http_headers.get("Content-Type"))
    raise AssertionError(f"{url_prefix} is not in {shard}")


@pytest.mark.parametrize("url", sorted(PAGES))
def test_main_text_kept_and_boilerplate_dropped_on_real_pages(shared_data, url):
    shard, must_appear, must_not_appear = PAGES[url]
    text = FastExtractor().extract(page_html(shared_data, url, shard))
    for snippet in must_appear:
        assert snippet in text, f"main text lost on {url}: {snippet!r}"
    for snippet in must_not_appear:
        assert snippet not in text, f"boilerplate kept on {url}: {snippet!r}"


HEURISTICS = ["prune_links", "prune_phrases", "cut_at_tail_markers", "keep_good_span", "short_context"]


@pytest.mark.parametrize("heuristic", HEURISTICS)
def test_each_heuristic_removes_something_on_these_pages(shared_data, heuristic):
    """Switched off, each pruning heuristic lets more text through on at least one of the pages above."""
    grew = []
    for url, (shard, _, _) in PAGES.items():
        html = page_html(shared_data, url, shard)
        with_it, without_it = FastExtractor().extract(html), FastExtractor(**{heuristic: False}).extract(html)
        assert set(with_it.splitlines()) <= set(without_it.splitlines()) or heuristic == "short_context"
        grew.append(len(without_it) > len(with_it))
    assert any(grew), f"{heuristic} changes nothing on the test pages"


def test_blocks_carry_link_density_and_heading_flags():
    markup = (
        '<h2>A title</h2>\n<p>Some words and <a href="/x">a link</a> here.</p>\n'
        '<ul><li><a href="/a">Home</a></li><li><a href="/b">About us</a></li></ul>'
    )
    blocks = blocks_of(markup)
    assert [b.text for b in blocks] == ["A title", "Some words and a link here.", "Home", "About us"]
    assert blocks[0].heading and not blocks[1].heading
    assert 0.2 < blocks[1].link_density < 0.4 and blocks[2].link_density == 1.0


def test_config_name_fast_builds_the_block():
    assert "fast" in EXTRACTORS
    extractor = build_extractor("fast", timeout=1.0, favour_precision=True)
    assert isinstance(extractor, FastExtractor)


@pytest.mark.slow
def test_every_record_of_every_shared_archive_is_accounted(shared_data, tmp_path):
    """All 1,481 pages and the odd Common Crawl / edge archives through reader → fast extractor: each document
    comes out extracted, goes to removed/ (no main text) or is failed with a reason, and nothing raises."""
    from datatrove.pipeline.writers import JsonlWriter

    removed_dir = tmp_path / "removed"
    extractor = FastExtractor(exclusion_writer=JsonlWriter(str(removed_dir), compression=None))
    warc = shared_data / "warc"
    readers = [
        WebArchiveReader(str(folder), glob_pattern=pattern)
        for folder, pattern in [(warc / "pages", "*.warc.gz"), (warc / "cc", "*"), (warc / "edge", "*")]
    ]
    documents = [doc for reader in readers for doc in reader.run()]
    read = len(documents)
    kept = list(extractor.run(iter(documents)))
    counters = {k: v.total if hasattr(v, "total") else v for k, v in extractor.stats.stats.items()}
    failed = sum(v for k, v in counters.items() if k.startswith("failed_"))
    assert read >= 1481 + 16 + 29
    assert counters["total"] == read
    assert counters["extracted"] + counters.get("passed_plain_text", 0) == len(kept)
    assert len(kept) + counters.get("dropped_no_main_text", 0) + failed == read
    assert failed == 0 and len(kept) > 0.95 * read
    removed = [json.loads(line) for f in removed_dir.glob("*.jsonl") for line in f.read_text().splitlines()]
    assert len(removed) == counters.get("dropped_no_main_text", 0)
    assert all(d["metadata"]["filter_reason"] == "no_main_text" for d in removed)

"""The fast extractor on real pages of the shared shards: what a reader of each page calls its main text must
come out, the page's navigation, teasers and footers must not (expectations written by reading the pages, or
taken from trafilatura's annotation of the page where a comment says so). Then the quality gate on trafilatura's
whole ground truth, the block as a pipeline step (every record of every shared archive is extracted, removed or
failed, never lost), and the config name `fast` builds it."""

import json

import pytest
from fastwarc.warc import ArchiveIterator, WarcRecordType

from winnow.blocks.extractors import EXTRACTORS, build_extractor
from winnow.blocks.extractors.fast import FastExtractor, blocks_of
from winnow.blocks.readers import WebArchiveReader
from winnow.pipelines.tools.eval_extract import (
    decode_html,
    evaluate,
    extractors,
    load_truth,
    read_pages,
    split_of,
    summarise,
)

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
    # a podcast blog post (trafilatura's annotation): the post, not the author box (<div id="author-info">)
    # under it nor the "published in" line of the post footer
    "https://knowledge-on-air.de/2019/12/17/koa039-live-vom-knowledgecamp-2019/": (
        "pages-00001.warc.gz",
        ["Auch auf dem KnowledgeCamp 2019", "vom Camp erzählen", "die über ihre Eindrücke"],
        ["Scholarch der Cogneon", "Dieser Eintrag wurde veröffentlicht"],
    ),
    # a gas association's blog post (trafilatura's annotation): the article, not the small "Weitere
    # Informationen" and "Ansprechpartner" sections that close the page
    "https://www.dvgw.de/blog/gas/welche-heizung-ist-klimafreundlich-und-zukunftstauglich": (
        "pages-00003.warc.gz",
        ["In den Heizungen unserer", "Von den verschiedenen Heizsystemen im Haus", "Dazu kommt, dass nicht jedes"],
        ["Weitere Informationen", "Ansprechpartner", "Bleiben Sie auf dem Laufenden"],
    ),
    # a tech blog post quoting tweets (trafilatura's annotation): the quoted tweets are article text
    "https://www.basicthinking.de/blog/2018/12/05/erfolgreiche-tweets-zutaten/": (
        "pages-00002.warc.gz",
        ["Frank Thelen, Investor", "Meine Mutter ist jederzeit", "Female founders must constantly consider"],
        ["Mit Absendung des Formulars willige ich", "Kommentieren"],
    ),
    # a national park's news page whose text is repeated in <noscript> for browsers without JavaScript
    # (trafilatura's annotation): the text, not the park office's phone line
    "http://www.parcoabruzzo.it/dettaglio.php?id=58354": (
        "pages-00000.warc.gz",
        ["naturali di regolazione numerica", "In questo contesto è chiaro"],
        ["Tel. 0863/91131 - Fax 0863/912132", "Autore di Parks.it"],
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


HEURISTICS = [
    "prune_links",
    "prune_phrases",
    "cut_at_tail_markers",
    "keep_good_span",
    "short_context",
    "skip_containers",
    "drop_small_tail_sections",
]


# Rules that change which blocks there are, or their labels, rather than only dropping blocks: switched off, the
# text is not a superset (skipped containers can make resiliparse's main-content pass choose other elements).
RESHAPING = {"short_context", "skip_containers"}


@pytest.mark.parametrize("heuristic", HEURISTICS)
def test_each_heuristic_removes_something_on_these_pages(shared_data, heuristic):
    """Switched off, each pruning heuristic lets more text through on at least one of the pages above."""
    grew = []
    for url, (shard, _, _) in PAGES.items():
        html = page_html(shared_data, url, shard)
        with_it, without_it = FastExtractor().extract(html), FastExtractor(**{heuristic: False}).extract(html)
        assert set(with_it.splitlines()) <= set(without_it.splitlines()) or heuristic in RESHAPING
        grew.append(len(without_it) > len(with_it))
    assert any(grew), f"{heuristic} changes nothing on the test pages"


@pytest.mark.parametrize(
    "switch, url, snippet",
    [
        ("read_noscript", "http://www.parcoabruzzo.it/dettaglio.php?id=58354", "In questo contesto è chiaro"),
        (
            "keep_embedded_posts",
            "https://www.basicthinking.de/blog/2018/12/05/erfolgreiche-tweets-zutaten/",
            "Female founders must constantly consider",
        ),
    ],
)
def test_noscript_text_and_embedded_tweets_are_kept(shared_data, switch, url, snippet):
    """The two rules that add text: switched off, the page's main text loses the snippet."""
    html = page_html(shared_data, url, PAGES[url][0])
    assert snippet in FastExtractor().extract(html)
    assert snippet not in FastExtractor(**{switch: False}).extract(html)


# The quality gate. F1 measured with `winnow eval-extract` (docs/sections/extract.md): fast 0.925 on all 990
# annotated pages (0.925 on the tuning half, 0.926 on the held-out half), trafilatura(precision) 0.915.
# The threshold is the measurement minus a margin of 0.005 for library updates; the held-out comparison with
# trafilatura below is computed, not recorded.
MIN_F1 = 0.920


@pytest.fixture(scope="module")
def annotated(shared_data):
    """(pages with ground truth, ground truth) of the shared evaluation set."""
    truth = load_truth(str(shared_data / "extraction-eval" / "trafilatura-evaldata.json"))
    ids = {entry["warc_record_id"] for _, entry in truth}
    pages = [p for p in read_pages(str(shared_data / "warc" / "pages" / "*.warc.gz")) if p.record_id in ids]
    return pages, truth


def test_fast_f1_on_trafilaturas_ground_truth_in_each_half(annotated):
    pages, truth = annotated
    results = evaluate(pages, truth, {"fast": FastExtractor().extract})
    for split, entries in [("all", 990), ("tune", 499), ("held-out", 491)]:
        score = summarise(results, split)["fast"]
        assert score.entries == entries and score.errors == 0
        assert score.f1 >= MIN_F1, f"fast F1 {score.f1:.3f} on the {split} pages (threshold {MIN_F1})"


@pytest.mark.slow
def test_fast_is_at_least_as_good_as_trafilatura_precision_on_the_held_out_pages(annotated):
    """The pages no rule of the fast extractor was tuned on: both extractors run here, the same scoring."""
    pages, truth = annotated
    held_out = [p for p in pages if split_of(p.url) == "held-out"]
    scores = summarise(evaluate(held_out, truth, extractors(["trafilatura_precision", "fast"])))
    fast, reference = scores["fast"], scores["trafilatura_precision"]
    assert fast.entries == reference.entries == 491
    assert fast.f1 >= reference.f1, f"held-out F1: fast {fast.f1:.3f} < trafilatura(precision) {reference.f1:.3f}"


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

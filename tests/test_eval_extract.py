"""`winnow eval-extract` on the shared pages and trafilatura's ground truth: the scoring is trafilatura's own,
the comparison runs through the CLI on a real shard, each half of the fixed tuning / held-out split is reported,
and trafilatura variants do not disturb each other."""

import json

import pytest

from winnow.errors import ConfigError
from winnow.pipelines import cli
from winnow.pipelines.tools.eval_extract import SPLITS, Score, extractors, load_truth, read_pages, score_entry, split_of

DIY_URL = "http://diy-expeditions.com/expeditionen-planen/expeditionen-in-uebersee/"


@pytest.fixture(scope="module")
def truth(shared_data):
    return load_truth(str(shared_data / "extraction-eval" / "trafilatura-evaldata.json"))


def test_truth_is_every_annotated_capture(truth):
    assert len(truth) == 990  # 990 entries under 988 URLs (two URLs were annotated twice)
    assert len({url for url, _ in truth}) == 988


def test_the_split_is_a_fixed_half_by_url(shared_data, truth):
    """Every page and every annotated URL falls in one half, by its URL alone, so the held-out figure is
    reproducible and the two captures of a URL never straddle the halves."""
    urls = {url for url, _ in truth}
    halves = {half: {url for url in urls if split_of(url) == half} for half in SPLITS}
    assert set(SPLITS) == {"tune", "held-out"}
    assert (len(halves["tune"]), len(halves["held-out"])) == (499, 489)
    pages = read_pages(str(shared_data / "warc" / "pages" / "*.warc.gz"))
    assert sum(split_of(p.url) == "held-out" for p in pages) == 742 and len(pages) == 1481


def test_scoring_normalises_white_space_and_counts_snippets_as_trafilatura_does(truth):
    entry = next(e for url, e in truth if url == DIY_URL)
    n_with, n_without = len(entry["with"]), len(entry["without"])
    # the page's main text, laid out with line breaks and tabs where the snippets have single blanks
    text = "\n\n".join(s.replace(" ", " \t\n ", 1) for s in entry["with"])
    assert score_entry(text, entry) == (n_with, 0, 0, n_without)
    # a boilerplate snippet left in: one false positive
    assert score_entry(text + "\n" + entry["without"][0], entry) == (n_with, 0, 1, n_without - 1)
    # nothing extracted (trafilatura returns None): every wanted snippet missed, every unwanted one absent
    assert score_entry(None, entry) == (0, n_with, 0, n_without)
    s = Score("x", tp=8, fn=2, fp=2, tn=8)
    assert (s.precision, s.recall, s.f1, s.without_absent, s.accuracy) == (0.8, 0.8, pytest.approx(0.8), 0.8, 0.8)


def test_trafilatura_variants_keep_their_own_deduplication_history(shared_data):
    """trafilatura's deduplicate=True shares one module-level cache; seen often enough, a page's paragraphs
    are dropped. Each variant in the comparison must see only its own history."""
    html = next(p.html for p in read_pages(str(shared_data / "warc" / "pages" / "pages-00005.warc.gz"))[:4])
    alone = extractors(["trafilatura"])["trafilatura"](html)
    precision = extractors(["trafilatura_precision"])["trafilatura_precision"]
    for _ in range(3):
        precision(html)
    assert extractors(["trafilatura"])["trafilatura"](html) == alone


@pytest.mark.slow
def test_cli_compares_extractors_on_a_shard_and_writes_the_table(shared_data, tmp_path):
    shard = shared_data / "warc" / "pages" / "pages-00005.warc.gz"
    output = tmp_path / "table.json"
    truth_file = shared_data / "extraction-eval" / "trafilatura-evaldata.json"
    assert (
        cli.main(
            [
                "eval-extract",
                "--extractor",
                "resiliparse,fast",
                "--pages",
                str(shard),
                "--truth",
                str(truth_file),
                "--split",
                "all",
                "--output",
                str(output),
            ]
        )
        == 0
    )
    rows = {r["extractor"]: r for r in json.loads(output.read_text())}
    assert set(rows) == {"resiliparse", "fast"}
    entries = [
        e for _, entries in json.loads(truth_file.read_text()).items() for e in entries if e["warc_file"] == shard.name
    ]
    snippets = sum(len(e["with"]) + len(e["without"]) for e in entries)
    for row in rows.values():
        assert row["docs"] == 231 and row["errors"] == 0 and row["docs_per_cpu_s"] > 0
        assert row["entries"] == len(entries)  # only the entries whose page is in this shard are scored
        assert sum(row["counts"].values()) == snippets
    # the pruning's purpose: much less boilerplate than resiliparse alone, for a small loss of main text
    assert rows["fast"]["precision"] > rows["resiliparse"]["precision"] + 0.05
    assert rows["fast"]["recall"] > rows["resiliparse"]["recall"] - 0.02
    assert rows["fast"]["f1"] > rows["resiliparse"]["f1"]


@pytest.mark.slow
def test_cli_reports_each_half_and_the_worst_pages(shared_data, tmp_path, capsys):
    """`--split each` (the default) reports all pages, the tuning half and the held-out half from one run;
    `--worst` lists the pages where an extractor makes the most errors beyond trafilatura(precision)'s."""
    shard = shared_data / "warc" / "pages" / "pages-00005.warc.gz"
    output = tmp_path / "table.json"
    argv = ["eval-extract", "--extractor", "trafilatura_precision,fast", "--pages", str(shard), "--worst", "3"]
    assert cli.main([*argv, "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    rows = {(r["split"], r["extractor"]): r for r in json.loads(output.read_text())}
    assert {split for split, _ in rows} == {"all", "tune", "held-out"}
    held_out_pages = sum(split_of(p.url) == "held-out" for p in read_pages(str(shard)))
    for name in ("trafilatura_precision", "fast"):
        halves = [rows[split, name] for split in SPLITS]
        assert sum(r["docs"] for r in halves) == rows["all", name]["docs"] == 231
        assert rows["held-out", name]["docs"] == held_out_pages
        assert sum(r["entries"] for r in halves) == rows["all", name]["entries"]
        for count in ("tp", "fn", "fp", "tn"):
            assert sum(r["counts"][count] for r in halves) == rows["all", name]["counts"][count]
    assert "split held-out:" in printed and "fast: the 3 pages (all) with the most errors beyond" in printed

    # one half alone: only its pages are read, and the figures are those of the half in the full run
    output_held_out = tmp_path / "held-out.json"
    argv = ["eval-extract", "--extractor", "fast", "--pages", str(shard), "--split", "held-out"]
    assert cli.main([*argv, "--output", str(output_held_out)]) == 0
    (alone,) = json.loads(output_held_out.read_text())
    assert alone["split"] == "held-out" and alone["docs"] == held_out_pages
    assert alone["counts"] == rows["held-out", "fast"]["counts"]


def test_unknown_extractor_is_refused_with_the_known_names():
    with pytest.raises(ConfigError, match="known"):
        extractors(["nonexistent"])


def test_worst_pages_need_the_reference_extractor(capsys):
    assert cli.main(["eval-extract", "--extractor", "fast", "--worst", "3"]) == 2
    assert "trafilatura_precision" in capsys.readouterr().err

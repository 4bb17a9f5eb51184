"""The FineWeb filter stack on real documents: each filter alone in a datatrove pipeline, the regex word
splitter against spaCy's, the UT1 domain lookup against datatrove's set, and fidelity to FineWeb's decisions."""

import gzip
import json
import random
import subprocess
import sys

import pytest
from datatrove.data import Document

from winnow.blocks.filters import FILTERS, FilterConfigError, build_filter, check_overrides
from winnow.blocks.filters.url import SortedDomainList
from winnow.blocks.filters.words import regex_sentence_count, regex_words, spacy_sentence_count, spacy_words


@pytest.fixture(scope="module")
def fineweb_docs(shared_data):
    """FineWeb documents (all kept by FineWeb's own filters), from the fineweb-edu-llama3 annotation set."""
    docs = []
    for split in ("train", "val"):
        with gzip.open(shared_data / "annotations" / "fineweb-edu-llama3" / f"{split}.jsonl.gz", "rt") as f:
            docs += [Document(text=r["text"], id=f"{split}/{r['id']}", metadata={}) for r in map(json.loads, f)]
    return docs


def decisions(block, docs):
    out = []
    for doc in docs:
        result = block.filter(Document(text=doc.text, id=doc.id, metadata=dict(doc.metadata)))
        out.append(True if result is True else result[1] if isinstance(result, tuple) else bool(result))
    return out


@pytest.mark.parametrize("name", [n for n in FILTERS if n != "url"])
def test_each_filter_runs_alone_in_a_datatrove_pipeline(name, fineweb_docs):
    block = build_filter(name)
    kept = list(block.run(iter(Document(text=d.text, id=d.id, metadata={}) for d in fineweb_docs[:150])))
    counters = {k: v.total for k, v in block.stats.stats.items()}
    assert counters["total"] == 150
    assert len(kept) == counters["forwarded"] == 150 - counters.get("dropped", 0)
    assert len(kept) >= 140  # FineWeb kept all of them


def test_rules_remove_what_they_should():
    doc = lambda text: Document(text=text, id="x", metadata={})  # noqa: E731
    prose = "The cat sat on the mat and looked at the birds with great interest. " * 12
    assert build_filter("gopher_quality").filter(doc("Too short to be a document.")) == (False, "gopher_short_doc")
    assert build_filter("gopher_repetition").filter(doc("\n".join(["Same line again."] * 20))) is not True
    assert build_filter("c4_quality").filter(doc(prose + "\nfunction() { return 1; }")) == (False, "curly_bracket")
    lists = doc("\n".join(f"Antidisestablishmentarianism_{i:03d}_catalogue." for i in range(40)))  # 2 words a line
    assert build_filter("fineweb_quality").filter(lists) is True
    assert build_filter("fineweb_quality", {"list_ratio": True}).filter(lists) == (False, "list_ratio")
    english = build_filter("language").filter(doc(prose))
    german = build_filter("language").filter(doc("Die Katze saß auf der Matte und schaute den Vögeln zu. " * 5))
    assert english is True and german == (False, "other_language")


def test_unknown_filter_arguments_are_refused():
    with pytest.raises(FilterConfigError, match="filters.gopher_quality.min_words: unknown argument"):
        check_overrides({"gopher_quality": {"min_words": 3}})
    with pytest.raises(FilterConfigError, match="filters.nope: unknown filter"):
        check_overrides({"nope": {}})


def test_regex_word_splitter_agrees_with_spacy(fineweb_docs):
    docs = random.Random(0).sample(fineweb_docs, 120)
    for text in ["Hello, world! It's 3.5 miles... e.g. the U.S. -- well-known (really).", docs[0].text]:
        assert abs(len(regex_words(text)) - len(spacy_words(text))) <= 0.05 * len(spacy_words(text)) + 1
    for text in ["One. Two! Three? e.g. not a break... still four", "A sentence (with parens). And another one."]:
        assert regex_sentence_count(text) == spacy_sentence_count(text)
    for name in ("gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality"):
        fast = decisions(build_filter(name, word_splitter="regex"), docs)
        slow = decisions(build_filter(name, word_splitter="spacy"), docs)
        agree = sum(a == b for a, b in zip(fast, slow)) / len(docs)
        assert agree >= 0.98, (name, agree)


def test_fast_ngram_counts_equal_datatrove(fineweb_docs):
    from datatrove.pipeline.filters.gopher_repetition_filter import find_all_duplicate, find_top_duplicate, get_n_grams

    from winnow.blocks.filters.gopher import duplicated_ngram_chars, top_ngram_chars

    for doc in fineweb_docs[:200]:
        words = regex_words(doc.text)
        for n in (2, 3, 4):
            grams = get_n_grams(words, n)
            assert top_ngram_chars(words, n) == (find_top_duplicate(grams) if grams else 0)
        for n in range(5, 11):
            assert duplicated_ngram_chars(words, n) == find_all_duplicate(words, n)


def test_sorted_domain_list_matches_datatrove_set(tmp_path):
    raw = [b"example-blocked.com", b"# a comment", b"  spaced.org  ", b"a.b.c.net", b"example-blocked.com", b""]
    (tmp_path / "domains").write_bytes(b"\n".join(raw) + b"\n")
    SortedDomainList.build(str(tmp_path / "domains"), str(tmp_path / "domains.sorted"))
    lookup = SortedDomainList(str(tmp_path / "domains.sorted"), extra={"extra.io"})
    reference = {x.strip() for x in (tmp_path / "domains").read_text().splitlines(True) if x[0] != "#"}
    for domain in ["example-blocked.com", "spaced.org", "a.b.c.net", "b.c.net", "nope.com", "extra.io", "", "zzz"]:
        assert (domain in lookup) == (domain in reference or domain == "extra.io"), domain


def test_url_filter_on_real_urls_offline(shared_data):
    urls = [
        json.loads(line)["url"] for line in gzip.open(shared_data / "warc" / "pages" / "pages-index.jsonl.gz", "rt")
    ]
    block = build_filter("url")
    results = decisions(block, [Document(text="x", id=str(i), metadata={"url": u}) for i, u in enumerate(urls)])
    removed = [r for r in results if r is not True]
    assert 0 < len(removed) < 20 and set(removed) <= {
        "domain",
        "subdomain",
        "url",
        "hard_blacklisted",
        "soft_blacklisted",
        "blacklisted_subword",
    }
    assert block.filter(Document(text="x", id="n", metadata={})) is True  # no url: kept, counted


@pytest.mark.slow
def test_fidelity_on_documents_fineweb_kept(project_root, tmp_path):
    out = tmp_path / "fidelity.json"
    subprocess.run(
        [sys.executable, "scripts/fidelity_base.py", "--output", str(tmp_path / "run"), "--json", str(out)],
        cwd=project_root,
        check=True,
        capture_output=True,
        timeout=600,
    )
    result = json.loads(out.read_text())
    assert result["total"]["read"] == 1998
    assert result["total"]["keep_rate"] >= 0.97
    for row in result["rows"]:
        assert row["keep_rate"] >= 0.99, row  # no single filter removes more than 1 %

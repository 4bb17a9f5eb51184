"""Gopher's alpha rule ("80 % of words contain an alphabetic character") in GopherQuality: symbol soup goes with
`gopher_below_alpha_threshold`, prose keeps its commas, numbers, lists and dates, and documents FineWeb kept stay."""

import gzip
import json

import pytest
from datatrove.data import Document

from winnow.blocks.filters.gopher import GopherQuality

ALPHA_RULE_ONLY = dict(
    min_doc_words=None,
    max_doc_words=None,
    min_avg_word_length=None,
    max_avg_word_length=None,
    max_symbol_word_ratio=None,
    max_bullet_lines_ratio=None,
    max_ellipsis_lines_ratio=None,
    min_stop_words=None,
)


def read_texts(path):
    with gzip.open(path, "rt") as f:
        return [json.loads(line)["text"] for line in f]


@pytest.fixture(scope="module")
def fineweb_edu_texts(shared_data):
    """The 1,998 FineWeb documents of fineweb-edu-llama3: FineWeb's filters kept every one."""
    folder = shared_data / "annotations" / "fineweb-edu-llama3"
    return read_texts(folder / "train.jsonl.gz") + read_texts(folder / "val.jsonl.gz")


@pytest.fixture(scope="module")
def real_sentences(fineweb_edu_texts):
    """Eight sentences of a real FineWeb-Edu document, the prose the symbol soup below is mixed into."""
    sentences = [s.strip() + "." for s in fineweb_edu_texts[0].split(".") if len(s.split()) > 5]
    return sentences[:8]


def verdict(text, **kwargs):
    return GopherQuality(**kwargs).filter(Document(text=text, id="x", metadata={}))


def test_datatrove_symbol_soup_is_removed_by_the_alpha_rule():
    # datatrove's tests/pipeline/test_filters.py::test_gopher_quality, same text and arguments
    text = "the ./!*?<><> apple <?////> orange  ++ interconnection !<>??? have" * 20
    assert verdict(text, min_doc_words=10, max_doc_words=1000) == (False, "gopher_below_alpha_threshold")
    assert verdict(text) == (False, "gopher_below_alpha_threshold")


SOUPS = {
    "separator runs between words": lambda sentences: " ".join(
        f"{word} {run}" for word, run in zip(" ".join(sentences).split(), ["||||", "----", "====", ">>>>"] * 100)
    ),
    "separator rows between sentences": lambda sentences: "\n".join(
        f"{s}\n|||| ---- ==== >>>> |||| ---- ==== >>>> ||||" for s in sentences
    ),
    "emoji and symbol rows": lambda sentences: "\n".join(f"{s}\n★ ✔ 👍 🔥 ❤ ☆ ➜ ♥ ✔ 👍 ★ 🔥" for s in sentences),
    "code-like punctuation": lambda sentences: "\n".join(
        f"{s}\n}}); }} ]]> /* */ <!-- --> {{{{ }}}} && || => :: ;; ?> ();" for s in sentences
    ),
}


@pytest.mark.parametrize("soup", SOUPS)
def test_symbol_soup_around_real_prose_is_removed_by_the_alpha_rule(soup, real_sentences):
    text = SOUPS[soup](real_sentences)
    assert verdict(text) == (False, "gopher_below_alpha_threshold")
    assert verdict("\n".join(real_sentences), min_doc_words=10) is True  # the same prose without the soup stays


def test_prose_with_punctuation_numbers_lists_and_dates_is_kept():
    text = (
        "On 12 March 2022, the town council met at 7:30 p.m. to discuss the new library (the third since 1953). "
        'The mayor said: "We have waited long enough; the old building, sadly, is beyond repair." '
        "After a two-hour debate, the council agreed on three points:\n"
        "- the budget will be $4.5 million, spread over 3 years;\n"
        "- building work starts on 1 September and should end by mid-2025;\n"
        "- the reading room will open every day from 9 to 5, including weekends.\n"
        "Residents can send comments until 30/04/2022 by e-mail, by post or in person at the town hall. "
        "The vote was 7–2, with one abstention, and the minutes are online at www.example.org/council."
    )
    assert verdict(text) is True
    assert verdict(text, **ALPHA_RULE_ONLY) is True
    # counted over the word splitter's tokens (datatrove's way), every comma and full stop is a word without a letter
    assert verdict(text, alpha_ratio_of_words=False) == (False, "gopher_below_alpha_threshold")


@pytest.mark.parametrize("sample", ["annotations/fineweb-edu-llama3", "fineweb/fineweb-sample-10BT"])
def test_the_alpha_rule_alone_keeps_documents_fineweb_kept(sample, shared_data):
    alpha_rule = GopherQuality(**ALPHA_RULE_ONLY)
    texts = [text for path in sorted((shared_data / sample).glob("*.jsonl.gz")) for text in read_texts(path)]
    kept = sum(alpha_rule.filter(Document(text=t, id=str(i), metadata={})) is True for i, t in enumerate(texts))
    assert len(texts) in (1998, 2800)
    assert kept / len(texts) >= 0.99


def test_gopher_quality_keeps_99_percent_of_fineweb_edu(fineweb_edu_texts):
    gopher = GopherQuality()
    results = [gopher.filter(Document(text=t, id=str(i), metadata={})) for i, t in enumerate(fineweb_edu_texts)]
    assert len(results) == 1998
    assert sum(r is True for r in results) / len(results) >= 0.99
    assert (False, "gopher_below_alpha_threshold") not in results

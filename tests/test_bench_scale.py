"""The corpus of `make bench-scale` (benchmarks/bench_scale.py): resampled real documents with planted duplicates.

Built once at N = 2,000 from ../shared/data and read back from its files: unique ids, the planted shares as
documented, near duplicates at the stated Jaccard on the dedup stage's own shingles, and no exact duplicate
that was not planted.
"""

import gzip
import hashlib
import importlib.util
import json
import sys

import pytest

from winnow.blocks.dedup.minhash import FastWordSplitter, normalize_for_minhash

N = 2000


@pytest.fixture(scope="module")
def bench(project_root):
    spec = importlib.util.spec_from_file_location("bench_scale", project_root / "benchmarks" / "bench_scale.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up while it is defined
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(bench, shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench-scale")
    counts = bench.build_corpus(folder, N, seed=0, data=shared_data)
    documents = []
    for path in sorted(folder.glob("shard-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            documents += [json.loads(line) for line in f]
    planted = [json.loads(line) for line in (folder / "planted.jsonl").read_text().splitlines()]
    return counts, documents, planted


def test_ids_are_unique_and_every_document_has_text_and_url(bench, corpus):
    counts, documents, _ = corpus
    assert len(documents) == counts["documents"] == N
    assert len({d["id"] for d in documents}) == N
    assert [d["id"] for d in documents] == sorted(d["id"] for d in documents)  # id order = corpus order
    assert all(d["text"].strip() and d["url"] for d in documents)


def test_planted_shares_are_as_documented(bench, corpus):
    counts, documents, planted = corpus
    kinds = [p["kind"] for p in planted]
    assert kinds.count("exact") == counts["exact"] == round(bench.EXACT_SHARE * N)
    assert kinds.count("near") == counts["near"] == round(bench.NEAR_SHARE * N)
    ids = {d["id"] for d in documents}
    copies = {p["id"] for p in planted}
    assert len(copies) == len(planted) and copies <= ids
    # a copy comes after its source, and its source is an original (not itself a copy)
    assert all(p["duplicate_of"] < p["id"] and p["duplicate_of"] not in copies for p in planted)


def test_exact_copies_are_identical_and_near_duplicates_reach_the_stated_jaccard(bench, corpus):
    counts, documents, planted = corpus
    text = {d["id"]: d["text"] for d in documents}
    splitter = FastWordSplitter("en")
    for pair in planted:
        copy, source = text[pair["id"]], text[pair["duplicate_of"]]
        if pair["kind"] == "exact":
            assert copy == source
            continue
        assert copy != source
        assert pair["edits"] >= max(bench.MIN_EDITS, round(bench.EDIT_SHARE * pair["words"]))
        similarity = bench.jaccard(bench.shingle_set(copy, splitter), bench.shingle_set(source, splitter))
        assert similarity == pytest.approx(pair["jaccard"], abs=1e-4)
        assert similarity >= 0.85  # as stated: the bound (S - 5k) / (S + 5k) >= 0.88, a little less where a
        # replaced word was two tokens ("dont" -> "do", "nt")
    assert 0.88 <= counts["near_jaccard"]["mean"] <= 0.93


def test_no_exact_duplicates_but_the_planted_ones(corpus):
    _, documents, planted = corpus
    copies = {p["id"] for p in planted if p["kind"] == "exact"}
    keys = [
        hashlib.sha1(normalize_for_minhash(d["text"]).encode()).digest() for d in documents if d["id"] not in copies
    ]
    assert len(set(keys)) == len(keys)  # what the dedup stage's exact step compares: the normalised text

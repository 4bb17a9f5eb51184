"""Tokenization: GPT-2's BPE rebuilt offline, a corpus BPE, and datatrove's DocumentTokenizer on real FineWeb text."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from datatrove.executor import LocalPipelineExecutor

from winnow.proxy.tokenize import (
    EOS,
    count_documents,
    gpt2_tokenizer_json,
    load_tokenizer,
    read_tokens,
    sample_texts,
    tokenize_pipeline,
    train_corpus_bpe,
)


@pytest.fixture(scope="module")
def fineweb_docs(shared_data, tmp_path_factory) -> Path:
    """The first 40 real FineWeb documents, as a JSONL file."""
    out = tmp_path_factory.mktemp("docs") / "docs.jsonl"
    with gzip.open(shared_data / "fineweb" / "fineweb-sample-10BT" / "fineweb-legal-docs.jsonl.gz", "rt") as f:
        rows = [json.loads(next(f)) for _ in range(40)]
    out.write_text("".join(json.dumps({"text": r["text"], "id": r["id"]}) + "\n" for r in rows))
    return out


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    return gpt2_tokenizer_json(tmp_path_factory.mktemp("gpt2") / "tokenizer.json")


def test_gpt2_bpe_gives_gpt2_ids(gpt2):
    tokenizer = load_tokenizer(gpt2)
    assert tokenizer.get_vocab_size() == 50257 and tokenizer.token_to_id(EOS) == 50256
    assert tokenizer.encode("Hello world", add_special_tokens=False).ids == [15496, 995]  # GPT-2's ids
    assert tokenizer.encode("Hello world").ids == [50256, 15496, 995]  # EOS first, as a document starts in training


def test_gpt2_round_trip_on_real_documents(gpt2, fineweb_docs):
    tokenizer = load_tokenizer(gpt2)
    for line in fineweb_docs.read_text().splitlines():
        text = json.loads(line)["text"]
        assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False).ids) == text


def test_corpus_bpe_round_trips_and_is_smaller(fineweb_docs, tmp_path):
    path = train_corpus_bpe(sample_texts([str(fineweb_docs)], 40), 2000, tmp_path / "tokenizer.json")
    tokenizer = load_tokenizer(path)
    assert tokenizer.get_vocab_size() == 2000 and tokenizer.token_to_id(EOS) == 0
    text = json.loads(fineweb_docs.read_text().splitlines()[3])["text"]
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False).ids) == text


def _tokenize(source, folder, tokenizer_path, seed):
    LocalPipelineExecutor(
        tokenize_pipeline(str(source), folder / "tokens", tokenizer_path, seed=seed),
        tasks=1,
        logging_dir=str(folder / "logs"),
    ).run()
    return read_tokens(folder / "tokens", 50257)


def test_document_tokenizer_writes_every_document_once_with_eos(gpt2, fineweb_docs, tmp_path):
    tokens = _tokenize(fineweb_docs, tmp_path / "a", gpt2, seed=0)
    texts = [json.loads(line)["text"] for line in fineweb_docs.read_text().splitlines()]
    assert count_documents(tmp_path / "a" / "tokens") == 40
    # one EOS after each document; cutting at EOS and decoding gives back exactly the input texts, shuffled
    ends = np.flatnonzero(tokens == 50256)
    assert len(ends) == 40 and ends[-1] == len(tokens) - 1
    tokenizer = load_tokenizer(gpt2)
    pieces = np.split(np.asarray(tokens), ends + 1)[:-1]
    decoded = [tokenizer.decode(p[:-1].tolist()) for p in pieces]
    assert sorted(decoded) == sorted(texts)
    assert decoded != texts  # shuffled
    # the same seed writes the same stream; another seed another order
    assert np.array_equal(_tokenize(fineweb_docs, tmp_path / "b", gpt2, seed=0), tokens)
    assert not np.array_equal(_tokenize(fineweb_docs, tmp_path / "c", gpt2, seed=1), tokens)


def test_a_subset_folder_is_read_from_its_top_level_parquet(gpt2, fineweb_docs, tmp_path):
    """A subset folder as later stages write it: *.parquet at the top, removed/ and logs/ below are not data."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in fineweb_docs.read_text().splitlines()]
    subset = tmp_path / "edu-3"
    (subset / "removed" / "x").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows[:25]), subset / "00000.parquet")
    pq.write_table(pa.Table.from_pylist(rows[25:]), subset / "00001.parquet")
    pq.write_table(pa.Table.from_pylist(rows[:5]), subset / "removed" / "x" / "00000.parquet")
    _tokenize(subset, tmp_path / "out", gpt2, seed=0)
    assert count_documents(tmp_path / "out" / "tokens") == 40

"""Tokenization: GPT-2's BPE rebuilt offline, a corpus BPE, and the sharded tokenize + merge steps on real FineWeb text
(the same token stream as datatrove's DocumentTokenizer in one task, whatever the number of tasks)."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from datatrove.executor import LocalPipelineExecutor

from winnow.proxy.tokenize import (
    EOS,
    MERGED,
    TokenStream,
    count_documents,
    gpt2_tokenizer_json,
    load_tokenizer,
    merge_pipeline,
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


def _tokenize(source, folder, tokenizer_path, seed, tasks=1):
    """The ablate stage's two steps: `tasks` tasks tokenize the source files, one task merges and shuffles."""
    tokens = folder / "tokens"
    for name, pipeline, n in [
        ("tokenize", tokenize_pipeline(str(source), tokens, tokenizer_path), tasks),
        ("merge", merge_pipeline(str(source), tokens, tokenizer_path, seed=seed), 1),
    ]:
        LocalPipelineExecutor(pipeline, tasks=n, workers=min(n, 2), logging_dir=str(folder / "logs" / name)).run()
    return read_tokens(tokens, 50257)


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


def _document_tokenizer(source, folder, tokenizer_path, seed) -> np.ndarray:
    """What the ablate stage ran before its steps were sharded: datatrove's DocumentTokenizer in one task."""
    from datatrove.pipeline.tokens import DocumentTokenizer

    from winnow.proxy.tokenize import EOS, source_reader

    tokenizer = DocumentTokenizer(
        str(folder), str(tokenizer_path), eos_token=EOS, seed=seed, shuffle_documents=True, save_final_metadata=True
    )
    LocalPipelineExecutor([source_reader(str(source)), tokenizer], tasks=1, logging_dir=str(folder / "logs")).run()
    [path] = folder.glob("*.ds")
    return np.fromfile(path, dtype=np.uint16)


def test_any_number_of_tasks_writes_the_one_task_document_tokenizer_stream(gpt2, fineweb_docs, tmp_path):
    """7 source files (one empty), tokenized by 1, 3 and 4 tasks: the same tokens in the same order after the merge,
    and the very stream datatrove's DocumentTokenizer wrote in one task with the same seed (so training on it
    sees the same batches and the same validation tail as before)."""
    lines = fineweb_docs.read_text().splitlines(keepends=True)
    source = tmp_path / "source"
    source.mkdir()
    for k, cut in enumerate(np.array_split(np.arange(len(lines)), 6)):
        (source / f"part-{k}.jsonl").write_text("".join(lines[i] for i in cut))
    (source / "part-6.jsonl").write_text("")
    pattern = str(source / "*.jsonl")
    reference = _document_tokenizer(pattern, tmp_path / "reference", gpt2, seed=5)
    one = _tokenize(pattern, tmp_path / "one", gpt2, seed=5, tasks=1)
    assert isinstance(one, np.memmap) and np.array_equal(one, reference)
    for tasks in (3, 4):
        folder = tmp_path / f"tasks-{tasks}"
        assert np.array_equal(_tokenize(pattern, folder, gpt2, seed=5, tasks=tasks), reference)
        assert count_documents(folder / "tokens") == 40
        written = sorted(p.name for p in (folder / "tokens").iterdir())
        assert written == [MERGED, f"{MERGED}.index", f"{MERGED}.metadata"]  # the shards are gone
    index = np.fromfile(tmp_path / "tasks-3" / "tokens" / f"{MERGED}.index", dtype="<u8")
    assert index[-1] == len(reference) and np.all(reference[index - 1] == 50256)  # every document ends with EOS


def test_read_tokens_maps_several_files_as_one_stream(tmp_path):
    """A folder of several token files (datatrove's own multi-task output) is one stream, still memory-mapped."""
    stream = np.arange(1000, dtype=np.uint16)
    for k, part in enumerate(np.split(stream, [300, 301, 700])):
        part.tofile(tmp_path / f"{k:03d}.ds")
    tokens = read_tokens(tmp_path, 50257)
    assert isinstance(tokens, TokenStream) and all(isinstance(m, np.memmap) for m in tokens.maps)
    assert len(tokens) == 1000
    for a, b in [(0, 10), (295, 305), (299, 702), (990, 1000), (0, 1000), (500, 500)]:
        assert np.array_equal(tokens[a:b], stream[a:b])

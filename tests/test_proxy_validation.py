"""The shared validation set: built from every ablation source plus WikiText-2 valid, deterministic, its documents
left out of every training stream, kept when ablations are added, and measured by training as `val_loss_shared`."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from datatrove.executor import LocalPipelineExecutor

from winnow.pipelines.config import ConfigError, load_config
from winnow.pipelines.stages import ablate
from winnow.proxy import validation
from winnow.proxy.tokenize import (
    EOS,
    count_documents,
    load_tokenizer,
    merge_pipeline,
    read_tokens,
    sample_texts,
    tokenize_pipeline,
    train_corpus_bpe,
)
from winnow.proxy.train import TrainConfig, train

SMALL = {"n_layer": 2, "d_model": 32, "n_head": 2, "d_ffn": 64, "context_length": 32}


def _sample(source: Path, out: Path, n: int) -> list[str]:
    with gzip.open(source, "rt") as f:
        texts = [json.loads(next(f))["text"] for _ in range(n)]
    out.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return texts


@pytest.fixture(scope="module")
def sources(shared_data, tmp_path_factory):
    """Two real sources (FineWeb legal sample, FineWeb-Edu annotated), 400 documents each, and a 512-token BPE."""
    work = tmp_path_factory.mktemp("validation")
    legal = _sample(
        shared_data / "fineweb" / "fineweb-sample-10BT" / "fineweb-legal-docs.jsonl.gz", work / "a.jsonl", 400
    )
    edu = _sample(shared_data / "annotations" / "fineweb-edu-llama3" / "train.jsonl.gz", work / "b.jsonl", 400)
    srcs = [{"name": "legal", "data": str(work / "a.jsonl")}, {"name": "edu", "data": str(work / "b.jsonl")}]
    tokenizer = train_corpus_bpe(sample_texts([s["data"] for s in srcs], 200), 512, work / "tokenizer.json")
    return work, srcs, tokenizer, {"legal": legal, "edu": edu}


def _build(folder, srcs, tokenizer, shared_data, tokens=4000):
    wikitext = shared_data / "benchmarks" / "wikitext-2" / "valid.txt"
    return validation.build(folder, srcs, tokenizer, tokens, wikitext)


def test_the_set_has_one_part_per_source_plus_wikitext_and_is_deterministic(sources, shared_data, tmp_path):
    work, srcs, tokenizer, texts = sources
    manifest = _build(tmp_path / "v1", srcs, tokenizer, shared_data)
    assert [p["name"] for p in manifest["parts"]] == ["legal", "edu", validation.WIKITEXT_PART]
    assert manifest["parts"][2]["source"].endswith("wikitext-2/valid.txt")  # never the evaluator's test split
    docs = [json.loads(line) for line in (tmp_path / "v1" / "documents.jsonl").read_text().splitlines()]
    tok = load_tokenizer(tokenizer)
    for part in manifest["parts"]:
        mine = [d for d in docs if d["part"] == part["name"]]
        assert len(mine) == part["documents"] > 0
        # whole documents until the budget: at least the budget, less than one document more
        assert part["tokens"] >= 4000 and part["tokens"] - (len(tok.encode(mine[-1]["text"]).ids) + 1) < 4000
        # the token file is the documents, each followed by EOS, in order (as the training streams are)
        ids = np.fromfile(tmp_path / "v1" / part["file"], dtype="<u2")
        eos = tok.token_to_id(EOS)
        expected = [i for d in mine for i in [*tok.encode(d["text"], add_special_tokens=False).ids, eos]]
        assert ids.tolist() == expected and len(ids) == part["tokens"]
    for part in ("legal", "edu"):
        mine = [d for d in docs if d["part"] == part]
        # the 1-in-16 rule by text hash, taken in reader order from the source
        assert all(validation.held_out(d["sha1"]) and d["sha1"] == validation.text_sha1(d["text"]) for d in mine)
        positions = [texts[part].index(d["text"]) for d in mine]
        assert positions == sorted(positions)
        skipped = [t for t in texts[part][: positions[-1]] if t not in {d["text"] for d in mine}]
        assert not any(validation.held_out(validation.text_sha1(t)) for t in skipped)
    held = validation.read_held_out(tmp_path / "v1")
    assert held == {d["sha1"] for d in docs if d["part"] != validation.WIKITEXT_PART}
    # built again elsewhere: the same bytes
    _build(tmp_path / "v2", srcs, tokenizer, shared_data)
    for name in ["manifest.json", "documents.jsonl", "held_out.sha1"] + [p["file"] for p in manifest["parts"]]:
        assert (tmp_path / "v1" / name).read_bytes() == (tmp_path / "v2" / name).read_bytes(), name


def test_tokenize_leaves_the_held_out_documents_out_of_the_training_stream(sources, shared_data, tmp_path):
    work, srcs, tokenizer, texts = sources
    _build(tmp_path / "v", srcs, tokenizer, shared_data)
    held = validation.read_held_out(tmp_path / "v")
    legal_held = [t for t in texts["legal"] if validation.text_sha1(t) in held]
    assert legal_held
    out = tmp_path / "tokens"
    for name, pipeline in [
        ("tokenize", tokenize_pipeline(srcs[0]["data"], out, tokenizer, held_out=tmp_path / "v" / validation.HELD_OUT)),
        ("merge", merge_pipeline(srcs[0]["data"], out, tokenizer, seed=0)),
    ]:
        LocalPipelineExecutor(pipeline, tasks=1, logging_dir=str(tmp_path / "logs" / name)).run()
    assert count_documents(out) == 400 - len(legal_held)
    stats = json.loads((tmp_path / "logs" / "tokenize" / "stats" / "00000.json").read_text())
    assert stats[0]["stats"]["held_out_for_validation"]["total"] == len(legal_held)
    # none of the held-out documents' token sequences is in the stream; a kept one is
    stream = read_tokens(out, 512).tolist()
    tok = load_tokenizer(tokenizer)

    def contains(text):
        ids = tok.encode(text, add_special_tokens=False).ids[:40]
        return any(stream[i : i + len(ids)] == ids for i in range(len(stream) - len(ids)))

    assert not any(contains(t) for t in legal_held)
    assert contains(next(t for t in texts["legal"] if validation.text_sha1(t) not in held))


def test_training_reports_the_shared_loss_without_changing_the_training_curve(sources, shared_data, tmp_path):
    work, srcs, tokenizer, texts = sources
    _build(tmp_path / "v", srcs, tokenizer, shared_data, tokens=2000)
    out = tmp_path / "tokens"
    for name, pipeline in [
        ("tokenize", tokenize_pipeline(srcs[1]["data"], out, tokenizer)),
        ("merge", merge_pipeline(srcs[1]["data"], out, tokenizer, seed=0)),
    ]:
        LocalPipelineExecutor(pipeline, tasks=1, logging_dir=str(tmp_path / "logs" / name)).run()
    common = dict(
        tokens_dir=str(out), tokenizer=str(tokenizer), model_overrides=SMALL, tokens=20 * 4 * 32, batch_size=4,
        eval_every=10, checkpoint_every=10, progress=False,
    )  # fmt: skip
    plain = train(TrainConfig(out_dir=str(tmp_path / "plain"), **common))
    shared = train(TrainConfig(out_dir=str(tmp_path / "shared"), shared_val_dir=str(tmp_path / "v"), **common))
    records = [json.loads(line) for line in (tmp_path / "shared" / "metrics.jsonl").read_text().splitlines()]
    plain_records = [json.loads(line) for line in (tmp_path / "plain" / "metrics.jsonl").read_text().splitlines()]
    # the shared evaluation draws no random numbers and touches no weights: the same losses, step for step
    assert [r["loss"] for r in records] == [r["loss"] for r in plain_records]
    assert shared["final_val_loss"] == plain["final_val_loss"] and plain["val_loss_shared"] is None
    evals = [r for r in records if "val_loss_shared" in r]
    assert [r["step"] for r in evals] == [10, 20]
    parts = evals[-1]["val_loss_shared_parts"]
    assert set(parts) == {"legal", "edu", validation.WIKITEXT_PART}
    assert evals[-1]["val_loss_shared"] == pytest.approx(np.mean(list(parts.values())), abs=2e-6)
    assert evals[-1]["val_loss_shared"] < evals[0]["val_loss_shared"]  # it learns
    assert shared["val_loss_shared"] == evals[-1]["val_loss_shared"]
    # the model's own data (edu) fits better than text it never saw the like of
    assert parts["edu"] < parts[validation.WIKITEXT_PART]


def _config(tmp_path: Path, srcs: list[dict], shared_data: Path) -> Path:
    config = {
        "name": "validation-test",
        "output_dir": str(tmp_path / "run"),
        "ablate": {
            "ablations": srcs,
            "validation_tokens": 2000,
            "model_overrides": {**SMALL, "corpus_vocab_size": 512},
            "tokenizer_docs_per_source": 100,
            "benchmarks_dir": str(shared_data / "benchmarks"),
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_adding_an_ablation_keeps_the_set_and_says_so(sources, shared_data, tmp_path, capsys):
    work, srcs, _, _ = sources
    cfg = load_config(_config(tmp_path, srcs[:1], shared_data), check_inputs=False)
    root = cfg.stage_dir("ablate")
    tokenizer = ablate.prepare_tokenizer(cfg.ablate, root / "tokenizer")
    folder = ablate.prepare_validation(cfg, cfg.ablate, root / "validation", tokenizer)
    before = {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert [p["name"] for p in validation.load_manifest(folder)["parts"]] == ["legal", validation.WIKITEXT_PART]

    cfg = load_config(_config(tmp_path, srcs, shared_data), check_inputs=False)  # `edu` added to the config
    capsys.readouterr()
    ablate.prepare_validation(cfg, cfg.ablate, root / "validation", tokenizer)
    assert {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before  # unchanged
    message = capsys.readouterr().err
    assert "built from legal, wikitext-2-valid" in message and "edu not among them" in message

    # tokens written against another validation set are refused, naming the folder to delete
    tokens = root / "edu" / "tokens"
    tokens.mkdir(parents=True)
    (tokens / "held_out.json").write_text(json.dumps({"digest": "another"}))
    with pytest.raises(ConfigError, match="delete .*edu/tokens to tokenize again"):
        ablate.tokenize(cfg, cfg.ablate.ablations[1], tokenizer, root / "edu", folder)


def test_config_reserves_the_validation_and_tokenizer_folders(tmp_path, shared_data):
    with pytest.raises(ConfigError, match="validation"):
        load_config(_config(tmp_path, [{"name": "validation", "data": "x.jsonl"}], shared_data), check_inputs=False)

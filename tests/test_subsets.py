"""The whole educational-quality path on a small run folder, through the `winnow` command:
classifier (fastText, real Llama-3 labels) → score (base/ Parquet of real FineWeb documents) → subsets."""

import argparse
import gzip
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from winnow.pipelines.cli import main as winnow
from winnow.pipelines.config import ConfigError, load_config
from winnow.pipelines.stages.score import run as score

BASE_COLUMNS = ["text", "id", "dump", "url", "date", "file_path", "language", "language_score", "token_count"]


def base_shard(rows: list[dict], path) -> None:
    """A base-stage shard (FineWeb columns). token_count is the word count here: the stage only carries it."""
    table = {
        "text": [r["text"] for r in rows],
        "id": [f"<urn:uuid:{r['id']}>" for r in rows],
        "dump": ["CC-MAIN-2024-10"] * len(rows),
        "url": [f"https://example.org/doc/{r['id']}" for r in rows],
        "date": ["2024-02-20T00:00:00Z"] * len(rows),
        "file_path": ["pages-00000.warc.gz"] * len(rows),
        "language": ["en"] * len(rows),
        "language_score": [0.9] * len(rows),
        "token_count": [len(r["text"].split()) for r in rows],
    }
    pq.write_table(pa.table({k: table[k] for k in BASE_COLUMNS}), path)


@pytest.fixture(scope="module")
def run(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("edu-run")
    labels = shared_data / "annotations" / "fineweb-edu-llama3"
    config = {
        "name": "edu-test",
        "output_dir": str(root / "run"),
        "executor": {"tasks": 2, "workers": 1},
        "classifier": {
            "backbone": "fasttext",
            "labels": str(labels / "train.jsonl.gz"),
            "eval_labels": str(labels / "val.jsonl.gz"),
            "learning_curve": [1.0],
            "calibration_folds": 3,
            "cv_folds": 2,
        },
        "subsets": {"thresholds": [2, 3, 4]},
    }
    (root / "run.yaml").write_text(yaml.safe_dump(config))
    with gzip.open(labels / "val.jsonl.gz", "rt") as f:
        docs = [json.loads(line) for _, line in zip(range(160), f)]
    (root / "run" / "base").mkdir(parents=True)
    base_shard(docs[:80], root / "run" / "base" / "00000.parquet")
    base_shard(docs[80:] + [{"id": "empty", "text": ""}], root / "run" / "base" / "00001.parquet")
    cfg = str(root / "run.yaml")
    assert winnow(["classifier", "-c", cfg]) == 0
    assert winnow(["score", "-c", cfg]) == 0
    assert winnow(["subsets", "-c", cfg]) == 0
    return root / "run", cfg, docs


def read(folder):
    """The rows of a stage folder's top-level Parquet files (not logs/ or removed/)."""
    return [row for path in sorted(folder.glob("*.parquet")) for row in pq.read_table(path).to_pylist()]


def test_train_classifier_writes_a_model_and_an_evaluation_report(run):
    folder = run[0] / "classifier"
    report = json.loads((folder / "eval.json").read_text())
    assert report["metrics"]["n"] == 998 and report["metrics"]["spearman"] > 0.4
    assert "F1 of score ≥ 3" in (folder / "eval.md").read_text()
    for name in ("config.json", "model.bin", "confusion_matrix.png", "learning_curve.png", "summary.json"):
        assert (folder / name).exists(), name


def test_score_keeps_every_document_with_a_score_or_a_reason(run):
    folder = run[0] / "score"
    scored, removed = read(folder), read(folder / "removed" / "unscorable")
    summary = json.loads((folder / "summary.json").read_text())
    assert len(scored) == 160 and [r["id"] for r in removed] == ["<urn:uuid:empty>"]
    assert removed[0]["filter_reason"] == "empty_text"
    assert summary["read"] == 161 and summary["kept"] == 160 and summary["removed"] == {"unscorable": {"empty_text": 1}}
    assert set(scored[0]) >= set(BASE_COLUMNS) | {"score", "int_score"}
    assert all(r["int_score"] == round(min(5, max(0, r["score"]))) for r in scored)
    assert (folder / "score_histogram.png").stat().st_size > 5000
    assert sorted(p.name for p in folder.glob("*.parquet")) == ["00000.parquet", "00001.parquet"]  # one per task


def test_rescoring_with_another_classifier_is_refused_not_mixed(run, tmp_path):
    folder, cfg, _ = run
    other = tmp_path / "other-classifier"
    shutil.copytree(folder / "classifier", other)
    config = json.loads((other / "config.json").read_text())
    config["calibration"] = {"3": 0.0}
    (other / "config.json").write_text(json.dumps(config))
    args = argparse.Namespace(input=None, output=None, classifier=str(other))
    with pytest.raises(ConfigError, match="another classifier"):
        score(load_config(cfg, check_inputs=False), args)


def test_subsets_are_exactly_the_documents_above_each_threshold(run):
    scored = {r["id"]: r for r in read(run[0] / "score")}
    summary = json.loads((run[0] / "subsets" / "summary.json").read_text())
    assert {r["id"] for r in read(run[0] / "subsets" / "all")} == set(scored)
    for t in (2, 3, 4):
        subset = read(run[0] / "subsets" / f"edu-{t}")
        expected = {i for i, r in scored.items() if r["int_score"] >= t}
        assert sorted(r["id"] for r in subset) == sorted(expected)  # all of them, each once
        assert all(r["score"] == scored[r["id"]]["score"] for r in subset)  # selected, never re-scored
        assert summary["subsets"][f"edu-{t}"]["documents"] == len(expected)
        assert summary["subsets"][f"edu-{t}"]["tokens"] == sum(scored[i]["token_count"] for i in expected)
    assert 0 < summary["subsets"]["edu-3"]["documents"] < 160  # the classifier does separate the documents
    assert summary["not_in_subsets_from_score_stage"] == {"unscorable": {"empty_text": 1}}


def test_rerunning_subsets_resumes_without_duplicates(run):
    folder, cfg, _ = run
    before = len(read(folder / "subsets" / "edu-2"))
    assert winnow(["subsets", "-c", cfg]) == 0
    assert len(read(folder / "subsets" / "edu-2")) == before


def test_score_any_jsonl_with_a_saved_classifier(run, tmp_path):
    folder, _, docs = run
    with open(tmp_path / "docs.jsonl", "w") as f:
        for d in docs[:30]:
            f.write(json.dumps({"text": d["text"], "id": d["id"]}) + "\n")
    out = tmp_path / "scored-jsonl"
    assert (
        winnow(
            [
                "score",
                "--classifier",
                str(folder / "classifier"),
                "--input",
                str(tmp_path / "docs.jsonl"),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    rows = read(out)
    assert sorted(r["id"] for r in rows) == sorted(d["id"] for d in docs[:30])
    by_id = {r["id"]: r["score"] for r in read(folder / "score")}
    assert all(abs(by_id[f"<urn:uuid:{r['id']}>"] - r["score"]) < 1e-9 for r in rows)  # same model, same score

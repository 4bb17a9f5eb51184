"""k-fold cross-validation of the classifier recipe and the model selection inside it, on the real Llama-3 labels.

fastText keeps these fast (a fit takes about a second); the ridge head is tested on real MiniLM embeddings of a
small slice (test_classifier_embed.py encodes them) and against scikit-learn's Ridge.
"""

import json

import numpy as np
import pytest
import yaml
from sklearn.linear_model import Ridge

from winnow.classifiers.crossval import cross_validate, folds
from winnow.classifiers.labels import load_labels
from winnow.classifiers.train import TrainSettings, fit_ridge, head_scores, select
from winnow.pipelines.config import load_config
from winnow.pipelines.stages import classifier as classifier_stage


@pytest.fixture(scope="module")
def labels(shared_data):
    return load_labels(shared_data / "annotations" / "fineweb-edu-llama3" / "train.jsonl.gz").fraction(0.4)


def test_every_label_gets_one_out_of_fold_score_from_a_model_that_did_not_see_it(labels):
    settings = TrainSettings(backbone="fasttext", calibration_folds=2)
    result = cross_validate(labels, settings, k=3, shares=(0.5, 1.0))
    full = result[1.0]
    assert not np.isnan(full["scores"]).any() and len(full["scores"]) == len(labels)
    splits = folds(labels.scores, 3, settings.seed)
    held = np.concatenate([h for _, h in splits])
    assert sorted(held.tolist()) == list(range(len(labels)))  # each document held out exactly once
    for (fit_rows, held_rows), record in zip(splits, full["records"], strict=True):
        assert not set(fit_rows) & set(held_rows)
        assert record["train_rows"] == len(fit_rows)
    # a half share trains on about half of each training part, evaluated on the same whole held-out parts
    assert all(abs(r["train_rows"] - len(f) / 2) <= 6 for r, (f, _) in zip(result[0.5]["records"], splits))
    m = full["metrics"]
    assert m["n"] == len(labels) and m["spearman"] > 0.3, m  # out-of-fold ranking is far from chance
    for key in ("f1", "macro_f1", "spearman"):
        low, high = m[f"{key}_ci95"]
        assert low <= m[key] <= high and high - low > 0


def test_fit_ridge_is_ridge_regression_on_the_standardised_embedding():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 20)) * rng.uniform(0.1, 5, size=20)
    y = x @ rng.normal(size=20) / 10 + rng.normal(size=300)
    z = (x - x.mean(0)) / x.std(0)
    reference = Ridge(alpha=30.0).fit(z, y).predict(z)
    np.testing.assert_allclose(head_scores(fit_ridge(x, y, 30.0), x), reference, atol=1e-4)


def test_model_selection_prefers_the_candidate_whose_out_of_fold_scores_separate_the_labels():
    rng = np.random.default_rng(1)
    y = rng.choice([0, 1, 2, 3, 4], size=400, p=[0.1, 0.5, 0.25, 0.1, 0.05])
    candidates = {"noise": rng.normal(size=400), "signal": y + rng.normal(scale=0.6, size=400)}
    chosen, table = select(candidates, y)
    assert chosen == "signal"
    by_name = {row["candidate"]: row for row in table}
    assert by_name["signal"]["f1"] > by_name["noise"]["f1"]


def _config(tmp_path, label_file, **classifier):
    config = {
        "name": "cv-test",
        "output_dir": str(tmp_path / "run"),
        "classifier": {
            "backbone": "fasttext",
            "labels": str(label_file),
            "cv_folds": 3,
            "calibration_folds": 2,
            "learning_curve": [1.0],
            **classifier,
        },
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    return load_config(tmp_path / "run.yaml", check_inputs=False)


def _write_labels(labels, path):
    with open(path, "w") as f:
        for i, t, s in zip(labels.ids, labels.texts, labels.scores, strict=True):
            f.write(json.dumps({"id": i, "text": t, "scores": {"score": int(s)}}) + "\n")
    return path


def test_the_stage_reports_cross_validated_metrics_and_ships_a_model_trained_on_every_label(tmp_path, labels):
    cfg = _config(tmp_path, _write_labels(labels, tmp_path / "labels.jsonl"))
    report = classifier_stage.train_and_evaluate(cfg, log=lambda *_: None)
    out = tmp_path / "run" / "classifier"
    saved = json.loads((out / "eval.json").read_text())
    assert saved["evaluation"].startswith("3-fold cross-validation")
    assert saved["metrics"]["n"] == len(labels) == saved["cross_validation"]["metrics"]["n"]
    assert saved["metrics"]["f1"] == saved["cross_validation"]["metrics"]["f1"]
    assert len(saved["metrics"]["macro_f1_ci95"]) == 2 and len(saved["metrics"]["spearman_ci95"]) == 2
    oof = [json.loads(line) for line in (out / "oof_scores.jsonl").read_text().splitlines()]
    assert [row["id"] for row in oof] == labels.ids and all(np.isfinite(row["oof_score"]) for row in oof)
    model = json.loads((out / "config.json").read_text())
    assert model["training_data"]["rows"] == len(labels)  # the shipped model saw every label
    assert report["train_rows"] == len(labels)


def test_separate_held_out_labels_are_scored_by_the_shipped_model(tmp_path, labels, shared_data):
    held = load_labels(shared_data / "annotations" / "fineweb-edu-llama3" / "val.jsonl.gz").fraction(0.2)
    cfg = _config(
        tmp_path,
        _write_labels(labels, tmp_path / "labels.jsonl"),
        eval_labels=str(_write_labels(held, tmp_path / "held.jsonl")),
    )
    report = classifier_stage.train_and_evaluate(cfg, log=lambda *_: None)
    assert report["evaluation"] == "held-out labels"
    assert report["metrics"]["n"] == len(held)
    assert report["cross_validation"]["metrics"]["n"] == len(labels)  # still reported beside it


def test_extra_labels_train_every_fold_and_are_never_scored(tmp_path, labels, shared_data):
    """classifier.extra_labels: the real Llama-3.3 annotations (a CSV, flat `score`) join every fit; the figures and
    oof_scores.jsonl stay those of `labels`; an extra document that is also a label is left out, counted."""
    csv_path = shared_data / "annotations" / "llama33-reasoning" / "training_data.csv.gz"
    extra = load_labels(csv_path, score_key="score")
    assert len(extra) == 150 and extra.histogram() == {0: 0, 1: 0, 2: 16, 3: 39, 4: 77, 5: 18}
    # one label document is also an extra one (with another score): it must not be trained on, then scored
    overlap = tmp_path / "overlap.jsonl"
    overlap.write_text(json.dumps({"text": labels.texts[0], "score": 5}) + "\n")
    label_file = _write_labels(labels, tmp_path / "labels.jsonl")
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    plain = classifier_stage.train_and_evaluate(_config(tmp_path / "a", label_file), log=lambda *_: None)
    cfg = _config(tmp_path / "b", label_file, extra_labels=[{"path": str(csv_path)}, {"path": str(overlap)}])
    report = classifier_stage.train_and_evaluate(cfg, log=lambda *_: None)
    out = tmp_path / "b" / "run" / "classifier"

    assert report["metrics"]["n"] == len(labels) and report["train_rows"] == len(labels)
    assert report["extra_labels"]["rows"] == 150 and report["extra_labels"]["skipped"] == {"also_in_labels": 1}
    oof = [json.loads(line) for line in (out / "oof_scores.jsonl").read_text().splitlines()]
    assert [row["id"] for row in oof] == labels.ids  # scored: the labels, each once; never an extra document
    assert "also trained on 150 training-only labels" in (out / "eval.md").read_text()
    model = json.loads((out / "config.json").read_text())
    assert model["training_data"]["extra"]["sha256"] == report["extra_labels"]["sha256"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kept"] == len(labels) + 150 and summary["removed"]["unusable_label"]["also_in_labels"] == 1
    # the extra labels did train: 150 documents scored 2-5 move the out-of-fold scores
    before = [
        json.loads(line)["oof_score"]
        for line in (tmp_path / "a" / "run" / "classifier" / "oof_scores.jsonl").read_text().splitlines()
    ]
    assert plain["metrics"]["n"] == len(labels)
    assert np.mean(np.abs(np.array(before) - [row["oof_score"] for row in oof])) > 0.01

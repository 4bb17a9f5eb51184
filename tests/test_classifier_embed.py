"""The `embed` backbone (FineWeb-Edu's recipe) with the packaged all-MiniLM-L6-v2 on a small real label set.

Encoding is the expensive part (~12 documents/s on 2 cores at 512 tokens), so this uses 200 training and 150
validation documents at 128 tokens; the full-size numbers come from `make classifier` / `make bench-classifier`.
"""

import numpy as np
import pytest

from winnow.classifiers.embedding_cache import EmbeddingCache
from winnow.classifiers.evaluate import evaluate
from winnow.classifiers.labels import load_labels
from winnow.classifiers.saved import EduClassifier
from winnow.classifiers.train import TrainSettings, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_run(shared_data, tmp_path_factory):
    folder = shared_data / "annotations" / "fineweb-edu-llama3"
    train_set = load_labels(folder / "train.jsonl.gz").fraction(0.2)
    val_set = load_labels(folder / "val.jsonl.gz").fraction(0.15, seed=1)
    cache_dir = tmp_path_factory.mktemp("embeddings")
    settings = TrainSettings(backbone="embed", max_tokens=128, cache_dir=str(cache_dir), calibration_folds=3)
    classifier, record = train(train_set, settings)
    cache = EmbeddingCache(cache_dir, settings.encoder, settings.max_tokens)
    return classifier, record, train_set, val_set, cache


def test_minilm_head_ranks_held_out_documents(small_run):
    classifier, record, train_set, val_set, cache = small_run
    assert abs(len(train_set) - 200) <= 3 and abs(len(val_set) - 150) <= 3  # stratified rounding
    metrics = evaluate(classifier.predict(val_set.texts, cache=cache), val_set.scores)
    assert metrics["spearman"] > 0.25, metrics  # 150 documents: rho > 0.25 has p < 0.002
    # the ridge penalty was chosen among all candidates on the same folds, and the saved model says which
    names = [row["candidate"] for row in record["selection"]]
    assert names == [f"ridge alpha={a:g}" for a in TrainSettings.alphas] + [f"sgd epochs={record['best_epoch']}"]
    assert classifier.config["head"] == record["chosen"] in {row["candidate"] for row in record["selection"]}


def test_fineweb_edu_sgd_head_keeps_its_best_epoch(small_run):
    """head: linear — FineWeb-Edu's recipe (20 epochs of AdamW, the epoch with the best dev macro-F1 kept)."""
    classifier, _, train_set, val_set, cache = small_run
    settings = TrainSettings(
        backbone="embed", head="linear", max_tokens=128, cache_dir=str(cache.folder.parent), calibration_folds=3
    )
    linear, record = train(train_set, settings)
    assert 1 <= record["best_epoch"] <= 20
    metrics = evaluate(linear.predict(val_set.texts, cache=cache), val_set.scores)
    assert metrics["spearman"] > 0.25, metrics


def test_embeddings_are_cached_so_retraining_does_not_encode(small_run):
    _, _, train_set, val_set, cache = small_run
    assert len(cache.keys) == len(set(train_set.texts) | set(val_set.texts))

    def must_not_encode(texts):
        raise AssertionError(f"re-encoded {len(texts)} cached texts")

    vectors = cache.embed(train_set.texts, must_not_encode)
    assert vectors.shape == (len(train_set), 384)
    reloaded = EmbeddingCache(cache.folder.parent, "all-MiniLM-L6-v2", 128)
    np.testing.assert_array_equal(reloaded.embed(train_set.texts, must_not_encode), vectors)


def test_saved_embed_classifier_round_trips(small_run, tmp_path):
    classifier, _, _, val_set, _ = small_run
    texts = val_set.texts[:12]
    before = classifier.predict(texts)  # encodes afresh, without the cache
    loaded = EduClassifier.load(classifier.save(tmp_path / "clf"))
    assert not (tmp_path / "clf" / "model.safetensors").exists()  # the encoder is referenced, not copied
    np.testing.assert_allclose(loaded.predict(texts), before, atol=1e-5)


def test_embed_plus_fasttext_averages_its_members_calibrated_scores(small_run, tmp_path):
    """backbone embed+fasttext: each member trained and calibrated as alone; the score is the mean of the two."""
    from winnow.classifiers.export import export_classifier
    from winnow.errors import ConfigError

    embed, _, train_set, val_set, cache = small_run
    settings = TrainSettings(
        backbone="embed+fasttext", max_tokens=128, cache_dir=str(cache.folder.parent), calibration_folds=3
    )
    ensemble, record = train(train_set, settings)
    # its embed member is the embed classifier of the same settings (ridge is exact; its folds are the same)
    assert record["embed"]["chosen"] == embed.config["head"]
    assert ensemble.members["embed"].cuts == embed.calibration.cuts and record["fasttext"]["calibration"]
    texts = val_set.texts
    fasttext = ensemble.members["fasttext"](ensemble.fasttext.expected_score(texts))
    scores = ensemble.predict(texts, cache=cache)
    np.testing.assert_allclose(scores, (embed.predict(texts, cache=cache) + fasttext) / 2, atol=1e-6)
    assert evaluate(scores, val_set.scores)["spearman"] > 0.25
    # saved and loaded: both members, their calibrations, the same scores
    folder = ensemble.save(tmp_path / "ensemble")
    assert (folder / "head.pt").exists() and (folder / "model.bin").exists()
    np.testing.assert_allclose(EduClassifier.load(folder).predict(texts[:12]), scores[:12], atol=1e-5)
    with pytest.raises(ConfigError, match="fastText member"):  # no Hugging Face form: refused in one line
        export_classifier(folder, tmp_path / "hf")

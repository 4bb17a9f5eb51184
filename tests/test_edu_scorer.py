"""EduScorer on real FineWeb documents (the Llama-3 val set's texts) through a real datatrove executor."""

import gzip
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import ParquetWriter

from winnow.blocks.scorers.edu import EduScorer, unscorable_reason
from winnow.classifiers.labels import load_labels
from winnow.classifiers.saved import EduClassifier
from winnow.classifiers.train import TrainSettings, train
from winnow.pipelines.stages.score import keep_empty_text


@pytest.fixture(scope="module")
def saved_fasttext(shared_data, tmp_path_factory):
    labels = load_labels(shared_data / "annotations" / "fineweb-edu-llama3" / "train.jsonl.gz")
    classifier, _ = train(labels, TrainSettings(backbone="fasttext", calibration_folds=3))
    return classifier.save(tmp_path_factory.mktemp("classifier"))


@pytest.fixture(scope="module")
def val_docs(shared_data):
    with gzip.open(shared_data / "annotations" / "fineweb-edu-llama3" / "val.jsonl.gz", "rt") as f:
        return [json.loads(line) for _, line in zip(range(150), f)]


def write_documents(folder, rows):
    folder.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "text": [r["text"] for r in rows],
                "id": [r["id"] for r in rows],
                "url": [f"https://example.org/{r['id']}" for r in rows],
            }
        ),
        folder / "00000.parquet",
    )


def test_every_document_is_scored_or_excluded_with_a_reason(saved_fasttext, val_docs, tmp_path):
    rows = val_docs[:120] + [{"id": "blank", "text": ""}, {"id": "spaces", "text": "  \n\t "}]
    write_documents(tmp_path / "in", rows)
    LocalPipelineExecutor(
        pipeline=[
            ParquetReader(str(tmp_path / "in"), adapter=keep_empty_text),
            EduScorer(
                saved_fasttext,
                EduClassifier.load,
                batch_size=50,
                exclusion_writer=ParquetWriter(str(tmp_path / "removed"), expand_metadata=True),
            ),
            ParquetWriter(str(tmp_path / "out"), expand_metadata=True),
        ],
        tasks=1,
        logging_dir=str(tmp_path / "logs"),
    ).run()
    scored = pq.read_table(tmp_path / "out").to_pylist()
    removed = pq.read_table(tmp_path / "removed").to_pylist()
    assert len(scored) == 120 and [r["id"] for r in removed] == ["blank", "spaces"]
    assert {r["filter_reason"] for r in removed} == {"empty_text"}
    # the same scores as the classifier gives directly; int_score is the rounded, clamped score
    expected = EduClassifier.load(saved_fasttext).predict([r["text"] for r in scored])
    np.testing.assert_allclose([r["score"] for r in scored], expected, rtol=1e-6)
    assert [r["int_score"] for r in scored] == [int(round(min(5, max(0, s)))) for s in expected]
    assert all(r["url"].startswith("https://example.org/") for r in scored)  # input columns carried through
    stats = json.loads(next((tmp_path / "logs" / "stats").glob("*.json")).read_text())
    scorer_stats = next(block["stats"] for block in stats if block["name"].endswith("EduScorer"))
    assert scorer_stats["documents"] == 122 and scorer_stats["unscorable/empty_text"] == 2


def test_text_that_is_not_valid_unicode_is_counted_not_crashed(saved_fasttext, val_docs):
    docs = [
        Document(text=val_docs[0]["text"], id="good"),
        Document(text="broken \ud800 surrogate from a bad JSON escape", id="surrogate"),
        Document(text=b"\xff\xfe not utf-8", id="bytes"),
    ]
    scorer = EduScorer(saved_fasttext, EduClassifier.load, batch_size=8)
    out = list(scorer.run(iter(docs)))
    assert [d.id for d in out] == ["good"] and 0 <= out[0].metadata["int_score"] <= 5
    assert scorer.stats["unscorable/encoding_error"].total == 2


def test_unscorable_reasons():
    assert unscorable_reason("") == "empty_text" and unscorable_reason(None) == "empty_text"
    assert unscorable_reason("Photosynthesis converts light into chemical energy.") is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (runs on a GPU machine)")
def test_gpu_bf16_scores_match_cpu(shared_data, val_docs, tmp_path):
    """The embed backbone on a GPU in bf16 with large batches gives (nearly) the CPU float32 scores."""
    labels = load_labels(shared_data / "annotations" / "fineweb-edu-llama3" / "train.jsonl.gz").fraction(0.3)
    classifier, _ = train(labels, TrainSettings(backbone="embed", max_tokens=256, device="cuda", calibration_folds=3))
    folder = classifier.save(tmp_path / "embed")
    texts = [r["text"] for r in val_docs]
    gpu = [
        d.metadata["score"]
        for d in EduScorer(str(folder), EduClassifier.load, device="cuda", batch_size=512).run(
            iter(Document(text=t, id=str(i)) for i, t in enumerate(texts))
        )
    ]
    cpu = EduClassifier.load(folder, device="cpu").predict(texts)
    assert len(gpu) == len(texts)
    np.testing.assert_allclose(gpu, cpu, atol=0.2)  # bf16 encoder vs float32
    assert np.corrcoef(gpu, cpu)[0, 1] > 0.99

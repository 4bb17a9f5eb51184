"""The static-embedding student (classifiers/static.py, classifiers/distill.py) and the `distill` stage, on real parts:
the packaged all-MiniLM-L6-v2, a fastText teacher trained on the shared Llama-3 labels, real FineWeb documents.

Only the tokens the small pools use get a vector (`vocabulary="pool"`): the full MiniLM vocabulary takes about a
CPU-minute; its numbers come from `make bench-distill`.
"""

import gzip
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from scipy.stats import spearmanr

from winnow.classifiers.distill import DistillSettings, distill, split_pool
from winnow.classifiers.labels import load_labels
from winnow.classifiers.saved import load_classifier
from winnow.classifiers.static import StaticScorer, token_vectors
from winnow.classifiers.train import TrainSettings, train
from winnow.pipelines.cli import main as winnow
from winnow.pipelines.config import ConfigError, load_config
from winnow.pipelines.guard import run_stage
from winnow.pipelines.registry import get as get_stage

pytestmark = pytest.mark.slow


def fineweb(shared_data, n: int, skip: int = 0) -> list[str]:
    path = shared_data / "fineweb" / "fineweb-sample-10BT" / "fineweb-legal-docs.jsonl.gz"
    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for _, line in zip(range(skip + n), f)]
    return [r["text"] for r in rows[skip:]]


@pytest.fixture(scope="module")
def teacher(shared_data, tmp_path_factory):
    """A real classifier (fastText on the 1,000 Llama-3 training labels), saved like `winnow classifier` saves it."""
    labels = load_labels(shared_data / "annotations" / "fineweb-edu-llama3" / "train.jsonl.gz")
    classifier, _ = train(labels, TrainSettings(backbone="fasttext", calibration_folds=3))
    return classifier.save(tmp_path_factory.mktemp("teacher") / "classifier")


@pytest.fixture(scope="module")
def student(teacher, shared_data):
    texts = fineweb(shared_data, 300)
    settings = DistillSettings(max_tokens=128, dim=64, vocabulary="pool", holdout=0.3)
    model, record = distill(texts, load_classifier(teacher), settings, log=lambda m: None)
    return model, record, texts, settings


def test_a_token_vector_is_the_encoder_output_for_that_token_alone():
    scorer = StaticScorer.from_encoder("all-MiniLM-L6-v2", np.zeros((1, 1), np.float32), 16, 128)
    ids = {w: scorer.tokenizer.token_to_id(w) for w in ("cat", "dog", "kitten", "1998", "tax")}
    vectors = token_vectors("all-MiniLM-L6-v2", ids.values())
    assert vectors.shape == (scorer.tokenizer.get_vocab_size(), 384)
    assert np.count_nonzero(np.abs(vectors).sum(1)) == len(ids)  # only the tokens asked for were distilled

    def cosine(a, b):
        va, vb = vectors[ids[a]], vectors[ids[b]]
        return float(va @ vb / np.linalg.norm(va) / np.linalg.norm(vb))

    # the encoder's knowledge survives: related words stay closer than unrelated ones
    assert cosine("cat", "kitten") > cosine("cat", "1998") and cosine("cat", "dog") > cosine("cat", "tax")


def test_the_student_follows_its_teacher_on_documents_it_never_saw(student, teacher):
    model, record, texts, settings = student
    _, held = split_pool(len(texts), settings.holdout, settings.seed)
    held_texts = [texts[i] for i in held]
    teacher_scores = load_classifier(teacher).predict(held_texts)
    student_scores = model.predict(held_texts)
    rho = spearmanr(student_scores, teacher_scores).statistic
    shuffled = spearmanr(np.random.default_rng(0).permutation(student_scores), teacher_scores).statistic
    assert record["holdout"]["n"] == len(held) == 90
    assert rho == pytest.approx(record["holdout"]["spearman"])
    assert rho > 0.5 and rho > shuffled + 0.3, (rho, shuffled)  # 90 documents: a chance rho > 0.3 has p < 0.004
    # better than the best constant (the mean teacher score) at the teacher's own scale
    assert np.mean(np.abs(student_scores - teacher_scores)) < np.mean(np.abs(teacher_scores - teacher_scores.mean()))


def test_the_saved_student_loads_as_a_scorer_with_identical_scores(student, shared_data, tmp_path):
    model, _, _, _ = student
    texts = fineweb(shared_data, 20, skip=300) + ["", "short"]
    folder = model.save(tmp_path / "student", {"teacher": "t"})
    loaded = load_classifier(folder)
    assert isinstance(loaded, StaticScorer) and loaded.config["backbone"] == "static"
    np.testing.assert_array_equal(loaded.predict(texts), model.predict(texts))
    assert loaded.predict(texts).dtype == float and len(loaded.predict([])) == 0


@pytest.fixture(scope="module")
def run(teacher, shared_data, tmp_path_factory):
    """A run folder: base/ holds 240 real FineWeb documents (and an empty one, a repeat), classifier/ the teacher."""
    root = tmp_path_factory.mktemp("distill-run")
    (root / "run" / "base").mkdir(parents=True)
    texts = fineweb(shared_data, 240, skip=400)
    rows = texts + ["", texts[0]]
    pq.write_table(
        pa.table({"text": rows, "id": [f"doc-{i}" for i in range(len(rows))]}), root / "run" / "base" / "00000.parquet"
    )
    (root / "run" / "base" / "summary.json").write_text("{}")
    shutil.copytree(teacher, root / "run" / "classifier")
    config = {
        "name": "distill-test",
        "output_dir": str(root / "run"),
        "executor": {"tasks": 1, "workers": 1},
        "distill": {"pool": ["run"], "dim": 64, "max_tokens": 128, "vocabulary": "pool"},
    }
    (root / "run.yaml").write_text(yaml.safe_dump(config))
    return root / "run", str(root / "run.yaml"), texts


def test_the_distill_stage_writes_a_student_that_the_score_stage_uses(run):
    folder, cfg, texts = run
    assert winnow(["distill", "-c", cfg]) == 0
    summary = json.loads((folder / "distill" / "summary.json").read_text())
    assert summary["read"] == 242 and summary["kept"] == 240
    assert summary["removed"] == {"pool": {"empty_text": 1, "duplicate_text": 1}}
    report = json.loads((folder / "distill" / "eval.json").read_text())
    assert report["holdout_documents"] == 48 and report["holdout"]["spearman"] > 0.3
    assert report["student_docs_per_cpu_second"] > 0
    student = load_classifier(folder / "distill")
    assert student.config["teacher"]["folder"] == str((folder / "classifier").resolve())

    assert winnow(["score", "-c", cfg, "--set", f"score.classifier={folder / 'distill'}"]) == 0
    scored = pq.read_table(folder / "score" / "00000.parquet").to_pylist()
    assert len(scored) == 241  # the empty document is unscorable, the repeat is scored like any document
    by_text = {r["text"]: r["score"] for r in scored}
    np.testing.assert_allclose([by_text[t] for t in texts[:30]], student.predict(texts[:30]), atol=1e-6)


def test_a_changed_setting_is_refused_not_mixed(run):
    folder, cfg, _ = run
    if not (folder / "distill" / "summary.json").exists():
        assert winnow(["distill", "-c", cfg]) == 0
    changed = load_config(cfg, ["distill.dim=32"], check_inputs=False)
    with pytest.raises(ConfigError, match=r"written with other settings \(distill: "):
        run_stage(get_stage("distill"), changed, get_stage("distill").default_arguments(cfg))


def test_an_embed_teacher_gives_its_scores_and_its_tokens_in_context_in_one_pass(shared_data, tmp_path):
    from winnow.classifiers.distill import teacher_pass
    from winnow.classifiers.embedding_cache import EmbeddingCache

    labels = load_labels(shared_data / "annotations" / "fineweb-edu-llama3" / "train.jsonl.gz").fraction(0.1)
    settings = TrainSettings(backbone="embed", max_tokens=32, epochs=3, calibration_folds=2)
    embed_teacher, _ = train(labels, settings)
    texts = fineweb(shared_data, 40, skip=700)
    vocabulary = StaticScorer.from_encoder("all-MiniLM-L6-v2", np.zeros((1, 1), np.float32), 32, 192)
    cache = EmbeddingCache(tmp_path, "all-MiniLM-L6-v2", 32)
    scores, targets, sums, counts = teacher_pass(embed_teacher, texts, vocabulary.tokenizer.get_vocab_size(), cache)
    assert targets is scores  # an embed teacher's static part learns the teacher's own scores
    # the same scores as the teacher's own predict, and its sentence embeddings kept for the next run
    np.testing.assert_allclose(scores, embed_teacher.predict(texts), atol=1e-5)
    assert len(cache.keys) == len(texts)
    # every document contributes its [CLS], its [SEP] and 30 tokens between them (all 40 are longer than 32 tokens)
    cls, sep = vocabulary.tokenizer.token_to_id("[CLS]"), vocabulary.tokenizer.token_to_id("[SEP]")
    assert counts[cls] == counts[sep] == 40 and counts.sum() == 40 * 32
    assert np.count_nonzero(np.abs(sums).sum(1)) == np.count_nonzero(counts)


def test_an_embed_plus_fasttext_teacher_is_distilled_by_its_slow_half(shared_data, tmp_path):
    """The student of an embed+fasttext teacher learns the embed member's scores and keeps the fastText member."""
    from winnow.classifiers.distill import teacher_pass

    labels = load_labels(shared_data / "annotations" / "fineweb-edu-llama3" / "train.jsonl.gz").fraction(0.3)
    settings = TrainSettings(backbone="embed+fasttext", max_tokens=64, head="ridge", calibration_folds=2)
    teacher, _ = train(labels, settings)
    texts = fineweb(shared_data, 200, skip=900)
    vocabulary = StaticScorer.from_encoder("all-MiniLM-L6-v2", np.zeros((1, 1), np.float32), 64, 384)
    scores, targets, _, _ = teacher_pass(teacher, texts[:20], vocabulary.tokenizer.get_vocab_size())
    np.testing.assert_allclose(scores, teacher.predict(texts[:20]), atol=1e-5)
    embed_only = teacher.members["embed"](teacher.head_scores(teacher.encoder.encode(texts[:20])))
    np.testing.assert_allclose(targets, embed_only, atol=1e-5)  # the static part learns the embed member

    distilled = DistillSettings(max_tokens=64, dim=64, vocabulary="pool", holdout=0.3)
    student, record = distill(texts, teacher, distilled, log=lambda m: None)
    assert student.member[0] is teacher.fasttext and student.member[1] is teacher.members["fasttext"]
    held = [texts[i] for i in split_pool(len(texts), distilled.holdout, distilled.seed)[1]]
    static_part = student.head(student.features(held))
    fasttext_part = teacher.members["fasttext"](teacher.fasttext.expected_score(held))
    np.testing.assert_allclose(student.predict(held), (static_part + fasttext_part) / 2, atol=1e-9)
    assert record["holdout"]["spearman"] > 0.5, record["holdout"]
    loaded = StaticScorer.load(student.save(tmp_path / "student"))
    assert (tmp_path / "student" / "model.bin").exists()
    np.testing.assert_allclose(loaded.predict(held), student.predict(held), atol=1e-9)

"""Distil a teacher classifier into a static-embedding student for crawl-scale CPU scoring. Reads top to bottom:
settings → pool split → teacher scores → token vectors → student features → head → evaluation.

The teacher is any scorer `load_classifier` loads (winnow's embed or fastText classifier, a Hugging Face regression
model). The pool is unlabelled documents; a seeded `holdout` share of it never reaches the student, and the student is
measured on it against the teacher (Spearman, Pearson, mean absolute difference, agreement on `int_score >= 3`). The
student learns the teacher's calibrated 0–5 scores directly, so its `int_score` means what the teacher's does.

Token vectors: with an embed teacher (an encoder + head, or embed+fasttext), a token's vector is its mean in-context
output over the fit share of the pool, blended with its lone vector (the token through the encoder alone) as if that
were `prior_tokens` more occurrences; a token the pool lacks keeps its lone vector. With any other teacher there are
no in-context outputs to learn from and every token keeps its lone vector (model2vec's plain recipe). Measured on the
demo pool (3,200 FineWeb documents, MiniLM teacher), Spearman with the teacher on held-out documents: lone vectors
0.69, in-context 0.77.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import pearsonr, spearmanr

from winnow.classifiers.model import DEFAULT_ENCODER
from winnow.classifiers.saved import ENSEMBLE, EduClassifier, int_scores
from winnow.classifiers.static import LinearHead, StaticScorer, contextual_token_sums, reduce, token_vectors

# text cut before tokenizing: on the Llama-3 val documents, 6 characters per token still gives 254 tokens to every
# document that has them but 0.2 % (8: all of them, at 60 % of the speed)
CHARS_PER_TOKEN = 6


@dataclass
class DistillSettings:
    encoder: str = DEFAULT_ENCODER  # the sentence encoder the token vectors come from
    dim: int = 384  # PCA components; >= the encoder's width (MiniLM: 384) keeps the vectors whole
    max_tokens: int = 256  # the student reads a document's first max_tokens tokens
    holdout: float = 0.2  # of the pool: never seen by the student, used to compare it with the teacher
    seed: int = 0
    # an embed teacher's tokens get their mean in-context vector over the pool, pulled towards the token's lone vector
    # as if it had been seen `prior_tokens` more times (a rare token is mostly its lone vector)
    prior_tokens: float = 10.0  # measured on the demo pool: 10 > 1 (Spearman with the teacher +0.01)
    # "full": every token of the vocabulary gets a vector (~1 CPU-minute for MiniLM); "pool": only the tokens the pool
    # uses (tests; a token outside the pool then adds nothing to a document's mean)
    vocabulary: str = "full"

    @property
    def max_chars(self) -> int:
        return self.max_tokens * CHARS_PER_TOKEN


def split_pool(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, held-out rows), a seeded random split of the pool."""
    order = np.random.default_rng(seed).permutation(n)
    held = max(1, round(n * holdout))
    return np.sort(order[held:]), np.sort(order[:held])


def compare(student: np.ndarray, teacher: np.ndarray) -> dict:
    """How closely the student follows the teacher on the same documents."""
    student, teacher = np.asarray(student, dtype=float), np.asarray(teacher, dtype=float)
    return {
        "n": len(teacher),
        "spearman": float(spearmanr(student, teacher).statistic),
        "pearson": float(pearsonr(student, teacher).statistic),
        "mean_abs_diff": float(np.mean(np.abs(student - teacher))),
        "educational_agreement": float(np.mean((int_scores(student) >= 3) == (int_scores(teacher) >= 3))),
    }


def docs_per_cpu_second(scorer, texts: list[str], repeats: int = 1) -> float:
    """Documents scored per CPU-second of this process (all its threads: the tokenizer may use several), after one
    warm-up batch that is not counted (a model's first call pays for its lazy set-up, not for the documents)."""
    scorer.predict(texts[:8])
    started = time.process_time()
    for _ in range(repeats):
        scorer.predict(texts)
    return len(texts) * repeats / max(time.process_time() - started, 1e-9)


def teacher_pass(teacher, texts: list[str], vocabulary: int, cache=None):
    """(teacher scores, the scores the static part learns, token sums, token counts) over `texts`. An embed teacher's
    encoder runs once for all: its sentence embeddings give the scores (head, then calibration: exactly
    `teacher.predict`), its token outputs the in-context sums. An embed+fasttext teacher's static part learns its
    embed member's calibrated scores (the student keeps the fastText member itself). Any other teacher (fastText, a
    Hugging Face model) only gives scores (sums and counts are None)."""
    if isinstance(teacher, EduClassifier) and teacher.uses_encoder:  # embed, or embed+fasttext
        sentences, sums, counts = contextual_token_sums(teacher.encoder, texts, vocabulary)
        if cache is not None:  # keep them: a re-run, or the classifier stage, need not encode these texts again
            row = {text: i for i, text in enumerate(texts)}
            cache.embed(texts, lambda missing: sentences[[row[t] for t in missing]])
        scores = teacher.calibration(teacher.raw_from_embeddings(sentences, texts))
        if teacher.backbone == ENSEMBLE:
            return scores, teacher.members["embed"](teacher.head_scores(sentences)), sums, counts
        return scores, scores, sums, counts
    scores = np.asarray(teacher.predict(texts), dtype=float)
    return scores, scores, None, None


def distill(texts: list[str], teacher, s: DistillSettings, cache=None, log=print) -> tuple[StaticScorer, dict]:
    """Train a student on the teacher's scores of `texts`; returns it and a record (timings, held-out comparison)."""
    record: dict = {"settings": asdict(s), "pool_documents": len(texts)}
    fit_rows, held_rows = split_pool(len(texts), s.holdout, s.seed)
    fit_texts, held_texts = [texts[i] for i in fit_rows], [texts[i] for i in held_rows]
    student = StaticScorer.from_encoder(s.encoder, np.zeros((1, 1), dtype=np.float32), s.max_tokens, s.max_chars)
    vocabulary = student.tokenizer.get_vocab_size()

    # teacher: scores of every pool document; on the fit share, also its tokens' in-context outputs
    started = time.perf_counter(), time.process_time()
    fit_scores, targets, sums, counts = teacher_pass(teacher, fit_texts, vocabulary, cache)
    held_scores = np.asarray(
        teacher.predict(held_texts, cache=cache) if cache is not None else teacher.predict(held_texts), dtype=float
    )
    record["teacher_seconds"] = round(time.perf_counter() - started[0], 2)
    record["teacher_cpu_seconds"] = round(time.process_time() - started[1], 2)
    log(f" teacher: {len(texts)} documents in {record['teacher_cpu_seconds']} CPU-s")

    # token vectors: each token alone through the encoder; where the pool has it, blended with its in-context mean
    started = time.process_time()
    if counts is None:
        seen = np.bincount(np.concatenate([np.asarray(i, dtype=np.int64) for i in student.token_ids(fit_texts)]))
        counts, sums = np.pad(seen, (0, vocabulary - len(seen))), None
    wanted = np.flatnonzero(counts) if s.vocabulary == "pool" else None
    alone = token_vectors(s.encoder, wanted)[:vocabulary]
    alone = np.pad(alone, ((0, vocabulary - len(alone)), (0, 0)))  # tokens the encoder has no row for stay zero
    if sums is not None:  # a token seen n times: (n in-context vectors + prior x its lone vector) / (n + prior)
        alone = ((sums + s.prior_tokens * alone) / (counts + s.prior_tokens)[:, None]).astype(np.float32)
    student.embeddings = reduce(alone, s.dim, s.seed)
    record["token_vectors_cpu_seconds"] = round(time.process_time() - started, 2)
    record["vocabulary"] = {"size": vocabulary, "in_pool": int((counts > 0).sum()), "in_context": sums is not None}
    log(f" token vectors: {record['vocabulary']} in {record['token_vectors_cpu_seconds']} CPU-s")

    # the head: ridge regression from the document's mean token vector to the teacher's score (of an embed+fasttext
    # teacher: its embed member's; the student keeps the fastText member as it is)
    started = time.process_time()
    features = student.features(fit_texts)
    student.head = LinearHead.fit(features, targets)
    if isinstance(teacher, EduClassifier) and teacher.backbone == ENSEMBLE:
        student.member = (teacher.fasttext, teacher.members["fasttext"])
    record["head_cpu_seconds"] = round(time.process_time() - started, 2)
    student.config["dim"] = int(student.embeddings.shape[1])

    # the measurement: documents neither model trained on
    record["fit_documents"], record["holdout_documents"] = len(fit_rows), len(held_rows)
    record["holdout"] = compare(student.predict(held_texts), held_scores)
    record["fit"] = compare(student.predict(fit_texts), fit_scores)
    record["student_docs_per_cpu_second"] = round(docs_per_cpu_second(student, held_texts), 1)
    log(
        f" student vs teacher on {len(held_rows)} held-out documents: Spearman {record['holdout']['spearman']:.3f}, "
        f"Pearson {record['holdout']['pearson']:.3f}; {record['student_docs_per_cpu_second']:.0f} documents/CPU-s"
    )
    return student, record

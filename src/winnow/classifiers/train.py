"""Train the educational-quality classifier on labelled documents. Reads top to bottom:
settings → data → model → optimiser → loop → model selection → calibration → checkpoint.

embed: frozen encoder embeddings (cached), then a linear head on the standardised embedding, chosen by k-fold
cross-validation on the training labels (out-of-fold F1@3 after calibration) among
- `ridge`: closed-form ridge regression, one candidate per penalty in `alphas` (with 2k labels the penalty
  matters more than anything SGD tunes, and the answer is the same every run);
- `linear` (FineWeb-Edu's recipe for 450k labels): MSE, lr 3e-4, keeping the epoch (of 20) with the best
  macro-F1 on a held-out dev share of the training labels; refit on all labels for that many epochs.
`head: auto` (default) compares both kinds; `ridge` or `linear` restricts the choice to one.
fasttext (DCLM-style): fastText on class-balanced (oversampled) labels, read out as an expected score.
embed+fasttext: both of the above trained as they are alone, each calibrated on its own out-of-fold scores; the
score is the mean of the two calibrated scores. The two make different mistakes (a document's meaning vs its words):
on the 1,998 Llama-3 labels, out-of-fold Spearman 0.56 (embed) and 0.60 (fastText) give 0.64 together.
All: k-fold out-of-fold raw scores on the training labels fit the ScoreCalibration (the cut-points are chosen
on scores of documents the model did not see), and the final model is fit on every training label.
Extra labels (`train(..., extra=...)`, classifier.extra_labels: e.g. another LLM's annotations with the same prompt)
join every fit, the inner folds' included, but are never scored: model selection and calibration are measured on the
main labels alone, so a differently-distributed extra set can help the ranking without moving the cut-points.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from winnow.classifiers.embedding_cache import EmbeddingCache
from winnow.classifiers.evaluate import EDUCATIONAL
from winnow.classifiers.labels import LabelSet
from winnow.classifiers.model import (
    DEFAULT_ENCODER,
    FastTextScorer,
    RegressionHead,
    ScoreCalibration,
    SentenceEncoder,
    fasttext_line,
)
from winnow.classifiers.saved import ENSEMBLE, EduClassifier, int_scores


@dataclass
class TrainSettings:
    backbone: str = "fasttext"  # "embed" | "fasttext" | "embed+fasttext"
    seed: int = 0
    calibrate: bool = True
    calibration_folds: int = 5
    # embed: FineWeb-Edu's head recipe (lr 3e-4, 20 epochs, best macro-F1 checkpoint)
    encoder: str = DEFAULT_ENCODER
    max_tokens: int = 256  # MiniLM was trained on 256-token inputs
    # "auto": the best of ridge (each of `alphas`) and FineWeb-Edu's SGD head by out-of-fold F1@3; or one of them
    head: str = "auto"  # "auto" | "ridge" (closed form) | "linear" (FineWeb-Edu's SGD recipe)
    alphas: tuple[float, ...] = (1.0, 10.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)  # ridge penalties compared
    learning_rate: float = 3e-4
    epochs: int = 20
    batch_size: int = 8  # small: 2k labels give few steps per epoch (FineWeb-Edu had 450k)
    dev_share: float = 0.15  # of the training labels, to pick the best epoch
    device: str = "cpu"
    cache_dir: str | None = None
    # fasttext
    fasttext: dict = field(
        default_factory=lambda: {
            "lr": 0.5,
            "epoch": 10,
            "dim": 32,
            "wordNgrams": 2,
            "minCount": 2,
            "bucket": 200_000,
        }
    )
    balance: str = "oversample"  # "oversample" | "none"


# ---- embed backbone ----------------------------------------------------------------------------------------


def learning_rate_at(step: int, total_steps: int, peak: float) -> float:
    """Linear decay to zero (the transformers Trainer default FineWeb-Edu trained with)."""
    return peak * max(0.0, 1 - step / max(1, total_steps))


def macro_f1(predicted: np.ndarray, labels: np.ndarray) -> float:
    return float(f1_score(labels, int_scores(predicted), average="macro", zero_division=0))


def fit_head(x: np.ndarray, y: np.ndarray, s: TrainSettings, epochs: int, dev=None) -> tuple[RegressionHead, int]:
    """Train a regression head; with `dev=(x_dev, y_dev)`, keep the epoch with the best dev macro-F1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 384 → 1 layer: thread hand-offs cost more than the arithmetic
    try:
        return _fit_head(x, y, s, epochs, dev)
    finally:
        torch.set_num_threads(threads)


def _fit_head(x: np.ndarray, y: np.ndarray, s: TrainSettings, epochs: int, dev=None) -> tuple[RegressionHead, int]:
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    head = RegressionHead(x.shape[1])
    head.mean.copy_(xt.mean(0))
    head.std.copy_(xt.std(0).clamp_min(1e-6))
    with torch.no_grad():
        head.linear.bias.fill_(float(yt.mean()))  # start at the mean label, not at 0
    optimiser = torch.optim.AdamW(head.parameters(), lr=s.learning_rate, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(x) / s.batch_size)
    total, step = epochs * steps_per_epoch, 0
    best_state, best_epoch, best_f1 = None, epochs, -1.0
    for epoch in range(1, epochs + 1):
        head.train()
        for batch in np.array_split(rng.permutation(len(x)), steps_per_epoch):
            for group in optimiser.param_groups:
                group["lr"] = learning_rate_at(step, total, s.learning_rate)
            loss = torch.nn.functional.mse_loss(head(xt[batch]), yt[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
        if dev is not None:
            head.eval()
            with torch.inference_mode():
                f1 = macro_f1(head(torch.as_tensor(dev[0], dtype=torch.float32)).numpy(), dev[1])
            if f1 > best_f1:
                best_f1, best_epoch = f1, epoch
                best_state = {k: v.clone() for k, v in head.state_dict().items()}
    if best_state is not None:
        head.load_state_dict(best_state)
    head.eval()
    return head, best_epoch


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> RegressionHead:
    """Ridge regression on the standardised embedding, closed form, as a RegressionHead (same file, same scorer)."""
    mean, std = x.mean(0), x.std(0).clip(1e-6)
    z = (x - mean) / std
    target = y - y.mean()
    weights = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ target)
    head = RegressionHead(x.shape[1])
    with torch.no_grad():
        head.mean.copy_(torch.as_tensor(mean))
        head.std.copy_(torch.as_tensor(std))
        head.linear.weight.copy_(torch.as_tensor(weights, dtype=torch.float32)[None])
        head.linear.bias.fill_(float(y.mean()))
    head.eval()
    return head


def head_scores(head: RegressionHead, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return head(torch.as_tensor(x, dtype=torch.float32)).numpy().astype(float)


def embed_labels(labels: LabelSet, s: TrainSettings) -> np.ndarray:
    def encode(texts: list[str]) -> np.ndarray:  # the encoder is loaded only when a text is not cached yet
        return SentenceEncoder(s.encoder, s.max_tokens, s.device).encode(texts)

    if s.cache_dir is None:
        return encode(labels.texts)
    return EmbeddingCache(s.cache_dir, s.encoder, s.max_tokens).embed(labels.texts, encode)


# ---- fasttext backbone -------------------------------------------------------------------------------------


def balanced_rows(y: np.ndarray, s: TrainSettings) -> np.ndarray:
    """Row indices with every class repeated up to the largest class's count (so the rare 3–5 are heard)."""
    rng = np.random.default_rng(s.seed)
    if s.balance == "none":
        return rng.permutation(len(y))
    target = max(np.bincount(y))
    rows = []
    for k in np.unique(y):
        members = np.flatnonzero(y == k)
        rows.extend(np.tile(members, target // len(members)))
        rows.extend(rng.choice(members, size=target % len(members), replace=False))
    return rng.permutation(np.asarray(rows))


def fit_fasttext(texts: list[str], y: np.ndarray, s: TrainSettings) -> FastTextScorer:
    """Write the balanced training file, train in a fresh process (see src/winnow/classifiers/fasttext_fit.py), load."""
    with tempfile.TemporaryDirectory() as tmp:
        path, model_path = os.path.join(tmp, "train.txt"), os.path.join(tmp, "model.bin")
        with open(path, "w", encoding="utf-8") as f:
            for i in balanced_rows(y, s):
                f.write(f"__label__{y[i]} {fasttext_line(texts[i])}\n")
        arguments = json.dumps({**s.fasttext, "seed": s.seed})
        done = subprocess.run(
            [sys.executable, "-m", "winnow.classifiers.fasttext_fit", path, model_path, arguments],
            capture_output=True,
            text=True,
        )  # the installed package is importable from any folder
        if done.returncode != 0:
            raise RuntimeError(f"fastText training failed: {done.stderr.strip()[-2000:]}")
        return FastTextScorer.load(model_path)


# ---- both ----------------------------------------------------------------------------------------------------


def out_of_fold(n_rows: int, y: np.ndarray, s: TrainSettings, fit_and_score, pool=None) -> np.ndarray:
    """Raw scores for every training row from a model that did not see it (k-fold). With `pool` (an executor), the
    folds are fitted concurrently."""
    raw = np.zeros(n_rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has fewer members than n_splits" on tiny sets
        folds = list(StratifiedKFold(s.calibration_folds, shuffle=True, random_state=s.seed).split(np.zeros(n_rows), y))
    if pool is None:
        for fit_rows, held_rows in folds:
            raw[held_rows] = fit_and_score(fit_rows, held_rows)
        return raw
    futures = [(held_rows, pool.submit(fit_and_score, fit_rows, held_rows)) for fit_rows, held_rows in folds]
    for held_rows, future in futures:
        raw[held_rows] = future.result()
    return raw


def calibrated_f1(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(F1@3, macro-F1) of out-of-fold raw scores once calibrated on themselves: what model selection compares."""
    predicted = int_scores(ScoreCalibration.fit(raw, y)(raw))
    f1 = f1_score(y >= EDUCATIONAL, predicted >= EDUCATIONAL, zero_division=0)
    return float(f1), float(f1_score(y, predicted, average="macro", zero_division=0))


def select(candidates: dict[str, np.ndarray], y: np.ndarray) -> tuple[str, list[dict]]:
    """The candidate whose out-of-fold scores give the best F1@3 after calibration (macro-F1 breaks ties)."""
    table = []
    for name, raw in candidates.items():
        f1, macro = calibrated_f1(raw, y)
        table.append({"candidate": name, "f1": round(f1, 4), "macro_f1": round(macro, 4)})
    best = max(table, key=lambda row: (row["f1"], row["macro_f1"]))
    return best["candidate"], table


def train(labels: LabelSet, s: TrainSettings, extra: LabelSet | None = None) -> tuple[EduClassifier, dict]:
    """Train one classifier; returns it and a record of how (timings, model selection, calibration).
    `extra`: labels added to every fit and never scored (see the module docstring)."""
    started = time.perf_counter(), cpu_seconds()
    y = labels.scores
    y_extra = extra.scores if extra is not None else np.zeros(0, dtype=np.int64)
    record: dict = {"settings": asdict(s)}
    if s.backbone == ENSEMBLE:
        return train_ensemble(labels, s, extra, record, started)
    if s.backbone == "embed":
        x = embed_labels(labels, s)
        x_extra = embed_labels(extra, s) if extra is not None else np.zeros((0, x.shape[1]), dtype=x.dtype)
        record["embed_seconds"] = time.perf_counter() - started[0]

        def fit_data(rows):  # the main labels' `rows`, and every extra label
            return np.concatenate([x[rows], x_extra]), np.concatenate([y[rows], y_extra])

        if s.head not in ("auto", "ridge", "linear"):
            raise ValueError(f"unknown head {s.head!r}: expected 'auto', 'ridge' or 'linear'")
        # every candidate is scored on the same folds; the winner's out-of-fold scores also fit the calibration
        candidates: dict[str, np.ndarray] = {}
        if s.head in ("auto", "ridge"):
            for alpha in s.alphas:
                candidates[f"ridge alpha={alpha:g}"] = out_of_fold(
                    len(y), y, s, lambda rows, held, a=alpha: head_scores(fit_ridge(*fit_data(rows), a), x[held])
                )
        if s.head in ("auto", "linear"):
            fit_rows, dev_rows = _stratified_split(y, s.dev_share, s.seed)
            _, best_epoch = fit_head(*fit_data(fit_rows), s, s.epochs, dev=(x[dev_rows], y[dev_rows]))
            record["best_epoch"] = best_epoch
            candidates[f"sgd epochs={best_epoch}"] = out_of_fold(
                len(y), y, s, lambda rows, held: head_scores(fit_head(*fit_data(rows), s, best_epoch)[0], x[held])
            )
        chosen, record["selection"] = select(candidates, y)
        record["chosen"] = chosen
        raw = candidates[chosen] if s.calibrate else None
        kind, value = chosen.split("=")
        everything = fit_data(np.arange(len(y)))
        head = (
            fit_ridge(*everything, float(value)) if kind == "ridge alpha" else fit_head(*everything, s, int(value))[0]
        )
        model_parts = {"head": head}
    elif s.backbone == "fasttext":
        extra_texts = extra.texts if extra is not None else []

        def fit_and_score(rows, held):
            texts = [labels.texts[i] for i in rows] + extra_texts
            return fit_fasttext(texts, np.concatenate([y[rows], y_extra]), s).expected_score(
                [labels.texts[i] for i in held]
            )

        # each fit is a single-threaded process of its own (deterministic): the final model and the calibration
        # folds train side by side, one per core
        with ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, s.calibration_folds + 1))) as pool:
            final = pool.submit(fit_fasttext, labels.texts + extra_texts, np.concatenate([y, y_extra]), s)
            raw = out_of_fold(len(y), y, s, fit_and_score, pool) if s.calibrate else None
            model_parts = {"fasttext": final.result()}
    else:
        raise ValueError(f"unknown backbone {s.backbone!r}: expected 'embed', 'fasttext' or '{ENSEMBLE}'")
    calibration = ScoreCalibration.fit(raw, y) if raw is not None else ScoreCalibration()
    config = {
        "backbone": s.backbone,
        "encoder": s.encoder if s.backbone == "embed" else None,
        "head": (record.get("chosen") or s.head) if s.backbone == "embed" else None,
        "max_tokens": s.max_tokens if s.backbone == "embed" else None,
        "hyperparameters": record["settings"],
        "training_data": {**labels.describe(), "extra": extra.describe() if extra is not None else None},
    }
    record["train_seconds"] = time.perf_counter() - started[0]
    record["train_cpu_seconds"] = cpu_seconds() - started[1]
    record["calibration"] = calibration.cuts
    return EduClassifier(config, calibration, device=s.device, **model_parts), record


def train_ensemble(labels: LabelSet, s: TrainSettings, extra, record: dict, started) -> tuple[EduClassifier, dict]:
    """embed+fasttext: each member trained and calibrated exactly as alone; the ensemble averages their calibrated
    scores, so its own calibration is the identity (re-calibrating the mean, measured: F1@3 -0.01, macro-F1 -0.09)."""
    members = {}
    for kind in ("embed", "fasttext"):
        members[kind], member_record = train(labels, replace(s, backbone=kind), extra)
        record[kind] = {k: member_record.get(k) for k in ("chosen", "selection", "calibration", "train_cpu_seconds")}
    embed = members["embed"]
    record["chosen"] = embed.config["head"]
    record["selection"] = record["embed"]["selection"]  # the embed member's head candidates
    config = {
        **embed.config,
        "backbone": ENSEMBLE,
        "head": f"{embed.config['head']} + fastText",
        "hyperparameters": record["settings"],
    }
    record["train_seconds"] = time.perf_counter() - started[0]
    record["train_cpu_seconds"] = cpu_seconds() - started[1]
    record["calibration"] = {}
    calibrations = {kind: member.calibration for kind, member in members.items()}
    classifier = EduClassifier(
        config,
        ScoreCalibration(),
        head=embed.head,
        fasttext=members["fasttext"].fasttext,
        device=s.device,
        members=calibrations,
    )
    return classifier, record


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the fastText training processes), all cores."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _stratified_split(y: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(len(y))
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    return train_test_split(rows, test_size=share, random_state=seed, stratify=stratify)

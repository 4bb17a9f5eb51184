"""How good is a classifier recipe on the labels we have? k-fold cross-validation, the whole recipe per fold.

    labels ──StratifiedKFold(k)──▶ for each fold: train(training part) ─▶ predict(held-out part)
                                   (model selection and calibration happen inside train, on the training part only)
           ──▶ one out-of-fold score per labelled document ─▶ evaluate(): F1@3, macro-F1, Spearman + 95 % intervals

Every document is scored once by a model that never saw it, so all labels serve as evaluation data, and the shipped
model (trained on all labels by `train`) is the recipe these figures measure. A learning curve repeats the folds with
a class-stratified share of each training part; the held-out parts stay whole, so the points are comparable.
Extra labels (training only: classifier.extra_labels) join every fold's training part whole and are never scored.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.model_selection import StratifiedKFold

from winnow.classifiers.evaluate import evaluate
from winnow.classifiers.labels import LabelSet
from winnow.classifiers.train import TrainSettings, train


def folds(y: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training rows, held-out rows) per fold, stratified by label: the same folds for every recipe compared."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has fewer members than n_splits" on tiny sets
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def cross_validate(
    labels: LabelSet, settings: TrainSettings, k: int = 5, shares=(1.0,), cache=None, log=None, extra=None
) -> dict[float, dict]:
    """{share: {"scores": out-of-fold calibrated scores, "metrics": evaluate(...), "records": per-fold records}}."""
    results: dict[float, dict] = {}
    splits = folds(labels.scores, k, settings.seed)
    for share in sorted(shares):
        scores = np.full(len(labels), np.nan)
        records = []
        for i, (fit_rows, held_rows) in enumerate(splits):
            part = labels.subset(sorted(fit_rows))
            if share < 1:
                part = part.fraction(share, seed=settings.seed)
            classifier, record = train(part, settings, extra)
            held = [labels.texts[r] for r in held_rows]
            scores[held_rows] = classifier.predict(held, cache=cache)
            records.append({"fold": i, "train_rows": len(part), **_brief(record)})
            if log:
                chosen = record.get("chosen") or (f"epoch {record['best_epoch']}" if record.get("best_epoch") else "")
                log(
                    f"    fold {i + 1}/{k}, {share:.0%} of its training part ({len(part)} labels): "
                    f"{chosen + ', ' if chosen else ''}{record['train_seconds']:.1f} s"
                )
        results[share] = {"scores": scores, "metrics": evaluate(scores, labels.scores), "records": records}
    return results


def _brief(record: dict) -> dict:
    return {
        key: record[key]
        for key in ("chosen", "best_epoch", "train_seconds", "train_cpu_seconds")
        if record.get(key) is not None
    }

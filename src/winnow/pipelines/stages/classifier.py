"""`winnow classifier`: evaluate the classifier recipe by k-fold cross-validation, then train and save it on all labels.

Reads `classifier.labels` (default: the annotation stage's `<output_dir>/annotations/`) and `classifier.extra_labels`
(training only: they join every fit and are never scored, so the figures below are those of `labels`), then
1. cross-validates the recipe (classifiers/crossval.py): `cv_folds` folds, each trains the configured backbone on
   the other folds (model selection and calibration inside, on those folds only) and scores its own; the
   out-of-fold scores of all labels give F1@3, macro-F1 and Spearman with 95 % intervals — the headline, unless
   `classifier.eval_labels` names a separate held-out set, which is then scored by the shipped model as well;
   the learning curve repeats the folds on shares of each training part;
2. trains the shipped model on every label (the same recipe), and writes `<output_dir>/classifier/`: the saved model
   (config.json + weights), eval.json, eval.md, oof_scores.jsonl (id, label, out-of-fold score),
   confusion_matrix.png, learning_curve.png and summary.json.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

from winnow.classifiers.crossval import cross_validate
from winnow.classifiers.embedding_cache import EmbeddingCache, text_key
from winnow.classifiers.evaluate import evaluate, write_report
from winnow.classifiers.labels import concatenate, label_files, load_labels
from winnow.classifiers.saved import ENCODER_BACKBONES, resolve_device
from winnow.classifiers.train import TrainSettings, train
from winnow.files import write_jsonl
from winnow.pipelines.config import ConfigError, RunConfig
from winnow.pipelines.execution import offline_environment
from winnow.pipelines.summary import stage_summary, write_summary


def settings_from(cfg: RunConfig):
    c = cfg.classifier
    return TrainSettings(
        backbone=c.backbone,
        seed=c.seed,
        calibrate=c.calibrate,
        calibration_folds=c.calibration_folds,
        encoder=c.encoder,
        head=c.head,
        alphas=tuple(c.alphas),
        max_tokens=c.max_tokens,
        learning_rate=c.learning_rate,
        epochs=c.epochs,
        batch_size=c.batch_size,
        dev_share=c.dev_share,
        device=_device(c.device),
        cache_dir=c.embedding_cache or str(output_folder(cfg) / "embeddings"),
        fasttext=c.fasttext.model_dump(),
        balance=c.balance,
    )


def fingerprint_inputs(cfg: RunConfig) -> list[str]:
    """Label files named in the config (the annotate stage's own labels are covered by its fingerprint)."""
    files = []
    sources = [cfg.classifier.labels, cfg.classifier.eval_labels, *(x.path for x in cfg.classifier.extra_labels)]
    for source in filter(None, sources):
        try:
            files += label_files(source)
        except FileNotFoundError:
            pass  # load_label_sets says so, with the key
    return files


def output_folder(cfg: RunConfig) -> Path:
    return Path(cfg.classifier.output or cfg.stage_dir("classifier"))


def _device(device: str) -> str:
    return resolve_device(device)


def load_label_sets(cfg: RunConfig):
    """(labels, held-out labels or None, training-only labels or None): without eval_labels, cross-validation is the
    evaluation."""
    c = cfg.classifier
    source = c.labels or str(cfg.stage_dir("annotate"))
    try:
        labels = load_labels(source, c.text_key, c.score_key, c.id_key)
        held_out = load_labels(c.eval_labels, c.text_key, c.score_key, c.id_key) if c.eval_labels else None
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"classifier.labels: {e}") from None
    extras = []
    for i, x in enumerate(c.extra_labels):
        try:
            extras.append(load_labels(x.path, x.text_key, x.score_key, x.id_key))
        except (FileNotFoundError, ValueError) as e:
            raise ConfigError(f"classifier.extra_labels[{i}]: {e}") from None
    return labels, held_out, _without(concatenate(extras), labels, held_out) if extras else None


def _without(extra, *label_sets):
    """The extra labels less the documents the others hold (trained on, then scored, they would inflate the figures);
    those rows are counted in skipped["also_in_labels"]."""
    evaluated = {text_key(t) for labels in label_sets if labels is not None for t in labels.texts}
    keep = [i for i, t in enumerate(extra.texts) if text_key(t) not in evaluated]
    if len(keep) == len(extra):
        return extra
    kept = extra.subset(keep)
    kept.skipped = extra.skipped + Counter(also_in_labels=len(extra) - len(keep))
    return kept


def train_and_evaluate(cfg: RunConfig, log=print) -> dict:
    """Everything `winnow classifier` does; returns eval.json's content."""
    settings = settings_from(cfg)
    c = cfg.classifier
    out = output_folder(cfg)
    labels, held_out, extra = load_label_sets(cfg)
    log(
        f"winnow: classifier: {settings.backbone} on {len(labels)} labels {labels.histogram()}"
        + (f" (+ {len(extra)} training-only labels {extra.histogram()})" if extra else "")
        + f": {c.cv_folds}-fold cross-validation"
        + (f", then the model trained on all of them scores {len(held_out)} held-out labels" if held_out else "")
    )
    classes = [k for k, n in labels.histogram().items() if n]
    if len(classes) < 2:
        log(
            f"winnow: classifier: warning: every label is {classes[0]}; the classifier cannot learn to rank "
            f"(an annotator that gives one score to everything, e.g. the embedded SmolLM2 default)"
        )
    cache = (
        EmbeddingCache(settings.cache_dir, settings.encoder, settings.max_tokens)
        if settings.backbone in ENCODER_BACKBONES
        else None
    )

    started = time.perf_counter()
    shares = sorted(set(c.learning_curve) | {1.0})
    cv = cross_validate(labels, settings, k=c.cv_folds, shares=shares, cache=cache, log=log, extra=extra)
    curve = []
    for share in shares:
        m = cv[share]["metrics"]
        rows = round(sum(r["train_rows"] for r in cv[share]["records"]) / c.cv_folds)
        curve.append({"share": share, "rows": rows, **{k: m[k] for k in ("f1", "macro_f1", "spearman")}})
        log(
            f"  {share:.0%} of each training part (~{rows} labels): out-of-fold F1@3 {m['f1']:.3f}  "
            f"macro-F1 {m['macro_f1']:.3f}  Spearman {m['spearman']:.3f}"
        )
    cv_seconds = time.perf_counter() - started
    cv_metrics = cv[1.0]["metrics"]

    classifier, record = train(labels, settings, extra)  # the shipped model: the same recipe on every label
    held_metrics = evaluate(classifier.predict(held_out.texts, cache=cache), held_out.scores) if held_out else None
    metrics = held_metrics or cv_metrics
    about = {
        "backbone": settings.backbone,
        "head": classifier.config.get("head"),
        "train_source": labels.source,
        "train_rows": len(labels),
        "extra_labels": extra.describe() if extra else None,
        "evaluation": "held-out labels" if held_out else f"{c.cv_folds}-fold cross-validation (out-of-fold scores)",
        "eval_source": held_out.source if held_out else f"{labels.source} ({c.cv_folds}-fold cross-validation)",
        "eval_rows": len(held_out) if held_out else len(labels),
        "cross_validation": {
            "folds": c.cv_folds,
            "metrics": {k: v for k, v in cv_metrics.items() if k not in ("per_class", "confusion")},
            "per_fold": cv[1.0]["records"],
            "seconds": round(cv_seconds, 2),
        },
        "selection": record.get("selection"),
        "calibration": record["calibration"],
        "best_epoch": record.get("best_epoch"),
        "train_seconds": round(record["train_seconds"], 2),
        "train_cpu_seconds": round(record["train_cpu_seconds"], 2),
    }
    saved = {k: metrics[k] for k in ("n", "f1", "precision", "recall", "macro_f1", "spearman")}
    saved["evaluation"] = about["evaluation"]
    classifier.save(out, metrics=saved)
    write_jsonl(
        out / "oof_scores.jsonl",
        (
            {"id": i, "label": int(y), "oof_score": round(float(s), 4)}
            for i, y, s in zip(labels.ids, labels.scores, cv[1.0]["scores"], strict=True)
        ),
    )
    write_report(out, metrics, curve, about)
    used = len(labels) + (len(extra) if extra else 0)
    skipped = dict(labels.skipped + (extra.skipped if extra else Counter()))
    write_summary(
        out,
        stage_summary(
            read=used + sum(skipped.values()),
            kept=used,
            removed={"unusable_label": skipped},
            eval={k: metrics[k] for k in ("n", "f1", "macro_f1", "spearman")},
        ),
    )
    return {**about, "metrics": metrics, "learning_curve": curve}


def run(cfg: RunConfig, args) -> int:
    offline_environment()
    report = train_and_evaluate(cfg)
    m = report["metrics"]
    out = output_folder(cfg)
    print(
        f"winnow: classifier: {report['backbone']}: F1@3 {m['f1']:.3f} (P {m['precision']:.3f} / "
        f"R {m['recall']:.3f}), macro-F1 {m['macro_f1']:.3f}, Spearman {m['spearman']:.3f}, n={m['n']} "
        f"→ {out}/ (eval.md, confusion_matrix.png, learning_curve.png)",
        file=sys.stderr,
    )
    return 0

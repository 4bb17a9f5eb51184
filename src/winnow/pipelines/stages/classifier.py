"""`winnow classifier`: train, evaluate and save the educational-quality classifier.

Reads `classifier.labels` (default: the annotation stage's `<output_dir>/annotations/`), trains the
configured backbone, evaluates it on `classifier.eval_labels` (default: a stratified 20 % held out of
the labels), and writes `<output_dir>/classifier/`: the saved model (config.json + weights), eval.json,
eval.md, confusion_matrix.png, learning_curve.png and summary.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from winnow.classifiers.embedding_cache import EmbeddingCache
from winnow.classifiers.evaluate import evaluate, write_report
from winnow.classifiers.labels import label_files, load_labels
from winnow.classifiers.saved import resolve_device
from winnow.classifiers.train import TrainSettings, _stratified_split, train
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
    for source in filter(None, (cfg.classifier.labels, cfg.classifier.eval_labels)):
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
    """(train, eval) label sets; without eval_labels, a stratified 20 % of the labels is held out."""
    c = cfg.classifier
    source = c.labels or str(cfg.stage_dir("annotate"))
    try:
        train = load_labels(source, c.text_key, c.score_key, c.id_key)
        if c.eval_labels:
            return train, load_labels(c.eval_labels, c.text_key, c.score_key, c.id_key)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"classifier.labels: {e}") from None
    fit_rows, held_rows = _stratified_split(train.scores, 0.2, c.seed)
    held = train.subset(sorted(held_rows))
    held.source = f"{source} (20 % held out)"
    fit = train.subset(sorted(fit_rows))
    fit.skipped = train.skipped
    return fit, held


def train_and_evaluate(cfg: RunConfig, log=print) -> dict:
    """Everything `winnow classifier` does; returns eval.json's content."""
    settings = settings_from(cfg)
    out = output_folder(cfg)
    train_set, eval_set = load_label_sets(cfg)
    log(
        f"winnow: classifier: {settings.backbone} on {len(train_set)} labels {train_set.histogram()}, "
        f"evaluating on {len(eval_set)}"
    )
    classes = [k for k, n in train_set.histogram().items() if n]
    if len(classes) < 2:
        log(
            f"winnow: classifier: warning: every label is {classes[0]}; the classifier cannot learn to rank "
            f"(an annotator that gives one score to everything, e.g. the embedded SmolLM2 default)"
        )
    cache = (
        EmbeddingCache(settings.cache_dir, settings.encoder, settings.max_tokens)
        if settings.backbone == "embed"
        else None
    )

    curve, final = [], None
    for share in sorted(cfg.classifier.learning_curve) or [1.0]:
        subset = train_set.fraction(share, seed=settings.seed)
        classifier, record = train(subset, settings)
        started = time.process_time()
        metrics = evaluate(classifier.predict(eval_set.texts, cache=cache), eval_set.scores)
        point = {
            "share": share,
            "rows": len(subset),
            **{k: metrics[k] for k in ("f1", "macro_f1", "spearman")},
            "train_seconds": round(record["train_seconds"], 2),
            "eval_cpu_seconds": round(time.process_time() - started, 2),
        }
        curve.append(point)
        log(
            f"  {share:.0%} ({len(subset)} labels): F1@3 {metrics['f1']:.3f}  macro-F1 {metrics['macro_f1']:.3f}  "
            f"Spearman {metrics['spearman']:.3f}  ({record['train_seconds']:.1f} s)"
        )
        final = (classifier, record, metrics)
    if curve[-1]["share"] < 1:
        classifier, record = train(train_set, settings)
        final = (classifier, record, evaluate(classifier.predict(eval_set.texts, cache=cache), eval_set.scores))
    classifier, record, metrics = final

    about = {
        "backbone": settings.backbone,
        "train_source": train_set.source,
        "train_rows": len(train_set),
        "eval_source": eval_set.source,
        "eval_rows": len(eval_set),
        "calibration": record["calibration"],
        "best_epoch": record.get("best_epoch"),
        "train_seconds": round(record["train_seconds"], 2),
        "train_cpu_seconds": round(record["train_cpu_seconds"], 2),
    }
    classifier.save(out, metrics={k: metrics[k] for k in ("n", "f1", "precision", "recall", "macro_f1", "spearman")})
    write_report(out, metrics, curve, about)
    skipped = dict(train_set.skipped)
    write_summary(
        out,
        stage_summary(
            read=len(train_set) + sum(skipped.values()),
            kept=len(train_set),
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

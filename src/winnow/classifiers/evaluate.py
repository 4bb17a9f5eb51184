"""Evaluate classifier scores against held-out labels, the FineWeb-Edu way, and write the report.

Headline: precision / recall / F1 of the binary decision `int_score >= 3` (FineWeb-Edu: F1 0.82 with
450k Llama-3 labels). Also macro-F1 of the rounded score, per-class precision / recall, Spearman
correlation of the float score with the label, the confusion matrix and the number of documents.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from winnow.classifiers.labels import MAX_SCORE
from winnow.classifiers.saved import int_scores
from winnow.figures import figure
from winnow.files import write_json

EDUCATIONAL = 3  # FineWeb-Edu keeps int_score >= 3


def evaluate(scores: np.ndarray, labels: np.ndarray, threshold: int = EDUCATIONAL) -> dict:
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels)
    rounded = int_scores(scores)
    p, r, f, _ = precision_recall_fscore_support(
        labels >= threshold, rounded >= threshold, average="binary", zero_division=0
    )
    classes = list(range(MAX_SCORE + 1))
    cp, cr, cf, support = precision_recall_fscore_support(labels, rounded, labels=classes, zero_division=0)
    rho = spearmanr(scores, labels).statistic if len(set(labels)) > 1 else float("nan")
    low, high = _bootstrap_f1(labels >= threshold, rounded >= threshold)
    intervals = _bootstrap_intervals(scores, labels)
    return {
        "n": int(len(labels)),
        "threshold": threshold,
        "positives": int((labels >= threshold).sum()),
        "predicted_positives": int((rounded >= threshold).sum()),
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
        "f1_ci95": [low, high],
        "macro_f1": float(f1_score(labels, rounded, average="macro", zero_division=0)),
        "macro_f1_ci95": intervals["macro_f1"],
        "accuracy": float((rounded == labels).mean()),
        "spearman": float(rho),
        "spearman_ci95": intervals["spearman"],
        "per_class": {
            k: {"precision": float(cp[k]), "recall": float(cr[k]), "f1": float(cf[k]), "support": int(support[k])}
            for k in classes
        },
        "confusion": confusion_matrix(labels, rounded, labels=classes).tolist(),
    }


def _bootstrap_f1(truth: np.ndarray, predicted: np.ndarray, rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % interval of F1 over documents resampled with replacement: how much of a difference is noise."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(truth), size=(rounds, len(truth)))
    t, p = truth[rows], predicted[rows]
    tp = (t & p).sum(1)
    f1 = np.where(tp > 0, 2 * tp / np.maximum(1, t.sum(1) + p.sum(1)), 0.0)
    return float(np.percentile(f1, 2.5)), float(np.percentile(f1, 97.5))


def _bootstrap_intervals(scores: np.ndarray, labels: np.ndarray, rounds: int = 1000, seed: int = 0) -> dict:
    """95 % intervals of macro-F1 and Spearman over documents resampled with replacement, vectorised over the
    resamples (sklearn's per-call overhead would make 1,000 rounds cost seconds)."""
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(labels), size=(rounds, len(labels)))
    truth, predicted = labels[rows], int_scores(scores)[rows]
    present = np.zeros((rounds, MAX_SCORE + 1), dtype=bool)
    f1 = np.zeros((rounds, MAX_SCORE + 1))
    for k in range(MAX_SCORE + 1):  # macro-F1 over the classes present in labels or predictions, as sklearn
        t, p = truth == k, predicted == k
        tp, support = (t & p).sum(1), t.sum(1) + p.sum(1)
        present[:, k] = support > 0
        f1[:, k] = np.where(tp > 0, 2 * tp / np.maximum(1, support), 0.0)
    macro = (f1 * present).sum(1) / np.maximum(1, present.sum(1))
    a, b = rankdata(scores[rows], axis=1), rankdata(truth, axis=1)
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
    rho = rho[np.isfinite(rho)]

    def interval(values):
        return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if len(values) else [None, None]

    return {"macro_f1": interval(macro), "spearman": interval(rho)}


def jury_agreement(sample_scores: list[list[int | None]], threshold: int = EDUCATIONAL, seed: int = 0) -> dict | None:
    """How well an annotator agrees with itself: the ceiling of any classifier judged against its single answers.

    `sample_scores`: per document, the scores of several samples (a jury, `annotator.samples > 1`); unparseable
    ones (None) are left out, and documents with fewer than two are not counted. A classifier that learnt the
    annotator's judgement perfectly predicts its *mean* answer, yet is scored against one sampled answer; so:
    - `sample_vs_rest_f1`: F1 of `score >= threshold` of each sample against the rounded mean of the document's other
      samples (documents with 3 or more; 95 % interval over documents resampled) - what a perfect model of a jury
      of (samples - 1) scores against single labels;
    - `pairwise_f1`: the same between two single samples (every ordered pair);
    - `pairwise_spearman`: of each document's first two samples.
    None when no document has two scored samples.
    """
    docs = [[int(s) for s in scores if s is not None] for scores in sample_scores]
    docs = [d for d in docs if len(d) >= 2]
    if not docs:
        return None
    first, second = np.array([d[0] for d in docs]), np.array([d[1] for d in docs])
    pair_tp = pair_pos = 0
    for d in docs:  # ordered pairs (i, j), i != j: k*(k-1) per document
        above = np.array(d) >= threshold
        pair_tp += int(above.sum() * (above.sum() - 1))
        pair_pos += int(2 * above.sum() * (len(d) - 1))
    # per document: (true positives, single-sample positives + rest-mean positives) of sample vs the rest
    per_doc = []
    for d in (d for d in docs if len(d) >= 3):
        values = np.array(d, dtype=float)
        rest = int_scores((values.sum() - values) / (len(values) - 1)) >= threshold
        single = values >= threshold
        per_doc.append((int((single & rest).sum()), int(single.sum() + rest.sum())))
    out = {
        "documents": len(docs),
        "samples_per_document": round(float(np.mean([len(d) for d in docs])), 2),
        "threshold": threshold,
        "pairwise_f1": pair_tp * 2 / pair_pos if pair_pos else None,
        "pairwise_spearman": float(spearmanr(first, second).statistic) if len(set(first)) > 1 else None,
        "sample_vs_rest_f1": None,
        "sample_vs_rest_f1_ci95": [None, None],
    }
    if per_doc:
        tp, support = np.array(per_doc).T
        out["sample_vs_rest_f1"] = float(2 * tp.sum() / support.sum()) if support.sum() else None
        rows = np.random.default_rng(seed).integers(0, len(tp), size=(1000, len(tp)))
        resampled = 2 * tp[rows].sum(1) / np.maximum(1, support[rows].sum(1))
        out["sample_vs_rest_f1_ci95"] = [float(np.percentile(resampled, 2.5)), float(np.percentile(resampled, 97.5))]
    return out


def write_report(folder: str | Path, metrics: dict, curve: list[dict], about: dict) -> None:
    """eval.json, eval.md, confusion_matrix.png and learning_curve.png in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "eval.json", {**about, "metrics": metrics, "learning_curve": curve})
    _plot_confusion(metrics, folder / "confusion_matrix.png", about)
    _plot_curve(curve, folder / "learning_curve.png", about)
    (folder / "eval.md").write_text(_markdown(metrics, curve, about))


def _markdown(m: dict, curve: list[dict], about: dict) -> str:
    lines = [
        f"# Educational-quality classifier: {about['backbone']}",
        "",
        f"Trained on {about['train_rows']} labels from `{about['train_source']}`; evaluated by "
        f"{about.get('evaluation', 'held-out labels')} on {m['n']} labels (`{about['eval_source']}`)."
        + (
            f" Every fit also trained on {about['extra_labels']['rows']} training-only labels "
            f"(`{about['extra_labels']['source']}`), never scored."
            if about.get("extra_labels")
            else ""
        ),
        "",
        "| metric | value (95 % bootstrap interval) |",
        "|---|---|",
        f"| F1 of score ≥ {m['threshold']} | **{m['f1']:.3f}** ({_interval(m.get('f1_ci95'))}) |",
        f"| precision / recall of score ≥ {m['threshold']} | {m['precision']:.3f} / {m['recall']:.3f} |",
        f"| positives (labels / predicted) | {m['positives']} / {m['predicted_positives']} |",
        f"| macro-F1 of the rounded score | {m['macro_f1']:.3f} ({_interval(m.get('macro_f1_ci95'))}) |",
        f"| accuracy of the rounded score | {m['accuracy']:.3f} |",
        f"| Spearman (score vs label) | {m['spearman']:.3f} ({_interval(m.get('spearman_ci95'))}) |",
        f"| documents | {m['n']} |",
        "",
        "FineWeb-Edu's classifier (450k Llama-3 labels, Snowflake-arctic-embed-m) reached F1 0.82 at threshold 3.",
        "",
        "## Per class (rounded score)",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for k, c in m["per_class"].items():
        lines.append(f"| {k} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |")
    if about.get("selection"):
        lines += [
            "",
            f"## Model selection (out-of-fold on all training labels; chosen: {about.get('head')})",
            "",
            "| candidate | F1@3 | macro-F1 |",
            "|---|---|---|",
        ]
        lines += [f"| {row['candidate']} | {row['f1']:.3f} | {row['macro_f1']:.3f} |" for row in about["selection"]]
    lines += [
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "## Learning curve",
        "",
        "| share of each training part | rows | F1@3 | macro-F1 | Spearman |",
        "|---|---|---|---|---|",
    ]
    for point in curve:
        lines.append(
            f"| {point['share']:.0%} | {point['rows']} | {point['f1']:.3f} | {point['macro_f1']:.3f} | "
            f"{point['spearman']:.3f} |"
        )
    lines += ["", "![learning curve](learning_curve.png)", ""]
    return "\n".join(lines)


def _interval(interval) -> str:
    return f"{interval[0]:.2f}–{interval[1]:.2f}" if interval and interval[0] is not None else "n/a"


def _plot_confusion(m: dict, path: Path, about: dict) -> None:
    matrix = np.array(m["confusion"])
    with figure(path, figsize=(5, 4.3)) as (_, ax):
        ax.imshow(matrix, cmap="Blues")
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                ax.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black",
                    fontsize=9,
                )
        ax.set_xlabel("predicted int_score")
        ax.set_ylabel("label (Llama-3)" if "llama" in about["eval_source"].lower() else "label")
        ax.set_title(f"{about['backbone']}: F1@3 {m['f1']:.2f}, macro-F1 {m['macro_f1']:.2f}, n={m['n']}")
        ax.set_xticks(range(matrix.shape[1]))
        ax.set_yticks(range(matrix.shape[0]))


def _plot_curve(curve: list[dict], path: Path, about: dict) -> None:
    rows = [p["rows"] for p in curve]
    with figure(path, figsize=(5, 3.6)) as (_, ax):
        from matplotlib.ticker import NullFormatter

        for key, label in (("f1", "F1 of score ≥ 3"), ("macro_f1", "macro-F1"), ("spearman", "Spearman")):
            ax.plot(rows, [p[key] for p in curve], marker="o", label=label)
        ax.set_xscale("log")
        ax.set_xticks(rows)
        ax.set_xticklabels([str(r) for r in rows])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("training labels")
        ax.set_ylim(0, 1)
        ax.set_title(f"{about['backbone']}: learning curve (val n={about.get('eval_rows', '?')})")
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(alpha=0.3)

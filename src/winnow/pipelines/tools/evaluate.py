"""`winnow evaluate --model PATH --tasks a,b [--limit N] [--output results.json]`: any causal LM, zero-shot.

PATH is a HF model folder (config.json + weights + tokenizer, e.g. an ablation's seed-<s>/model/) or a
.gguf file (de-quantised by transformers). Prints a table; --output writes {task: {"acc", "acc_norm", "n",
...}} with fractions. Tasks that finish are written as they finish, so a long run can be watched.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from winnow.errors import ConfigError
from winnow.files import write_json
from winnow.pipelines.execution import offline_environment
from winnow.proxy.tasks import TASKS


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="a HF model folder or a .gguf file")
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated benchmark tasks (default: all)")
    p.add_argument("--limit", type=int, default=None, help="items per task (fixed seed sample)")
    p.add_argument("--output", help="write {task: {acc, acc_norm, n}} as JSON here")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=1234)


def main(args) -> int:
    offline_environment()
    import torch  # heavy: torch and the evaluator load only when the command runs

    from winnow.proxy.evaluate import evaluate, format_table, load_model

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ConfigError(f"--tasks: unknown {unknown}; known: {', '.join(TASKS)}")
    if not Path(args.model).exists():
        raise ConfigError(f"--model: no such file or folder {args.model!r}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer = load_model(args.model, device=device)
    results: dict = {}
    started = time.time()
    for task in tasks:
        t0 = time.time()
        results.update(
            evaluate(
                model,
                tokenizer,
                [task],
                limit=args.limit,
                seed=args.seed,
                batch_size=args.batch_size,
                show_progress=sys.stderr.isatty(),
            )
        )
        results[task]["seconds"] = round(time.time() - t0, 1)
        if args.output:
            _write(args.output, results)
    print(format_table(results))
    print(f"({args.model}; limit {args.limit}, seed {args.seed}; {time.time() - started:.0f} s on {device})")
    return 0


def _write(path: str, results: dict) -> None:
    write_json(path, results)

"""`winnow evaluate --model PATH --tasks a,b [--limit N] [--output results.json]`: any causal LM, zero-shot.

PATH is a HF model folder (config.json + weights + tokenizer, e.g. an ablation's seed-<s>/model/) or a
.gguf file (de-quantised by transformers). Prints a table; --output writes {task: {"acc", "acc_norm", "n",
...}} with fractions. Tasks that finish are written as they finish, so a long run can be watched.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from pipelines.config import ConfigError
from pipelines.executors import offline_environment


def main(args) -> int:
    offline_environment()
    import torch

    from proxy.evaluate import evaluate, format_table, load_model
    from proxy.tasks import TASKS

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
        results.update(evaluate(model, tokenizer, [task], limit=args.limit, seed=args.seed,
                                batch_size=args.batch_size, show_progress=sys.stderr.isatty()))
        results[task]["seconds"] = round(time.time() - t0, 1)
        if args.output:
            _write(args.output, results)
    print(format_table(results))
    print(f"({args.model}; limit {args.limit}, seed {args.seed}; {time.time() - started:.0f} s on {device})")
    return 0


def _write(path: str, results: dict) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    os.replace(tmp, target)

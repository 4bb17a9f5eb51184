"""`winnow ablate`: for each ablation in the config, tokenize → train (one run per seed) → evaluate.

    <output_dir>/ablations/
      tokenizer/tokenizer.json        one tokenizer for every ablation (GPT-2 BPE, or a corpus BPE for cpu-tiny)
      <name>/tokens/shuffled.ds       the ablation's tokens (EOS-separated, shuffled; + .index, .metadata), written once
      <name>/logs/tokenize/, merge/   datatrove logs of the two steps (launched by winnow.pipelines.execution.launch):
                                      tokenize (executor.tasks tasks, one shard per source file), merge (one task)
      <name>/seed-<s>/                train.json, metrics.jsonl, ckpt.pt, model/, final.json, eval.json
      <name>/summary.json             tokens, documents, per seed: final validation loss and benchmark results
      summary.json                    all ablations

Every part resumes: completed tokenization tasks are skipped by datatrove, a training run continues from
its last checkpoint, an evaluation with the same tasks/limit/seed is not repeated.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from winnow.files import write_json
from winnow.pipelines.config import AblateConfig, AblationSource, ConfigError, RunConfig
from winnow.pipelines.execution import Step, launch, offline_environment
from winnow.pipelines.progress import show_progress
from winnow.pipelines.status import wait_for_stage
from winnow.proxy.evaluate import evaluate, load_model
from winnow.proxy.model import preset
from winnow.proxy.tokenize import (
    count_documents,
    gpt2_tokenizer_json,
    load_tokenizer,
    merge_pipeline,
    sample_texts,
    source_files,
    token_files,
    tokenize_pipeline,
    train_corpus_bpe,
)
from winnow.proxy.train import TrainConfig, train

STAGE = "ablate"


def run(cfg: RunConfig, args=None) -> int:
    offline_environment()
    acfg = cfg.ablate
    if not acfg.ablations:
        raise ConfigError(f"{cfg.source_file}: ablate.ablations is empty (add at least one {{name, data}})")
    _check_sources(cfg, acfg)
    root = cfg.stage_dir(STAGE)
    root.mkdir(parents=True, exist_ok=True)
    tokenizer_path = prepare_tokenizer(acfg, root / "tokenizer")

    summaries = {}
    for ablation in acfg.ablations:
        started = time.time()
        folder = root / ablation.name
        tokenize(cfg, ablation, tokenizer_path, folder)
        if getattr(args, "only_tokenize", False):
            for seed in acfg.seeds:
                seed_dir = folder / f"seed-{seed}"
                seed_dir.mkdir(parents=True, exist_ok=True)
                write_json(
                    seed_dir / "train.json",
                    asdict(train_config(acfg, folder / "tokens", tokenizer_path, seed_dir, seed)),
                )
            print(
                f"winnow ablate: {ablation.name}: tokenized; train with "
                f"`torchrun -m winnow.proxy.train --config {folder}/seed-<s>/train.json`",
                file=sys.stderr,
            )
            continue
        runs = {}
        for seed in acfg.seeds:
            seed_dir = folder / f"seed-{seed}"
            final = train_one(acfg, folder / "tokens", tokenizer_path, seed_dir, seed)
            results = evaluate_one(acfg, seed_dir)
            runs[str(seed)] = {
                "final_val_loss": final["final_val_loss"],
                "tokens_trained": final["tokens_trained"],
                "eval": results,
            }
        summaries[ablation.name] = _write_ablation_summary(folder, ablation, runs, time.time() - started)
        print(
            f"winnow ablate: {ablation.name}: {summaries[ablation.name]['tokens']:,} tokens, "
            f"val loss {[r['final_val_loss'] for r in runs.values()]}",
            file=sys.stderr,
        )
    if summaries:
        write_json(root / "summary.json", {"ablations": summaries, "config": acfg.model_dump()})
    return 0


def _check_sources(cfg: RunConfig, acfg: AblateConfig) -> None:
    for ablation in acfg.ablations:
        if not source_files(ablation.data):
            raise ConfigError(
                f"{cfg.source_file}: ablate.ablations[{ablation.name}].data: no JSONL/Parquet "
                f"file matches {ablation.data!r}"
            )


def prepare_tokenizer(acfg: AblateConfig, folder: Path) -> Path:
    """GPT-2's BPE, or (preset tokenizer 'corpus') a BPE trained on an equal share of every ablation's documents."""
    path = folder / "tokenizer.json"
    if path.exists():
        return path  # reused: every ablation and every re-run must see the same token ids
    model = replace(preset(acfg.preset), **acfg.model_overrides)
    if model.tokenizer == "corpus":
        sources = [a.data for a in acfg.ablations]
        train_corpus_bpe(sample_texts(sources, acfg.tokenizer_docs_per_source), model.corpus_vocab_size, path)
        (folder / "sources.json").write_text(
            json.dumps(
                {
                    "trained_on": sources,
                    "docs_per_source": acfg.tokenizer_docs_per_source,
                    "vocab_size": model.corpus_vocab_size,
                },
                indent=2,
            )
        )
    else:
        gpt2_tokenizer_json(path)
    return path


def tokenize(cfg: RunConfig, ablation: AblationSource, tokenizer_path: Path, folder: Path) -> None:
    """`executor.tasks` tasks tokenize the source files (one shard each), one task merges and shuffles them."""
    tokens, seed, key = folder / "tokens", cfg.ablate.seeds[0], ablation.text_key
    steps = [
        Step("tokenize", tokenize_pipeline(ablation.data, tokens, tokenizer_path, text_key=key), cfg.executor.tasks),
        Step("merge", merge_pipeline(ablation.data, tokens, tokenizer_path, seed=seed, text_key=key), tasks=1),
    ]
    launch(cfg, f"{STAGE}/{ablation.name}", steps)
    if cfg.executor.kind == "slurm":
        # On Slurm `launch` returns at submission; training reads these tokens in this process, so wait for them.

        wait_for_stage(cfg, f"{STAGE}/{ablation.name}", timeout=24 * 3600)


def train_config(acfg: AblateConfig, tokens_dir: Path, tokenizer_path: Path, seed_dir: Path, seed: int):
    return TrainConfig(
        tokens_dir=str(tokens_dir),
        tokenizer=str(tokenizer_path),
        out_dir=str(seed_dir),
        preset=acfg.preset,
        model_overrides=dict(acfg.model_overrides),
        seed=seed,
        tokens=acfg.tokens,
        batch_size=acfg.batch_size,
        micro_batch_size=acfg.micro_batch_size,
        learning_rate=acfg.learning_rate,
        schedule=acfg.schedule,
        eval_every=acfg.eval_every,
        checkpoint_every=acfg.eval_every,
        threads=acfg.threads,
        device=acfg.device,
        progress=show_progress(),
    )


def train_one(acfg: AblateConfig, tokens_dir: Path, tokenizer_path: Path, seed_dir: Path, seed: int) -> dict:
    final_path = seed_dir / "final.json"
    tcfg = train_config(acfg, tokens_dir, tokenizer_path, seed_dir, seed)
    if final_path.exists():
        final = json.loads(final_path.read_text())
        if _same_run(final.get("train", {}), asdict(tcfg)):
            return final
    seed_dir.mkdir(parents=True, exist_ok=True)
    # the exact configuration, so a cluster user can re-run it with torchrun (see docs/sections/ablate.md)
    write_json(seed_dir / "train.json", asdict(tcfg))
    return train(tcfg)


def _same_run(a: dict, b: dict) -> bool:
    """Two training configurations that differ only in how progress is shown train the same model."""
    return {k: v for k, v in a.items() if k != "progress"} == {k: v for k, v in b.items() if k != "progress"}


def evaluate_one(acfg: AblateConfig, seed_dir: Path) -> dict:
    import torch

    eval_path = seed_dir / "eval.json"
    request = {
        "tasks": acfg.tasks,
        "limit": acfg.eval_limit,
        "seed": acfg.eval_seed,
        "wikitext_articles": acfg.wikitext_articles,
    }
    if eval_path.exists():
        saved = json.loads(eval_path.read_text())
        if saved.get("request") == request:
            return saved["results"]
    torch.set_num_threads(acfg.threads)
    device = "cuda" if acfg.device != "cpu" and torch.cuda.is_available() else "cpu"
    model, tokenizer = load_model(seed_dir / "model", device=device)
    results = evaluate(
        model,
        tokenizer,
        acfg.tasks,
        limit=acfg.eval_limit,
        seed=acfg.eval_seed,
        batch_size=acfg.eval_batch_size,
        benchmarks_dir=acfg.benchmarks_dir,
        show_progress=show_progress(),
        wikitext_articles=acfg.wikitext_articles,
    )
    write_json(eval_path, {"request": request, "results": results})
    return results


def _write_ablation_summary(folder: Path, ablation: AblationSource, runs: dict, seconds: float) -> dict:
    n_tokens = sum(p.stat().st_size for p in token_files(folder / "tokens"))
    token_bytes = 2 if _vocab_size(folder) <= 65536 else 4
    summary = {
        "name": ablation.name,
        "data": ablation.data,
        "tokens": n_tokens // token_bytes,
        "documents": count_documents(folder / "tokens"),
        "runs": runs,
        "seconds": round(seconds, 1),
    }
    write_json(folder / "summary.json", summary)
    return summary


def _vocab_size(folder: Path) -> int:
    return load_tokenizer(folder.parent / "tokenizer" / "tokenizer.json").get_vocab_size()

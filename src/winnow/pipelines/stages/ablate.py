"""`winnow ablate`: for each ablation in the config, tokenize → train (one run per seed) → evaluate.

    <output_dir>/ablations/
      tokenizer/tokenizer.json        one tokenizer for every ablation (GPT-2 BPE, or a corpus BPE for cpu-tiny)
      validation/                     the shared validation set, built once (winnow.proxy.validation): manifest.json
                                      (parts, selection rule, tokenizer sha256, digest), documents.jsonl (the held-out
                                      documents), held_out.sha1 (their text hashes: left out of every ablation's
                                      tokens), tokens/<k>-<part>.ds (one part per ablation source + WikiText-2 valid,
                                      about `validation_tokens` tokens each)
      <name>/tokens/shuffled.ds       the ablation's tokens (EOS-separated, shuffled; + .index, .metadata), written
                                      once; held_out.json: the validation set (digest) whose documents were left out
      <name>/logs/tokenize/, merge/   datatrove logs of the two steps (launched by winnow.pipelines.execution.launch):
                                      tokenize (executor.tasks tasks, one shard per source file), merge (one task)
      <name>/seed-<s>/                train.json, metrics.jsonl, ckpt.pt, model/, final.json, eval.json,
                                      results.json + samples_<task>.jsonl (lm-eval's layout, per-item records)
      <name>/summary.json             tokens, documents, per seed: validation losses (final_val_loss on the ablation's
                                      own held-out tail, val_loss_shared on the shared set), tokens/s, MFU, benchmarks
      summary.json                    all ablations

Every part resumes: completed tokenization tasks are skipped by datatrove, a training run continues from
its last checkpoint, an evaluation with the same tasks/limit/seed is not repeated. The shared validation set is kept
across re-runs and config changes (adding an ablation does not change it; the new source is named as not covered);
tokens tokenized against another validation set are refused. `--only-tokenize` stops after tokenizing (train.json per
run, for torchrun); `--emit-nanotron DIR` too, writing a nanotron config per run instead (winnow.proxy.nanotron).
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
from winnow.pipelines.registry import reads_stage
from winnow.pipelines.status import wait_for_stage
from winnow.proxy.evaluate import RECORDS_VERSION, evaluate_with_samples, load_model, write_lm_eval_outputs
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
from winnow.proxy.validation import HELD_OUT

STAGE = "ablate"


def run(cfg: RunConfig, args=None) -> int:
    offline_environment()
    acfg = cfg.ablate
    if not acfg.ablations:
        raise ConfigError(f"{cfg.source_file}: ablate.ablations is empty (add at least one {{name, data}})")
    acfg = write_mixes(cfg, acfg)
    _check_sources(cfg, acfg)
    root = cfg.stage_dir(STAGE)
    root.mkdir(parents=True, exist_ok=True)
    tokenizer_path = prepare_tokenizer(acfg, root / "tokenizer")
    validation = prepare_validation(cfg, acfg, root / "validation", tokenizer_path)
    emit_nanotron = getattr(args, "emit_nanotron", None)

    summaries = {}
    for ablation in acfg.ablations:
        started = time.time()
        folder = root / ablation.name
        tokenize(cfg, ablation, tokenizer_path, folder, validation)
        if emit_nanotron:
            from winnow.proxy.nanotron import write_nanotron_configs

            dp = getattr(args, "nanotron_dp", 8)
            emitted = write_nanotron_configs(acfg, ablation.name, folder / "tokens", tokenizer_path, emit_nanotron, dp)
            for path in emitted:
                print(f"winnow ablate: {ablation.name}: nanotron config {path}", file=sys.stderr)
            continue
        if getattr(args, "only_tokenize", False):
            for seed in acfg.seeds:
                seed_dir = folder / f"seed-{seed}"
                seed_dir.mkdir(parents=True, exist_ok=True)
                write_json(
                    seed_dir / "train.json",
                    asdict(train_config(acfg, folder / "tokens", tokenizer_path, seed_dir, seed, validation)),
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
            final = train_one(acfg, folder / "tokens", tokenizer_path, seed_dir, seed, validation)
            results = evaluate_one(acfg, seed_dir)
            runs[str(seed)] = {
                "final_val_loss": final["final_val_loss"],  # the ablation's own held-out tail
                "val_loss_shared": final.get("val_loss_shared"),  # the shared validation set: comparable across
                "val_loss_shared_parts": final.get("val_loss_shared_parts"),
                "tokens_per_s": final.get("tokens_per_s"),
                "mfu": final.get("mfu"),
                "tokens_trained": final["tokens_trained"],
                "eval": results,
            }
        held_out = _held_out_documents(cfg, ablation.name)
        summaries[ablation.name] = _write_ablation_summary(folder, ablation, runs, time.time() - started, held_out)
        print(
            f"winnow ablate: {ablation.name}: {summaries[ablation.name]['tokens']:,} tokens, "
            f"val loss {[r['final_val_loss'] for r in runs.values()]}, "
            f"shared val loss {[r['val_loss_shared'] for r in runs.values()]}",
            file=sys.stderr,
        )
    if summaries:
        write_json(root / "summary.json", {"ablations": summaries, "config": acfg.model_dump()})
    return 0


def optional_upstream(cfg: RunConfig) -> list[str]:
    """The optional stages this one reads (registry.upstream_folders): synthesize, when an ablation trains on it."""
    paths = [p for a in cfg.ablate.ablations for p in ([a.data] if isinstance(a.data, str) else a.data)]
    return ["synthesize"] if reads_stage(cfg, "synthesize", paths) else []


def write_mixes(cfg: RunConfig, acfg: AblateConfig) -> AblateConfig:
    """Each mixed ablation (data: [sources], ratio: [shares]) written once to ablate/<name>/mix/ (winnow.proxy.mix)
    and from then on read from there, like a single source."""
    from winnow.proxy.mix import write_mix

    ablations = []
    for ablation in acfg.ablations:
        if isinstance(ablation.data, list):
            for source in ablation.data:
                if not source_files(source):
                    raise ConfigError(
                        f"{cfg.source_file}: ablate.ablations[{ablation.name}].data: no JSONL/Parquet file matches "
                        f"{source!r}"
                    )
            out = cfg.stage_dir(STAGE) / ablation.name / "mix"
            try:
                write_mix(ablation.data, ablation.ratio, out, acfg.seeds[0], ablation.text_key)
            except ValueError as e:
                raise ConfigError(f"{cfg.source_file}: ablate.ablations[{ablation.name}]: {e}") from None
            ablation = AblationSource(name=ablation.name, data=str(out))
        ablations.append(ablation)
    return acfg.model_copy(update={"ablations": ablations})


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


def prepare_validation(cfg: RunConfig, acfg: AblateConfig, folder: Path, tokenizer_path: Path) -> Path:
    """The shared validation set (winnow.proxy.validation), built on first use and kept: every ablation and re-run
    is measured on the same tokens. Sources added later are named, not silently folded in."""
    from winnow.proxy import validation

    sources = [{"name": a.name, "data": a.data, "text_key": a.text_key} for a in acfg.ablations]
    manifest = validation.load_manifest(folder)
    if manifest is None:
        validation.build(
            folder,
            sources,
            tokenizer_path,
            acfg.validation_tokens,
            Path(acfg.benchmarks_dir) / "wikitext-2" / "valid.txt",
        )
        return folder
    if manifest["tokenizer_sha256"] != validation.file_sha256(tokenizer_path):
        raise ConfigError(
            f"{folder}: built with another tokenizer than {tokenizer_path}; delete {folder} and every "
            f"ablate/<name>/tokens to rebuild them together"
        )
    missing = validation.uncovered(manifest, sources)
    if missing:
        built_from = ", ".join(p["name"] for p in manifest["parts"])
        print(
            f"winnow ablate: the shared validation set {folder} was built from {built_from}; "
            f"{', '.join(missing)} not among them: still measured on the same tokens (comparable), but their own "
            f"documents are not represented. To rebuild from all sources, delete {folder} and every "
            f"ablate/<name>/tokens (they leave its documents out) and re-run",
            file=sys.stderr,
        )
    return folder


def tokenize(cfg: RunConfig, ablation: AblationSource, tokenizer_path: Path, folder: Path, validation: Path) -> None:
    """`executor.tasks` tasks tokenize the source files (one shard each, leaving out the shared validation set's
    documents), one task merges and shuffles them."""
    from winnow.proxy.validation import load_manifest

    tokens, seed, key = folder / "tokens", cfg.ablate.seeds[0], ablation.text_key
    record = tokens / "held_out.json"
    digest = load_manifest(validation)["digest"]
    if record.exists() or token_files(tokens) or (tokens / "shards").exists():
        recorded = json.loads(record.read_text())["digest"] if record.exists() else None
        if recorded != digest:
            raise ConfigError(
                f"{tokens}: tokenized without leaving out the documents of the shared validation set {validation} "
                f"(held_out digest {recorded} ≠ {digest}); delete {tokens} to tokenize again"
            )
    else:
        write_json(record, {"validation": str(validation), "digest": digest})
    held_out = validation / HELD_OUT
    steps = [
        Step(
            "tokenize",
            tokenize_pipeline(ablation.data, tokens, tokenizer_path, text_key=key, held_out=held_out),
            cfg.executor.tasks,
        ),
        Step("merge", merge_pipeline(ablation.data, tokens, tokenizer_path, seed=seed, text_key=key), tasks=1),
    ]
    launch(cfg, f"{STAGE}/{ablation.name}", steps)
    if cfg.executor.kind == "slurm":
        # On Slurm `launch` returns at submission; training reads these tokens in this process, so wait for them.

        wait_for_stage(cfg, f"{STAGE}/{ablation.name}", timeout=24 * 3600)


def train_config(
    acfg: AblateConfig,
    tokens_dir: Path,
    tokenizer_path: Path,
    seed_dir: Path,
    seed: int,
    validation: Path | None = None,
):
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
        shared_val_dir=str(validation) if validation else None,
        compile=acfg.compile,
        parallel=acfg.parallel,
        peak_tflops=acfg.peak_tflops,
    )


def train_one(
    acfg: AblateConfig, tokens_dir: Path, tokenizer_path: Path, seed_dir: Path, seed: int, validation: Path | None
) -> dict:
    final_path = seed_dir / "final.json"
    tcfg = train_config(acfg, tokens_dir, tokenizer_path, seed_dir, seed, validation)
    if final_path.exists():
        final = json.loads(final_path.read_text())
        if _same_run(final.get("train", {}), asdict(tcfg)):
            return final
    seed_dir.mkdir(parents=True, exist_ok=True)
    # the exact configuration, so a cluster user can re-run it with torchrun (see docs/sections/ablate.md)
    write_json(seed_dir / "train.json", asdict(tcfg))
    return train(tcfg)


def _same_run(a: dict, b: dict) -> bool:
    """Two training configurations that differ only in how progress is shown or MFU measured train the same model."""
    ignored = ("progress", "peak_tflops")
    return {k: v for k, v in a.items() if k not in ignored} == {k: v for k, v in b.items() if k not in ignored}


def evaluate_one(acfg: AblateConfig, seed_dir: Path) -> dict:
    import torch

    eval_path = seed_dir / "eval.json"
    request = {
        "tasks": acfg.tasks,
        "limit": acfg.eval_limit,
        "limit_mode": acfg.eval_limit_mode,
        "seed": acfg.eval_seed,
        "wikitext_articles": acfg.wikitext_articles,
        "records": RECORDS_VERSION,  # metric definitions and per-item record format
    }
    if eval_path.exists() and (seed_dir / "results.json").exists():
        saved = json.loads(eval_path.read_text())
        if saved.get("request") == request:
            return saved["results"]
    torch.set_num_threads(acfg.threads)
    device = "cuda" if acfg.device != "cpu" and torch.cuda.is_available() else "cpu"
    model, tokenizer = load_model(seed_dir / "model", device=device)
    results, samples = evaluate_with_samples(
        model,
        tokenizer,
        acfg.tasks,
        limit=acfg.eval_limit,
        seed=acfg.eval_seed,
        batch_size=acfg.eval_batch_size,
        benchmarks_dir=acfg.benchmarks_dir,
        show_progress=show_progress(),
        wikitext_articles=acfg.wikitext_articles,
        limit_mode=acfg.eval_limit_mode,
    )
    # lm-eval-shaped results.json + samples_<task>.jsonl first: eval.json marks the evaluation done
    lm_request = {**request, "benchmarks_dir": acfg.benchmarks_dir, "batch_size": acfg.eval_batch_size}
    write_lm_eval_outputs(seed_dir, results, samples, {**lm_request, "device": device}, seed_dir / "model")
    write_json(eval_path, {"request": request, "results": results})
    return results


def _held_out_documents(cfg: RunConfig, name: str) -> int:
    """Documents the tokenize step left out because they are in the shared validation set (its datatrove stats)."""
    from winnow.pipelines.execution import logging_dir
    from winnow.pipelines.summary import step_counters

    # step_counters reads the per-task stats, whose counters are {"total": n} locally and plain numbers on Slurm
    counters = step_counters(logging_dir(cfg, f"{STAGE}/{name}", "tokenize"))
    return sum(counter.get("held_out_for_validation", 0) for _, counter in counters)


def _write_ablation_summary(
    folder: Path, ablation: AblationSource, runs: dict, seconds: float, held_out: int = 0
) -> dict:
    n_tokens = sum(p.stat().st_size for p in token_files(folder / "tokens"))
    token_bytes = 2 if _vocab_size(folder) <= 65536 else 4
    summary = {
        "name": ablation.name,
        "data": ablation.data,
        "tokens": n_tokens // token_bytes,
        "documents": count_documents(folder / "tokens"),
        # in ablate/validation/documents.jsonl instead: documents + held_out_documents = the source's documents
        "held_out_documents": held_out,
        "runs": runs,
        "seconds": round(seconds, 1),
    }
    write_json(folder / "summary.json", summary)
    return summary


def _vocab_size(folder: Path) -> int:
    return load_tokenizer(folder.parent / "tokenizer" / "tokenizer.json").get_vocab_size()

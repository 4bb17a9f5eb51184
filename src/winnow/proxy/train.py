"""Train one proxy model on one ablation's tokens, nanoGPT style: config, data, model, optimiser, loop, checkpoint.

Every ablation of a run gets the same preset, token budget, batch, seed and sampling order: the batch of
step s is drawn by a generator seeded with (seed, s), so it depends on nothing but the step — which is
also why a resumed run continues the loss curve exactly: the step is the whole data position, and the loop draws no
other random numbers, so `ckpt.pt` (model + optimiser state) and the step are all a resume needs.

    python -m winnow.proxy.train --config train.json                    # one process (CPU or one GPU)
    torchrun --nproc_per_node 8 -m winnow.proxy.train --config train.json   # DDP: each rank takes a slice of the batch

Outputs in `out_dir`: metrics.jsonl (step, tokens, loss, lr, tokens_per_s, mfu when the peak is known; at eval steps
val_loss on the ablation's own held-out tail and, with `shared_val_dir`, val_loss_shared on the shared validation set
of every ablation), ckpt.pt + ckpt.json (latest checkpoint), model/ (HF folder with tokenizer, at the end),
final.json (final losses, tokens/s and MFU of the run).

Throughput: tokens/s counts every token of every rank; model FLOPs utilisation (MFU) = tokens/s × FLOPs per token /
(ranks × peak FLOP/s), FLOPs per token by PaLM's formula (`winnow.proxy.model.flops_per_token`), the peak from
`peak_tflops` or, on a GPU, from PEAK_TFLOPS by device name (dense bf16). On a GPU: bf16 autocast, fused AdamW,
`torch.compile` (`compile: auto` = on CUDA only); several ranks are data-parallel with DDP, or with FSDP
(`parallel: fsdp`, the default for the fineweb-1.8b preset: parameters, gradients and optimiser state sharded).

A checkpoint is two files: `ckpt.pt` holds tensors only (and the step) and is loaded with `weights_only=True`, so a
file planted on a shared file system cannot run code when a run resumes; `ckpt.json` holds the rest (step, config).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from winnow.errors import WinnowError
from winnow.files import atomic_path, write_json

VALIDATION_SEED = 2**31 - 1
# dense bf16 tensor-core peak per GPU, TFLOP/s (vendor data sheets), matched as a substring of the device name
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}
FSDP_PRESETS = ("fineweb-1.8b",)  # presets whose parameters + AdamW state do not fit one GPU comfortably


@dataclass
class TrainConfig:
    tokens_dir: str
    tokenizer: str  # tokenizer.json path
    out_dir: str
    preset: str = "cpu-tiny"
    model_overrides: dict = field(default_factory=dict)  # e.g. {"context_length": 128}
    seed: int = 0
    tokens: int = 1_000_000  # token budget: steps = tokens // (batch_size * context_length)
    batch_size: int = 16  # sequences per optimiser step, all ranks and micro-batches together
    micro_batch_size: int | None = None  # per rank and forward pass; None = batch_size // world_size
    learning_rate: float = 3e-3
    min_lr_ratio: float = 0.0
    schedule: str = "wsd"  # "wsd" (warmup-stable-decay) or "cosine"
    warmup_fraction: float = 0.05
    decay_fraction: float = 0.2  # WSD: the last 20 % of steps decay linearly to min_lr
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    val_fraction: float = 0.05  # the last 5 % of the (shuffled) token stream is held out
    val_batches: int = 8
    eval_every: int = 50  # steps
    checkpoint_every: int = 50  # steps
    threads: int = 1  # CPU threads (torch.set_num_threads)
    device: str = "auto"  # auto | cpu | cuda
    progress: bool = True
    shared_val_dir: str | None = None  # the shared validation set (winnow.proxy.validation), or none
    compile: str = "auto"  # auto (on CUDA only) | true | false: torch.compile the model
    parallel: str = "auto"  # with several ranks: auto (FSDP for FSDP_PRESETS, else DDP) | ddp | fsdp
    peak_tflops: float | None = None  # per device, for MFU; None = PEAK_TFLOPS by GPU name (no MFU on CPU)


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Warmup, then WSD (constant, then linear decay over the last `decay_fraction`) or cosine."""
    warmup = max(1, int(cfg.warmup_fraction * total))
    min_lr = cfg.learning_rate * cfg.min_lr_ratio
    if step < warmup:
        return cfg.learning_rate * (step + 1) / warmup
    if cfg.schedule == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.learning_rate - min_lr)
    decay_start = total - int(cfg.decay_fraction * total)
    if step < decay_start:
        return cfg.learning_rate
    return min_lr + (cfg.learning_rate - min_lr) * (total - step) / max(1, total - decay_start)


def batch_offsets(seed: int, step: int, n_sequences: int, n_tokens: int, context: int) -> np.ndarray:
    """Start positions of the step's sequences in the first `n_tokens` tokens: a function of (seed, step) only."""
    rng = np.random.default_rng([seed, step])
    return rng.integers(0, n_tokens - context - 1, size=n_sequences)


def windows(tokens, offsets: np.ndarray, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets of the sequences starting at `offsets` (only these windows are read)."""
    x = np.stack([tokens[o : o + context + 1].astype(np.int64) for o in offsets])
    x = torch.from_numpy(x)
    return x[:, :-1], x[:, 1:]


def use_compile(setting: str, device: str) -> bool:
    if setting not in ("auto", "true", "false"):
        raise WinnowError(f"compile: {setting!r} is not one of auto, true, false")
    return setting == "true" or (setting == "auto" and device.startswith("cuda"))


def parallelism(setting: str, preset_name: str, world: int) -> str:
    """How `world` ranks share the model: "single", "ddp" or "fsdp"."""
    if setting not in ("auto", "ddp", "fsdp"):
        raise WinnowError(f"parallel: {setting!r} is not one of auto, ddp, fsdp")
    if world == 1:
        return "single"
    if setting == "auto":
        return "fsdp" if preset_name in FSDP_PRESETS else "ddp"
    return setting


def peak_flops(setting: float | None, device: str) -> float | None:
    """Peak FLOP/s of one device: the setting, else the table by CUDA device name; None when unknown (CPU)."""
    if setting:
        return setting * 1e12
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
        for key, tflops in PEAK_TFLOPS.items():
            if key in name:
                return tflops * 1e12
    return None


def train(cfg: TrainConfig) -> dict:
    from tqdm import tqdm

    from winnow.proxy.model import (
        build_model,
        count_parameters,
        decoder_layers,
        flops_per_token,
        output_layer_flops,
        preset,
    )
    from winnow.proxy.tokenize import EOS, hf_tokenizer, load_tokenizer, read_tokens
    from winnow.proxy.validation import read_parts

    # ---- setup: DDP/FSDP when launched by torchrun, device, precision
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    mode = parallelism(cfg.parallel, cfg.preset, world)
    if ddp:
        torch.distributed.init_process_group(backend="nccl" if device == "cuda" else "gloo")
        if device == "cuda":
            device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
            torch.cuda.set_device(device)
    master = rank == 0
    torch.set_num_threads(cfg.threads)
    # bf16 autocast on GPU; fp32 on CPU (bf16 autocast is slower than fp32 on the CPUs we measured)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else nullcontext()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    # ---- data: one token stream, memory-mapped (never read whole into RAM); the tail is validation
    tokenizer = load_tokenizer(cfg.tokenizer)
    vocab_size, eos_id = tokenizer.get_vocab_size(), tokenizer.token_to_id(EOS)
    mcfg = preset(cfg.preset).with_vocab(vocab_size)
    if cfg.model_overrides:
        mcfg = replace(mcfg, **cfg.model_overrides)
    context = mcfg.context_length
    tokens = read_tokens(cfg.tokens_dir, vocab_size)
    n_val = max(int(cfg.val_fraction * len(tokens)), (context + 1) * 2)
    n_train = len(tokens) - n_val  # tokens[:n_train] train, tokens[n_train:] validation
    if n_train < 2 * (context + 1):
        raise ValueError(f"{cfg.tokens_dir}: only {len(tokens)} tokens, too few for context {context}")
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by {world} ranks")
    per_rank = cfg.batch_size // world
    micro = min(cfg.micro_batch_size or per_rank, per_rank)
    accumulation = math.ceil(per_rank / micro)
    total_steps = max(1, cfg.tokens // (cfg.batch_size * context))
    shared = read_parts(cfg.shared_val_dir) if cfg.shared_val_dir else {}  # part name → tokens

    # ---- model and optimiser (seeded: the same initial weights for every ablation of a seed)
    torch.manual_seed(cfg.seed)
    model = build_model(mcfg, eos_token_id=eos_id).to(device)
    raw_model = model
    if mode == "fsdp":
        # FSDP2: each block's parameters sharded over the ranks, gathered for its forward/backward only; wrapped
        # before the optimiser is built, so AdamW holds the shards (and its state is sharded too)
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        shard = {}
        if "cuda" in device:  # bf16 compute, fp32 gradient reduction (the master weights stay fp32)
            shard["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        for layer in decoder_layers(model):
            fully_shard(layer, **shard)
        fully_shard(model, **shard)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.learning_rate,
        betas=(cfg.beta1, cfg.beta2),
        fused=device.startswith("cuda"),
    )
    if mode == "ddp":
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if "cuda" in device else None)
    if use_compile(cfg.compile, device):
        model = torch.compile(model)  # raw_model keeps the parameter names for checkpoints and save_pretrained

    # ---- resume: the latest checkpoint, and metrics.jsonl cut back to it
    start_step = 0
    ckpt_path, metrics_path = out / "ckpt.pt", out / "metrics.jsonl"
    if ckpt_path.exists():
        state = _load_checkpoint(ckpt_path, device)
        if mode == "fsdp":
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

            set_state_dict(
                raw_model,
                optimizer,
                model_state_dict=state["model"],
                optim_state_dict=state["optimizer"],
                options=StateDictOptions(full_state_dict=True),
            )
        else:
            raw_model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        start_step = state["step"]
    if master:
        _truncate_metrics(metrics_path, start_step)

    @torch.no_grad()
    def val_loss() -> float:
        model.eval()
        losses = []
        for i in range(cfg.val_batches):
            # the same validation windows for every seed and ablation of a run
            offsets = n_train + batch_offsets(VALIDATION_SEED, i, micro, n_val, context)
            x, y = windows(tokens, offsets, context)
            with autocast:
                losses.append(_loss(raw_model, x.to(device), y.to(device)).item())
        model.train()
        return float(np.mean(losses))

    @torch.no_grad()
    def shared_val_losses() -> dict[str, float]:
        """Mean next-token loss per part of the shared set, over disjoint windows covering each part (every token
        predicted once, up to the last full window): the same tokens for every ablation, seed and re-run."""
        model.eval()
        losses = {}
        for name, part in shared.items():
            starts = np.arange(0, len(part) - context - 1, context) if len(part) > context + 1 else np.zeros(0, int)
            total, count = 0.0, 0
            for b in range(0, len(starts), micro):
                x, y = windows(part, starts[b : b + micro], context)
                with autocast:
                    total += _loss(raw_model, x.to(device), y.to(device)).item() * y.numel()
                count += y.numel()
            losses[name] = total / max(count, 1)
        model.train()
        return losses

    # ---- loop
    params = count_parameters(raw_model)
    flops = flops_per_token(mcfg, params["non_embedding"])
    peak = peak_flops(cfg.peak_tflops, device)
    shared_losses: dict[str, float] = {}
    bar = tqdm(
        total=total_steps, initial=start_step, disable=not (master and cfg.progress), unit="step", dynamic_ncols=True
    )
    model.train()
    t_last = t_start = time.perf_counter()
    eval_seconds = 0.0
    for step in range(start_step, total_steps):
        lr = lr_at(step, total_steps, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        offsets = batch_offsets(cfg.seed, step, cfg.batch_size, n_train, context)
        offsets = offsets[rank * per_rank : (rank + 1) * per_rank]
        loss_sum = 0.0
        for m in range(accumulation):
            x, y = windows(tokens, offsets[m * micro : (m + 1) * micro], context)
            sync = m == accumulation - 1
            if mode == "fsdp":
                raw_model.set_requires_gradient_sync(sync)
            with nullcontext() if sync or mode != "ddp" else model.no_sync(), autocast:
                loss = _loss(model, x.to(device), y.to(device)) / accumulation
            loss.backward()
            loss_sum += loss.item()
        if ddp:
            reduced = torch.tensor(loss_sum, device=device)
            torch.distributed.all_reduce(reduced, op=torch.distributed.ReduceOp.AVG)
            loss_sum = reduced.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        if device.startswith("cuda"):
            torch.cuda.synchronize()  # the step's kernels finished: the time below is the step's
        now = time.perf_counter()
        tokens_per_s = cfg.batch_size * context / max(now - t_last, 1e-9)
        done = step + 1
        record = {
            "step": done,
            "tokens": done * cfg.batch_size * context,
            "loss": round(loss_sum, 6),
            "lr": lr,
            "tokens_per_s": round(tokens_per_s, 1),
        }
        if peak:
            record["mfu"] = round(tokens_per_s * flops / (world * peak), 4)
        if done % cfg.eval_every == 0 or done == total_steps:
            record["val_loss"] = round(val_loss(), 6)
            if shared:
                shared_losses = shared_val_losses()
                record["val_loss_shared"] = round(float(np.mean(list(shared_losses.values()))), 6)
                record["val_loss_shared_parts"] = {k: round(v, 6) for k, v in shared_losses.items()}
        if master:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            if (done % cfg.checkpoint_every == 0 or done == total_steps) and mode != "fsdp":
                _save_checkpoint(ckpt_path, raw_model.state_dict(), optimizer.state_dict(), done, cfg)
        if mode == "fsdp" and (done % cfg.checkpoint_every == 0 or done == total_steps):
            model_state, optim_state = _full_state(raw_model, optimizer)  # a collective: every rank takes part
            if master:
                _save_checkpoint(ckpt_path, model_state, optim_state, done, cfg)
        bar.set_postfix(loss=f"{loss_sum:.3f}", tok_s=f"{tokens_per_s:,.0f}")
        bar.update(1)
        t_last = time.perf_counter()  # evaluation and checkpoint time is not training throughput
        eval_seconds += t_last - now
    bar.close()
    steps_run = total_steps - start_step
    train_seconds = time.perf_counter() - t_start - eval_seconds
    run_tokens_per_s = steps_run * cfg.batch_size * context / train_seconds if steps_run else None
    run_mfu = run_tokens_per_s * flops / (world * peak) if peak and run_tokens_per_s else None
    if master and run_tokens_per_s:
        mfu_text = f", MFU {100 * run_mfu:.1f} % of {world} × {peak / 1e12:,.4g} TFLOP/s" if run_mfu else ""
        print(
            f"winnow.proxy.train: {out.name}: {run_tokens_per_s:,.0f} tokens/s over {steps_run} steps on "
            f"{world} × {device}{mfu_text} ({flops / 1e6:,.1f} MFLOPs/token)",
            file=sys.stderr,
        )

    # ---- final model (HF folder) and summary
    summary = {}
    full_state = _full_state(raw_model, optimizer)[0] if mode == "fsdp" else None  # a collective: every rank
    if master:
        raw_model.save_pretrained(out / "model", **({"state_dict": full_state} if full_state is not None else {}))
        hf_tokenizer(cfg.tokenizer).save_pretrained(out / "model")
        records = [json.loads(line) for line in metrics_path.read_text().splitlines()]
        vals = [r["val_loss"] for r in records if "val_loss" in r]
        shared_records = [r for r in records if "val_loss_shared" in r]
        summary = {
            "steps": total_steps,
            "tokens_trained": total_steps * cfg.batch_size * context,
            "final_loss": records[-1]["loss"] if records else None,
            "final_val_loss": vals[-1] if vals else None,
            "val_loss_shared": shared_records[-1]["val_loss_shared"] if shared_records else None,
            "val_loss_shared_parts": shared_records[-1]["val_loss_shared_parts"] if shared_records else None,
            # this process's steps (a resumed run measures the steps after the resume)
            "tokens_per_s": round(run_tokens_per_s, 1) if run_tokens_per_s else None,
            "mfu": round(run_mfu, 4) if run_mfu else None,
            "flops_per_token": flops,
            # the same with the output projection counted (nanoGPT's convention; see model.output_layer_flops)
            "mfu_with_output_layer": round(run_mfu * (flops + output_layer_flops(mcfg)) / flops, 4)
            if run_mfu
            else None,
            "peak_flops_per_device": peak,
            "parallel": mode,
            "compiled": use_compile(cfg.compile, device),
            "parameters": params,
            "model": mcfg.to_dict(),
            "train": asdict(cfg),
            "world_size": world,
            "device": device,
            "tokens_in_dataset": int(len(tokens)),
            "val_tokens": int(n_val),
        }
        (out / "final.json").write_text(json.dumps(summary, indent=2))
    if ddp:
        torch.distributed.destroy_process_group()
    return summary


def _loss(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy; targets are already shifted (x = tokens[:-1], y = tokens[1:])."""
    logits = model(input_ids=x).logits
    return torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))


def _full_state(model, optimizer) -> tuple[dict, dict]:
    """FSDP: the whole model and optimiser state gathered from the shards, on the CPU (keyed by parameter name)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def _save_checkpoint(path: Path, model_state: dict, optimizer_state: dict, step: int, cfg: TrainConfig) -> None:
    """`ckpt.pt`: what `torch.load(weights_only=True)` reads (state dicts and the step that pairs it with its JSON);
    `ckpt.json`: the step and the config. Each write is atomic (a kill mid-write leaves the previous file intact);
    the weights go first, so a kill between the two leaves the JSON one checkpoint behind, never ahead."""
    with atomic_path(path) as tmp:
        torch.save({"model": model_state, "optimizer": optimizer_state, "step": step}, tmp)
    write_json(path.with_suffix(".json"), {"step": step, "weights": path.name, "config": asdict(cfg)})


def _load_checkpoint(path: Path, device: str) -> dict:
    """The state in `path` (model, optimizer, step), loaded without running code, and checked against its JSON."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        found = [line.split("error:", 1)[1] for line in str(e).splitlines() if "WeightsUnpickler error:" in line]
        what = found[0].split(" was not")[0].strip() if found else "not tensors"
        raise WinnowError(
            f"{path}: refused to load a checkpoint that holds more than tensors ({what}); winnow.proxy.train never "
            f"writes one: delete it to train from step 0"
        ) from None
    if not (isinstance(state, dict) and {"model", "optimizer", "step"} <= state.keys() and type(state["step"]) is int):
        raise WinnowError(f"{path}: not a winnow.proxy.train checkpoint (no model, optimizer and step); delete it")
    meta_path = path.with_suffix(".json")
    if meta_path.exists():  # absent beside a checkpoint written before the JSON existed (it held the step itself)
        try:
            meta_step = int(json.loads(meta_path.read_text())["step"])
        except (ValueError, KeyError, TypeError) as e:
            raise WinnowError(f"{meta_path}: unreadable ({e}); delete it to resume from {path} alone") from None
        # behind the weights: killed between the two writes, and the weights are the newer complete state (resume
        # from them); ahead of them: no run of ours writes that
        if meta_step > state["step"]:
            raise WinnowError(
                f"{meta_path} is at step {meta_step} but {path} at step {state['step']}: the two files are from "
                f"different runs; delete both to train from step 0"
            )
    return state


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records written after the checkpoint we resume from (the run repeats those steps)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in keep))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="train one proxy model (see module docstring)")
    parser.add_argument("--config", required=True, help="a JSON file with TrainConfig fields")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override a field")
    args = parser.parse_args(argv)
    fields = json.loads(Path(args.config).read_text())
    for assignment in args.set:
        key, value = assignment.split("=", 1)
        fields[key] = json.loads(value)
    try:
        summary = train(TrainConfig(**fields))
    except WinnowError as e:  # one line, not a traceback (and the same on every rank)
        print(f"winnow.proxy.train: {e}", file=sys.stderr)
        return e.exit_code
    if summary:
        keys = ("steps", "tokens_trained", "final_val_loss", "val_loss_shared", "tokens_per_s", "mfu")
        print(json.dumps({k: summary[k] for k in keys}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

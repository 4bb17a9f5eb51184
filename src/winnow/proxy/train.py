"""Train one proxy model on one ablation's tokens, nanoGPT style: config, data, model, optimiser, loop, checkpoint.

Every ablation of a run gets the same preset, token budget, batch, seed and sampling order: the batch of
step s is drawn by a generator seeded with (seed, s), so it depends on nothing but the step — which is
also why a resumed run continues the loss curve exactly: the step is the whole data position, and the loop draws no
other random numbers, so `ckpt.pt` (model + optimiser state) and the step are all a resume needs.

    python -m winnow.proxy.train --config train.json                    # one process (CPU or one GPU)
    torchrun --nproc_per_node 8 -m winnow.proxy.train --config train.json   # DDP: each rank takes a slice of the batch

Outputs in `out_dir`: metrics.jsonl (step, tokens, loss, lr, tokens_per_s; val_loss at eval steps),
ckpt.pt + ckpt.json (latest checkpoint), model/ (HF folder with tokenizer, at the end), final.json.

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


def train(cfg: TrainConfig) -> dict:
    from tqdm import tqdm

    from winnow.proxy.model import build_model, count_parameters, preset
    from winnow.proxy.tokenize import EOS, hf_tokenizer, load_tokenizer, read_tokens

    # ---- setup: DDP when launched by torchrun, device, precision
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
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

    # ---- model and optimiser (seeded: the same initial weights for every ablation of a seed)
    torch.manual_seed(cfg.seed)
    model = build_model(mcfg, eos_token_id=eos_id).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.learning_rate,
        betas=(cfg.beta1, cfg.beta2),
        fused=device.startswith("cuda"),
    )
    raw_model = model
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if "cuda" in device else None)

    # ---- resume: the latest checkpoint, and metrics.jsonl cut back to it
    start_step = 0
    ckpt_path, metrics_path = out / "ckpt.pt", out / "metrics.jsonl"
    if ckpt_path.exists():
        state = _load_checkpoint(ckpt_path, device)
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

    # ---- loop
    params = count_parameters(raw_model)
    bar = tqdm(
        total=total_steps, initial=start_step, disable=not (master and cfg.progress), unit="step", dynamic_ncols=True
    )
    model.train()
    t_last = time.perf_counter()
    for step in range(start_step, total_steps):
        lr = lr_at(step, total_steps, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        offsets = batch_offsets(cfg.seed, step, cfg.batch_size, n_train, context)
        offsets = offsets[rank * per_rank : (rank + 1) * per_rank]
        loss_sum = 0.0
        for m in range(accumulation):
            x, y = windows(tokens, offsets[m * micro : (m + 1) * micro], context)
            sync = not ddp or m == accumulation - 1
            with nullcontext() if sync else model.no_sync(), autocast:
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

        now = time.perf_counter()
        tokens_per_s = cfg.batch_size * context / max(now - t_last, 1e-9)
        t_last = now
        done = step + 1
        record = {
            "step": done,
            "tokens": done * cfg.batch_size * context,
            "loss": round(loss_sum, 6),
            "lr": lr,
            "tokens_per_s": round(tokens_per_s, 1),
        }
        if done % cfg.eval_every == 0 or done == total_steps:
            record["val_loss"] = round(val_loss(), 6)
        if master:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            if done % cfg.checkpoint_every == 0 or done == total_steps:
                _save_checkpoint(ckpt_path, raw_model, optimizer, done, cfg)
        bar.set_postfix(loss=f"{loss_sum:.3f}", tok_s=f"{tokens_per_s:,.0f}")
        bar.update(1)
    bar.close()

    # ---- final model (HF folder) and summary
    summary = {}
    if master:
        raw_model.save_pretrained(out / "model")
        hf_tokenizer(cfg.tokenizer).save_pretrained(out / "model")
        records = [json.loads(line) for line in metrics_path.read_text().splitlines()]
        vals = [r["val_loss"] for r in records if "val_loss" in r]
        summary = {
            "steps": total_steps,
            "tokens_trained": total_steps * cfg.batch_size * context,
            "final_loss": records[-1]["loss"] if records else None,
            "final_val_loss": vals[-1] if vals else None,
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


def _save_checkpoint(path: Path, model, optimizer, step: int, cfg: TrainConfig) -> None:
    """`ckpt.pt`: what `torch.load(weights_only=True)` reads (state dicts and the step that pairs it with its JSON);
    `ckpt.json`: the step and the config. Each write is atomic (a kill mid-write leaves the previous file intact);
    the weights go first, so a kill between the two leaves the JSON one checkpoint behind, never ahead."""
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, tmp)
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
        print(json.dumps({k: summary[k] for k in ("steps", "tokens_trained", "final_val_loss")}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training throughput and model FLOPs utilisation (MFU) of a proxy preset on one GPU (or on the CPU, as a dry run).

    .venv/bin/python benchmarks/bench_train_gpu.py [--preset gpu-small] [--steps 600] [--batch-size 64]
                                                   [--micro-batch-size 32] [--compile auto] [--out runs/bench-gpu]
    scripts/gpu_check.sh          # this benchmark on gpu-small for a few minutes + the GPU tests

Data: the FineWeb sample documents in ../shared/data (`--data`), tokenized with GPT-2's BPE by the ablate stage's
datatrove steps into `<out>/tokens/` (reused); the batches are random windows of that stream, as in an ablation
(the data only has to exist: throughput does not depend on which tokens). Training is `winnow.proxy.train` itself:
bf16 autocast, fused AdamW, torch.compile (`--compile auto` = on CUDA), SDPA attention.

Printed and written to `<out>/bench.json`: tokens/s and MFU for the whole run (final.json: training steps only,
evaluation excluded) and in steady state (the median over the second half of the steps, after compilation and
warm-up), the run's MFU counting the output layer too, FLOPs per token (PaLM's 6·N + 12·L·d·T), the peak FLOP/s
it divides by (PEAK_TFLOPS by device name, or `--peak-tflops`), the device, the last loss. Target (issue 15):
MFU ≥ 35 % for gpu-small on an H200 in bf16.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fineweb" / "fineweb-sample-10BT" / "fineweb-legal-docs.jsonl.gz"


def tokenize(data: Path, out: Path) -> tuple[Path, Path]:
    from datatrove.executor import LocalPipelineExecutor

    from winnow.proxy.tokenize import gpt2_tokenizer_json, merge_pipeline, token_files, tokenize_pipeline

    tokenizer = out / "tokenizer.json"
    if not tokenizer.exists():
        gpt2_tokenizer_json(tokenizer)
    tokens = out / "tokens"
    if not token_files(tokens):
        for name, pipeline in [
            ("tokenize", tokenize_pipeline(str(data), tokens, tokenizer)),
            ("merge", merge_pipeline(str(data), tokens, tokenizer, seed=0)),
        ]:
            LocalPipelineExecutor(pipeline, tasks=1, logging_dir=str(out / "logs" / name)).run()
    return tokens, tokenizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="gpu-small")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per optimiser step")
    parser.add_argument("--micro-batch-size", type=int, default=32, help="sequences per forward pass")
    parser.add_argument("--compile", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-gpu")
    args = parser.parse_args(argv)

    import torch

    from winnow.proxy.model import preset
    from winnow.proxy.train import TrainConfig, train

    args.out.mkdir(parents=True, exist_ok=True)
    tokens, tokenizer = tokenize(args.data, args.out)
    context = preset(args.preset).context_length
    run = args.out / f"{args.preset}-compile-{args.compile}"
    for stale in ("ckpt.pt", "ckpt.json", "metrics.jsonl", "final.json"):
        (run / stale).unlink(missing_ok=True)  # a benchmark measures a fresh run, never a resume
    cfg = TrainConfig(
        tokens_dir=str(tokens),
        tokenizer=str(tokenizer),
        out_dir=str(run),
        preset=args.preset,
        tokens=args.steps * args.batch_size * context,
        batch_size=args.batch_size,
        micro_batch_size=args.micro_batch_size,
        learning_rate=6e-4,
        eval_every=args.steps,  # one validation at the end: the loop measures training
        checkpoint_every=args.steps,
        val_batches=2,
        device=args.device,
        compile=args.compile,
        peak_tflops=args.peak_tflops,
        threads=torch.get_num_threads(),
    )
    final = train(cfg)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steady = records[len(records) // 2 :]
    steady_tps = statistics.median(r["tokens_per_s"] for r in steady)
    peak = final["peak_flops_per_device"]
    result = {
        "preset": args.preset,
        "device": final["device"],
        "device_name": torch.cuda.get_device_name(0) if final["device"].startswith("cuda") else "cpu",
        "compiled": final["compiled"],
        "steps": final["steps"],
        "batch_tokens": args.batch_size * context,
        "tokens_per_s": final["tokens_per_s"],
        "mfu": final["mfu"],
        "steady_tokens_per_s": round(steady_tps, 1),
        "steady_mfu": round(steady_tps * final["flops_per_token"] / peak, 4) if peak else None,
        "mfu_with_output_layer": final["mfu_with_output_layer"],
        "flops_per_token": final["flops_per_token"],
        "peak_flops_per_device": peak,
        "final_loss": final["final_loss"],
        "torch": torch.__version__,
    }
    (args.out / "bench.json").write_text(json.dumps(result, indent=2))
    mfu = f", MFU {100 * result['steady_mfu']:.1f} %" if result["steady_mfu"] else " (no MFU: peak unknown)"
    if result["mfu_with_output_layer"]:
        mfu += f" (whole run {100 * result['mfu_with_output_layer']:.1f} % counting the output layer)"
    print(
        f"{args.preset} on {result['device_name']}: {steady_tps:,.0f} tokens/s in steady state{mfu}; "
        f"whole run {result['tokens_per_s']:,.0f} tokens/s; loss {result['final_loss']}",
        file=sys.stderr,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

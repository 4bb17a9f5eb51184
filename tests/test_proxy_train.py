"""Training: the schedule's shape, tokens read through memory maps with the batches of the in-memory reader it
replaced, a run killed mid-way resumes onto exactly the same loss curve, and the
multi-process path (torchrun + DDP) follows the single-process curve. On CPU DDP runs with the gloo backend
(2 processes), the same code a GPU cluster runs with NCCL, and so does FSDP (the fineweb-1.8b path); the GPU checks
(bf16, torch.compile, NCCL, the peak-FLOPs table) skip cleanly without CUDA."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from datatrove.executor import LocalPipelineExecutor

import winnow.proxy.train as train_module
from winnow.proxy.tokenize import merge_pipeline, sample_texts, token_files, tokenize_pipeline, train_corpus_bpe
from winnow.proxy.train import VALIDATION_SEED, TrainConfig, batch_offsets, lr_at, main, train

ROOT = Path(__file__).resolve().parents[1]
# a deliberately small shape so that 120 steps take seconds
SMALL = {"n_layer": 2, "d_model": 32, "n_head": 2, "d_ffn": 64, "context_length": 32}


def test_wsd_schedule_warms_up_holds_then_decays():
    cfg = TrainConfig(
        tokens_dir="", tokenizer="", out_dir="", learning_rate=1.0, warmup_fraction=0.1, decay_fraction=0.2
    )
    lrs = [lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)  # linear warmup over 10 steps
    assert all(lr == 1.0 for lr in lrs[10:80])  # stable phase: a decay can branch from any of these
    assert lrs[80:] == sorted(lrs[80:], reverse=True) and lrs[99] == pytest.approx(0.05)  # linear decay
    cosine = TrainConfig(**{**cfg.__dict__, "schedule": "cosine"})
    cos = [lr_at(s, 100, cosine) for s in range(100)]
    assert cos[10] == pytest.approx(1.0) and cos[55] == pytest.approx(0.5, abs=0.02) and cos[99] < 0.01


@pytest.fixture(scope="module")
def tokens(shared_data, tmp_path_factory):
    """300 real FineWeb-Edu-annotated documents, a 512-token corpus BPE, tokenized by datatrove."""
    work = tmp_path_factory.mktemp("train")
    docs = work / "docs.jsonl"
    with gzip.open(shared_data / "annotations" / "fineweb-edu-llama3" / "train.jsonl.gz", "rt") as f:
        docs.write_text("".join(json.dumps({"text": json.loads(next(f))["text"]}) + "\n" for _ in range(300)))
    tokenizer = train_corpus_bpe(sample_texts([str(docs)], 300), 512, work / "tokenizer.json")
    for name, pipeline in [
        ("tokenize", tokenize_pipeline(str(docs), work / "tokens", tokenizer)),
        ("merge", merge_pipeline(str(docs), work / "tokens", tokenizer, seed=0)),
    ]:
        LocalPipelineExecutor(pipeline, tasks=1, logging_dir=str(work / "logs" / name)).run()
    return work / "tokens", tokenizer


def _config(token_data, out_dir: Path, **overrides) -> Path:
    tokens_dir, tokenizer = token_data
    fields = {
        "tokens_dir": str(tokens_dir),
        "tokenizer": str(tokenizer),
        "out_dir": str(out_dir),
        "model_overrides": SMALL,
        "tokens": 120 * 4 * 32,
        "batch_size": 4,
        "learning_rate": 3e-3,
        "eval_every": 30,
        "checkpoint_every": 30,
        "threads": 1,
        "progress": False,
        **overrides,
    }
    path = out_dir.parent / f"{out_dir.name}.json"
    path.write_text(json.dumps(fields))
    return path


def _train(config: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "winnow.proxy.train", "--config", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _losses(out_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, (out_dir / "metrics.jsonl").read_text().splitlines())]


def in_memory_batches(tokens_dir: Path, seed: int, steps: int, batch: int, context: int, micro: int) -> list:
    """What training drew before it memory-mapped its data: every token file read into RAM with np.concatenate,
    split into train and validation arrays, windows cut from those."""
    stream = np.concatenate([np.fromfile(p, dtype=np.uint16) for p in token_files(tokens_dir)])
    n_val = max(int(0.05 * len(stream)), (context + 1) * 2)
    train_part, val_part = stream[:-n_val], stream[-n_val:]
    drawn = []
    for step in range(steps):
        offsets = batch_offsets(seed, step, batch, len(train_part), context)
        drawn.append(np.stack([train_part[o : o + context + 1] for o in offsets]))
    val = [batch_offsets(VALIDATION_SEED, i, micro, len(val_part), context) for i in range(8)]
    return drawn + [np.stack([val_part[o : o + context + 1] for o in offsets]) for offsets in val]


@pytest.mark.parametrize("files", [1, 3])
def test_training_reads_memory_maps_and_draws_the_in_memory_batches(tokens, tmp_path, monkeypatch, files):
    """The data object is a memory map (one file) or a stream of memory maps (several files), never an array in
    RAM; the batches of every step and the validation windows are those of the in-memory reader, token for token."""
    tokens_dir, tokenizer = tokens
    if files > 1:  # the same stream cut into several files, as a multi-task datatrove tokenizer would leave it
        stream = np.fromfile(token_files(tokens_dir)[0], dtype=np.uint16)
        tokens_dir = tmp_path / "split"
        tokens_dir.mkdir()
        for k, part in enumerate(np.array_split(stream, files)):
            part.tofile(tokens_dir / f"{k:03d}.ds")
    seen = []

    def recording_windows(data, offsets, context):
        x, y = windows(data, offsets, context)
        seen.append((data, torch.cat([x, y[:, -1:]], dim=1).numpy()))
        return x, y

    windows = train_module.windows
    monkeypatch.setattr(train_module, "windows", recording_windows)
    config = _config((tokens_dir, tokenizer), tmp_path / "run", tokens=6 * 4 * 32, eval_every=6)
    train(TrainConfig(**json.loads(config.read_text())))
    data = seen[0][0]
    assert all(d is data for d, _ in seen)
    maps = [data] if files == 1 else data.maps
    assert len(maps) == files and all(isinstance(m, np.memmap) for m in maps)
    expected = in_memory_batches(tokens_dir, seed=0, steps=6, batch=4, context=32, micro=4)
    assert len(seen) == len(expected) == 6 + 8
    for (_, got), want in zip(seen, expected):
        assert np.array_equal(got, want)


@pytest.mark.slow
def test_killed_run_resumes_onto_the_same_loss_curve(tokens, tmp_path):
    straight = tmp_path / "straight"
    train(TrainConfig(**json.loads(_config(tokens, straight).read_text())))
    reference = _losses(straight)
    assert len(reference) == 120 and reference[-1][1] < reference[0][1] - 0.5  # it learns

    killed = tmp_path / "killed"
    config = _config(tokens, killed)
    proc = _train(config)  # a separate process, killed with SIGKILL (no chance to clean up)
    metrics = killed / "metrics.jsonl"
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 70):  # past the checkpoint at 60
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "final.json").exists()  # really killed mid-way
    assert len(_losses(killed)) >= 70

    train(TrainConfig(**json.loads(config.read_text())))  # the same config again resumes from step 60
    assert _losses(killed) == reference  # every step, before and after the kill, identical
    final = json.loads((killed / "final.json").read_text())
    assert (
        final["steps"] == 120
        and final["final_val_loss"] == json.loads((straight / "final.json").read_text())["final_val_loss"]
    )
    assert (killed / "model" / "config.json").exists() and (killed / "model" / "tokenizer.json").exists()


class RunsCode:
    """Unpickling this creates `marker`: what a checkpoint planted on a shared file system could do instead."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.slow
def test_a_planted_checkpoint_is_refused_without_running_its_code(tokens, tmp_path, capsys):
    out = tmp_path / "run"
    config = _config(tokens, out, tokens=30 * 4 * 32)
    assert main(["--config", str(config)]) == 0
    # a checkpoint is tensors (loadable with weights_only) + a JSON with the rest
    assert set(torch.load(out / "ckpt.pt", weights_only=True)) == {"model", "optimizer", "step"}
    meta = json.loads((out / "ckpt.json").read_text())
    assert meta["step"] == 30 and meta["weights"] == "ckpt.pt" and meta["config"]["tokens"] == 30 * 4 * 32
    metrics = (out / "metrics.jsonl").read_text()

    # the planted file really runs code when loaded the old way (weights_only=False) ...
    proof = tmp_path / "ran-with-weights_only-False"
    torch.save({"model": RunsCode(proof), "optimizer": {}, "step": 0}, tmp_path / "planted.pt")
    torch.load(tmp_path / "planted.pt", weights_only=False)
    assert proof.exists()
    # ... and resuming from it is refused, in one line naming the file, before it can
    marker = tmp_path / "code-ran"
    torch.save({"model": RunsCode(marker), "optimizer": {}, "step": 30}, out / "ckpt.pt")
    capsys.readouterr()
    assert main(["--config", str(config)]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"{out / 'ckpt.pt'}: refused to load" in line and "io.open" in line, line
    assert not marker.exists()
    assert (out / "metrics.jsonl").read_text() == metrics  # and nothing of the run was touched


@pytest.mark.slow
def test_checkpoint_json_behind_its_weights_resumes_and_ahead_is_refused(tokens, tmp_path, capsys):
    """The weights are written first: a kill between the two writes leaves the JSON one checkpoint behind, and
    resume goes on from the weights; a JSON ahead of its weights cannot come from one run and is refused."""
    out = tmp_path / "run"
    config = _config(tokens, out, tokens=60 * 4 * 32, checkpoint_every=30)
    assert main(["--config", str(config)]) == 0
    reference = _losses(out)
    meta_path = out / "ckpt.json"
    meta = json.loads(meta_path.read_text())

    meta_path.write_text(json.dumps(meta | {"step": 30}))  # as if killed after writing the weights of step 60
    weights_written = (out / "ckpt.pt").stat().st_mtime_ns
    assert main(["--config", str(config)]) == 0
    # resumed at step 60 (the weights), so no step was trained again and no checkpoint written again
    assert _losses(out) == reference and (out / "ckpt.pt").stat().st_mtime_ns == weights_written

    meta_path.write_text(json.dumps(meta | {"step": 90}))
    capsys.readouterr()
    assert main(["--config", str(config)]) == 1
    assert "is at step 90 but" in capsys.readouterr().err and _losses(out) == reference


def _torchrun(config: Path, n: int, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={n}",
        "-m",
        "winnow.proxy.train",
        "--config",
        str(config),
        *extra,
    ]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_two_process_ddp_follows_the_single_process_loss_curve(tokens, tmp_path):
    """Each rank takes half of every batch; DDP averages the gradients, so the curve matches one process."""
    single = tmp_path / "single"
    train(TrainConfig(**json.loads(_config(tokens, single, tokens=30 * 4 * 32).read_text())))
    ddp = tmp_path / "ddp"
    config = _config(tokens, ddp, tokens=30 * 4 * 32, device="cpu")
    result = _torchrun(config, 2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((ddp / "final.json").read_text())["world_size"] == 2
    one, two = _losses(single), _losses(ddp)
    assert [s for s, _ in two] == [s for s, _ in one]
    assert [loss for _, loss in two] == pytest.approx([loss for _, loss in one], rel=2e-4)


@pytest.mark.slow
def test_two_process_fsdp_follows_the_single_process_loss_curve_and_resumes(tokens, tmp_path):
    """FSDP (the fineweb-1.8b path) on CPU with gloo: the blocks are sharded over 2 ranks, the curve is the
    single-process one, and a run stopped at its checkpoint resumes from the gathered full state."""
    single = tmp_path / "single"
    train(TrainConfig(**json.loads(_config(tokens, single, tokens=30 * 4 * 32).read_text())))
    fsdp = tmp_path / "fsdp"
    config = _config(tokens, fsdp, tokens=30 * 4 * 32, device="cpu", parallel="fsdp", checkpoint_every=15)
    result = _torchrun(config, 2)
    assert result.returncode == 0, result.stderr[-3000:]
    final = json.loads((fsdp / "final.json").read_text())
    assert final["world_size"] == 2 and final["parallel"] == "fsdp"
    one, two = _losses(single), _losses(fsdp)
    assert [s for s, _ in two] == [s for s, _ in one]
    assert [loss for _, loss in two] == pytest.approx([loss for _, loss in one], rel=2e-4)
    # the saved HF folder holds the whole model (gathered from the shards): it gives the single-process logits
    from transformers import AutoModelForCausalLM

    x = torch.arange(32).unsqueeze(0)
    a = AutoModelForCausalLM.from_pretrained(single / "model").eval()(input_ids=x).logits
    b = AutoModelForCausalLM.from_pretrained(fsdp / "model").eval()(input_ids=x).logits
    assert torch.allclose(a, b, atol=2e-3)
    # resume: kill both ranks (and torchrun) after the checkpoint of step 15, run again: the same curve
    killed = tmp_path / "killed"
    config = _config(tokens, killed, tokens=30 * 4 * 32, device="cpu", parallel="fsdp", checkpoint_every=15)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.Popen(
        [*command, "-m", "winnow.proxy.train", "--config", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    metrics = killed / "metrics.jsonl"
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 20):
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "final.json").exists()
    assert torch.load(killed / "ckpt.pt", weights_only=True)["step"] == 15
    result = _torchrun(config, 2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [loss for _, loss in _losses(killed)] == pytest.approx([loss for _, loss in two], rel=2e-4)


def test_gemma3_preset_trains_reloads_and_evaluates(tokens, tmp_path):
    """The Gemma-3 preset through the same loop: the loss falls, the HF folder reloads with AutoModelForCausalLM
    and gives the checkpoint's logits, and the evaluator's decoder + output-embedding path (which must include
    Gemma's √d embedding scaling) gives the model's own log-likelihoods. MFU is reported on CPU when a peak is set."""
    from transformers import AutoModelForCausalLM

    from winnow.proxy.evaluate import load_model, score_tokens
    from winnow.proxy.model import build_model, flops_per_token, preset

    out = tmp_path / "gemma3"
    shape = {**SMALL, "n_layer": 6, "sliding_window": 8}
    config = _config(tokens, out, preset="cpu-tiny-gemma3", model_overrides=shape, tokens=60 * 4 * 32)
    summary = train(TrainConfig(**{**json.loads(config.read_text()), "peak_tflops": 0.001}))
    losses = _losses(out)
    assert losses[-1][1] < losses[0][1] - 0.5
    assert summary["model"]["architecture"] == "gemma3" and summary["model"]["sliding_window"] == 8
    # MFU = tokens/s × FLOPs per token / peak, per step and for the run
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    flops = flops_per_token(replace(preset("cpu-tiny-gemma3"), **shape), summary["parameters"]["non_embedding"])
    assert summary["flops_per_token"] == flops and summary["peak_flops_per_device"] == 1e9
    assert all(r["mfu"] == pytest.approx(r["tokens_per_s"] * flops / 1e9, rel=1e-3, abs=1e-4) for r in records)
    assert summary["mfu"] == pytest.approx(summary["tokens_per_s"] * flops / 1e9, rel=1e-3)
    head = 6 * 32 * 512  # the output projection, d × vocabulary, forward + backward
    assert summary["mfu_with_output_layer"] == pytest.approx(summary["mfu"] * (flops + head) / flops, rel=1e-3)

    reloaded = AutoModelForCausalLM.from_pretrained(out / "model").eval()
    assert type(reloaded).__name__ == "Gemma3ForCausalLM" and reloaded.config.sliding_window == 8
    fresh = build_model(replace(preset("cpu-tiny-gemma3"), **shape).with_vocab(512), eos_token_id=0)
    fresh.load_state_dict(torch.load(out / "ckpt.pt", weights_only=True)["model"])
    x = torch.randint(1, 512, (2, 32))
    with torch.no_grad():
        logits = reloaded(input_ids=x).logits
        assert torch.allclose(logits, fresh.eval()(input_ids=x).logits, atol=1e-5)
    model, _ = load_model(out / "model")
    [(loglik, _)] = score_tokens(model, [(x[0, :20].tolist(), x[0, 20:].tolist())])
    expected = torch.log_softmax(logits[0, 19:31], -1).gather(1, x[0, 20:].unsqueeze(1)).sum().item()
    assert loglik == pytest.approx(expected, abs=1e-3)


def test_settings_select_compile_parallelism_and_peak():
    from winnow.proxy.train import parallelism, peak_flops, use_compile

    assert not use_compile("auto", "cpu") and use_compile("auto", "cuda:0") and not use_compile("false", "cuda")
    assert parallelism("auto", "fineweb-1.8b", 8) == "fsdp" and parallelism("auto", "gpu-small", 8) == "ddp"
    assert parallelism("auto", "fineweb-1.8b", 1) == "single" and parallelism("fsdp", "cpu-tiny", 2) == "fsdp"
    assert peak_flops(None, "cpu") is None and peak_flops(312.0, "cpu") == 312e12
    # the config: YAML's `compile: true` is a boolean, read as the setting "true"; the stage passes them on
    from winnow.pipelines.config import AblateConfig
    from winnow.pipelines.stages.ablate import train_config

    acfg = AblateConfig(compile=True, parallel="fsdp", peak_tflops=989)
    tcfg = train_config(acfg, Path("t"), Path("tok.json"), Path("s"), 0, Path("validation"))
    assert (tcfg.compile, tcfg.parallel, tcfg.peak_tflops, tcfg.shared_val_dir) == ("true", "fsdp", 989, "validation")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_peak_flops_known_for_this_device():
    """The peak table knows the device (else MFU needs ablate.peak_tflops)."""
    from winnow.proxy.train import peak_flops

    name = torch.cuda.get_device_name(0)
    assert peak_flops(None, "cuda:0") is not None, f"{name}: add it to PEAK_TFLOPS"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_training_uses_bf16_and_learns(tokens, tmp_path):
    out = tmp_path / "gpu"
    summary = train(TrainConfig(**{**json.loads(_config(tokens, out).read_text()), "device": "cuda"}))
    assert summary["device"].startswith("cuda") and summary["compiled"]  # compile: auto = on CUDA
    losses = _losses(out)
    assert losses[-1][1] < losses[0][1] - 0.5
    assert summary["tokens_per_s"] > 0 and (summary["mfu"] is None or 0 < summary["mfu"] < 1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_training_without_compile_follows_the_compiled_curve(tokens, tmp_path):
    base = {**json.loads(_config(tokens, tmp_path / "x", tokens=30 * 4 * 32).read_text()), "device": "cuda"}
    compiled = train(TrainConfig(**{**base, "out_dir": str(tmp_path / "c"), "compile": "true"}))
    eager = train(TrainConfig(**{**base, "out_dir": str(tmp_path / "e"), "compile": "false"}))
    assert compiled["compiled"] and not eager["compiled"]
    # bf16 autocast: the two differ in rounding only
    assert [x for _, x in _losses(tmp_path / "c")] == pytest.approx([x for _, x in _losses(tmp_path / "e")], abs=0.05)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_nccl_ddp_on_two_gpus(tokens, tmp_path):
    out = tmp_path / "nccl"
    result = _torchrun(_config(tokens, out, device="cuda"), 2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "final.json").read_text())["world_size"] == 2

"""Training: the schedule's shape, and a run killed mid-way resumes onto exactly the same loss curve."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datatrove.executor import LocalPipelineExecutor

from proxy.tokenize import sample_texts, tokenize_pipeline, train_corpus_bpe
from proxy.train import TrainConfig, lr_at, train

ROOT = Path(__file__).resolve().parents[1]
# a deliberately small shape so that 120 steps take seconds
SMALL = {"n_layer": 2, "d_model": 32, "n_head": 2, "d_ffn": 64, "context_length": 32}


def test_wsd_schedule_warms_up_holds_then_decays():
    cfg = TrainConfig(tokens_dir="", tokenizer="", out_dir="", learning_rate=1.0, warmup_fraction=0.1,
                      decay_fraction=0.2)
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
    LocalPipelineExecutor(tokenize_pipeline(str(docs), work / "tokens", tokenizer, seed=0), tasks=1,
                          logging_dir=str(work / "logs")).run()
    return work / "tokens", tokenizer


def _config(tokens, out_dir: Path, **overrides) -> Path:
    tokens_dir, tokenizer = tokens
    fields = {"tokens_dir": str(tokens_dir), "tokenizer": str(tokenizer), "out_dir": str(out_dir),
              "model_overrides": SMALL, "tokens": 120 * 4 * 32, "batch_size": 4, "learning_rate": 3e-3,
              "eval_every": 30, "checkpoint_every": 30, "threads": 1, "progress": False, **overrides}
    path = out_dir.parent / f"{out_dir.name}.json"
    path.write_text(json.dumps(fields))
    return path


def _train(config: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "proxy.train", "--config", str(config)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _losses(out_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, (out_dir / "metrics.jsonl").read_text().splitlines())]


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
    assert final["steps"] == 120 and final["final_val_loss"] == json.loads(
        (straight / "final.json").read_text())["final_val_loss"]
    assert (killed / "model" / "config.json").exists() and (killed / "model" / "tokenizer.json").exists()

"""The nanotron hand-off: the emitted YAML parses, carries the preset's shape, the run's budget, batch, optimiser and
schedule, and points a Nanoset at the ablation's datatrove token folder.

nanotron itself is not installed here: the newest release on the package index (0.4) predates `data_stages` and the
Nanoset, so the YAML is checked against the field names of nanotron's config dataclasses as read in its source
(`src/nanotron/config/config.py` and `models_config.py` on its main branch), written out below. nanotron builds
its Config with dacite from this mapping; a key it does not know is an error there, a missing required one too.
"""

import gzip
import json

import pytest
import yaml
from datatrove.executor import LocalPipelineExecutor

from winnow.pipelines.cli import main as winnow
from winnow.pipelines.config import load_config
from winnow.proxy.nanotron import nanotron_config
from winnow.proxy.tokenize import gpt2_tokenizer_json, merge_pipeline, tokenize_pipeline

# field → required? (no default in the dataclass), per nanotron config dataclass
NANOTRON_FIELDS = {
    "Config": {"general": 1, "parallelism": 1, "model": 1, "tokenizer": 0, "checkpoints": 0, "logging": 0,
               "tokens": 0, "optimizer": 0, "data_stages": 0, "profiler": 0, "lighteval": 0, "s3_upload": 0},
    "GeneralArgs": {"project": 1, "run": 0, "seed": 0, "step": 0, "consumed_train_samples": 0,
                    "benchmark_csv_path": 0, "ignore_sanity_checks": 0},
    "ParallelismArgs": {"dp": 1, "pp": 1, "tp": 1, "pp_engine": 0, "tp_mode": 0, "tp_linear_async_communication": 0,
                        "recompute_layer": 0, "tp_recompute_allgather": 0, "expert_parallel_size": 0},
    "ModelArgs": {"model_config": 1, "init_method": 1, "dtype": 0, "make_vocab_size_divisible_by": 0,
                  "ddp_bucket_cap_mb": 0},
    "RandomInit": {"std": 1, "scaling_method": 0},
    "LlamaConfig": {"bos_token_id": 0, "eos_token_id": 0, "hidden_act": 0, "hidden_size": 0, "initializer_range": 0,
                    "intermediate_size": 0, "is_llama_config": 0, "max_position_embeddings": 0,
                    "num_attention_heads": 0, "num_hidden_layers": 0, "attention_bias": 0, "num_key_value_heads": 0,
                    "pad_token_id": 0, "pretraining_tp": 0, "rms_norm_eps": 0, "rope_scaling": 0, "rope_theta": 0,
                    "rope_interleaved": 0, "tie_word_embeddings": 0, "use_cache": 0, "vocab_size": 0},
    "TokenizerArgs": {"tokenizer_name_or_path": 0, "tokenizer_revision": 0, "tokenizer_max_length": 0},
    "CheckpointsArgs": {"checkpoints_path": 1, "checkpoint_interval": 1, "save_initial_state": 0,
                        "save_final_state": 0, "resume_checkpoint_path": 0, "load_lr_scheduler": 0,
                        "load_optimizer": 0, "checkpoints_path_is_shared_file_system": 0},
    "LoggingArgs": {"log_level": 0, "log_level_replica": 0, "iteration_step_info_interval": 0},
    "TokensArgs": {"sequence_length": 1, "train_steps": 1, "micro_batch_size": 1, "batch_accumulation_per_replica": 1,
                   "val_check_interval": 0, "limit_val_batches": 0, "limit_test_batches": 0},
    "OptimizerArgs": {"optimizer_factory": 1, "zero_stage": 1, "weight_decay": 1, "clip_grad": 1,
                      "accumulate_grad_in_fp32": 1, "learning_rate_scheduler": 1,
                      "weight_decay_exclude_named_params": 0},
    "LRSchedulerArgs": {"learning_rate": 1, "lr_warmup_steps": 0, "lr_warmup_style": 0, "lr_decay_style": 0,
                        "lr_decay_steps": 0, "lr_decay_starting_step": 0, "min_decay_lr": 0},
    "AdamWOptimizerArgs": {"adam_eps": 1, "adam_beta1": 1, "adam_beta2": 1, "torch_adam_is_fused": 1, "name": 0},
    "DatasetStageArgs": {"name": 1, "start_training_step": 1, "data": 1},
    "DataArgs": {"dataset": 1, "seed": 1, "num_loading_workers": 0},
    "NanosetDatasetsArgs": {"dataset_folder": 1, "dataset_weights": 0, "tokenizer_name": 0, "vocab_size": 0,
                            "token_size_in_bytes": 0},
}  # fmt: skip


def _matches(mapping: dict, dataclass: str) -> None:
    fields = NANOTRON_FIELDS[dataclass]
    assert set(mapping) <= set(fields), f"{dataclass}: unknown {set(mapping) - set(fields)}"
    assert {f for f, required in fields.items() if required} <= set(mapping), dataclass


@pytest.fixture(scope="module")
def tokens(shared_data, tmp_path_factory):
    """40 FineWeb documents tokenized with GPT-2's BPE by the ablate stage's two datatrove steps."""
    work = tmp_path_factory.mktemp("nanotron")
    docs = work / "docs.jsonl"
    with gzip.open(shared_data / "fineweb" / "fineweb-sample-10BT" / "fineweb-legal-docs.jsonl.gz", "rt") as f:
        docs.write_text("".join(json.dumps({"text": json.loads(next(f))["text"]}) + "\n" for _ in range(40)))
    tokenizer = gpt2_tokenizer_json(work / "tokenizer" / "tokenizer.json")
    for name, pipeline in [
        ("tokenize", tokenize_pipeline(str(docs), work / "tokens", tokenizer)),
        ("merge", merge_pipeline(str(docs), work / "tokens", tokenizer, seed=0)),
    ]:
        LocalPipelineExecutor(pipeline, tasks=1, logging_dir=str(work / "logs" / name)).run()
    return work, docs, tokenizer


def _ablate(tmp_path, docs, **overrides):
    config = {
        "name": "nanotron-test",
        "output_dir": str(tmp_path / "run"),
        "ablate": {
            "ablations": [{"name": "legal", "data": str(docs)}],
            "preset": "fineweb-1.8b",
            "tokens": 28_000_000_000,
            "batch_size": 1024,
            "micro_batch_size": 4,
            "learning_rate": 3e-4,
            "seeds": [0, 5],
            "eval_every": 1000,
            **overrides,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_fineweb_preset_config_has_nanotrons_fields_and_the_runs_numbers(tokens, tmp_path):
    work, docs, tokenizer = tokens
    acfg = load_config(_ablate(tmp_path, docs), check_inputs=False).ablate
    config = nanotron_config(
        acfg, "legal", work / "tokens", work / "tokenizer", 5, tmp_path / "ckpt", eos_token_id=50256,
        vocab_size=50257, dp=64,
    )  # fmt: skip
    config = yaml.safe_load(yaml.safe_dump(config))  # what nanotron reads back
    _matches(config, "Config")
    _matches(config["general"], "GeneralArgs")
    _matches(config["parallelism"], "ParallelismArgs")
    _matches(config["model"], "ModelArgs")
    _matches(config["model"]["init_method"], "RandomInit")
    _matches(config["model"]["model_config"], "LlamaConfig")
    _matches(config["tokenizer"], "TokenizerArgs")
    _matches(config["checkpoints"], "CheckpointsArgs")
    _matches(config["logging"], "LoggingArgs")
    _matches(config["tokens"], "TokensArgs")
    _matches(config["optimizer"], "OptimizerArgs")
    _matches(config["optimizer"]["learning_rate_scheduler"], "LRSchedulerArgs")
    _matches(config["optimizer"]["optimizer_factory"], "AdamWOptimizerArgs")
    [stage] = config["data_stages"]
    _matches(stage, "DatasetStageArgs")
    _matches(stage["data"], "DataArgs")
    _matches(stage["data"]["dataset"], "NanosetDatasetsArgs")

    # FineWeb's ablation model
    m = config["model"]["model_config"]
    assert (m["num_hidden_layers"], m["hidden_size"], m["intermediate_size"], m["num_attention_heads"]) == (
        24, 2048, 8192, 32
    )  # fmt: skip
    assert m["max_position_embeddings"] == 2048 and m["tie_word_embeddings"] and m["vocab_size"] == 50257
    assert m["num_key_value_heads"] == 32 and m["eos_token_id"] == 50256 and m["hidden_act"] == "silu"
    # 1024 sequences per step = 64 replicas × 4 × 4; 28B tokens / (1024 × 2048) steps
    t = config["tokens"]
    assert t["sequence_length"] == 2048 and t["micro_batch_size"] == 4 and t["batch_accumulation_per_replica"] == 4
    assert config["parallelism"]["dp"] * t["micro_batch_size"] * t["batch_accumulation_per_replica"] == 1024
    assert t["train_steps"] == 28_000_000_000 // (1024 * 2048) == 13351
    # the WSD schedule: 5 % linear warmup, constant, linear decay over the last 20 % to 0
    lr = config["optimizer"]["learning_rate_scheduler"]
    assert lr["learning_rate"] == 3e-4 and lr["lr_warmup_steps"] == int(0.05 * 13351) and lr["min_decay_lr"] == 0
    assert lr["lr_decay_style"] == "linear" and lr["lr_decay_starting_step"] + lr["lr_decay_steps"] == 13351
    assert lr["lr_decay_steps"] == int(0.2 * 13351)
    opt = config["optimizer"]
    assert (opt["weight_decay"], opt["clip_grad"], opt["zero_stage"]) == (0.1, 1.0, 1)
    assert (opt["optimizer_factory"]["adam_beta1"], opt["optimizer_factory"]["adam_beta2"]) == (0.9, 0.95)
    # the Nanoset reads the ablation's datatrove folder; its metadata names the same tokenizer and token size
    dataset = stage["data"]["dataset"]
    assert dataset["dataset_folder"] == [str((work / "tokens").resolve())]
    name, size = (work / "tokens" / "shuffled.ds.metadata").read_text().splitlines()[0].split("|")
    assert dataset["tokenizer_name"] == name and dataset["token_size_in_bytes"] == int(size) == 2
    assert stage["start_training_step"] == 1 and stage["data"]["seed"] == 5 and config["general"]["seed"] == 5


def test_cosine_schedule_and_an_indivisible_batch(tokens, tmp_path):
    from winnow.pipelines.config import ConfigError

    work, docs, _ = tokens
    acfg = load_config(_ablate(tmp_path, docs, schedule="cosine"), check_inputs=False).ablate
    config = nanotron_config(acfg, "x", work / "tokens", work, 0, tmp_path, 50256, 50257, dp=8)
    lr = config["optimizer"]["learning_rate_scheduler"]
    assert lr["lr_decay_style"] == "cosine" and lr["lr_warmup_steps"] + lr["lr_decay_steps"] == 13351
    with pytest.raises(ConfigError, match="not divisible by dp 3"):
        nanotron_config(acfg, "x", work / "tokens", work, 0, tmp_path, 50256, 50257, dp=3)
    gemma = load_config(_ablate(tmp_path, docs, preset="gpu-small-gemma3"), check_inputs=False).ablate
    with pytest.raises(ConfigError, match="llama presets only"):
        nanotron_config(gemma, "x", work / "tokens", work, 0, tmp_path, 50256, 50257)


@pytest.mark.slow
def test_winnow_ablate_emit_nanotron_tokenizes_and_writes_one_config_per_seed(tokens, tmp_path):
    from transformers import AutoTokenizer

    work, docs, _ = tokens
    out = tmp_path / "nanotron"
    assert (
        winnow(["ablate", "-c", str(_ablate(tmp_path, docs)), "--emit-nanotron", str(out), "--nanotron-dp", "64"]) == 0
    )
    assert sorted(p.name for p in out.glob("*.yaml")) == ["legal-seed-0.yaml", "legal-seed-5.yaml"]
    config = yaml.safe_load((out / "legal-seed-0.yaml").read_text())
    folder = config["data_stages"][0]["data"]["dataset"]["dataset_folder"][0]
    assert folder == str((tmp_path / "run" / "ablate" / "legal" / "tokens").resolve())
    assert list((tmp_path / "run" / "ablate" / "legal" / "tokens").glob("*.ds"))  # tokenized, not trained
    assert not (tmp_path / "run" / "ablate" / "legal" / "seed-0").exists()
    # nanotron loads the tokenizer with AutoTokenizer: the emitted folder works, with the ablation's ids
    tokenizer = AutoTokenizer.from_pretrained(config["tokenizer"]["tokenizer_name_or_path"])
    assert tokenizer.eos_token_id == config["model"]["model_config"]["eos_token_id"] == 50256

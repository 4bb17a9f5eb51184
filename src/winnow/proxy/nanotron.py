"""Hand an ablation to nanotron: a config YAML in nanotron's schema over the same datatrove token folder.

The fineweb-1.8b preset (28B tokens per run in FineWeb) is a job for the trainer FineWeb itself used. nanotron's
Nanoset reads datatrove token folders (`*.ds` + `.index` + `.metadata`, as written by `winnow ablate`), so the
handed-over run trains on exactly the tokens `winnow.proxy.train` would, with the same shape and schedule:

    winnow ablate -c my-cluster.yaml --emit-nanotron nanotron/     # tokenize, then write the configs; no training
      nanotron/<ablation>-seed-<s>.yaml       one run per ablation and seed
      nanotron/tokenizer/                     the shared tokenizer as a transformers folder (AutoTokenizer loads it)
    torchrun --nproc_per_node 8 run_train.py --config-file nanotron/edu-3-seed-0.yaml     # in a nanotron checkout

Field names follow nanotron's config dataclasses (`nanotron/config/config.py`: GeneralArgs, ParallelismArgs,
ModelArgs, TokenizerArgs, CheckpointsArgs, LoggingArgs, TokensArgs, OptimizerArgs, LRSchedulerArgs,
AdamWOptimizerArgs, DatasetStageArgs, DataArgs, NanosetDatasetsArgs; `models_config.py`: LlamaConfig, RandomInit).
What maps how: the global batch (`ablate.batch_size` sequences) = dp × micro_batch_size ×
batch_accumulation_per_replica; our warmup–stable–decay schedule = nanotron's linear warmup, then linear decay
starting at `lr_decay_starting_step` (cosine likewise); weight decay, betas and clipping are TrainConfig's; the
1.8B preset shards its optimiser state (`zero_stage: 1`, what FSDP does in winnow.proxy.train). Only the llama
architecture is emitted (nanotron has no Gemma-3 model).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from winnow.errors import ConfigError

ADAM_EPS = 1e-8  # torch.optim.AdamW's default, which winnow.proxy.train uses


def nanotron_config(
    acfg,
    name: str,
    tokens_dir: str | os.PathLike,
    tokenizer_dir: str | os.PathLike,
    seed: int,
    checkpoints_dir: str | os.PathLike,
    eos_token_id: int,
    vocab_size: int,
    dp: int = 8,
    tp: int = 1,
    pp: int = 1,
) -> dict:
    """The nanotron Config (as a plain mapping) of one ablation run: the preset's shape, the run's token budget,
    batch, optimiser and schedule, and a Nanoset stage over `tokens_dir`."""
    from winnow.proxy.model import preset
    from winnow.proxy.train import TrainConfig

    model = replace(preset(acfg.preset), **acfg.model_overrides).with_vocab(vocab_size)
    if model.architecture != "llama":
        raise ConfigError(f"ablate.preset {acfg.preset}: nanotron configs are emitted for llama presets only")
    train = TrainConfig(tokens_dir="", tokenizer="", out_dir="")  # the schedule fractions and optimiser defaults
    context = model.context_length
    if acfg.batch_size % dp:
        raise ConfigError(f"ablate.batch_size {acfg.batch_size} is not divisible by dp {dp}; choose another dp")
    per_replica = acfg.batch_size // dp
    micro = min(acfg.micro_batch_size or per_replica, per_replica)
    if per_replica % micro:
        raise ConfigError(
            f"ablate.micro_batch_size {micro} does not divide the {per_replica} sequences per replica (dp {dp})"
        )
    steps = max(1, acfg.tokens // (acfg.batch_size * context))
    warmup = max(1, int(train.warmup_fraction * steps))
    if acfg.schedule == "wsd":
        decay_start = steps - int(train.decay_fraction * steps)
        schedule = {
            "lr_decay_style": "linear",
            "lr_decay_starting_step": decay_start,
            "lr_decay_steps": steps - decay_start,
        }
    else:
        schedule = {"lr_decay_style": "cosine", "lr_decay_starting_step": warmup, "lr_decay_steps": steps - warmup}
    tokens_dir = Path(tokens_dir).resolve()
    metadata = sorted(tokens_dir.glob("*.metadata"))
    # NanosetDatasetsArgs checks tokenizer_name against the first field of the folder's .metadata
    tokenizer_name = metadata[0].read_text().split("\n", 1)[0].split("|")[0] if metadata else str(tokenizer_dir)
    return {
        "general": {
            "project": "winnow-ablations",
            "run": f"{name}-seed-{seed}",
            "seed": seed,
            "ignore_sanity_checks": True,
        },
        "parallelism": {
            "dp": dp,
            "tp": tp,
            "pp": pp,
            "pp_engine": "1f1b",
            "tp_mode": "REDUCE_SCATTER" if tp > 1 else "ALL_REDUCE",
            "tp_linear_async_communication": tp > 1,
            "expert_parallel_size": 1,
        },
        "model": {
            "ddp_bucket_cap_mb": 25,
            "dtype": "bfloat16",
            "init_method": {"std": 0.02},  # transformers' initializer_range, as our LlamaConfig
            "make_vocab_size_divisible_by": 1,
            "model_config": {
                "bos_token_id": eos_token_id,
                "eos_token_id": eos_token_id,
                "hidden_act": "silu",
                "hidden_size": model.d_model,
                "initializer_range": 0.02,
                "intermediate_size": model.d_ffn,
                "is_llama_config": True,
                "max_position_embeddings": context,
                "num_attention_heads": model.n_head,
                "num_hidden_layers": model.n_layer,
                "num_key_value_heads": model.n_kv_head or model.n_head,
                "pad_token_id": None,
                "pretraining_tp": 1,
                "rms_norm_eps": 1.0e-6,  # transformers' LlamaConfig default
                "rope_scaling": None,
                "rope_theta": model.rope_theta,
                "rope_interleaved": False,  # transformers' rotate-half RoPE
                "tie_word_embeddings": model.tie_embeddings,
                "use_cache": True,
                "vocab_size": model.vocab_size,
            },
        },
        "tokenizer": {"tokenizer_name_or_path": str(Path(tokenizer_dir).resolve())},
        "checkpoints": {
            "checkpoints_path": str(Path(checkpoints_dir).resolve()),
            "checkpoint_interval": acfg.eval_every,
            "save_initial_state": False,
            "resume_checkpoint_path": None,
            "checkpoints_path_is_shared_file_system": False,
        },
        "logging": {"log_level": "info", "log_level_replica": "info", "iteration_step_info_interval": 1},
        "tokens": {
            "sequence_length": context,
            "train_steps": steps,
            "micro_batch_size": micro,
            "batch_accumulation_per_replica": per_replica // micro,
            "val_check_interval": -1,
            "limit_val_batches": 0,
            "limit_test_batches": 0,
        },
        "optimizer": {
            "accumulate_grad_in_fp32": True,
            "clip_grad": train.grad_clip,
            "weight_decay": train.weight_decay,
            "zero_stage": 1 if acfg.preset == "fineweb-1.8b" else 0,
            "learning_rate_scheduler": {
                "learning_rate": acfg.learning_rate,
                "lr_warmup_steps": warmup,
                "lr_warmup_style": "linear",
                "min_decay_lr": acfg.learning_rate * train.min_lr_ratio,
                **schedule,
            },
            "optimizer_factory": {
                "name": "adamW",
                "adam_beta1": train.beta1,
                "adam_beta2": train.beta2,
                "adam_eps": ADAM_EPS,
                "torch_adam_is_fused": True,
            },
        },
        "data_stages": [
            {
                "name": "stable",
                "start_training_step": 1,
                "data": {
                    "dataset": {
                        "dataset_folder": [str(tokens_dir)],
                        "dataset_weights": [1.0],
                        "tokenizer_name": tokenizer_name,
                        "vocab_size": model.vocab_size,
                        "token_size_in_bytes": 2 if model.vocab_size <= 65536 else 4,
                    },
                    "seed": seed,
                    "num_loading_workers": 1,
                },
            }
        ],
        "profiler": None,
        "lighteval": None,
    }


def write_nanotron_configs(
    acfg, name: str, tokens_dir: Path, tokenizer_path: Path, out: str | os.PathLike, dp: int = 8
) -> list[Path]:
    """`<out>/<name>-seed-<s>.yaml` for every seed, and `<out>/tokenizer/` (written once)."""
    import yaml

    from winnow.proxy.tokenize import EOS, hf_tokenizer, load_tokenizer

    out = Path(out)
    tokenizer_dir = out / "tokenizer"
    if not (tokenizer_dir / "tokenizer.json").exists():
        hf_tokenizer(tokenizer_path).save_pretrained(tokenizer_dir)
    tokenizer = load_tokenizer(tokenizer_path)
    written = []
    for seed in acfg.seeds:
        config = nanotron_config(
            acfg,
            name,
            tokens_dir,
            tokenizer_dir,
            seed,
            out / "checkpoints" / f"{name}-seed-{seed}",
            eos_token_id=tokenizer.token_to_id(EOS),
            vocab_size=tokenizer.get_vocab_size(),
            dp=dp,
        )
        path = out / f"{name}-seed-{seed}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        written.append(path)
    return written

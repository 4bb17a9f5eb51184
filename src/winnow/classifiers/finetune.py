"""Fine-tune a sentence encoder end to end as the educational-quality regressor, in the FineWeb-Edu classifier's form.
Reads top to bottom: settings → data → model → optimiser → loop → checkpoint.

    texts + 0-5 labels ─► tokenizer (cut to max_tokens) ─► BertForSequenceClassification built from the sentence
    encoder's transformer weights (num_labels 1, problem_type regression) ─► MSE on the labels, every layer trained
    ─► output_dir (a standard transformers folder) ─► FineTunedClassifier.predict(texts) → float scores

```
output_dir/
  config.json              architectures [BertForSequenceClassification], num_labels 1, problem_type regression
  model.safetensors        every weight: the fine-tuned encoder, its pooler and the 1-output head
  tokenizer.json, ...      the encoder's tokenizer, model_max_length = max_tokens (what the model was trained on)
  training.json            winnow's record: settings, loss per optimiser step, the probe, timings (transformers
                           ignores it)
```
The folder is what `AutoModelForSequenceClassification.from_pretrained` reads with no custom code, and what
`winnow.classifiers.saved.load_classifier` (hence `winnow score --classifier output_dir`) scores through its Hugging
Face path with the FineWeb-Edu model card's recipe: the logit is the score, `int_score = round(clamp(score, 0, 5))`.

Pooling. The frozen `embed` backbone MEAN-pools the encoder's tokens, which is what all-MiniLM-L6-v2 was trained for.
transformers' BERT classification head reads the [CLS] token instead, through the pooler (dense + tanh) kept from
MiniLM's original pre-training, and sentence-transformers never trained either for a sentence objective: a ridge
probe on the frozen [CLS]/pooler output predicts the labels worse than one on the mean (5-fold Spearman 0.31 vs 0.48
on 500 shared labels, 128 tokens). It is still the right form here: every layer is trained, so attention learns to
gather the document into [CLS] (how BERT is always fine-tuned, and how FineWeb-Edu's own classifier was built), and
the result loads anywhere without custom code. Two choices make a short run work from that start:
- the head is initialised by a linear probe (ridge regression of the labels on the frozen pooler outputs of up to
  `probe_rows` training documents) instead of at random: training starts from a sensible score, and the first steps'
  gradients are not a random head's noise pulled through the encoder (LP-FT, Kumar et al. 2022);
- the head learns at a higher rate (`head_lr`) than the pre-trained layers (`encoder_lr`).

Sampling: plain shuffling by default, the FineWeb-Edu recipe (MSE on the natural label mix). The rare 3-5 labels are
then under-weighted in the loss, but winnow calibrates the decision boundaries afterwards (ScoreCalibration), which
fixes where `int_score >= 3` falls without distorting the regression; `balance="oversample"` repeats each class up
to the largest one (as the fastText backbone trains) for who wants it.

Deterministic on a CPU for a given seed and thread count (data order from numpy, dropout from torch's seeded RNG).
On CUDA the forward and backward run under bf16 autocast with float32 master weights; the returned scorer then runs
in bf16, as `load_classifier` does with the saved folder on a GPU.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from winnow.classifiers.hf_format import HFSequenceClassifier
from winnow.classifiers.model import DEFAULT_ENCODER, encoder_path
from winnow.classifiers.saved import resolve_device
from winnow.errors import ConfigError
from winnow.files import write_json

# ---- settings --------------------------------------------------------------------------------------------------


@dataclass
class FineTuneSettings:
    encoder: str = DEFAULT_ENCODER  # the packaged MiniLM by name, or a local sentence-transformers / HF folder
    max_tokens: int | None = None  # None: 128 on a CPU (a short run), 512 on a GPU (BERT's limit, FineWeb-Edu's)
    epochs: int = 2
    max_steps: int | None = None  # cap on optimiser steps, for a short CPU run; None: epochs decide
    batch_size: int = 16
    grad_accumulation: int = 1  # optimiser step every N batches: a larger effective batch in the same memory
    encoder_lr: float = 3e-5  # the usual BERT fine-tuning rate: the pre-trained layers move little
    head_lr: float = 3e-4  # the new 1-output layer learns 10x faster
    warmup_share: float = 0.1  # of the steps, linear warm-up from 0 (then linear decay to 0)
    weight_decay: float = 0.01  # AdamW, on matrices only (not biases and LayerNorm)
    # the word-embedding table is half of MiniLM's 22.7M weights, and a few thousand documents touch a sliver of its
    # 30k rows: freezing it spares its dense gradient and optimiser state (a CPU step ~30 % faster, measured)
    freeze_embeddings: bool = True
    balance: str = "none"  # "none" (FineWeb-Edu) | "oversample" (every class up to the largest)
    probe_rows: int = 512  # linear-probe head initialisation on this many training documents; 0: random head
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    bf16: bool = True  # autocast on CUDA; ignored on a CPU
    max_grad_norm: float = 1.0

    def check(self) -> None:
        if self.balance not in ("none", "oversample"):
            raise ConfigError(f"finetune balance {self.balance!r}: use 'none' or 'oversample'")
        for key in ("epochs", "batch_size", "grad_accumulation"):
            if getattr(self, key) < 1:
                raise ConfigError(f"finetune {key} {getattr(self, key)}: must be at least 1")
        if self.max_steps is not None and self.max_steps < 0:
            raise ConfigError(f"finetune max_steps {self.max_steps}: must be 0 or more (None: no cap)")
        if not 0 <= self.warmup_share < 1:
            raise ConfigError(f"finetune warmup_share {self.warmup_share}: must be in [0, 1)")


def learning_rate_at(step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier of the peak rate: linear warm-up to 1, then linear decay to 0 (BERT's schedule)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


class FineTunedClassifier(HFSequenceClassifier):
    """The trained model in memory (same `predict` as the saved folder loaded by `load_classifier`), plus `record`:
    how it was trained (settings, loss per optimiser step, probe, timings; also in output_dir/training.json)."""

    def __init__(self, model, tokenizer, device: str, record: dict, batch_size: int | None = None):
        super().__init__(model, tokenizer, device, batch_size)
        self.record = record


def fine_tune(
    texts: list[str], scores, settings: FineTuneSettings | None = None, output_dir: str | Path | None = None
) -> FineTunedClassifier:
    """Fine-tune `settings.encoder` on (texts, 0-5 scores) and save it at `output_dir` (see the module docstring)."""
    from transformers import AutoTokenizer

    s = settings or FineTuneSettings()
    s.check()
    if output_dir is None:
        raise ConfigError("fine_tune needs output_dir: the fine-tuned model is a folder that `winnow score` loads")
    labels = np.asarray(scores, dtype=np.float32)
    if len(texts) != len(labels) or not len(texts):
        raise ValueError(f"fine_tune: {len(texts)} texts and {len(labels)} scores; need as many, at least one")
    device = resolve_device(s.device)
    cuda = device.startswith("cuda")
    max_tokens = s.max_tokens or (512 if cuda else 128)
    started = time.perf_counter(), _cpu_seconds()
    torch.manual_seed(s.seed)  # the head's random init (before the probe) and dropout draw from it
    rng = np.random.default_rng(s.seed)

    # ---- data ----------------------------------------------------------------------------------------------------
    transformer_dir = transformer_folder(Path(encoder_path(s.encoder)))
    tokenizer = AutoTokenizer.from_pretrained(transformer_dir, local_files_only=True)
    # tokenised once, cut to max_tokens; each batch is padded to its longest row only
    encoded = tokenizer(list(texts), truncation=True, max_length=max_tokens)["input_ids"]

    def batch(rows) -> dict:
        ids = [encoded[i] for i in rows]
        width = max(len(row) for row in ids)
        input_ids = torch.full((len(ids), width), tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):  # right padding, as the tokenizer pads when scoring
            input_ids[i, : len(row)] = torch.as_tensor(row)
            attention_mask[i, : len(row)] = 1
        return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}

    # ---- model ---------------------------------------------------------------------------------------------------
    model = build_model(transformer_dir).to(device)
    head = output_layer(model)
    if s.probe_rows:
        probe = probe_head(model, head, batch, labels, s, rng)
    else:
        probe = None
        with torch.no_grad():
            head.bias.fill_(float(labels.mean()))  # a random head starting at the mean label, not at 0

    # ---- optimiser -----------------------------------------------------------------------------------------------
    if s.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    head_ids = {id(p) for p in head.parameters()}
    decay, no_decay, head_params = [], [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if id(parameter) in head_ids:
            head_params.append(parameter)
        elif parameter.ndim < 2 or "LayerNorm" in name or "layer_norm" in name:
            no_decay.append(parameter)  # biases and norms: decaying them toward 0 only hurts (BERT's recipe)
        else:
            decay.append(parameter)
    groups = [
        {"params": decay, "lr": s.encoder_lr, "weight_decay": s.weight_decay, "peak": s.encoder_lr},
        {"params": no_decay, "lr": s.encoder_lr, "weight_decay": 0.0, "peak": s.encoder_lr},
        {"params": head_params, "lr": s.head_lr, "weight_decay": 0.0, "peak": s.head_lr},
    ]
    optimiser = torch.optim.AdamW(groups)
    orders = [training_order(labels, s.balance, rng) for _ in range(s.epochs)]
    rows_per_step = s.batch_size * s.grad_accumulation
    total_steps = sum(math.ceil(len(order) / rows_per_step) for order in orders)
    if s.max_steps is not None:
        total_steps = min(total_steps, s.max_steps)
    warmup_steps = max(1, round(s.warmup_share * total_steps))

    # ---- loop ----------------------------------------------------------------------------------------------------
    target = torch.as_tensor(labels, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and s.bf16)
    losses: list[float] = []
    model.train()
    step = 0
    for order in orders:
        for start in range(0, len(order), rows_per_step):
            if step >= total_steps:
                break
            for group in optimiser.param_groups:
                group["lr"] = group["peak"] * learning_rate_at(step, total_steps, warmup_steps)
            rows = order[start : start + rows_per_step]
            optimiser.zero_grad(set_to_none=True)
            step_loss = 0.0
            for micro in np.array_split(rows, math.ceil(len(rows) / s.batch_size)):
                with autocast:
                    predicted = model(**batch(micro)).logits.squeeze(-1)
                # float32 loss even under autocast; each micro-batch weighted by its share: the step's mean over rows
                loss = nn.functional.mse_loss(predicted.float(), target[torch.as_tensor(micro)]) * (
                    len(micro) / len(rows)
                )
                loss.backward()
                step_loss += loss.item()
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], s.max_grad_norm)
            optimiser.step()
            losses.append(step_loss)
            step += 1
    model.eval()

    # ---- checkpoint ----------------------------------------------------------------------------------------------
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)  # float32 weights whatever the autocast
    tokenizer.model_max_length = max_tokens  # the scorer's recipe truncates to it: it scores what it trained on
    # an encoder folder's tokenizer.json may carry fixed truncation/padding; every call here sets its own instead
    tokenizer.backend_tokenizer.no_truncation()
    tokenizer.backend_tokenizer.no_padding()
    tokenizer.save_pretrained(output_dir)
    record = {
        "settings": asdict(s),
        "encoder_dir": str(transformer_dir),
        "device": device,
        "threads": torch.get_num_threads(),
        "max_tokens": max_tokens,
        "rows": len(texts),
        "label_histogram": {int(k): int((labels == k).sum()) for k in np.unique(labels)},
        "steps": step,
        "warmup_steps": warmup_steps,
        "losses": losses,
        "probe": probe,
        "train_seconds": time.perf_counter() - started[0],
        "train_cpu_seconds": _cpu_seconds() - started[1],
    }
    write_json(output_dir / "training.json", record)
    if cuda:
        model = model.to(torch.bfloat16)  # as load_classifier runs the saved folder on a GPU
    return FineTunedClassifier(model, tokenizer, device, record)


# ---- the pieces the steps above call -----------------------------------------------------------------------------


def transformer_folder(folder: Path) -> Path:
    """The transformer inside a sentence-transformers folder (its `Transformer` module's path), or `folder` itself
    when it is a plain transformers model folder."""
    modules = folder / "modules.json"
    if modules.exists():
        for module in json.loads(modules.read_text()):
            if module["type"].endswith("Transformer"):
                return folder / module["path"]
    if not (folder / "config.json").exists():
        raise ConfigError(f"encoder {folder}: no config.json or modules.json; need a transformers/ST model folder")
    return folder


def build_model(transformer_dir: Path):
    """A sequence-classification model with the encoder's weights and a new 1-output regression head."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # "some weights were newly initialised: classifier.*" is the point here
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            transformer_dir, num_labels=1, problem_type="regression", local_files_only=True
        )
    finally:
        logging.set_verbosity(verbosity)


def output_layer(model) -> nn.Linear:
    """The layer that writes the score: the last Linear with one output (BERT's `classifier`, ModernBERT's ...)."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == 1]
    if not layers:
        raise ValueError(f"{type(model).__name__}: no 1-output linear layer to train as the regression head")
    return layers[-1]


def probe_head(model, head: nn.Linear, batch, labels: np.ndarray, s: FineTuneSettings, rng) -> dict:
    """Set `head` to the ridge regression of the labels on its own inputs from the frozen model (LP-FT's linear
    probe); the ridge strength is chosen by leave-one-out on the same rows. Returns what it chose."""
    from sklearn.linear_model import RidgeCV

    rows = np.sort(rng.permutation(len(labels))[: s.probe_rows])
    features: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda module, inputs: features.append(inputs[0].float().cpu()))
    model.eval()  # no dropout: the head's inputs as they are when scoring
    try:
        with torch.inference_mode():
            for start in range(0, len(rows), s.batch_size):
                model(**batch(rows[start : start + s.batch_size]))
    finally:
        hook.remove()
    x = torch.cat(features).numpy().astype(np.float64)
    ridge = RidgeCV(alphas=np.logspace(-2, 4, 13)).fit(x, labels[rows])
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(ridge.coef_, dtype=head.weight.dtype).reshape(head.weight.shape))
        head.bias.fill_(float(ridge.intercept_))
    return {"rows": int(len(rows)), "alpha": float(ridge.alpha_), "train_r2": float(ridge.score(x, labels[rows]))}


def training_order(labels: np.ndarray, balance: str, rng) -> np.ndarray:
    """Row indices for one epoch: a shuffle, or (oversample) every class repeated up to the largest class's count."""
    if balance == "none":
        return rng.permutation(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    rows = []
    for k, count in zip(classes, counts):
        members = np.flatnonzero(labels == k)
        rows.extend(np.tile(members, counts.max() // count))
        rows.extend(rng.choice(members, size=counts.max() % count, replace=False))
    return rng.permutation(np.asarray(rows))


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

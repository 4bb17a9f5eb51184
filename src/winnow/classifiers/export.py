"""Export a saved winnow classifier as a Hugging Face model folder that others can use without winnow.

```
out/
  config.json          model_type winnow_edu_encoder: the encoder's config (nested), pooling, normalize, the
                       calibration cut-points, `auto_map` to the code file, and `winnow_export` (training labels,
                       metrics, source classifier hash)
  model.safetensors    the sentence encoder's weights + the regression head (mean/std buffers, linear layer)
  hf_modeling.py       the model class (a copy of winnow/classifiers/hf_modeling.py: torch + transformers only)
  tokenizer.json, ...  the encoder's tokenizer, model_max_length = the classifier's max_tokens
  README.md            model card: what it scores, how to load it, training labels, metrics
```
Loading it: `AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True)` (and AutoTokenizer with
the same flag: it reads config.json), then the FineWeb-Edu
classifier's recipe (`logits.squeeze(-1)` is the calibrated 0-5 score). winnow's own loader
(`load_classifier(out)`, hence `winnow score --classifier out`) reads the same folder with winnow's copy of the
class and executes nothing from the folder.

Why not a stock class: see hf_modeling.py (mean pooling + normalisation + calibration; BERT's classification head
reads [CLS] through a pooler). Why not a sentence-transformers folder with a Dense head: it would reproduce the raw
head score, but the calibration map is piecewise linear and has no sentence-transformers module; a scorer that
silently skips it puts the int_score boundaries elsewhere.

Only the `embed` backbone can be exported: the fastText backbone is not a transformer, so there is no
sequence-classification form of it (export refuses with one line; use the saved folder with winnow, or fastText's
own `load_model` on its model.bin).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from winnow.classifiers.hf_format import read_config, register_winnow_model
from winnow.classifiers.model import encoder_path
from winnow.classifiers.saved import ENSEMBLE, FORMAT
from winnow.errors import ConfigError

EXPORT_FORMAT = "winnow-edu-classifier-hf/1"


def encoder_pipeline(folder: Path) -> dict:
    """pooling and normalisation of a sentence-transformers encoder folder; refuses any other pipeline."""
    modules_file = folder / "modules.json"
    if not modules_file.exists():
        raise ConfigError(f"{folder}: no modules.json; export needs a sentence-transformers encoder folder")
    kinds = [m["type"].rsplit(".", 1)[-1] for m in json.loads(modules_file.read_text())]
    pooling_dir = next(
        (folder / m["path"] for m in json.loads(modules_file.read_text()) if m["type"].endswith("Pooling")), None
    )
    pooling = json.loads((pooling_dir / "config.json").read_text()) if pooling_dir else {}
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    if (
        kinds[:2] != ["Transformer", "Pooling"]
        or set(kinds[2:]) - {"Normalize"}
        or modes != ["pooling_mode_mean_tokens"]
    ):
        raise ConfigError(
            f"{folder}: export reproduces Transformer → mean Pooling (→ Normalize); this encoder is "
            f"{' → '.join(kinds)} with pooling {modes}"
        )
    return {"pooling": "mean", "normalize": "Normalize" in kinds}


def export_classifier(classifier_dir: str | Path, out: str | Path) -> Path:
    """Write `classifier_dir` (a `winnow classifier` folder, embed backbone) as an HF folder at `out`."""
    from transformers import AutoModel, AutoTokenizer

    from winnow.classifiers.hf_modeling import WinnowEduConfig, WinnowEduForSequenceClassification

    classifier_dir, out = Path(classifier_dir), Path(out)
    config = read_config(classifier_dir)
    if config.get("format") != FORMAT:
        raise ConfigError(f"--classifier {classifier_dir}: not a winnow classifier folder (format {FORMAT})")
    if config["backbone"] == ENSEMBLE:
        raise ConfigError(
            f"--classifier {classifier_dir}: an {ENSEMBLE} classifier has a fastText member, which has no Hugging Face "
            f"form; train classifier.backbone: embed to export (or score with winnow)"
        )
    if config["backbone"] != "embed":
        raise ConfigError(
            f"--classifier {classifier_dir}: the {config['backbone']} backbone is not a transformer and has no Hugging "
            f"Face form; only embed classifiers export (score with winnow, or load its model.bin with fastText)"
        )
    encoder_dir = Path(encoder_path(config["encoder"]))
    pipeline = encoder_pipeline(encoder_dir)
    encoder = AutoModel.from_pretrained(encoder_dir, local_files_only=True)
    head = torch.load(classifier_dir / "head.pt", map_location="cpu", weights_only=True)

    hf_config = WinnowEduConfig(
        encoder={k: v for k, v in encoder.config.to_dict().items() if k != "_name_or_path"},  # no local paths
        calibration=config.get("calibration", {}),
        winnow_export={
            "format": EXPORT_FORMAT,
            "source_config_sha256": _sha256(classifier_dir / "config.json"),
            "encoder": config["encoder"],
            "max_tokens": config["max_tokens"],
            "label_scheme": config.get("label_scheme"),
            "training_data": config.get("training_data"),
            "metrics": config.get("metrics"),
        },
        **pipeline,
    )
    model = WinnowEduForSequenceClassification(hf_config)
    model.encoder.load_state_dict(encoder.state_dict())
    with torch.no_grad():
        model.head_mean.copy_(head["mean"])
        model.head_std.copy_(head["std"])
        model.head.weight.copy_(head["linear.weight"])
        model.head.bias.copy_(head["linear.bias"])
    model.eval()

    out.mkdir(parents=True, exist_ok=True)
    # auto_map + a copy of hf_modeling.py: what `trust_remote_code=True` loads elsewhere
    WinnowEduConfig.register_for_auto_class()
    WinnowEduForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
    model.save_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir, local_files_only=True)
    tokenizer.model_max_length = config["max_tokens"]  # the recipe truncates to it, as the encoder did in winnow
    # the encoder folder's tokenizer.json has fixed truncation/padding baked in; every call sets its own instead
    tokenizer.backend_tokenizer.no_truncation()
    tokenizer.backend_tokenizer.no_padding()
    tokenizer.save_pretrained(out)
    (out / "README.md").write_text(model_card(config, classifier_dir, out.name))
    register_winnow_model()
    return out


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_card(config: dict, classifier_dir: Path, name: str) -> str:
    """README.md: what the model scores, how to load it, the labels it learnt from and its held-out metrics."""
    data = config.get("training_data") or {}
    metrics = config.get("metrics") or {}
    eval_file = classifier_dir / "eval.json"
    evaluation = json.loads(eval_file.read_text()) if eval_file.exists() else {}
    ci = (evaluation.get("metrics") or {}).get("f1_ci95")
    histogram = ", ".join(f"{k}: {v}" for k, v in (data.get("histogram") or {}).items())
    extra = data.get("extra")
    extra_line = (
        f"- training only (never scored, so not in the metrics): `{extra['source']}`, {extra['rows']} documents "
        f"(sha256 `{extra['sha256']}`), per score: {', '.join(f'{k}: {v}' for k, v in extra['histogram'].items())}\n"
        if extra
        else ""
    )
    rows = [
        ("F1 of int_score ≥ 3", metrics.get("f1"), f" (95 % CI {ci[0]:.3f}–{ci[1]:.3f})" if ci else ""),
        ("precision (≥ 3)", metrics.get("precision"), ""),
        ("recall (≥ 3)", metrics.get("recall"), ""),
        ("macro-F1 over 0-5", metrics.get("macro_f1"), ""),
        ("Spearman ρ", metrics.get("spearman"), ""),
    ]
    table = "\n".join(f"| {label} | {value:.3f}{extra} |" for label, value, extra in rows if value is not None)
    cuts = ", ".join(f"{t}: {c:.4f}" for t, c in (config.get("calibration") or {}).items()) or "none (identity)"
    return f"""---
language:
- en
license: apache-2.0
library_name: transformers
pipeline_tag: text-classification
tags:
- fineweb-edu
- educational-quality
---

# {name}: an educational-quality classifier exported by winnow

Scores a web page's educational value on FineWeb-Edu's 0-5 scale (a regression: the logit is the score) and
`int_score = int(round(max(0, min(score, 5))))`; FineWeb-Edu keeps pages with `int_score >= 3`.

Architecture: the frozen sentence encoder `{config["encoder"]}` (mean pooling over the first {config["max_tokens"]}
tokens, L2-normalised), a linear regression head on the standardised embedding, and a monotone calibration map whose
cut-points put each integer boundary t − 0.5 where held-out predictions best separated `label ≥ t` (cuts: {cuts}).
The calibration is applied inside the model, so the logit is the final score.

## Use

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("path/to/{name}", trust_remote_code=True)
model = AutoModelForSequenceClassification.from_pretrained("path/to/{name}", trust_remote_code=True)
inputs = tokenizer(texts, return_tensors="pt", padding="longest", truncation=True)
scores = model(**inputs).logits.squeeze(-1).float().detach().numpy()
int_scores = [int(round(max(0, min(s, 5)))) for s in scores]
```
`trust_remote_code=True` runs `hf_modeling.py` from this folder (torch + transformers only; read it first); the
tokenizer needs it too, only because AutoTokenizer reads config.json (else it asks on the terminal). With
winnow: `winnow score --classifier path/to/{name}` (winnow uses its own copy of that class).

## Training labels

- source: `{data.get("source")}`, {data.get("rows")} documents (sha256 `{data.get("sha256")}`)
- labels per score: {histogram}
{extra_line}
## Metrics ({metrics.get("evaluation") or "held-out labels"}, n = {metrics.get("n")})

| metric | value |
|---|---|
{table}
"""

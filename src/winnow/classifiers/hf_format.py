"""A Hugging Face sequence-classification folder as the scorer: the format of the FineWeb-Edu classifier.

```
folder/
  config.json              transformers config: `num_labels: 1` (a regression head; the logit is the score)
  model.safetensors        the weights (or pytorch_model.bin)
  tokenizer.json, ...      the tokenizer saved with it
```
`HFSequenceClassifier.predict(texts)` follows the released classifier's model card exactly, batch by batch:
`tokenizer(texts, padding="longest", truncation=True, max_length=<the model's max length>)`, one forward pass,
`logits.squeeze(-1)` as the score; EduScorer then writes `int_score = int(round(max(0, min(score, 5))))`. The model
runs in bf16 on a GPU and float32 on a CPU. A folder that is not a trained single-output regression model (several
labels, or a bare encoder without a classification head) is refused before any weights load (`check_config`).

winnow's own exports (`winnow export-classifier`, model type `winnow_edu_encoder`) load through winnow's copy of their
model class (classifiers/hf_modeling.py), never through the code file in the folder: no code from a model folder is
ever executed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

# a tokenizer without a recorded limit reports this sentinel (transformers' VERY_LARGE_INTEGER, 1e30) or similar
_NO_LIMIT = 1_000_000


def is_hf_config(config: dict) -> bool:
    """config.json of a transformers model (it names its model type), not of winnow's own format."""
    return "format" not in config and isinstance(config.get("model_type"), str)


def weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())


def fingerprint(folder: str | Path) -> str:
    """SHA-256 over config.json and the weight files: a fine-tuned copy with the same config is another model."""
    folder = Path(folder)
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for path in weight_files(folder):
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def max_length(tokenizer, config) -> int:
    """The longest input the model takes: the tokenizer's recorded limit, else the position table's size."""
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < _NO_LIMIT:
        return limit
    positions = getattr(config, "max_position_embeddings", None)
    if not positions:
        encoder = getattr(config, "encoder", None)  # winnow's export keeps the encoder's config nested
        positions = encoder.get("max_position_embeddings") if isinstance(encoder, dict) else None
    if not positions:
        raise ValueError("the model records no maximum length (tokenizer model_max_length, max_position_embeddings)")
    return int(positions)


def check_config(config: dict, folder: str | Path) -> None:
    """Refuse, before loading any weights, a folder that is not a trained single-output regression model."""
    architectures = config.get("architectures") or []
    if not any(name.endswith("ForSequenceClassification") for name in architectures):
        # AutoModelForSequenceClassification would put a randomly initialised head on a bare encoder
        raise ValueError(
            f"{folder}: config.json names no sequence-classification model (architectures: {architectures}); "
            f"the scorer needs a trained regression head like the FineWeb-Edu classifier's"
        )
    labels = len(config["id2label"]) if config.get("id2label") else config.get("num_labels", 2)
    if labels != 1:
        raise ValueError(
            f"{folder}: a model with num_labels {labels}; the scorer needs a regression head "
            f"(num_labels 1, the logit is the 0-5 score) like the FineWeb-Edu classifier's"
        )


def register_winnow_model() -> None:
    """Make `AutoModelForSequenceClassification` know winnow's exported model type (winnow's own class)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from winnow.classifiers.hf_modeling import MODEL_TYPE, WinnowEduConfig, WinnowEduForSequenceClassification

    try:
        AutoConfig.register(MODEL_TYPE, WinnowEduConfig)
        AutoModelForSequenceClassification.register(WinnowEduConfig, WinnowEduForSequenceClassification)
    except ValueError:  # already registered in this process
        pass


class HFSequenceClassifier:
    """A regression sequence-classification model and its tokenizer; `predict(texts)` → one float score per text."""

    def __init__(self, model, tokenizer, device: str = "cpu", batch_size: int | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size or (512 if device.startswith("cuda") else 64)
        self.max_length = max_length(tokenizer, model.config)

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu", batch_size: int | None = None) -> HFSequenceClassifier:
        """`device`: "cpu", "cuda" or "cuda:N" (winnow.classifiers.saved.load_classifier resolves "auto")."""
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(folder)
        check_config(read_config(folder), folder)
        register_winnow_model()
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            folder, local_files_only=True, trust_remote_code=False
        )
        if model.config.num_labels != 1:
            raise ValueError(
                f"{folder}: a model with num_labels {model.config.num_labels}; the scorer needs a regression head "
                f"(num_labels 1, the logit is the 0-5 score) like the FineWeb-Edu classifier's"
            )
        if device.startswith("cuda"):
            model = model.to(torch.bfloat16)
        return cls(model.to(device).eval(), tokenizer, device, batch_size)

    def predict(self, texts: list[str]) -> np.ndarray:
        import torch

        scores = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                inputs = self.tokenizer(
                    list(texts[start : start + self.batch_size]),
                    return_tensors="pt",
                    padding="longest",
                    truncation=True,
                    max_length=self.max_length,
                ).to(self.device)
                logits = self.model(**inputs).logits
                scores.append(logits.squeeze(-1).float().cpu().numpy().reshape(-1))
        return np.concatenate(scores).astype(float) if scores else np.zeros(0)


def read_config(folder: str | Path) -> dict:
    path = Path(folder) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{folder} is not a saved classifier (no config.json); run `winnow classifier`")
    return json.loads(path.read_text())

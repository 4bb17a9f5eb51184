"""A saved classifier: one folder that `winnow score` loads without any training state.

```
classifier/
  config.json    backbone, encoder, max_tokens, label scheme, calibration cuts, training-data hash, metrics
  head.pt        embed backbone: the regression head's state dict (the encoder is referenced, not copied)
  model.bin      fasttext backbone: the fastText model
```
The `embed+fasttext` backbone saves both files; its config.json also has `members`, each member's own calibration:
its score is the mean of the two members' calibrated scores (the ensemble's own `calibration` is then the identity).
`EduClassifier.predict(texts)` returns calibrated float scores on the 0–5 scale; `int_scores` rounds and
clamps them the way FineWeb-Edu does. `load_classifier(folder)` is what the score stage calls: it also takes a Hugging
Face sequence-classification folder (the released FineWeb-Edu classifier's format, classifiers/hf_format.py) and a
distilled static-embedding student (`winnow distill`, classifiers/static.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from winnow.classifiers.hf_format import HFSequenceClassifier, is_hf_config, read_config
from winnow.classifiers.hf_format import check_config as check_hf_config
from winnow.classifiers.labels import MAX_SCORE
from winnow.classifiers.model import (
    FastTextScorer,
    RegressionHead,
    ScoreCalibration,
    SentenceEncoder,
    mean_with_fasttext,
)
from winnow.classifiers.static import FORMAT as STATIC_FORMAT
from winnow.classifiers.static import StaticScorer
from winnow.files import write_json

FORMAT = "winnow-edu-classifier/1"
ENSEMBLE = "embed+fasttext"  # the backbone that averages an embed and a fastText classifier
ENCODER_BACKBONES = ("embed", ENSEMBLE)  # the backbones that read documents through a sentence encoder
LABEL_SCHEME = {"min": 0, "max": MAX_SCORE, "int_score": "round(clamp(score, 0, 5))", "educational": "int_score >= 3"}


def int_scores(scores: np.ndarray) -> np.ndarray:
    """FineWeb-Edu's int_score: the score clamped to 0–5, then rounded (half to even, as Python's round)."""
    return np.rint(np.clip(np.asarray(scores, dtype=float), 0, MAX_SCORE)).astype(np.int64)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} asked for, but torch sees no CUDA device")
    return device


def check_classifier(folder: str | Path) -> None:
    """Raise ValueError (naming the folder and the problem) unless `load_classifier` can score with `folder`;
    reads config.json only, so a stage can refuse a wrong folder before any task starts."""
    config = read_config(folder)
    if config.get("format") in (FORMAT, STATIC_FORMAT):
        return
    if not is_hf_config(config):
        raise ValueError(
            f"{folder}: config.json is neither winnow's classifier format ({FORMAT}) nor a transformers model "
            f"(no model_type)"
        )
    check_hf_config(config, folder)


def load_classifier(folder: str | Path, device: str = "cpu", batch_size: int | None = None):
    """Any scorer folder, told apart by its config.json: winnow's own format (`EduClassifier`), or a Hugging Face
    sequence-classification folder such as the released FineWeb-Edu classifier (classifiers/hf_format.py). Both
    answer `predict(texts)` with one float score per text."""
    check_classifier(folder)
    if read_config(folder).get("format") == FORMAT:
        return EduClassifier.load(folder, device=device, batch_size=batch_size)
    if read_config(folder).get("format") == STATIC_FORMAT:  # a distilled student (`winnow distill`): CPU only
        return StaticScorer.load(folder)
    return HFSequenceClassifier.load(folder, device=resolve_device(device), batch_size=batch_size)


class EduClassifier:
    def __init__(
        self,
        config: dict,
        calibration: ScoreCalibration,
        head: RegressionHead | None = None,
        fasttext: FastTextScorer | None = None,
        device: str = "cpu",
        batch_size: int | None = None,
        members: dict[str, ScoreCalibration] | None = None,
    ):
        self.config = config
        # embed+fasttext: each member's calibration; the score is the mean of the members' calibrated scores
        self.members = members or {}
        self.backbone = config["backbone"]
        self.calibration = calibration
        self.head = head
        self.fasttext = fasttext
        self.device = device
        self.batch_size = batch_size
        self._encoder: SentenceEncoder | None = None

    @property
    def encoder(self) -> SentenceEncoder:
        if self._encoder is None:  # loaded on first use: the fastText path and config reads never pay for torch models
            self._encoder = SentenceEncoder(
                self.config["encoder"], self.config["max_tokens"], self.device, self.batch_size
            )
        return self._encoder

    @property
    def uses_encoder(self) -> bool:
        return self.backbone in ENCODER_BACKBONES

    # ---- scoring -------------------------------------------------------------------------------------------
    def raw_scores(self, texts: list[str], cache=None) -> np.ndarray:
        """Scores before calibration. `cache` (an EmbeddingCache) spares re-encoding known texts."""
        if self.backbone == "fasttext":
            return self.fasttext.expected_score(texts)
        if cache is not None:  # the encoder is loaded only if some text is not cached
            embeddings = cache.embed(texts, lambda missing: self.encoder.encode(missing))
        else:
            embeddings = self.encoder.encode(texts)
        return self.raw_from_embeddings(embeddings, texts)

    def raw_from_embeddings(self, embeddings: np.ndarray, texts: list[str]) -> np.ndarray:
        """Scores before calibration of texts whose sentence embeddings are known (an encoder backbone)."""
        if self.backbone == ENSEMBLE:
            embed = self.members["embed"](self.head_scores(embeddings))
            return mean_with_fasttext(embed, texts, self.fasttext, self.members["fasttext"])
        return self.head_scores(embeddings)

    def head_scores(self, embeddings: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.head(torch.as_tensor(embeddings, dtype=torch.float32)).numpy().astype(float)

    def predict(self, texts: list[str], cache=None) -> np.ndarray:
        return self.calibration(self.raw_scores(texts, cache))

    # ---- files ---------------------------------------------------------------------------------------------
    def save(self, folder: str | Path, metrics: dict | None = None) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = dict(self.config, format=FORMAT, label_scheme=LABEL_SCHEME, calibration=self.calibration.cuts)
        if metrics is not None:
            config["metrics"] = metrics
        if self.members:
            config["members"] = {name: {"calibration": c.cuts} for name, c in self.members.items()}
        if self.fasttext is not None:
            self.fasttext.save(folder / "model.bin")
        if self.head is not None:
            torch.save(self.head.state_dict(), folder / "head.pt")
        write_json(folder / "config.json", config)  # written last: a folder with config.json is a complete model
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu", batch_size: int | None = None) -> EduClassifier:
        folder = Path(folder)
        if not (folder / "config.json").exists():
            raise FileNotFoundError(f"{folder} is not a saved classifier (no config.json); run `winnow classifier`")
        config = json.loads((folder / "config.json").read_text())
        if config.get("format") != FORMAT:
            raise ValueError(f"{folder}: unknown classifier format {config.get('format')!r}")
        calibration = ScoreCalibration({int(t): c for t, c in config.get("calibration", {}).items()})
        device = resolve_device(device)
        if config["backbone"] == "fasttext":
            return cls(config, calibration, fasttext=FastTextScorer.load(folder / "model.bin"), device="cpu")
        state = torch.load(folder / "head.pt", map_location="cpu", weights_only=True)
        head = RegressionHead(state["mean"].shape[0])
        head.load_state_dict(state)
        head.eval()
        members = {name: ScoreCalibration(member["calibration"]) for name, member in config.get("members", {}).items()}
        fasttext = FastTextScorer.load(folder / "model.bin") if config["backbone"] == ENSEMBLE else None
        return cls(
            config, calibration, head=head, fasttext=fasttext, device=device, batch_size=batch_size, members=members
        )

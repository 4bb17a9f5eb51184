"""A static-embedding student scorer: a sentence encoder boiled down to one vector per token, plus a linear head.

model2vec's recipe, written for winnow (the model2vec package's distillation extra pins an older transformers), with
one addition that its authors call tokenlearn: vectors learned from the encoder's outputs on real text.

1. `token_vectors`: every token of the encoder's vocabulary goes through the encoder alone (between its special
   tokens, e.g. `[CLS] token [SEP]`); the mean of the output is that token's *lone* vector. One short forward pass
   per token, once per encoder.
2. `contextual_token_sums`: where the teacher is itself an encoder + head, its one pass over the pool also gives each
   token's *in-context* outputs; their mean over the pool is what the encoder's mean pooling adds to a document for
   that token, on average (winnow.classifiers.distill blends it with the lone vector).
3. `reduce`: PCA to `dim` components.
4. `StaticScorer.predict(texts)`: the text's first `max_chars` characters → the fast tokenizer → `[CLS]` + its first
   tokens + `[SEP]`, `max_tokens` in all (what the encoder reads) → the mean of their vectors, unit length → a linear
   head (ridge regression, inputs standardised) → a score on the 0–5 scale. The tokenizer is most of the cost.

The head is fit in winnow.classifiers.distill (to a teacher classifier's scores). A teacher that is itself an
ensemble of an encoder and a fastText model (`embed+fasttext`) is distilled by its slow half only: the student keeps
the teacher's fastText member as it is (thousands of documents/s per core already), and its score is the mean of the
static part's and the member's calibrated scores, as the teacher's is. Saved folder:

```
distill/
  config.json       format winnow-static-scorer/1, backbone "static", encoder, dim, max_tokens, max_chars,
                    teacher (folder, sha256), pool, held-out metrics, weights_sha256, fasttext_member (its
                    calibration, for an embed+fasttext teacher); written last (a complete model)
  tokenizer.json    the encoder's fast tokenizer
  embeddings.npy    float32 [vocabulary size, dim]
  head.npz          mean, std, coef (dim), intercept: score = ((x - mean) / std) · coef + intercept
  model.bin         the teacher's fastText member (embed+fasttext teachers only)
```
`load_classifier` (classifiers/saved.py) loads it like any other scorer; `int_scores` applies unchanged.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from winnow.classifiers.model import FastTextScorer, ScoreCalibration, encoder_path, mean_with_fasttext
from winnow.files import write_json

FORMAT = "winnow-static-scorer/1"


# ---- distillation: encoder → one vector per token ----------------------------------------------------------------
def token_vectors(encoder: str, token_ids: Iterable[int] | None = None, batch_size: int = 1024) -> np.ndarray:
    """float32 [vocabulary size, hidden]: row i is the encoder's mean-pooled output for token i alone. With
    `token_ids`, only those rows are computed (the others stay zero: a token with no vector adds nothing)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = encoder_path(encoder)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    vocabulary = len(tokenizer)
    ids = np.arange(vocabulary) if token_ids is None else np.unique(np.fromiter(token_ids, dtype=np.int64))
    # the special tokens the encoder puts around any input: [CLS] x [SEP] for BERT, <s> x </s> for RoBERTa
    word = tokenizer("the", add_special_tokens=False)["input_ids"]  # one token in every English vocabulary
    wrapped = tokenizer("the")["input_ids"]
    position = wrapped.index(word[0])
    template = torch.tensor(wrapped)
    out = np.zeros((vocabulary, model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            chunk = torch.as_tensor(ids[start : start + batch_size])
            inputs = template.repeat(len(chunk), 1)
            inputs[:, position] = chunk
            hidden = model(input_ids=inputs, attention_mask=torch.ones_like(inputs)).last_hidden_state
            out[chunk.numpy()] = hidden.mean(1).float().numpy()
    return out


def contextual_token_sums(encoder, texts: list[str], vocabulary: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pass of a SentenceEncoder over `texts`: (sentence embeddings [n, hidden] exactly as `encoder.encode` gives
    them, the sum of each vocabulary token's in-context output vectors [vocabulary, hidden] (float64), and how often
    each token occurred [vocabulary]). The mean in-context vector of a token is what a mean-pooling encoder adds to a
    document for it, on average: the static vector that best stands in for the encoder on this kind of text."""
    import torch

    sums = torch.zeros((vocabulary, encoder.dim), dtype=torch.float64)
    counts = torch.zeros(vocabulary, dtype=torch.int64)
    sentences = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    with torch.inference_mode():
        outputs = encoder.model.encode(
            texts, batch_size=encoder.batch_size, output_value=None, show_progress_bar=False, convert_to_numpy=False
        )
        for i, out in enumerate(outputs):
            mask = out["attention_mask"].bool().cpu()
            ids = out["input_ids"].cpu()[mask]
            sums.index_add_(0, ids, out["token_embeddings"].cpu()[mask].double())
            counts.index_add_(0, ids, torch.ones_like(ids))
            sentences[i] = out["sentence_embedding"].float().cpu().numpy()
    return sentences, sums.numpy(), counts.numpy()


def reduce(vectors: np.ndarray, dim: int, seed: int = 0) -> np.ndarray:
    """PCA to `dim` components, fit on the tokens that have a vector (rows of zeros stay zero). model2vec also weights
    tokens by SIF (a / (a + frequency)); measured here it did not help (the teacher mean-pools every token alike)."""
    from sklearn.decomposition import PCA

    known = np.abs(vectors).sum(1) > 0
    if dim >= vectors.shape[1]:
        return vectors.astype(np.float32)
    reduced = np.zeros((len(vectors), dim), dtype=np.float32)
    reduced[known] = PCA(n_components=dim, random_state=seed).fit(vectors[known]).transform(vectors[known])
    return reduced


# ---- the student ----------------------------------------------------------------------------------------------------
@dataclass
class LinearHead:
    """score = ((x - mean) / std) · coef + intercept (the standardisation is part of the head, as in RegressionHead)."""

    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray
    intercept: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std) @ self.coef + self.intercept

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, alphas=(0.1, 1.0, 10.0, 100.0, 1000.0)) -> LinearHead:
        """Ridge regression; the penalty chosen by efficient leave-one-out over `alphas` (sklearn's RidgeCV)."""
        from sklearn.linear_model import RidgeCV

        mean, std = x.mean(0), x.std(0) + 1e-8
        ridge = RidgeCV(alphas=alphas).fit((x - mean) / std, y)
        return cls(mean, std, ridge.coef_.astype(np.float64), float(ridge.intercept_))


class StaticScorer:
    """Texts → 0–5 scores from static token vectors and a linear head; `predict` is what the score stage calls."""

    def __init__(
        self,
        tokenizer,
        embeddings: np.ndarray,
        head: LinearHead | None,
        config: dict,
        member: tuple[FastTextScorer, ScoreCalibration] | None = None,
    ):
        self.tokenizer = tokenizer
        self.embeddings = embeddings
        self.head = head
        self.config = config
        self.member = member  # an embed+fasttext teacher's fastText member and its calibration, kept as they are
        self.max_tokens = int(config["max_tokens"])
        self.max_chars = int(config["max_chars"])
        tokenizer.no_padding()
        tokenizer.enable_truncation(self.max_tokens)  # special tokens included, as the encoder counts them

    @classmethod
    def from_encoder(
        cls, encoder: str, embeddings: np.ndarray, max_tokens: int, max_chars: int, config: dict | None = None
    ) -> StaticScorer:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(Path(encoder_path(encoder)) / "tokenizer.json"))
        settings = {
            "encoder": encoder,
            "max_tokens": max_tokens,
            "max_chars": max_chars,
            "dim": embeddings.shape[1],
            "normalize": True,
        }
        return cls(tokenizer, embeddings, None, {**(config or {}), **settings})

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's tokens as the encoder reads them: `[CLS] first tokens [SEP]`, max_tokens in all. The text is cut
        at max_chars first: tokenizing a whole long page would cost more than everything else."""
        return [e.ids for e in self.tokenizer.encode_batch_fast([t[: self.max_chars] for t in texts])]

    def features(self, texts: list[str]) -> np.ndarray:
        """float32 [len(texts), dim]: the mean vector of each text's tokens (zeros for a text with none)."""
        from scipy.sparse import csr_matrix

        ids = self.token_ids(texts)
        lengths = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((t for i in ids for t in i), dtype=np.int64, count=int(lengths.sum()))
        # token counts per text [texts, vocabulary] times the vectors: sums without copying a vector per token
        counts = csr_matrix(
            (np.ones(len(flat), dtype=np.float32), flat, np.concatenate([[0], np.cumsum(lengths)])),
            shape=(len(texts), len(self.embeddings)),
        )
        sums = np.asarray(counts @ self.embeddings)
        means = sums / np.maximum(lengths, 1)[:, None]
        if self.config.get("normalize", True):  # as the encoder's own unit-length sentence embeddings (measured: +0.01)
            means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        return means

    def predict(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        scores = self.head(self.features(list(texts))).astype(float)
        if self.member is not None:  # as the embed+fasttext teacher: the mean of its two halves' calibrated scores
            scores = mean_with_fasttext(scores, texts, *self.member)
        return scores

    # ---- files -----------------------------------------------------------------------------------------------------
    def save(self, folder: str | Path, extra: dict | None = None) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").unlink(missing_ok=True)  # a half-rewritten folder must not pass for a model
        shutil.copyfile(Path(encoder_path(self.config["encoder"])) / "tokenizer.json", folder / "tokenizer.json")
        with open(folder / "embeddings.npy", "wb") as f:
            np.save(f, self.embeddings)
        np.savez(
            folder / "head.npz",
            mean=self.head.mean,
            std=self.head.std,
            coef=self.head.coef,
            intercept=np.array(self.head.intercept),
        )
        files = ["embeddings.npy", "head.npz"]
        self.config = {**self.config, **(extra or {}), "format": FORMAT, "backbone": "static"}
        if self.member is not None:
            self.member[0].save(folder / "model.bin")
            files.append("model.bin")
            self.config["fasttext_member"] = {"calibration": self.member[1].cuts}
        digest = hashlib.sha256()  # in config.json: the score stage fingerprints a classifier by its config.json
        for name in files:
            digest.update((folder / name).read_bytes())
        self.config["weights_sha256"] = digest.hexdigest()
        write_json(folder / "config.json", self.config)  # last: a folder with config.json is a complete model
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> StaticScorer:
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        if config.get("format") != FORMAT:
            raise ValueError(f"{folder}: not a static scorer (format {config.get('format')!r}, expected {FORMAT})")
        head = np.load(folder / "head.npz")
        member = None
        if config.get("fasttext_member") is not None:
            calibration = ScoreCalibration(config["fasttext_member"]["calibration"])
            member = (FastTextScorer.load(folder / "model.bin"), calibration)
        return cls(
            Tokenizer.from_file(str(folder / "tokenizer.json")),
            np.load(folder / "embeddings.npy"),
            LinearHead(head["mean"], head["std"], head["coef"], float(head["intercept"])),
            config,
            member,
        )

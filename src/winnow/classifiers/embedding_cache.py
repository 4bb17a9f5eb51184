"""A disk cache of document embeddings, so re-training the head (or a learning curve) never re-encodes.

One folder per (encoder, max_tokens): `vectors.npy` (float32, one row per document) and `keys.txt`
(the SHA-1 of each document's text, same order). Encoding is the expensive part of the `embed`
backbone (MiniLM: ~12 documents/s on 2 cores); the head trains in a second.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from winnow.files import atomic_path, write_text


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()


class EmbeddingCache:
    chunk = 256  # documents encoded between two saves

    def __init__(self, folder: str | Path, encoder: str, max_tokens: int):
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(encoder).name or encoder)
        self.folder = Path(folder) / f"{name}-{max_tokens}"
        self.loaded_version = None
        self._load()

    def _version(self):
        keys = self.folder / "keys.txt"
        return keys.stat().st_mtime_ns if keys.exists() else None

    def _load(self) -> None:
        """(Re)read the folder: another EmbeddingCache on the same folder may have added vectors since."""
        self.keys: list[str] = []
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        if (self.folder / "keys.txt").exists() and (self.folder / "vectors.npy").exists():
            self.keys = (self.folder / "keys.txt").read_text().split()
            self.vectors = np.load(self.folder / "vectors.npy")
            if len(self.keys) != len(self.vectors):  # a half-written cache: start again rather than mis-align
                self.keys, self.vectors = [], np.zeros((0, 0), dtype=np.float32)
        self.index = {key: i for i, key in enumerate(self.keys)}
        self.loaded_version = self._version()

    def embed(self, texts: list[str], encode) -> np.ndarray:
        """Vectors for `texts`; only the texts not cached yet go through `encode(list[str]) -> array`."""
        if self._version() != self.loaded_version:
            self._load()  # never overwrite what another instance saved
        keys = [text_key(t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self.index))
        first_text = {k: t for k, t in zip(keys, texts, strict=True)}
        for start in range(0, len(missing), self.chunk):  # saved chunk by chunk: an interrupted run keeps its work
            chunk = missing[start : start + self.chunk]
            fresh = np.asarray(encode([first_text[k] for k in chunk]), dtype=np.float32)
            self.vectors = fresh if not len(self.keys) else np.concatenate([self.vectors, fresh])
            for k in chunk:
                self.index[k] = len(self.keys)
                self.keys.append(k)
            self._save()
        return self.vectors[[self.index[k] for k in keys]]

    def _save(self) -> None:
        # vectors first, keys last: keys.txt's mtime is the version other instances watch for
        with atomic_path(self.folder / "vectors.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, self.vectors)  # a file object: given a path, np.save would append ".npy" to the tmp name
        write_text(self.folder / "keys.txt", "\n".join(self.keys) + "\n")
        self.loaded_version = self._version()

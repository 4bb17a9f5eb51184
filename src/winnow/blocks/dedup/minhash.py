"""MinHash signatures: FineWeb's shingles, computed about 10x faster than datatrove's stock block, bit for bit.

datatrove's `MinhashDedupSignature` normalises the text (`simplify_text`), splits it into words with
spaCy, hashes every word 5-gram with xxhash64 and keeps, for each of the 112 hash permutations, the
minimum. Most of its time goes to spaCy and to the per-character Python loop that strips diacritics.
`MinhashSignatures` produces the same shingles and the same signatures:

- `normalize_for_minhash` is `simplify_text` with the slow steps replaced by equivalent C-level ones
  (a regex character class for punctuation, `str.split` for whitespace, a regex for combining marks);
- `FastWordSplitter` splits on spaces and asks spaCy only about the few distinct chunks that spaCy
  could split further (contractions such as "dont", units such as "0km", non-ASCII symbols), with a cache;
- `minhash_signature` folds the 2^61-1 modulus with bit operations instead of a division, in cache-sized chunks.

tests/test_dedup.py checks the equality with the stock block on real documents.
"""

from __future__ import annotations

import re
import struct
import sys
import unicodedata

import numpy as np
import regex
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
from datatrove.utils.text import DEF_TEXT_NORM_CONFIG, MONTHS_PATTERN, NUMBERS_PATTERN, PUNCTUATION, WEEKDAYS_PATTERN
from datatrove.utils.typeshelper import StatHints
from xxhash import xxh64_intdigest

MERSENNE_PRIME = np.uint64((1 << 61) - 1)  # the modulus of datatrove's (and datasketch's) hash permutations
_SHIFT_61 = np.uint64(61)

_PUNCTUATION_RE = re.compile("[" + "".join(re.escape(c) for c in sorted(set(PUNCTUATION))) + "]")
# simplify_text drops the characters that *this Python's* unicodedata calls "Mn". The `regex` module's \p{Mn}
# is much faster but follows a newer Unicode version; where a text holds a character on which the two
# disagree, the exact (slower) set lookup is used instead.
_MN_CHARS = frozenset(chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Mn")
_MN_RUNS = regex.compile(r"\p{Mn}+")
_MN_DISAGREE = _MN_CHARS.symmetric_difference(
    m.group()
    for m in regex.finditer(r"\p{Mn}", "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000))
)


def _replace_characters(text: str, config) -> str:
    if config.lowercase:
        text = text.lower()
    if config.norm_numbers:
        text = NUMBERS_PATTERN.sub("0", text)
    if config.norm_weekdays:
        text = WEEKDAYS_PATTERN.sub("WEEKDAY", text)
    if config.norm_monthnames:
        text = MONTHS_PATTERN.sub("MONTH", text)
    if config.remove_punctuation:
        text = _PUNCTUATION_RE.sub(" ", text)
    return text


def _strip_diacritics(text: str) -> str:
    text = unicodedata.normalize("NFD", text)
    if _MN_DISAGREE.isdisjoint(text):
        return _MN_RUNS.sub("", text)
    return "".join([c for c in text if c not in _MN_CHARS])


def normalize_for_minhash(text: str, config=DEF_TEXT_NORM_CONFIG) -> str:
    """datatrove's `simplify_text` (FineWeb's normalisation before shingling), same output, several times faster."""
    text = _replace_characters(text, config)
    if config.norm_whitespace:
        text = " ".join(text.split())  # str.split and re's \s agree on what whitespace is
    if config.norm_unicode_diacritics and not text.isascii():
        text = _strip_diacritics(text)
    return text.strip()


def normalized_chunks(text: str, config=DEF_TEXT_NORM_CONFIG) -> list[str]:
    """`normalize_for_minhash(text).split()`, without joining the chunks and splitting them again.

    Removing diacritics before collapsing whitespace gives the same chunks: NFD neither makes nor removes
    whitespace and reorders combining marks only among themselves.
    """
    text = _replace_characters(text, config)
    if config.norm_unicode_diacritics and not text.isascii():
        text = _strip_diacritics(text)
    return text.split()


class FastWordSplitter:
    """The words spaCy's tokenizer finds in a normalised text, without running spaCy on the whole text.

    spaCy tokenizes each space-separated chunk on its own (its only multi-chunk special case is " "), and a
    chunk of ASCII letters that is not one of its special cases ("dont" -> "do", "nt") is one word, as is
    the number placeholder "0". Only the other distinct chunks of a text (units such as "0km", non-ASCII
    symbols, contractions) go through spaCy, once each (cached).
    """

    max_cache_entries = 200_000  # distinct irregular chunks kept; the cache is cleared beyond this

    def __init__(self, language: str = "en"):
        self.language = language
        self._nlp = None
        self._special_cases: frozenset[str] | None = None
        self._cache: dict[str, tuple[str, ...]] = {}

    @property
    def tokenizer(self):
        if self._nlp is None:
            import spacy

            self._nlp = spacy.blank(self.language)
            self._special_cases = frozenset(k for k in self._nlp.tokenizer.rules if k.isalpha() and k.isascii())
        return self._nlp.tokenizer

    def _spacy_words(self, chunk: str) -> tuple[str, ...]:
        words = self._cache.get(chunk)
        if words is None:
            tokenizer = self.tokenizer
            with self._nlp.memory_zone():  # as datatrove does: spaCy's vocabulary would otherwise grow forever
                words = tuple(w for w in (token.text.strip() for token in tokenizer(chunk)) if w)
            if len(self._cache) >= self.max_cache_entries:
                self._cache.clear()
            self._cache[chunk] = words
        return words

    def split(self, text: str) -> list[str]:
        return self.split_chunks(text.split())

    def split_chunks(self, chunks: list[str]) -> list[str]:
        """The words of a normalised text given as its space-separated chunks."""
        if self._special_cases is None:
            self.tokenizer  # noqa: B018  (the property loads spaCy and fills _special_cases)
        distinct = set(chunks)
        irregular = {c for c in distinct if not (c.isalpha() and c.isascii()) and c != "0"}
        irregular.update(self._special_cases.intersection(distinct))
        if not irregular:
            return chunks
        words: list[str] = []
        for chunk in chunks:
            if chunk in irregular:
                words.extend(self._spacy_words(chunk))
            else:
                words.append(chunk)
        return words


def shingle_hashes(words: list[str], n_grams: int) -> np.ndarray:
    """xxhash64 of every word n-gram joined by spaces (datatrove's shingles), as a uint64 array."""
    count = len(words) - n_grams + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    grams = map(" ".join, zip(*(words[i:] for i in range(n_grams))))
    return np.fromiter(map(xxh64_intdigest, grams), dtype=np.uint64, count=count)


def minhash_signature(shingles: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 256) -> np.ndarray:
    """min over shingles of (shingle * a + b) mod (2^61 - 1), uint64 overflow included, as datatrove computes it.

    `a`, `b`: the (1, num_hashes) permutation parameters. x mod p (p = 2^61 - 1) is folded once as
    (x & p) + (x >> 61), which lies in [0, p + 7] and equals x mod p whenever it is below p; if any folded
    value reaches p (probability ~2^-58 per value) the signature is recomputed with the division, so the
    result always equals datatrove's.
    """
    num_hashes = a.shape[1]
    minimum = np.full(num_hashes, np.iinfo(np.uint64).max, dtype=np.uint64)
    x = np.empty((min(chunk, len(shingles)), num_hashes), dtype=np.uint64)
    high = np.empty_like(x)
    for start in range(0, len(shingles), chunk):  # chunks keep the (n, 112) block in the CPU cache
        column = shingles[start : start + chunk].reshape(-1, 1)
        xs, hs = x[: len(column)], high[: len(column)]
        np.multiply(column, a, out=xs)
        xs += b
        np.right_shift(xs, _SHIFT_61, out=hs)
        xs &= MERSENNE_PRIME
        xs += hs
        if xs.max() >= MERSENNE_PRIME:
            return np.min((shingles.reshape(-1, 1) * a + b) % MERSENNE_PRIME, axis=0)
        np.minimum(minimum, xs.min(axis=0), out=minimum)
    return minimum


def scope_key(dump: str, modulus: int) -> int:
    """A number in [0, modulus) standing for a dump, added to the first hash of every bucket (per-dump scope)."""
    return xxh64_intdigest(dump) % modulus


def exact_key(normalized_text: str, scope_dump: str | None) -> int:
    """Content hash of the normalised text (mixed with the dump in per-dump scope), below 2^60.

    Kept below 2^61-1 because datatrove's bucket reader stops at that value.
    """
    key = xxh64_intdigest(normalized_text) >> 4
    if scope_dump is not None:
        key = (key + xxh64_intdigest(scope_dump)) % (1 << 60)
    return key


class MinhashSignatures(MinhashDedupSignature):
    """Stage 1 of the sharded MinHash dedup: per task, FineWeb's MinHash signatures and exact keys, on disk.

    Writes, under `output_folder`:
      - `signatures/bucket_XXX/<rank>.minhash.sig`: datatrove's format (hashes_per_bucket hashes + doc index),
        sorted, so datatrove's own `MinhashDedupBuckets` finds the colliding pairs;
      - `exact/bucket_000/<rank>.minhash.sig`: one 60-bit content hash per document (if `exact`);
      - `docs/<rank>.parquet`: id, dump and exact key of every document in reading order, which the
        cluster step uses to pick survivors and the filter step uses to check it reads the same documents.
    Documents with fewer than `n_grams` words get no signature (as in datatrove) but still an exact key.
    In per-dump scope a dump key is added (mod p) to the first hash of every bucket and to the exact key:
    a bijection for a given dump, so two documents can collide only within their dump.
    """

    name = "🎯 MinHash signatures (fast)"

    def __init__(
        self,
        output_folder,
        config: MinhashConfig | None = None,
        language: str = "en",
        scope: str = "per_dump",
        exact: bool = True,
        docs_batch: int = 50_000,
    ):
        super().__init__(output_folder, config=config, language=language)
        self.scope = scope
        self.exact = exact
        self.docs_batch = docs_batch
        self.splitter = FastWordSplitter(language)
        hash_bits = self.config.hash_config.precision
        self.modulus = int(MERSENNE_PRIME) if hash_bits == 64 else (1 << 32) - 1

    def get_shingles(self, text: str) -> np.ndarray:
        words = self.splitter.split_chunks(normalized_chunks(text, self.config.norm_config))
        return shingle_hashes(words, self.config.n_grams).reshape(-1, 1)

    def signature_rows(self, chunks: list[str]) -> np.ndarray | None:
        """(num_buckets, hashes_per_bucket) signature of a normalised text's chunks, None if it has too few words."""
        shingles = shingle_hashes(self.splitter.split_chunks(chunks), self.config.n_grams)
        if shingles.size == 0:
            return None
        a, b = self.parameters
        if self.config.hash_config.precision == 32:  # datatrove masks before taking the minimum: keep its formula
            sig = np.min(
                np.bitwise_and(
                    (shingles.reshape(-1, 1) * a + b) % MERSENNE_PRIME, np.uint64(self.config.hash_config.max)
                ),
                axis=0,
            )
        else:
            sig = minhash_signature(shingles, a, b)
        return sig.reshape(self.config.num_buckets, self.config.hashes_per_bucket)

    def _record_dtype(self, hashes: int) -> np.dtype:
        fmt = "<u8" if self.config.hash_config.precision == 64 or hashes == 1 else "<u4"
        return np.dtype([(f"h{i}", fmt) for i in range(hashes)] + [("doc", "<u4")])

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1):
        import pyarrow as pa
        import pyarrow.parquet as pq

        nb, hpb = self.config.num_buckets, self.config.hashes_per_bucket
        sig_format = f"<{hpb}{self.config.hash_config.struct_format}I"
        with self.track_time():
            buckets = [
                self.output_folder.open(f"signatures/bucket_{bi:03d}/{rank:05d}.minhash.sig", mode="wb")
                for bi in range(nb)
            ]
            exact_file = (
                self.output_folder.open(f"exact/bucket_000/{rank:05d}.minhash.sig", mode="wb") if self.exact else None
            )
            schema = pa.schema([("id", pa.string()), ("dump", pa.string()), ("exact_key", pa.uint64())])
            docs_out = self.output_folder.open(f"docs/{rank:05d}.parquet", mode="wb")
            docs_writer = pq.ParquetWriter(docs_out, schema)
            columns: dict[str, list] = {"id": [], "dump": [], "exact_key": []}
            for doc_idx, doc in enumerate(data):
                self.stat_update(StatHints.total)
                scope_dump = (doc.metadata.get("dump") or "") if self.scope == "per_dump" else None
                dump_key = scope_key(scope_dump, self.modulus) if scope_dump is not None else 0
                chunks = normalized_chunks(doc.text or "", self.config.norm_config)
                key = exact_key(" ".join(chunks), scope_dump)
                columns["id"].append(str(doc.id))
                columns["dump"].append(doc.metadata.get("dump"))
                columns["exact_key"].append(key)
                if exact_file is not None:
                    exact_file.write(struct.pack("<QI", key, doc_idx))
                sig = self.signature_rows(chunks)
                if sig is None:
                    self.stat_update("too_short_for_minhash")
                else:
                    self.stat_update("signed")
                    if dump_key:
                        sig[:, 0] = (sig[:, 0] + np.uint64(dump_key)) % np.uint64(self.modulus)
                    for bucket, row in zip(buckets, sig.tolist()):
                        bucket.write(struct.pack(sig_format, *row, doc_idx))
                if len(columns["id"]) >= self.docs_batch:
                    docs_writer.write_table(pa.table(columns, schema=schema))
                    columns = {k: [] for k in columns}
            docs_writer.write_table(pa.table(columns, schema=schema))
            docs_writer.close()
            docs_out.close()
            for f in buckets + ([exact_file] if exact_file else []):
                f.close()
            for bi in range(nb):
                self._sort_in_place(f"signatures/bucket_{bi:03d}/{rank:05d}.minhash.sig", self._record_dtype(hpb))
            if self.exact:
                self._sort_in_place(f"exact/bucket_000/{rank:05d}.minhash.sig", self._record_dtype(1))

    def _sort_in_place(self, path: str, dtype: np.dtype) -> None:
        """Sort a signature file by (hashes, doc index), as datatrove's bucket step requires."""
        with self.output_folder.open(path, mode="rb") as f:
            raw = f.read()
        if len(raw) % dtype.itemsize:
            raise ValueError(f"{path}: {len(raw)} bytes is not a whole number of {dtype.itemsize}-byte records")
        records = np.frombuffer(raw, dtype=dtype).copy()
        records.sort(order=list(dtype.names))
        with self.output_folder.open(path, mode="wb") as f:
            f.write(records.tobytes())

"""Benchmark decontamination: remove every document that shares a word n-gram (13 by default) with a benchmark item.

    items (task, item_id, text) ──► normalize_words ──► n-gram hashes ──► NgramIndex (sorted uint64 + owner)
    document ──► normalize_words ──► its n-gram hashes ──► bit table, then binary search ──► kept, or removed with
                 contaminated_task / contaminated_item / contaminated_ngram (the first match) and the reason
                 `contaminated`

The normalisation is GPT-3's and lm-evaluation-harness's (`lm_eval/decontamination/janitor.py`, Janitor with its
defaults: lowercase, delete punctuation, split on whitespace, n = 13), extended from ASCII to Unicode. The janitor's
translation table lowercases only A–Z and deletes only `string.punctuation`; `normalize_words` lowercases every letter
(`str.lower`) and also deletes every Unicode punctuation mark (category P: ’ “ ” – — …), so that "don’t" on a web
page matches "don't" in a benchmark. On ASCII text the two give the same words (tests/test_decontaminate.py checks
this against the installed lm-eval). Deleting, not replacing, is the janitor's choice too: "well-known" → "wellknown".
One more difference: the janitor splits a document on whitespace *before* normalising each n-gram, so a token made
only of punctuation ("-") counts as an (empty) word there; here it disappears, on both sides, as it does for the
janitor's benchmark side.

Items shorter than n words. GPT-3 (Brown et al. 2020, appendix C) measured overlap with a per-benchmark N = the 5th
percentile of item length in words, at least 8 (lower values gave spurious collisions) and at most 13. Here an item of
`min_words` (8) to n - 1 words is indexed whole, as one n-gram of its own length, and a document matches it when it
holds those words in a row; an item under `min_words` words is not indexed and is counted in `skipped_short_items`.

Memory and speed: an n-gram is a 64-bit hash (xxh3 of each word, combined by a polynomial over the words mod 2**64,
computed for a whole document with numpy), kept once in a sorted numpy array beside the index of its first item:
12 bytes per distinct n-gram, plus a 4 MiB bit table over the hash space that rules out most of a document's n-grams
before any binary search (the 31,223 items of the nine multiple-choice tasks and LAMBADA: 1,014,095 n-grams,
15.6 MiB; 1,611 FineWeb documents per CPU-second, benchmarks/bench_decontaminate.py). Two different n-grams share a hash
with probability 2**-64, so a hit is taken as a match without keeping the benchmark texts; `contaminated_ngram` is the
document's own normalised words.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np
import regex
from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter
from xxhash import xxh3_64_intdigest

# an odd multiplier: multiplying by it is a bijection mod 2**64, so n-grams differing in any one word never collide
# unless their word hashes do (the golden-ratio constant, as in splitmix64)
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_BITS = 25  # log2 of the bits of NgramIndex's pre-filter (4 MiB)


# what normalize_words deletes: every Unicode punctuation mark (category P) and the symbols of the janitor's
# `string.punctuation` that Unicode files as symbols, not punctuation ($ + < = > ^ ` | ~)
_PUNCTUATION = regex.compile(r"[\p{P}$+<=>^`|~]+")


def normalize_words(text: str) -> list[str]:
    """The words of `text` as decontamination compares them: lowercased, punctuation deleted, split on whitespace."""
    return _PUNCTUATION.sub("", text.lower()).split()


def word_hashes(words: list[str]) -> np.ndarray:
    """One 64-bit hash per word (xxh3: the same in every process, unlike Python's `hash`)."""
    return np.fromiter(map(xxh3_64_intdigest, words), dtype=np.uint64, count=len(words))


def ngram_hashes(words: list[str], lengths: Iterable[int]) -> dict[int, np.ndarray]:
    """For each length L in `lengths`: the hash of every run of L consecutive words, at its start position."""
    wanted = sorted(set(lengths))
    out: dict[int, np.ndarray] = {}
    if not wanted or not words:
        return {length: np.empty(0, dtype=np.uint64) for length in wanted}
    w = word_hashes(words)
    h = w.copy()  # h[i] = hash of the length-k run starting at i
    for k in range(1, wanted[-1] + 1):
        if k > 1:
            if len(h) < 2:
                h = np.empty(0, dtype=np.uint64)
            else:
                h = h[:-1] * _MULTIPLIER + w[k - 1 :]
        if k in wanted:
            out[k] = h
    return out


class NgramIndex:
    """The benchmark items' n-grams: for each indexed length a sorted array of hashes and, beside it, the item each
    first came from. Built once, then read-only (pickled to every datatrove task as two numpy arrays per length)."""

    def __init__(self, items: Iterable[tuple[str, str, str]], n: int = 13, min_words: int = 8):
        if n < 1 or not 1 <= min_words <= n:
            raise ValueError(f"need n >= 1 and 1 <= min_words <= n (got n={n}, min_words={min_words})")
        self.n, self.min_words = n, min_words
        self.items: list[tuple[str, str]] = []  # (task, item_id) by item index
        self.items_per_task: Counter = Counter()
        self.whole_items: Counter = Counter()  # items shorter than n, indexed as one n-gram of their own length
        self.skipped_short_items: Counter = Counter()  # items under min_words words: not indexed
        parts: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        for task, item_id, text in items:
            self.items_per_task[task] += 1
            words = normalize_words(text)
            if len(words) < min_words:
                self.skipped_short_items[task] += 1
                continue
            length = min(n, len(words))
            if length < n:
                self.whole_items[task] += 1
            hashes = ngram_hashes(words, [length])[length]
            owner = np.full(len(hashes), len(self.items), dtype=np.uint32)
            parts.setdefault(length, []).append((hashes, owner))
            self.items.append((task, item_id))
        self.keys: dict[int, np.ndarray] = {}
        self.owners: dict[int, np.ndarray] = {}
        for length, chunks in sorted(parts.items()):
            keys = np.concatenate([k for k, _ in chunks])
            owners = np.concatenate([o for _, o in chunks])
            order = np.lexsort((owners, keys))  # by hash, then by item: a shared n-gram belongs to its first item
            keys, owners = keys[order], owners[order]
            first = np.ones(len(keys), dtype=bool)
            first[1:] = keys[1:] != keys[:-1]
            self.keys[length], self.owners[length] = keys[first], owners[first]
        # a bit per 2**-25 of the hash space, set where some n-gram falls: most of a document's n-grams are ruled out
        # by one look-up in these 4 MiB (which stay in cache), and only the rest are binary-searched in the keys
        self.bits = np.zeros(2**_BITS // 64, dtype=np.uint64)
        for keys in self.keys.values():
            slots = keys >> np.uint64(64 - _BITS)
            np.bitwise_or.at(self.bits, slots >> np.uint64(6), np.left_shift(np.uint64(1), slots & np.uint64(63)))

    @property
    def lengths(self) -> list[int]:
        return sorted(self.keys)

    @property
    def ngrams(self) -> int:
        """Distinct n-grams held (all lengths)."""
        return sum(len(k) for k in self.keys.values())

    def nbytes(self) -> int:
        return self.bits.nbytes + sum(k.nbytes + o.nbytes for k, o in zip(self.keys.values(), self.owners.values()))

    def first_match(self, words: list[str]) -> tuple[int, int, int] | None:
        """(position in `words`, length, item index) of the earliest run of words that is an indexed n-gram (a
        longer one first at the same position), or None."""
        best = None
        for length, hashes in ngram_hashes(words, self.lengths).items():
            if not len(hashes):
                continue
            slots = hashes >> np.uint64(64 - _BITS)
            maybe = np.flatnonzero((self.bits[slots >> np.uint64(6)] >> (slots & np.uint64(63))) & np.uint64(1))
            if not len(maybe):
                continue
            keys = self.keys[length]
            at = np.searchsorted(keys, hashes[maybe])
            at[at == len(keys)] = 0
            hits = np.flatnonzero(keys[at] == hashes[maybe])
            if len(hits):
                position = int(maybe[hits[0]])
                if best is None or position < best[0] or (position == best[0] and length > best[1]):
                    best = (position, length, int(self.owners[length][at[hits[0]]]))
        return best


class DecontaminationFilter(BaseFilter):
    """Remove documents that share an n-gram (13 words by default, normalised as GPT-3 / lm-eval) with a benchmark
    item. `items` are (task, item_id, text); the text is what a contaminated page would repeat (question and gold
    answer). A removed document gets `contaminated_task`, `contaminated_item`, `contaminated_ngram` (its first match)
    and `filter_reason: contaminated`. Counters: `contaminated/<task>` per removal, `tokens` and
    `tokens/contaminated` (sums of the documents' `token_count`, where they have one)."""

    name = "🧼 Benchmark decontamination"

    def __init__(
        self,
        items: Iterable[tuple[str, str, str]] | NgramIndex,
        n: int = 13,  # GPT-3 and lm-eval's janitor: 13-grams
        exclusion_writer=None,
        min_words: int = 8,  # GPT-3: items shorter than n are matched whole from 8 words up
    ):
        """`items`: (task, item_id, text) triples, or an NgramIndex built from them (then n and min_words are its
        own), so that several pipelines share one index."""
        super().__init__(exclusion_writer)
        self.index = items if isinstance(items, NgramIndex) else NgramIndex(items, n=n, min_words=min_words)

    def filter(self, document: Document) -> bool | tuple[bool, str]:
        tokens = int(document.metadata.get("token_count") or 0)
        self.stat_update("tokens", value=tokens)
        words = normalize_words(document.text)
        match = self.index.first_match(words)
        if match is None:
            return True
        position, length, owner = match
        task, item_id = self.index.items[owner]
        document.metadata["contaminated_task"] = task
        document.metadata["contaminated_item"] = item_id
        document.metadata["contaminated_ngram"] = " ".join(words[position : position + length])
        self.stat_update(f"contaminated/{task}")
        self.stat_update("tokens/contaminated", value=tokens)
        return False, "contaminated"

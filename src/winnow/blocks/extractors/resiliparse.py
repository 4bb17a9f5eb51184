"""resiliparse main-content extraction (C++): the fast alternative to trafilatura."""

from __future__ import annotations

from winnow.blocks.extractors.base import AccountedExtractor


class ResiliparseExtractor(AccountedExtractor):
    """resiliparse's main-content extraction (C++, ≈ 17× trafilatura's speed); no worker process needed."""

    name = "⚡ Resiliparse"
    _requires_dependencies = ["resiliparse"]

    def __init__(
        self,
        timeout: float = 1.0,
        favour_precision: bool = True,
        isolation: str = "none",
        exclusion_writer=None,
        failure_writer=None,
    ):
        super().__init__(timeout, isolation, exclusion_writer, failure_writer)
        self.favour_precision = favour_precision  # no such mode in resiliparse; kept for a uniform factory

    def extract(self, text: str) -> str:
        from resiliparse.extract.html2text import extract_plain_text

        return extract_plain_text(
            text, main_content=True, alt_texts=False, links=False, list_bullets=False, noscript=False, comments=False
        )

"""trafilatura main-text extraction as FineWeb ran it (precision mode, 1 s of CPU per page)."""

from __future__ import annotations

from winnow.blocks.extractors.base import AccountedExtractor


class TrafilaturaExtractor(AccountedExtractor):
    """trafilatura's main-text extraction as FineWeb ran it: precision mode, no comments, deduplicate, 1 s/page."""

    name = "⛏ Trafilatura"
    _requires_dependencies = ["trafilatura"]

    def __init__(
        self,
        timeout: float = 1.0,
        favour_precision: bool = True,
        deduplicate: bool = True,
        isolation: str = "signal",
        exclusion_writer=None,
        failure_writer=None,
    ):
        super().__init__(timeout, isolation, exclusion_writer, failure_writer)
        self.favour_precision = favour_precision
        self.deduplicate = deduplicate

    def extract(self, text: str) -> str:
        from trafilatura import extract

        return extract(
            text, favor_precision=self.favour_precision, include_comments=False, deduplicate=self.deduplicate
        )

"""URL filter: datatrove's UT1 blocklist filter (the list ships inside the datatrove wheel), fully offline."""

from __future__ import annotations

from datatrove.data import Document
from datatrove.pipeline.filters import URLFilter


class OfflineURLFilter(URLFilter):
    """datatrove's URLFilter (FineWeb's step 1) that never touches the network and tolerates missing urls.

    Differences from the stock block, both about robustness, none about decisions:
    - the public-suffix list is tldextract's bundled snapshot (the stock block may try to fetch it);
    - a document without a url is kept and counted `no_url` (the stock block asserts and kills the task).
    """

    name = "😈 URL blocklist (UT1)"

    def __init__(self, soft_word_threshold: int = 2, **kwargs):  # FineWeb: datatrove default, 2 soft words
        super().__init__(soft_word_threshold=soft_word_threshold, **kwargs)
        from tldextract import TLDExtract

        self.tldextractor = TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

    def filter(self, document: Document) -> bool | tuple[bool, str]:
        if not document.metadata.get("url"):
            self.stat_update("no_url")
            return True
        return super().filter(document)

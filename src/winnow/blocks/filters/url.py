"""URL filter: datatrove's UT1 blocklist filter (the list ships inside the datatrove wheel), fully offline."""

from __future__ import annotations

import mmap
import os
import tarfile

from datatrove.data import Document
from datatrove.pipeline.filters import URLFilter
from datatrove.pipeline.filters.url_filter import get_list
from datatrove.utils._import_utils import ASSETS_PATH

UT1_ARCHIVE = "url_filterblacklistsv0_3_0.tar.gz"  # inside datatrove's assets


class SortedDomainList:
    """Membership in UT1's 4.6 M blocked domains by binary search over a sorted file, memory-mapped.

    datatrove loads the list into a Python set in every task: ≈ 0.5 GB of memory and 5–20 s before the first
    document. The sorted file is written once (next to datatrove's extracted copy) and shared by all tasks
    through the page cache; a lookup costs ~22 line comparisons.
    """

    def __init__(self, path: str, extra: set[str] | None = None):
        self.path = path
        self.extra = set(extra or ())
        self._mm = None

    def _map(self):
        if self._mm is None:
            with open(self.path, "rb") as f:
                self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if os.path.getsize(self.path) else b""
        return self._mm

    def __contains__(self, domain) -> bool:
        if domain in self.extra:
            return True
        key, mm = domain.encode("utf-8"), self._map()
        lo, hi = 0, len(mm)  # both always at line starts
        while lo < hi:
            start = mm.rfind(b"\n", 0, (lo + hi) // 2) + 1
            start = max(start, lo)
            end = mm.find(b"\n", start)
            end = len(mm) if end < 0 else end
            line = mm[start:end]
            if line == key:
                return True
            if line < key:
                lo = end + 1
            else:
                hi = start
        return False

    def __getstate__(self):  # datatrove pickles blocks to send them to tasks: never the mapping
        return {"path": self.path, "extra": self.extra, "_mm": None}

    @staticmethod
    def build(extracted_domains: str, sorted_path: str) -> None:
        """Write the sorted, de-duplicated list (same entries datatrove would load: stripped, no # comments)."""
        with open(extracted_domains, "rb") as f:
            entries = {line.strip() for line in f if not line.startswith(b"#")}
        tmp = sorted_path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(b"\n".join(sorted(entries)))
        os.replace(tmp, sorted_path)


class OfflineURLFilter(URLFilter):
    """datatrove's URLFilter (FineWeb's step 1, same lists and decisions) that never touches the network.

    Differences from the stock block, none about decisions:
    - the public-suffix list is tldextract's bundled snapshot (the stock block may try to fetch it);
    - the blocked domains are looked up in a sorted memory-mapped file (SortedDomainList), not a per-task set;
    - a document without a url is kept and counted `no_url` (the stock block asserts and kills the task).
    """

    name = "😈 URL blocklist (UT1)"

    def __init__(self, soft_word_threshold: int = 2, **kwargs):  # FineWeb: datatrove's default, 2 soft words
        super().__init__(soft_word_threshold=soft_word_threshold, **kwargs)
        from tldextract import TLDExtract

        self.tldextractor = TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

    def download_data(self):  # despite the name, nothing is downloaded: the lists are in datatrove's wheel
        if self._downloaded or not self.use_integrated_lists:
            return
        from datatrove.io import safely_create_file
        from huggingface_hub import cached_assets_path

        folder = str(cached_assets_path(library_name="datatrove", namespace="filters", subfolder="url_filter"))
        sorted_domains = os.path.join(folder, "domains.sorted")

        def extract_and_sort():
            with tarfile.open(os.path.join(ASSETS_PATH, UT1_ARCHIVE), "r:gz") as tar:
                tar.extractall(folder, filter="data")
            SortedDomainList.build(os.path.join(folder, "domains"), sorted_domains)

        safely_create_file(sorted_domains, extract_and_sort)
        self.block_listed_domains = SortedDomainList(sorted_domains, extra=self.block_listed_domains)
        self.block_listed_url = get_list(folder, "urls", self.block_listed_url, do_normalize=False)
        self.banned_words = get_list(ASSETS_PATH, "banned_words.txt", self.banned_words)
        self.banned_subwords = get_list(ASSETS_PATH, "banned_subwords.txt", self.banned_subwords)
        self.soft_banned_words = get_list(ASSETS_PATH, "soft_banned_words.txt", self.soft_banned_words)
        for word in self.banned_subwords:
            self.banned_subwords_automaton.add_word(word, len(self.banned_subwords_automaton))
        self.banned_subwords_automaton.make_automaton()
        self._downloaded = True

    def filter(self, document: Document) -> bool | tuple[bool, str]:
        if not document.metadata.get("url"):
            self.stat_update("no_url")
            return True
        return super().filter(document)

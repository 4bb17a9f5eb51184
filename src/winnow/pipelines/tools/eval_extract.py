"""`winnow eval-extract`: extractors side by side — speed (documents per CPU-second) and main-text quality.

Quality is trafilatura's own evaluation (its tests/eval_common.py): for each annotated page, each "with" snippet
found in the extracted text is a true positive (missing: false negative), each "without" snippet found is a false
positive (absent: true negative); text and snippets are whitespace-normalised first and the counts are summed over
all entries. The pages are the WARC records of ../shared/data/warc/pages, matched to the ground truth by
WARC-Record-ID (falling back to WARC-Target-URI).

Speed: every extractor runs on every page of the shards, interleaved page by page, and each call is timed with
time.process_time (CPU time of this process), so CPU contention from other processes slows no side more than the
other. Each extractor is called directly (no datatrove timeout sandbox), i.e. the pure extraction cost.

Splits: every page belongs to one of two fixed halves, "tune" or "held-out", by the SHA-1 of its URL
(WARC-Target-URI), so captures of the same URL share a half. Extractor rules are tuned looking at the tuning half
only; the held-out half shows whether they carry over to pages nobody tuned on (`--split held-out`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from winnow.errors import ConfigError
from winnow.files import write_json

# The reference every speed ratio is taken against: trafilatura as FineWeb runs it.
REFERENCE = "trafilatura_precision"
ALL = ["trafilatura_precision", "trafilatura", "resiliparse", "fast"]  # `--extractor all`
SPLITS = ["tune", "held-out"]  # the two halves of the evaluation pages (split_of)


def split_of(url: str) -> str:
    """The half a page belongs to: "tune" when the first byte of the SHA-1 of its URL is even, else "held-out"
    (499 / 489 of the 988 annotated URLs, 739 / 742 of the 1,481 pages)."""
    return SPLITS[hashlib.sha1(url.encode("utf-8")).digest()[0] % 2]


@dataclass
class Page:
    record_id: str
    url: str
    html: str


@dataclass
class Score:
    """Summed confusion counts of trafilatura's evaluation, plus speed, for one extractor."""

    extractor: str
    docs: int = 0
    cpu_seconds: float = 0.0
    entries: int = 0  # ground-truth entries scored (those whose page was read)
    errors: int = 0
    empty: int = 0
    tp: int = 0
    fn: int = 0
    fp: int = 0
    tn: int = 0
    failed_urls: list[str] = field(default_factory=list)

    @property
    def docs_per_cpu_second(self) -> float:
        return self.docs / self.cpu_seconds if self.cpu_seconds else float("nan")

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:  # = share of "with" snippets found
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def without_absent(self) -> float:  # share of "without" snippets absent
        return self.tn / (self.tn + self.fp) if self.tn + self.fp else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def accuracy(self) -> float:
        total = self.tp + self.fn + self.fp + self.tn
        return (self.tp + self.tn) / total if total else 0.0


def normalise(text: str) -> str:
    """trafilatura's evaluation normalisation: every run of white space becomes one blank."""
    return re.sub(r"\s+", " ", text).strip()


def score_entry(text: str | None, entry: dict) -> tuple[int, int, int, int]:
    """(tp, fn, fp, tn) of one ground-truth entry against one extracted text."""
    extracted = normalise(text or "")
    found_with = sum(normalise(s) in extracted for s in entry["with"]) if extracted else 0
    found_without = sum(normalise(s) in extracted for s in entry["without"]) if extracted else 0
    return (found_with, len(entry["with"]) - found_with, found_without, len(entry["without"]) - found_without)


def decode_html(payload: bytes, http_content_type: str | None) -> str:
    """Page bytes → str: UTF-8, else the charset the HTTP header declares, else a detected one (never fails)."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = re.search(r"charset=([\w-]+)", http_content_type or "", re.I)
    if declared:
        try:
            return payload.decode(declared.group(1))
        except (UnicodeDecodeError, LookupError):
            pass
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    return bytes_to_str(payload, detect_encoding(payload))


def read_pages(pattern: str) -> list[Page]:
    """Every HTML response record of the WARC files matching `pattern`, in file order."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    pages = []
    for path in sorted(glob.glob(pattern)):
        with open(path, "rb") as f:
            for record in ArchiveIterator(f, record_types=WarcRecordType.response):
                payload = record.reader.read()  # fastwarc has already consumed the HTTP headers
                http_type = record.http_headers.get("Content-Type") if record.http_headers else None
                pages.append(
                    Page(record.record_id, record.headers.get("WARC-Target-URI", ""), decode_html(payload, http_type))
                )
    return pages


def load_truth(path: str) -> list[tuple[str, dict]]:
    """[(url, entry)] of the re-keyed trafilatura ground truth (each url maps to a list of entries)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [(url, entry) for url, entries in data.items() for entry in entries]


def with_own_dedup_history(extract: Callable[[str], str | None]) -> Callable[[str], str | None]:
    """trafilatura's `deduplicate` remembers text segments across calls in one module-level LRU cache: two
    trafilatura variants run interleaved on the same page would delete each other's text. Give each variant
    its own cache, swapped in around its calls, so each sees only its own history (as in a FineWeb run)."""
    import trafilatura.deduplication as dedup

    own = dedup.LRUCache(maxsize=dedup.LRU_SIZE)

    def extract_with_own_history(html: str) -> str | None:
        shared, dedup.LRU_TEST = dedup.LRU_TEST, own
        try:
            return extract(html)
        finally:
            dedup.LRU_TEST = shared

    return extract_with_own_history


def extractors(names: list[str]) -> dict[str, Callable[[str], str | None]]:
    """name → function(html str) → text: the project's extractor blocks (winnow.blocks.extractors.EXTRACTORS) with
    the settings the pipeline uses; "trafilatura_precision" is trafilatura as FineWeb runs it."""
    from winnow.blocks.extractors import EXTRACTORS, build_extractor

    def make(name: str) -> Callable[[str], str | None]:
        if name == "trafilatura_precision":
            return with_own_dedup_history(build_extractor("trafilatura", favour_precision=True).extract)
        if name == "trafilatura":
            return with_own_dedup_history(build_extractor("trafilatura", favour_precision=False).extract)
        return build_extractor(name).extract

    known = ["trafilatura_precision", *EXTRACTORS]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"--extractor: unknown extractor(s) {unknown}; known: {known}")
    return {n: make(n) for n in names}


@dataclass
class PageResult:
    """One extractor on one page: CPU time and the confusion counts of the page's ground-truth entries."""

    page: int  # position in the evaluated pages
    url: str
    split: str
    extractor: str
    cpu_seconds: float
    error: bool
    empty: bool
    entries: int
    tp: int = 0
    fn: int = 0
    fp: int = 0
    tn: int = 0


def evaluate(
    pages: list[Page], truth: list[tuple[str, dict]], named: dict[str, Callable[[str], str | None]]
) -> list[PageResult]:
    """Run every extractor on every page (interleaved) and score the pages that have ground truth."""
    by_id = {p.record_id: i for i, p in enumerate(pages)}
    by_url: dict[str, int] = {}
    for i, p in enumerate(pages):
        by_url.setdefault(p.url, i)
    entries_of: dict[int, list[dict]] = {}
    for url, entry in truth:
        i = by_id.get(entry.get("warc_record_id", ""), by_url.get(url))
        if i is not None:  # entries whose page is not among `pages` (a --pages subset) are not scored
            entries_of.setdefault(i, []).append(entry)

    results = []
    for i, page in enumerate(pages):
        for name, extract in named.items():
            error = False
            start = time.process_time()
            try:
                text = extract(page.html)
            except Exception:  # an extractor bug on one page is counted, never fatal to the comparison
                text, error = None, True
            cpu_seconds = time.process_time() - start
            entries = entries_of.get(i, [])
            tp, fn, fp, tn = map(sum, zip((0, 0, 0, 0), *(score_entry(text, entry) for entry in entries)))
            split = split_of(page.url)
            results.append(
                PageResult(i, page.url, split, name, cpu_seconds, error, not text, len(entries), tp, fn, fp, tn)
            )
    return results


def summarise(results: list[PageResult], split: str = "all") -> dict[str, Score]:
    """Per extractor, the summed counts and CPU time of the pages of one split ("all", "tune" or "held-out")."""
    scores: dict[str, Score] = {}
    for r in results:
        if split != "all" and r.split != split:
            continue
        s = scores.setdefault(r.extractor, Score(r.extractor))
        s.docs += 1
        s.cpu_seconds += r.cpu_seconds
        s.entries += r.entries
        s.errors += r.error
        s.empty += r.empty
        s.tp, s.fn, s.fp, s.tn = s.tp + r.tp, s.fn + r.fn, s.fp + r.fp, s.tn + r.tn
        if r.error:
            s.failed_urls.append(r.url)
    return scores


def worst_pages(results: list[PageResult], extractor: str, n: int, split: str = "all") -> list[dict]:
    """The `n` annotated pages of `split` where `extractor` makes the most errors (FP + FN) beyond the
    reference's (trafilatura_precision), most first."""
    mine = {r.page: r for r in results if r.extractor == extractor and r.entries and split in ("all", r.split)}
    reference = {r.page: r for r in results if r.extractor == REFERENCE and r.page in mine}
    rows = []
    for page, r in mine.items():
        ref = reference.get(page)
        rows.append(
            {
                "url": r.url,
                "split": r.split,
                "extra_errors": (r.fp + r.fn) - ((ref.fp + ref.fn) if ref else 0),
                extractor: {"fp": r.fp, "fn": r.fn},
                REFERENCE: {"fp": ref.fp, "fn": ref.fn} if ref else None,
            }
        )
    rows.sort(key=lambda row: (-row["extra_errors"], row["url"]))
    return rows[:n]


def table(scores: dict[str, Score], split: str = "all") -> list[dict]:
    reference = scores.get(REFERENCE)
    rows = []
    for name, s in scores.items():
        ratio = s.docs_per_cpu_second / reference.docs_per_cpu_second if reference else float("nan")
        rows.append(
            {
                "extractor": name,
                "split": split,
                "docs": s.docs,
                "cpu_s": round(s.cpu_seconds, 2),
                "docs_per_cpu_s": round(s.docs_per_cpu_second, 1),
                "speed_vs_trafilatura_precision": round(ratio, 2),
                "with_found": round(s.recall, 3),
                "without_absent": round(s.without_absent, 3),
                "precision": round(s.precision, 3),
                "recall": round(s.recall, 3),
                "f1": round(s.f1, 3),
                "accuracy": round(s.accuracy, 3),
                "entries": s.entries,
                "errors": s.errors,
                "empty": s.empty,
                "counts": {k: v for k, v in asdict(s).items() if k in ("tp", "fn", "fp", "tn")},
            }
        )
    return rows


def print_table(rows: list[dict], out=sys.stdout) -> None:
    header = (
        f"{'extractor':<22} {'docs':>5} {'cpu s':>7} {'docs/s/core':>11} {'× traf(prec)':>12} "
        f"{'with found':>10} {'w/o absent':>10} {'P':>6} {'R':>6} {'F1':>6} {'err':>4} {'empty':>5}"
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    for r in rows:
        print(
            f"{r['extractor']:<22} {r['docs']:>5} {r['cpu_s']:>7.1f} {r['docs_per_cpu_s']:>11.1f} "
            f"{r['speed_vs_trafilatura_precision']:>12.2f} {r['with_found']:>10.3f} {r['without_absent']:>10.3f} "
            f"{r['precision']:>6.3f} {r['recall']:>6.3f} {r['f1']:>6.3f} {r['errors']:>4} {r['empty']:>5}",
            file=out,
        )


def add_arguments(p) -> None:
    p.add_argument("--extractor", default="all", help="an extractor name, a comma list, or 'all'")
    p.add_argument("--pages", default="../shared/data/warc/pages/*.warc.gz")
    p.add_argument("--truth", default="../shared/data/extraction-eval/trafilatura-evaldata.json")
    p.add_argument(
        "--split",
        default="each",
        choices=["each", "all", *SPLITS],
        help="pages to report: one half (tune, held-out; by URL hash), all, or each of the three (default)",
    )
    p.add_argument(
        "--worst",
        type=int,
        default=0,
        help="also list the N annotated pages where each extractor makes the most errors beyond trafilatura_precision",
    )
    p.add_argument("--output", help="write the table as JSON here")


def main(args) -> int:
    names = ALL if args.extractor == "all" else [n.strip() for n in args.extractor.split(",") if n.strip()]
    named = extractors(names)
    if args.worst and REFERENCE not in named:
        raise ConfigError(f"--worst compares each extractor with {REFERENCE}: add it to --extractor")
    pages = read_pages(args.pages)
    if not pages:
        raise ConfigError(f"--pages: no WARC response records match {args.pages}")
    if args.split in SPLITS:
        pages = [p for p in pages if split_of(p.url) == args.split]
    truth = load_truth(args.truth)
    print(f"winnow eval-extract: {len(pages)} pages, extractors {names}")
    results = evaluate(pages, truth, named)
    rows = []
    for split in ["all", *SPLITS] if args.split == "each" else [args.split]:
        split_rows = table(summarise(results, split), split)
        if not split_rows:
            print(f"\nsplit {split}: no pages")
            continue
        first = split_rows[0]
        print(f"\nsplit {split}: {first['docs']} pages, {first['entries']} of {len(truth)} ground-truth entries")
        print_table(split_rows)
        rows += split_rows
    split = args.split if args.split in SPLITS else "all"
    for name in names if args.worst else []:
        if name == REFERENCE:
            continue
        print(f"\n{name}: the {args.worst} pages ({split}) with the most errors beyond {REFERENCE}'s")
        for row in worst_pages(results, name, args.worst, split):
            mine, ref = row[name], row[REFERENCE]
            print(
                f"  {row['extra_errors']:+3d}  FP {mine['fp']} FN {mine['fn']} (ref FP {ref['fp']} FN {ref['fn']})"
                f"  {row['split']:<8} {row['url']}"
            )
    if args.output:
        write_json(args.output, rows)
        print(f"winnow eval-extract: table written to {args.output}")
    return 0

"""How base, dedup and score grow with the corpus: CPU per document, peak memory per task, planted duplicates found.

    .venv/bin/python benchmarks/bench_scale.py [--n 10000 100000 | --max-n 1000000] [--fixed-n 1000]
                                               [--out runs/bench-scale] [--json FILE] [--keep-runs]

The corpus (`build_corpus`, one per N, kept in `<out>/corpus-<N>/` and reused while its recipe is unchanged):
N documents resampled from the real documents in ../shared/data — FineWeb sample-10BT and the FineWeb-Edu
Llama-3 annotation texts (English), FineWeb-2 German and Norwegian Bokmål — as 8 JSONL.gz shards (`id`, `text`,
`url`; ids `scale-00000000` ... in corpus order), and `planted.jsonl` (which id duplicates which).
  - 90 % originals. The real documents are cut into units (their lines; a line over 60 words is cut at sentence
    ends into pieces of at most 60 words; units equal after MinHash normalisation kept once: ~158k English,
    ~9k German and Norwegian), and each original is a random sequence of distinct units of one language (96 %
    English, by the pool's words) up to a length drawn from the real documents' word counts, clipped to
    200-1200 words; its url is that of its first unit from FineWeb. No two originals have the same sequence of
    units (no exact repeats, however far N is above the ~5k real documents). Two English originals share a unit
    with probability ~4e-3 and two units ~7e-6; a unit is at most 30 % of a document, so one shared unit means
    J <= 0.17, which 14 bands of 8 hashes turn into a duplicate with P ~1e-5. The false-positive rate is
    measured: the originals dedup removes (an original is never a copy and has a smaller id than its copies, so
    the survivor rule keeps it unless it matched another original).
  - 5 % exact copies of an earlier original (the same text and url, a new id).
  - 5 % near duplicates of an earlier original: 1 word in 100 (at least 2; documents have >= 200 words)
    replaced by a random real English word. A replaced word breaks at most the 5 word 5-gram shingles that
    hold it, so of S shingles >= S - 5k survive and J >= (S - 5k) / (S + 5k) >= 0.88 (k = S / 100, rounded).
    Stated: J >= 0.85 for every pair (a replaced word that was two tokens, "dont" -> "do", "nt", costs a
    little more than the bound), ~0.91 on average; each pair's Jaccard on winnow's own shingles (MinHash
    normalisation, its word splitter) is recorded. At J = 0.88 datatrove's 14 x 8 bands (threshold ~0.72) find
    a pair with P = 1 - (1 - J^8)^14 = 0.998.
The base stage's FineWeb filters remove some documents (the non-English ones, some English ones); the planted
pairs whose two documents both reached dedup are the ones it can find. A pair counts as found when the copy and
its source end in one cluster: the copy in `dedup/removed/` with `duplicate_of` = the survivor of its source's
cluster (the source itself, normally).

Each N runs `winnow base` (input.format jsonl: no extraction; the FineWeb filters), `winnow dedup` (engine
datatrove, exact dedup on) and `winnow score` (a fastText classifier trained once by `winnow classifier` on the
shared Llama-3 labels, learning_curve [1.0], reused at every N) with one config: executor.kind local, tasks 4,
workers 2. Each stage runs in a fresh process (`RUNNER`: the `winnow` command's own `main` plus measuring
hooks), so the figures of one stage are that stage's alone:
  - CPU seconds (per 1,000 documents): user + sys of the stage process and all its children (datatrove's
    worker processes and the fork server that starts and reaps them, reaped before the process ends), as
    getrusage(RUSAGE_CHILDREN) deltas around the process; imports and start-up included. `marginal` is the
    CPU per 1,000 documents beyond a small run (`--fixed-n`, 1,000 documents): (CPU(N) - CPU(N0)) / (N - N0),
    without the fixed costs (start-up, models and lists loaded per task, summaries and plots) that make the
    CPU per document fall with N whatever the rest does;
  - wall seconds (the machine is shared: CPU time is the measure, wall time is printed beside it);
  - peak RSS per task: the largest high-water mark of any process of the stage (ru_maxrss of the stage process
    and of its reaped children: each process's own peak, the largest of them), the memory one task needs. For
    dedup also the clusters step's own peak: datatrove runs a 1-task step in the stage process, whose
    high-water mark (VmHWM) is reset when the step starts and read when it ends (the interpreter and its
    libraries included: `from` is the RSS the step started at);
  - the accounting check: read = kept + removed + failed in each stage's summary.json.
Then the growth from the smallest to the largest N against the targets: CPU per document <= +20 %, peak RSS
per task <= 1.5x, clusters step <= 1 GB, planted recall >= 0.95 at every N.
"""

from __future__ import annotations

import argparse
import array
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from winnow.pipelines.config import MinhashParams
from winnow.pipelines.tools.bench import RUNS, SHARED_DATA, cpu_seconds

RECIPE = 1  # bump when the corpus recipe changes: cached corpora of another recipe are rebuilt
SOURCES = {  # language → real documents (paths under shared/data)
    "en": [
        "fineweb/fineweb-sample-10BT/fineweb-legal-docs.jsonl.gz",
        "annotations/fineweb-edu-llama3/train.jsonl.gz",
        "annotations/fineweb-edu-llama3/val.jsonl.gz",
    ],
    "de": ["fineweb/fineweb-2/deu_Latn_sampled_500k_first200.jsonl.gz"],
    "nb": ["fineweb/fineweb-2/nob_Latn_sampled_500k_first200.jsonl.gz"],
}
EXACT_SHARE = 0.05  # exact copies of an earlier original, as a share of N
NEAR_SHARE = 0.05  # near duplicates of an earlier original
EDIT_SHARE = 0.01  # words replaced in a near duplicate
MIN_EDITS = 2
UNIT_MAX_WORDS = 60
DOC_WORDS = (200, 1200)  # an original's length, drawn from the real documents' word counts, clipped
SHARDS = 8  # JSONL.gz files: 2 per task at tasks = 4
MINHASH = MinhashParams()  # the dedup stage's defaults: word 5-grams, 14 bands of 8 hashes
N_GRAMS, BANDS, ROWS = MINHASH.n_grams, MINHASH.num_buckets, MINHASH.hashes_per_bucket
EXECUTOR = {"kind": "local", "tasks": 4, "workers": 2}
STAGES = ["base", "dedup", "score"]
LABELS = SHARED_DATA / "annotations" / "fineweb-edu-llama3"
TARGETS = {"cpu_growth": 1.2, "rss_growth": 1.5, "clusters_mb": 1024, "recall": 0.95}

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PLAIN_WORD = re.compile(r"(?<!\S)[a-z]{3,12}(?!\S)")  # a whitespace-separated word of plain letters


# ------------------------------------------------------------------------------------------------ the corpus


@dataclass
class Pool:
    """Units of real text (global ids), per language the range of its units and its documents' word counts."""

    units: list[str]
    words: np.ndarray  # words per unit
    urls: list[str | None]  # the url of the real document a unit comes from
    ranges: dict[str, tuple[int, int]]  # language → [start, end) of its units
    doc_words: dict[str, np.ndarray]  # language → word counts of its real documents
    vocabulary: list[str]  # plain lowercase English words, for the near-duplicate edits


def split_units(text: str) -> list[str]:
    """A document's lines, a line over UNIT_MAX_WORDS words cut at sentence ends (or, within a sentence, every
    UNIT_MAX_WORDS words)."""
    units = []
    for line in text.split("\n"):
        words = line.split()
        if len(words) <= UNIT_MAX_WORDS:
            if words:
                units.append(" ".join(words))
            continue
        piece: list[str] = []
        for sentence in _SENTENCE_END.split(line.strip()):
            sentence_words = sentence.split()
            if len(piece) + len(sentence_words) > UNIT_MAX_WORDS and piece:
                units.append(" ".join(piece))
                piece = []
            while len(sentence_words) > UNIT_MAX_WORDS:
                units.append(" ".join(sentence_words[:UNIT_MAX_WORDS]))
                sentence_words = sentence_words[UNIT_MAX_WORDS:]
            piece += sentence_words
        if piece:
            units.append(" ".join(piece))
    return units


def load_pool(data: Path = SHARED_DATA) -> Pool:
    from winnow.blocks.dedup.minhash import normalize_for_minhash

    units, urls, ranges, doc_words, seen = [], [], {}, {}, set()
    vocabulary: set[str] = set()
    for language, paths in SOURCES.items():
        start, lengths = len(units), []
        for path in paths:
            with gzip.open(data / path, "rt", encoding="utf-8") as f:
                for line in f:
                    row = json.loads(line)
                    lengths.append(len(row["text"].split()))
                    if language == "en":
                        vocabulary.update(_PLAIN_WORD.findall(row["text"]))
                    for unit in split_units(row["text"]):
                        key = normalize_for_minhash(unit)
                        if key and key not in seen:  # equal after normalisation = equal to exact dedup
                            seen.add(key)
                            units.append(unit)
                            urls.append(row.get("url"))
        ranges[language] = (start, len(units))
        doc_words[language] = np.array(lengths)
    words = np.array([len(u.split()) for u in units], dtype=np.int32)
    return Pool(units, words, urls, ranges, doc_words, sorted(vocabulary))


def draw_units(rng: np.random.Generator, pool: Pool, language: str, target: int) -> np.ndarray:
    """Distinct units of `language` in random order, until they hold at least `target` words."""
    start, end = pool.ranges[language]
    mean = pool.words[start:end].mean()
    size = int(2 * target / mean) + 8
    while True:
        ids = rng.integers(start, end, size=size)
        reached = np.searchsorted(np.cumsum(pool.words[ids]), target)
        if reached >= size:
            size *= 2
            continue
        ids = ids[: reached + 1]
        if len(np.unique(ids)) == len(ids):
            return ids


def edit_words(text: str, rng: np.random.Generator, vocabulary: list[str]) -> tuple[str, int, int]:
    """`text` with EDIT_SHARE of its words (at least MIN_EDITS) replaced by other real words; (text, edits, words)."""
    parts = re.split(r"(\s+)", text)  # words at the even positions, the whitespace between them kept
    positions = [i for i in range(0, len(parts), 2) if parts[i]]
    k = max(MIN_EDITS, round(EDIT_SHARE * len(positions)))
    for i in rng.choice(positions, size=k, replace=False):
        new = parts[i]
        while new.lower() == parts[i].lower():
            new = vocabulary[rng.integers(len(vocabulary))]
        parts[i] = new
    return "".join(parts), k, len(positions)


def shingle_set(text: str, splitter) -> np.ndarray:
    """The distinct word 5-gram hashes of `text` as the dedup stage computes them (normalised, winnow's splitter)."""
    from winnow.blocks.dedup.minhash import normalized_chunks, shingle_hashes

    return np.unique(shingle_hashes(splitter.split_chunks(normalized_chunks(text)), N_GRAMS))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    shared = np.intersect1d(a, b, assume_unique=True).size
    return shared / (a.size + b.size - shared)


def first_url(pool: Pool, ids) -> str | None:
    """The url of the first unit of a document that has one (the FineWeb-Edu annotation texts have none)."""
    return next((pool.urls[i] for i in ids if pool.urls[i]), None)


def doc_id(position: int) -> str:
    return f"scale-{position:08d}"  # zero-padded: id order = corpus order, so a source survives its copies


def new_original(rng: np.random.Generator, pool: Pool, language: str, seen: set[int]) -> np.ndarray:
    """The units of a new original: a length drawn from the real documents', a sequence no original had before,
    with a url (a unit from FineWeb)."""
    low, high = DOC_WORDS
    target = int(np.clip(rng.choice(pool.doc_words[language]), low, high))
    while True:
        ids = draw_units(rng, pool, language, target)
        key = hash(ids.tobytes())
        if key not in seen and first_url(pool, ids):
            seen.add(key)
            return ids


def build_corpus(folder: Path, n: int, seed: int = 0, data: Path = SHARED_DATA) -> dict:
    """Write `n` documents as SHARDS JSONL.gz files, `planted.jsonl` and `corpus.json` (counts) into `folder`."""
    from winnow.blocks.dedup.minhash import FastWordSplitter

    start_time = time.perf_counter()
    pool = load_pool(data)
    rng = np.random.default_rng(seed)
    n_exact, n_near = round(EXACT_SHARE * n), round(NEAR_SHARE * n)
    kinds = np.full(n, "original", dtype=object)
    planted = rng.choice(np.arange(1, n), size=n_exact + n_near, replace=False)  # document 0 is an original
    kinds[planted[:n_exact]], kinds[planted[n_exact:]] = "exact", "near"
    languages = list(SOURCES)
    pool_words = np.array([pool.words[slice(*pool.ranges[lang])].sum() for lang in languages], dtype=float)
    language_of = rng.choice(len(languages), size=n, p=pool_words / pool_words.sum())  # by the pool's words

    units, offsets, originals = array.array("I"), array.array("Q", [0]), []  # the originals so far, compactly
    seen: set[int] = set()
    splitter = FastWordSplitter("en")
    counts = {"documents": n, "original": 0, "exact": 0, "near": 0, "by_language": dict.fromkeys(languages, 0)}
    near_jaccard = []
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, n, SHARDS + 1).astype(int)
    with open(folder / "planted.jsonl", "w", encoding="utf-8") as planted_file:
        for shard in range(SHARDS):
            with gzip.open(folder / f"shard-{shard:05d}.jsonl.gz", "wt", encoding="utf-8", compresslevel=3) as out:
                for position in range(bounds[shard], bounds[shard + 1]):
                    kind = kinds[position]
                    counts[kind] += 1
                    if kind == "original":
                        language = languages[language_of[position]]
                        ids = new_original(rng, pool, language, seen)
                        units.extend(ids.tolist())
                        offsets.append(len(units))
                        originals.append(position)
                        counts["by_language"][language] += 1
                    else:
                        source = int(rng.integers(len(originals)))
                        ids = units[offsets[source] : offsets[source + 1]]
                    text = "\n".join(pool.units[i] for i in ids)
                    if kind != "original":
                        row = {"id": doc_id(position), "duplicate_of": doc_id(originals[source]), "kind": kind}
                        if kind == "near":
                            edited, edits, words = edit_words(text, rng, pool.vocabulary)
                            similarity = jaccard(shingle_set(text, splitter), shingle_set(edited, splitter))
                            row.update(edits=edits, words=words, jaccard=round(similarity, 4))
                            near_jaccard.append(similarity)
                            text = edited
                        planted_file.write(json.dumps(row) + "\n")
                    document = {"id": doc_id(position), "text": text, "url": first_url(pool, ids)}
                    out.write(json.dumps(document, ensure_ascii=False) + "\n")
    if near_jaccard:
        counts["near_jaccard"] = {"min": round(min(near_jaccard), 4), "mean": round(float(np.mean(near_jaccard)), 4)}
    counts.update(recipe=RECIPE, seed=seed, build_s=round(time.perf_counter() - start_time, 1))
    (folder / "corpus.json").write_text(json.dumps(counts, indent=2) + "\n")
    return counts


def corpus(out: Path, n: int, seed: int) -> tuple[Path, dict]:
    """The corpus of `n` documents under `out`, built unless a finished one of the same recipe and seed is there."""
    folder = out / f"corpus-{n}"
    manifest = folder / "corpus.json"
    if manifest.is_file():
        counts = json.loads(manifest.read_text())
        if counts.get("recipe") == RECIPE and counts.get("seed") == seed and counts.get("documents") == n:
            return folder, counts
    shutil.rmtree(folder, ignore_errors=True)
    return folder, build_corpus(folder, n, seed)


# ------------------------------------------------------------------------------------------------ running a stage

# `python -c RUNNER REPORT ARGS...` = `winnow ARGS...` (the same `main`), measured. Every datatrove step goes
# through LocalPipelineExecutor.run: it is wrapped to time the step and, for a step that runs in this process
# (workers = 1), to reset the high-water mark of this process's RSS at its start (/proc/self/clear_refs 5) and
# read it at its end. The fork server that starts datatrove's worker processes (and reaps them) is stopped and
# reaped before the end, so that getrusage's RUSAGE_CHILDREN holds every process of the stage.
RUNNER = r"""
import json, resource, sys, time
from pathlib import Path

def status(key):
    with open("/proc/self/status") as f:
        return int(f.read().split(key + ":")[1].split()[0]) / 1024  # MB

def cpu(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime

from datatrove.executor import LocalPipelineExecutor

steps, peak, first = [], [0.0], []
executor_run = LocalPipelineExecutor.run

def measured_run(self):
    if not first:
        first.append(cpu(resource.RUSAGE_SELF))  # imports, config and checks: before the first step
    in_process = self.workers == 1
    if in_process:
        peak[0] = max(peak[0], status("VmHWM"))
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
    rss, wall = status("VmRSS"), time.perf_counter()
    try:
        return executor_run(self)
    finally:
        row = {"step": Path(self.logging_dir.path).name, "tasks": self.tasks, "workers": self.workers,
               "wall_s": time.perf_counter() - wall}
        if in_process:
            row.update(rss_at_start_mb=rss, peak_mb=status("VmHWM"))
        steps.append(row)

LocalPipelineExecutor.run = measured_run
from winnow.pipelines.cli import main

rc = main(sys.argv[2:])
import multiprocess.forkserver
multiprocess.forkserver._forkserver._stop()  # closes its pipe and waits for it: its children's usage comes here
children = resource.getrusage(resource.RUSAGE_CHILDREN)
report = {
    "rc": rc,
    "cpu_in_process_s": cpu(resource.RUSAGE_SELF) + cpu(resource.RUSAGE_CHILDREN),
    "start_cpu_s": first[0] if first else None,
    "peak_stage_process_mb": max(peak[0], status("VmHWM")),
    "peak_workers_mb": children.ru_maxrss / 1024,
    "steps": steps,
}
Path(sys.argv[1]).write_text(json.dumps(report))
sys.exit(rc)
"""


def run_winnow(args: list[str], report: Path) -> dict:
    """`winnow ARGS` in a fresh process (RUNNER); its report plus the wall and CPU seconds seen from here."""
    cpu, wall = cpu_seconds(children=True), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(report), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    if done.returncode != 0:
        sys.exit(f"bench-scale: winnow {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(report.read_text())
    result.update(wall_s=time.perf_counter() - wall, cpu_s=cpu_seconds(children=True) - cpu)
    result["peak_mb"] = max(result["peak_stage_process_mb"], result["peak_workers_mb"])
    return result


def write_config(path: Path, settings: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def train_classifier(out: Path) -> tuple[Path, dict | None]:
    """The fastText classifier every N scores with: trained once (`winnow classifier`), reused while it exists."""
    run = out / "classifier-run"
    model = run / "classifier"
    if (model / "summary.json").is_file():
        return model, None
    shutil.rmtree(run, ignore_errors=True)
    config = write_config(
        out / "classifier.yaml",
        {
            "name": "bench-scale-classifier",
            "output_dir": str(run),
            "executor": EXECUTOR,
            "classifier": {
                "backbone": "fasttext",
                "labels": str((LABELS / "train.jsonl.gz").resolve()),
                "eval_labels": str((LABELS / "val.jsonl.gz").resolve()),
                "learning_curve": [1.0],
            },
        },
    )
    result = run_winnow(["classifier", "-c", str(config)], out / "classifier.report.json")
    return model, result


# ------------------------------------------------------------------------------------------------ what dedup found


def read_ids(folder: Path, columns: list[str]) -> dict[str, list]:
    """The given columns of every Parquet file directly in `folder` (not its subfolders)."""
    import pyarrow.parquet as pq

    found: dict[str, list] = {c: [] for c in columns}
    for path in sorted(folder.glob("*.parquet")):
        table = pq.read_table(path, columns=columns)
        for c in columns:
            found[c] += table.column(c).to_pylist()
    return found


def planted_found(run: Path, corpus_folder: Path) -> dict:
    """Recall of the planted pairs that reached dedup, and the originals dedup removed (false positives)."""
    reached = set(read_ids(run / "base", ["id"])["id"])
    survivor: dict[str, str] = {}  # removed document → the kept document of its cluster
    for reason in ("exact_duplicate", "minhash_duplicate"):
        rows = read_ids(run / "dedup" / "removed" / reason, ["id", "duplicate_of"])
        survivor.update(zip(rows["id"], rows["duplicate_of"]))
    pairs = [json.loads(line) for line in (corpus_folder / "planted.jsonl").read_text().splitlines()]
    copies = {p["id"] for p in pairs}
    result = {}
    for kind in ("exact", "near"):
        eligible = [p for p in pairs if p["kind"] == kind and p["id"] in reached and p["duplicate_of"] in reached]
        found = sum(
            survivor.get(p["id"], p["id"]) == survivor.get(p["duplicate_of"], p["duplicate_of"]) for p in eligible
        )
        result[kind] = {
            "planted": sum(p["kind"] == kind for p in pairs),
            "reached_dedup": len(eligible),
            "found": found,
        }
    # what MinHash alone would miss: a pair at Jaccard J shares no band with probability (1 - J^r)^b
    result["near"]["expected_misses"] = sum((1 - p["jaccard"] ** ROWS) ** BANDS for p in eligible)
    originals = reached - copies
    false = sorted(d for d in survivor if d not in copies)
    result["false_positives"] = {"originals_reached_dedup": len(originals), "removed": len(false), "ids": false[:20]}
    eligible = result["exact"]["reached_dedup"] + result["near"]["reached_dedup"]
    result["recall"] = (result["exact"]["found"] + result["near"]["found"]) / eligible if eligible else None
    return result


# ------------------------------------------------------------------------------------------------ one N


def run_size(out: Path, n: int, seed: int, classifier: Path, keep: bool) -> dict:
    from winnow.errors import AccountingError
    from winnow.pipelines.summary import check_invariant, read_summary

    corpus_folder, counts = corpus(out, n, seed)
    print(
        f"  n={n:,} corpus: {counts['original']:,} originals, {counts['exact']:,} exact copies, {counts['near']:,} "
        f"near duplicates (J >= {counts['near_jaccard']['min']:.3f}), built once in {counts['build_s']:.0f} s",
        flush=True,
    )
    run = out / f"n{n}"
    shutil.rmtree(run, ignore_errors=True)  # a resumed stage would skip its work
    config = write_config(
        out / f"n{n}.yaml",
        {
            "name": f"bench-scale-{n}",
            "output_dir": str(run),
            "input": {"paths": [str(corpus_folder.resolve() / "*.jsonl.gz")], "format": "jsonl"},
            "executor": EXECUTOR,
            "score": {"classifier": str(classifier.resolve()), "device": "cpu"},
        },
    )
    result = {"n": n, "corpus": counts, "stages": {}}
    for stage in STAGES:
        measured = run_winnow([stage, "-c", str(config)], out / f"n{n}.{stage}.report.json")
        summary = read_summary(run / stage)
        try:
            check_invariant(summary)
            measured["accounting"] = "ok"
        except AccountingError as e:
            measured["accounting"] = str(e)
        measured["read"], measured["kept"] = summary["read"], summary["kept"]
        result["stages"][stage] = measured
        print(
            f"  n={n:,} {stage}: {measured['cpu_s']:.0f} CPU s, {measured['wall_s']:.0f} s, "
            f"peak {measured['peak_mb']:.0f} MB, read {summary['read']:,} kept {summary['kept']:,}",
            flush=True,
        )
    result["planted"] = planted_found(run, corpus_folder)
    if not keep:
        shutil.rmtree(run)
    return result


# ------------------------------------------------------------------------------------------------ the table


def clusters_step(stage: dict) -> dict | None:
    return next((s for s in stage["steps"] if s["step"] == "clusters"), None)


def marginal(result: dict, fixed: dict | None, stage: str) -> float | None:
    """CPU seconds per 1,000 documents beyond the fixed-cost run: (CPU(N) - CPU(N0)) / (N - N0)."""
    if fixed is None or result["n"] <= fixed["n"]:
        return None
    return 1000 * (result["stages"][stage]["cpu_s"] - fixed["stages"][stage]["cpu_s"]) / (result["n"] - fixed["n"])


def print_table(results: list[dict], fixed: dict | None) -> dict:
    """The figures side by side; returns the growth from the smallest to the largest N."""
    print(
        f"\n{'stage':<6} {'N':>9} {'CPU s':>8} {'CPU s/1k docs':>14} {'marginal':>9} {'wall s':>7} "
        f"{'peak RSS/task':>14}  accounting"
    )
    for stage in STAGES:
        for r in ([fixed] if fixed else []) + results:
            m, extra = r["stages"][stage], marginal(r, fixed, stage)
            print(
                f"{stage:<6} {r['n']:>9,} {m['cpu_s']:>8.0f} {1000 * m['cpu_s'] / r['n']:>14.2f} "
                f"{'' if extra is None else f'{extra:.2f}':>9} {m['wall_s']:>7.0f} {m['peak_mb']:>11.0f} MB  "
                f"{m['accounting']} (read {m['read']:,}, kept {m['kept']:,})"
            )
    print(
        "\ndedup: planted pairs found (of those whose two documents reached dedup); originals removed (false positives)"
    )
    for r in ([fixed] if fixed else []) + results:
        p, c, jac = r["planted"], clusters_step(r["stages"]["dedup"]), r["corpus"]["near_jaccard"]
        fp = p["false_positives"]
        print(
            f"  N={r['n']:>9,}: exact {p['exact']['found']:,}/{p['exact']['reached_dedup']:,}, "
            f"near {p['near']['found']:,}/{p['near']['reached_dedup']:,} "
            f"(J min {jac['min']:.3f} mean {jac['mean']:.3f}: {p['near']['expected_misses']:.1f} misses expected "
            f"from the bands), recall {p['recall']:.4f}; "
            f"false positives {fp['removed']:,}/{fp['originals_reached_dedup']:,} "
            f"({100 * fp['removed'] / fp['originals_reached_dedup']:.3f} %); clusters step peak "
            + (f"{c['peak_mb']:.0f} MB (from {c['rss_at_start_mb']:.0f} MB at its start)" if c else "-")
        )
    growth = {}
    low, high = results[0], results[-1]
    if high["n"] > low["n"]:
        header = f"\ngrowth from N={low['n']:,} to N={high['n']:,} (targets: CPU/doc <= +20 %, peak RSS/task <= 1.5x)"
        print(header + (f"; marginal: CPU per document beyond the N={fixed['n']:,} run" if fixed else ""))
        for stage in STAGES:
            a, b = low["stages"][stage], high["stages"][stage]
            cpu = (b["cpu_s"] / high["n"]) / (a["cpu_s"] / low["n"])
            rss = b["peak_mb"] / a["peak_mb"]
            growth[stage] = {"cpu_per_doc": cpu, "peak_rss": rss}
            line = f"  {stage:<6} CPU/doc x{cpu:.2f} {'ok' if cpu <= TARGETS['cpu_growth'] else 'OVER'}"
            if fixed and low["n"] > fixed["n"]:
                net = marginal(high, fixed, stage) / marginal(low, fixed, stage)
                growth[stage]["marginal_cpu_per_doc"] = net
                line += f" (marginal x{net:.2f} {'ok' if net <= TARGETS['cpu_growth'] else 'OVER'})"
            print(line + f", peak RSS/task x{rss:.2f} {'ok' if rss <= TARGETS['rss_growth'] else 'OVER'}")
    worst_clusters = max((clusters_step(r["stages"]["dedup"]) or {}).get("peak_mb", 0) for r in results)
    worst_recall = min(r["planted"]["recall"] for r in results)
    print(
        f"  clusters step peak {worst_clusters:.0f} MB at most "
        f"{'ok' if worst_clusters <= TARGETS['clusters_mb'] else 'OVER'} (<= 1 GB), planted recall "
        f"{worst_recall:.4f} at least {'ok' if worst_recall >= TARGETS['recall'] else 'UNDER'} (>= 0.95)"
    )
    return growth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--n", type=int, nargs="+", help="corpus sizes (default: 10000 100000)")
    sizes.add_argument("--max-n", type=int, help="the sizes 10k, 100k, 1M up to this one (1000000: all three)")
    parser.add_argument(
        "--fixed-n",
        type=int,
        default=1000,
        help="a run this small first, whose CPU stands for the fixed cost (start-up, models, summaries) in the "
        "marginal CPU per document; 0: none",
    )
    parser.add_argument("--out", default=str(RUNS / "bench-scale"), help="corpora, configs and run folders")
    parser.add_argument("--json", help="write the figures here (default: <out>/bench_scale.json)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-runs", action="store_true", help="keep each N's run folder (default: deleted)")
    args = parser.parse_args()
    ns = sorted(args.n or [s for s in (10_000, 100_000, 1_000_000) if s <= (args.max_n or 100_000)])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    print(
        f"bench-scale: N = {', '.join(f'{n:,}' for n in ns)} (fixed-cost run: {args.fixed_n or 'none'}); "
        f"executor.kind {EXECUTOR['kind']}, tasks {EXECUTOR['tasks']}, workers {EXECUTOR['workers']}; "
        f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; in {out}",
        flush=True,
    )
    classifier, trained = train_classifier(out)
    if trained:
        print(f"  classifier (fastText, trained once): {trained['cpu_s']:.0f} CPU s, {trained['wall_s']:.0f} s")
    fixed = run_size(out, args.fixed_n, args.seed, classifier, args.keep_runs) if 0 < args.fixed_n < ns[0] else None
    results = [run_size(out, n, args.seed, classifier, args.keep_runs) for n in ns]
    growth = print_table(results, fixed)
    figures = {
        "executor": EXECUTOR,
        "load_average_at_end": os.getloadavg(),
        "cpus": os.cpu_count(),
        "targets": TARGETS,
        "fixed_cost_run": fixed,
        "results": results,
        "growth": growth,
    }
    path = Path(args.json) if args.json else out / "bench_scale.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nfigures: {path}")


if __name__ == "__main__":
    main()

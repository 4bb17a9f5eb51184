"""Peak memory and time of the dedup's cluster step: the array engine vs the dict-based engine it replaced.

    .venv/bin/python benchmarks/bench_clusters.py [--pairs 1e6 3e6 1e7] [--engines old new] [--keep DIR]

For each size, a work folder as the sharded dedup leaves it before its cluster step: `docs/<rank>.parquet`
(id, dump, exact key of every document, 8 tasks; as many unique documents again as duplicated ones, which
the step must not read) and `pairs/` + `exact_pairs/` *.dups with a planted duplicate structure — clusters of
heavy-tailed size (2 to 1,000 documents; Zipf), chained as datatrove's bucket step writes them, 30 % exact
copies, some pairs found again in another bucket — with 0.8 duplicated documents per pair. Each engine runs
`DuplicateClusters(...).run()` alone in a fresh subprocess; its peak RSS (that process's high-water mark,
interpreter and libraries included: "after imports" is the peak before the step starts) and the wall and CPU
seconds of the step are reported, and the two engines' `clusters/*.parquet` are compared row for row.
The old engine is the dict-based one of commit 544e906^ (`git show 544e906^:src/winnow/blocks/dedup/{base,clusters}.py`,
imported from a temporary folder), or the one given by `--old-rev`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RANKS = 8
DUMPS = ["CC-MAIN-2013-20", "CC-MAIN-2023-50", "CC-MAIN-2024-10", None]

# The child measures its peak RSS as VmHWM (/proc/self/status): getrusage's ru_maxrss of a child starts at the RSS
# its parent had when it forked (Linux keeps that high-water mark across exec), VmHWM at the child's own. The
# parent stays small anyway (the work folders are written and compared by other subprocesses), so both agree.
CHILD = """
import json, resource, sys, time
def peak_mb():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
sys.path.insert(0, sys.argv[3])
import winnow.blocks.dedup  # what a datatrove task of the dedup stage has loaded anyway (both engines)
if sys.argv[1] == "old":
    from old_clusters import DuplicateClusters
else:
    from winnow.blocks.dedup.clusters import DuplicateClusters
baseline = peak_mb()
wall, cpu = time.perf_counter(), time.process_time()
DuplicateClusters(sys.argv[2], ["pairs", "exact_pairs"]).run()
print(json.dumps({
    "seconds": time.perf_counter() - wall,
    "cpu_seconds": time.process_time() - cpu,
    "baseline_mb": baseline,
    "peak_mb": peak_mb(),
    "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def plant(work: Path, n_pairs: int, seed: int = 0) -> dict:
    """The work folder of one size; returns its counts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n_dup = int(0.8 * n_pairs)  # duplicated documents (~1.25 pairs each); as many unique ones again
    n_docs = 2 * n_dup
    sizes = []
    total = 0
    while total < n_dup:
        size = int(min(rng.zipf(1.8) + 1, 1000, n_dup - total if n_dup - total >= 2 else 2))
        sizes.append(size)
        total += size
    members = rng.permutation(n_docs)[:total]  # document numbers, clusters one after the other
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    same_cluster = np.ones(total, bool)
    same_cluster[starts] = False
    chain_a, chain_b = members[:-1][same_cluster[1:]], members[1:][same_cluster[1:]]
    text = rng.integers(0, 1 << 60, n_docs, dtype=np.uint64)
    first_of = np.repeat(members[starts], sizes)
    copies = same_cluster & (rng.random(total) < 0.3)
    text[members[copies]] = text[first_of[copies]]
    exact_a, exact_b = first_of[copies], members[copies]
    extra = n_pairs - len(chain_a) - len(exact_a)  # pairs found again in another bucket
    again = rng.choice(len(chain_a), max(extra, 0))
    a = np.concatenate([chain_a, chain_a[again]])
    b = np.concatenate([chain_b, chain_b[again]])

    def node(doc: np.ndarray) -> np.ndarray:
        return ((doc % RANKS) << 32) | (doc // RANKS)  # document d is document d // RANKS of task d % RANKS

    for folder, (x, y), files in [("pairs", (a, b), 14), ("exact_pairs", (exact_a, exact_b), 1)]:
        (work / folder).mkdir(parents=True)
        x, y = node(x), node(y)
        records = np.stack([x >> 32, x & 0xFFFFFFFF, y >> 32, y & 0xFFFFFFFF], axis=1).astype("<u4")
        for k, part in enumerate(np.array_split(records, files)):
            part.tofile(work / folder / f"{k:05d}_00.dups")
    (work / "docs").mkdir()
    schema = pa.schema([("id", pa.string()), ("dump", pa.string()), ("exact_key", pa.uint64())])
    ids = rng.integers(0, 1 << 62, n_docs)
    dumps = rng.integers(0, len(DUMPS), n_docs)
    for r in range(RANKS):
        docs = np.arange(r, n_docs, RANKS)
        with pq.ParquetWriter(work / "docs" / f"{r:05d}.parquet", schema) as writer:
            for chunk in np.array_split(docs, max(1, len(docs) // 500_000)):
                table = pa.table(
                    {
                        "id": [f"<urn:uuid:{x:016x}-{d}>" for x, d in zip(ids[chunk].tolist(), chunk.tolist())],
                        "dump": [DUMPS[k] for k in dumps[chunk].tolist()],
                        "exact_key": text[chunk],
                    },
                    schema=schema,
                )
                writer.write_table(table)
    return {
        "pairs": int(len(a) + len(exact_a)),
        "duplicated_documents": int(total),
        "clusters": len(sizes),
        "documents": n_docs,
    }


def old_engine(folder: Path, rev: str) -> Path:
    """The committed engine's two modules, importable as `old_clusters` (which imports `old_base`)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("base", "clusters"):
        source = subprocess.run(
            ["git", "show", f"{rev}:src/winnow/blocks/dedup/{name}.py"], cwd=ROOT, check=True, capture_output=True
        ).stdout.decode()
        (folder / f"old_{name}.py").write_text(
            source.replace("from winnow.blocks.dedup.base import", "from old_base import")
        )
    return folder


def run_engine(engine: str, work: Path, old_dir: Path) -> dict:
    shutil.rmtree(work / "clusters", ignore_errors=True)
    result = subprocess.run(
        [sys.executable, "-c", CHILD, engine, str(work), str(old_dir)], capture_output=True, text=True, cwd=ROOT
    )
    if result.returncode:
        raise RuntimeError(f"{engine} engine failed:\n{result.stderr[-3000:]}")
    (work / "clusters").rename(work / f"clusters-{engine}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def same_decisions(work: Path) -> bool:
    import pyarrow.parquet as pq

    old = sorted((work / "clusters-old").glob("*.parquet"))
    new = sorted((work / "clusters-new").glob("*.parquet"))
    return [p.name for p in old] == [p.name for p in new] and all(
        pq.read_table(a).equals(pq.read_table(b)) for a, b in zip(old, new)
    )


def in_subprocess(*args: str) -> str:
    """This script's --plant / --compare in a fresh process (this one stays small: see CHILD)."""
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT)
    if result.returncode:
        raise RuntimeError(f"{args[0]} failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", type=float, default=[1e6, 3e6, 1e7])
    parser.add_argument("--engines", nargs="+", default=["old", "new"], choices=["old", "new"])
    # the last commit with the dict-based engine (544e906 replaced it with the array engine)
    parser.add_argument("--old-rev", default="544e906^", help="git revision holding the dict-based engine")
    parser.add_argument("--keep", help="write the work folders and results.json here (default: a temporary folder)")
    parser.add_argument("--plant", nargs=2, metavar=("PAIRS", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--compare", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plant:
        print(json.dumps(plant(Path(args.plant[1]), int(float(args.plant[0])))))
        return 0
    if args.compare:
        print(json.dumps(same_decisions(Path(args.compare))))
        return 0

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-clusters-"))
    old_dir = old_engine(root / "old-engine", args.old_rev)
    results = []
    for n in args.pairs:
        work = root / f"pairs-{int(n)}"
        shutil.rmtree(work, ignore_errors=True)
        row = json.loads(in_subprocess("--plant", str(int(n)), str(work)))
        for engine in args.engines:
            row[engine] = run_engine(engine, work, old_dir)
            print(f"{int(n):>12,} pairs  {engine}: {json.dumps(row[engine])}", file=sys.stderr, flush=True)
        if set(args.engines) == {"old", "new"}:
            row["same_decisions"] = json.loads(in_subprocess("--compare", str(work)))
        results.append(row)
        if not args.keep:
            shutil.rmtree(work)
    (root / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    columns = ["pairs", "duplicated docs", "clusters", "engine", "peak RSS MB", "after imports MB", "step's own MB"]
    print("| " + " | ".join(columns + ["wall s", "CPU s"]) + " |")
    print("|---" * (len(columns) + 2) + "|")
    for row in results:
        for engine in args.engines:
            r = row[engine]
            print(
                f"| {row['pairs']:,} | {row['duplicated_documents']:,} | {row['clusters']:,} | {engine} | "
                f"{r['peak_mb']:,.0f} | {r['baseline_mb']:,.0f} | {r['peak_mb'] - r['baseline_mb']:,.0f} | "
                f"{r['seconds']:,.1f} | {r['cpu_seconds']:,.1f} |"
            )
    same = [row.get("same_decisions") for row in results]
    print(f"same decisions, old vs new: {same}")
    print(f"(results in {root / 'results.json'})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

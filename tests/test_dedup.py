"""The dedup stage on real documents: FineWeb sample-10BT and FineWeb-Edu annotation texts, the WARC pages
captured twice, and near-duplicates made from them here (header line, footer, 5 % of the words changed,
exact copies). The base stage's output is written by the test as Parquet in the base schema.

One corpus, three runs of `winnow dedup` (sharded engine with 1 task and with 4 tasks, datasketch engine),
shared by the tests below; then small runs for scope, refusal and the input-order guard.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from winnow.blocks.dedup.filter import FINEWEB_FIELDS, InputChangedError
from winnow.blocks.dedup.minhash import FastWordSplitter, MinhashSignatures, normalize_for_minhash, normalized_chunks
from winnow.pipelines.config import ConfigError, RunConfig
from winnow.pipelines.stages.dedup import fineweb2_upsampling, run
from winnow.pipelines.summary import read_summary

DUMP = "CC-MAIN-2024-10"
EARLIER_DUMP = "CC-MAIN-2023-50"
SPLITTER = FastWordSplitter("en")


def shingles(text: str, n: int = 5) -> set[str]:
    words = SPLITTER.split(normalize_for_minhash(text))
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def read_jsonl(path: Path, limit: int) -> list[dict]:
    rows = []
    with gzip.open(path, "rt") as f:
        for line in f:
            rows.append(json.loads(line))
            if len(rows) == limit:
                break
    return rows


def doc(text: str, doc_id: str, dump: str = DUMP, url: str | None = None) -> dict:
    return {
        "text": text,
        "id": doc_id,
        "dump": dump,
        "url": url,
        "date": None,
        "file_path": None,
        "language": "en",
        "language_score": 0.9,
        "token_count": len(text.split()),
    }


def twice_captured_pages(shared_data: Path) -> list[dict]:
    """The pages whose URL occurs twice in warc/pages/, extracted with trafilatura as the base stage does."""
    import trafilatura
    from warcio.archiveiterator import ArchiveIterator

    index = [json.loads(line) for line in gzip.open(shared_data / "warc/pages/pages-index.jsonl.gz", "rt")]
    by_url = defaultdict(list)
    for record in index:
        by_url[record["url"]].append(record)
    docs = []
    for records in by_url.values():
        if len(records) < 2:
            continue
        for record in records:
            with open(shared_data / "warc/pages" / record["warc_file"], "rb") as f:
                f.seek(record["offset"])
                raw = f.read(record["length"])
            html = next(iter(ArchiveIterator(io.BytesIO(raw)))).content_stream().read()
            text = trafilatura.extract(
                html.decode(record["charset"] or "utf-8", errors="replace"),
                favor_precision=True,
                include_comments=False,
                deduplicate=True,
            )
            if text:
                docs.append(doc(text, record["record_id"], url=record["url"]))
    return docs


def make_variants(originals: list[dict], donor_words: list[str], rng: random.Random) -> list[tuple[dict, dict, str]]:
    """(original, variant, kind) near-duplicates and copies of real documents."""
    out = []
    for i, orig in enumerate(originals):
        lines = orig["text"].split("\n")
        kind = "words" if i % 8 == 7 else ["header", "footer", "copy"][i % 3]
        if kind == "header":
            text = "\n".join(["Home | News | Contact us | Log in"] + lines[1:])
        elif kind == "footer":
            text = "\n".join(lines + ["© 2024 All rights reserved. Privacy policy. Terms of use."])
        elif kind == "words":
            words = orig["text"].split(" ")
            for j in rng.sample(range(len(words)), max(1, len(words) // 20)):
                words[j] = rng.choice(donor_words)
            text = " ".join(words)
        else:
            text = orig["text"]
        # half of the variants get an id that sorts before the original's: the survivor is not the first one read
        prefix = "<urn:uuid:0" if i % 2 else "<urn:uuid:z"
        out.append((orig, doc(text, f"{prefix}{kind}-{i}>", orig["dump"], orig["url"]), kind))
    return out


@pytest.fixture(scope="module")
def corpus(shared_data, tmp_path_factory) -> dict:
    rng = random.Random(7)
    fineweb = [
        doc(r["text"], r["id"], url=r["url"])
        for r in read_jsonl(shared_data / "fineweb/fineweb-sample-10BT/fineweb-legal-docs.jsonl.gz", 500)
    ]
    edu = [
        doc(r["text"], f"fineweb-edu-llama3-train-{r['id']}")
        for r in read_jsonl(shared_data / "annotations/fineweb-edu-llama3/train.jsonl.gz", 250)
    ]
    pages = twice_captured_pages(shared_data)
    originals = fineweb[:40] + edu[:40]
    donor_words = " ".join(d["text"] for d in fineweb[-20:]).split()
    variants = make_variants(originals, donor_words, rng)
    # a cluster of 4 exact copies, one of them from an earlier dump: it must be the survivor (global scope)
    source = fineweb[100]
    copies = [doc(source["text"], f"copy-{k}-of-{source['id']}", EARLIER_DUMP if k == 2 else DUMP) for k in range(3)]
    docs = fineweb + edu + pages + [v for _, v, _ in variants] + copies
    rng.shuffle(docs)
    base = tmp_path_factory.mktemp("dedup") / "base"
    base.mkdir()
    schema = pa.schema([(name, pa.type_for_alias(kind)) for name, kind in FINEWEB_FIELDS])
    cuts = [0, 150, 480, 520, 900, len(docs)]  # 5 uneven files: 1 and 4 tasks read them in different groupings
    for i, (lo, hi) in enumerate(zip(cuts, cuts[1:])):
        pq.write_table(pa.Table.from_pylist(docs[lo:hi], schema=schema), base / f"{i:05d}.parquet")
    return {"base": base, "docs": docs, "variants": variants, "pages": pages, "copy_cluster": [source] + copies}


def run_dedup(base: Path, out: Path, **dedup) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "base").exists():
        (out / "base").symlink_to(base)
    tasks = dedup.pop("tasks", 1)
    cfg = RunConfig(
        name="test", output_dir=str(out), executor={"tasks": tasks, "workers": 2}, dedup={"scope": "global", **dedup}
    )
    cfg.source_file = "test"
    assert run(cfg) == 0
    return out / "dedup"


def outcome(stage: Path) -> dict:
    """id → (kept or reason, duplicate_of, cluster size, cluster id) over kept and removed files."""
    result = {}
    for path in sorted(stage.glob("*.parquet")) + sorted(stage.glob("removed/*/*.parquet")):
        for row in pq.read_table(path).drop(["text"]).to_pylist():
            result[row["id"]] = (
                row.get("filter_reason") or "kept",
                row.get("duplicate_of"),
                row["minhash_cluster_size"],
                row["minhash_cluster_id"],
            )
    return result


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("runs")
    return {
        "one_task": run_dedup(corpus["base"], root / "one", tasks=1),
        "four_tasks": run_dedup(corpus["base"], root / "four", tasks=4),
        "datasketch": run_dedup(corpus["base"], root / "sketch", tasks=4, engine="datasketch"),
    }


def test_fast_signatures_are_datatrove_stock_signatures(corpus, shared_data, tmp_path):
    """Same shingles and signatures as datatrove's MinhashDedupSignature (spaCy), on English and other texts."""
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

    multilingual = [
        r["text"] for r in read_jsonl(shared_data / "annotations/llama31-multilingual/cc_merged.jsonl.gz", 40)
    ]
    texts = [d["text"] for d in corpus["docs"][:80]] + multilingual + ["I can't, don't and won't: 10km at 5pm, 3½ cups"]
    from datatrove.utils.text import simplify_text

    stock, fast = MinhashDedupSignature(str(tmp_path / "a")), MinhashSignatures(str(tmp_path / "b"))
    for text in texts:
        assert normalize_for_minhash(text) == simplify_text(text)
        assert normalized_chunks(text) == simplify_text(text).split()
        expected = stock.get_shingles(text)
        assert np.array_equal(fast.get_shingles(text), expected)
        if expected.size:
            assert fast.signature_rows(normalized_chunks(text)).tolist() == stock.get_signature(expected)


def test_signature_stays_exact_when_a_folded_value_reaches_the_modulus(tmp_path):
    """The bit-folded modulus is wrong for x = 2^61 - 1 exactly; that case must fall back to the division."""
    from datatrove.pipeline.dedup.minhash import MinhashDedupSignature

    from winnow.blocks.dedup.minhash import MERSENNE_PRIME, minhash_signature

    a, b = MinhashDedupSignature(str(tmp_path)).parameters
    j = next(j for j in range(a.shape[1]) if int(a[0, j]) % 2)  # an odd multiplier is invertible mod 2^64
    p = int(MERSENNE_PRIME)
    shingle = (p - int(b[0, j])) * pow(int(a[0, j]), -1, 1 << 64) % (1 << 64)  # shingle * a + b wraps to p
    shingles = np.array([shingle, 12345], dtype=np.uint64)
    expected = np.min((shingles.reshape(-1, 1) * a + b) % MERSENNE_PRIME, axis=0)
    assert expected[j] == 0
    assert np.array_equal(minhash_signature(shingles, a, b), expected)


def test_kept_set_does_not_depend_on_the_number_of_tasks(runs):
    one, four = outcome(runs["one_task"]), outcome(runs["four_tasks"])
    assert one == four  # same kept ids, same reasons, same survivor for every removed document, same cluster ids
    assert sum(v[0] != "kept" for v in one.values()) > 50


def test_summary_accounts_for_every_document(runs, corpus):
    for stage in runs.values():
        summary = read_summary(stage)
        assert summary["read"] == len(corpus["docs"])
        assert summary["read"] == summary["kept"] + sum(summary["removed"].values())
        assert set(summary["removed"]) == {"exact_duplicate", "minhash_duplicate"}
        assert sum(summary["cluster_sizes"].values()) == summary["kept"]
        assert (stage / "cluster_sizes.png").stat().st_size > 0
        assert len(outcome(stage)) == len(corpus["docs"])
        for reason, count in summary["removed"].items():
            files = list((stage / "removed" / reason).glob("*.parquet"))
            assert sum(pq.read_metadata(f).num_rows for f in files) == count


def test_survivor_is_earliest_dump_then_smallest_id(runs, corpus):
    result = outcome(runs["four_tasks"])
    by_id = {d["id"]: d for d in corpus["docs"]}
    for doc_id, (status, kept_id, _size, cluster) in result.items():
        if status == "kept":
            continue
        assert result[kept_id][0] == "kept" and result[kept_id][3] == cluster
        survivor, removed = by_id[kept_id], by_id[doc_id]
        assert (survivor["dump"], survivor["id"]) < (removed["dump"], removed["id"])


def test_cluster_of_k_copies_keeps_one_with_its_size(runs, corpus):
    result = outcome(runs["one_task"])
    members = corpus["copy_cluster"]  # the original, 2 copies from this dump, 1 from an earlier dump
    statuses = [result[d["id"]] for d in members]
    kept = [d for d, s in zip(members, statuses) if s[0] == "kept"]
    assert len(kept) == 1 and kept[0]["dump"] == EARLIER_DUMP
    assert result[kept[0]["id"]][2] == len(members) == 4
    assert sorted(s[0] for s in statuses) == ["exact_duplicate"] * 3 + ["kept"]
    assert fineweb2_upsampling(4) == 3 and fineweb2_upsampling(2) == 2 and fineweb2_upsampling(5000) == 1


def test_near_duplicate_recall_and_precision_against_true_jaccard(runs, corpus):
    result = outcome(runs["one_task"])
    text = {d["id"]: d["text"] for d in corpus["docs"]}
    candidates = [(o["id"], v["id"]) for o, v, _ in corpus["variants"]]
    by_url = defaultdict(list)
    for page in corpus["pages"]:
        by_url[page["url"]].append(page["id"])
    candidates += [tuple(ids) for ids in by_url.values() if len(ids) == 2]
    high = [(a, b) for a, b in candidates if jaccard(text[a], text[b]) >= 0.8]
    found = [(a, b) for a, b in high if result[a][3] == result[b][3] != -1]
    assert len(high) >= 90
    assert len(found) / len(high) >= 0.9, f"recall {len(found)}/{len(high)} on pairs with J >= 0.8"
    removed = [(i, v[1]) for i, v in result.items() if v[0] != "kept"]
    low = [(i, k) for i, k in removed if jaccard(text[i], text[k]) < 0.5]
    assert len(low) <= 0.01 * len(removed), (
        f"{len(low)} of {len(removed)} removed documents have J < 0.5 with the kept one"
    )


def test_engines_agree_and_differ_only_near_the_threshold(runs, corpus):
    """datasketch draws its own hash permutations, so the engines are two independent samples of the same LSH:
    they must agree except on pairs near its threshold (14 bands of 8: P(found) is 0.3 at J = 0.63, 0.92 at 0.8).
    The 10 variants with 5 % of their words changed (J ≈ 0.63) are such pairs on purpose."""
    sharded, sketch = outcome(runs["one_task"]), outcome(runs["datasketch"])
    text = {d["id"]: d["text"] for d in corpus["docs"]}
    removed_sharded = {i for i, v in sharded.items() if v[0] != "kept"}
    removed_sketch = {i for i, v in sketch.items() if v[0] != "kept"}
    differ = removed_sharded ^ removed_sketch
    assert 1 - len(differ) / len(sharded) >= 0.99
    for doc_id in differ:  # a pair that one engine's permutations put in a shared band and the other's did not
        kept_by = sharded[doc_id][1] or sketch[doc_id][1]
        assert 0.5 <= jaccard(text[doc_id], text[kept_by]) < 0.9, doc_id
    exact = {i for i, v in sharded.items() if v[0] == "exact_duplicate"}
    assert exact == {i for i, v in sketch.items() if v[0] == "exact_duplicate"}


def test_rerun_resumes_without_duplicating_output(runs, corpus):
    stage = runs["one_task"]
    before = {p: p.stat().st_mtime_ns for p in stage.rglob("*.parquet")}
    run_dedup(corpus["base"], stage.parent, tasks=1)
    assert {p: p.stat().st_mtime_ns for p in stage.rglob("*.parquet")} == before
    assert read_summary(stage)["read"] == len(corpus["docs"])


def test_per_dump_scope_keeps_copies_from_other_dumps(corpus, tmp_path):
    """FineWeb deduplicates within each dump: the same text in two dumps is kept twice; global scope keeps one."""
    src = corpus["docs"][:30]
    docs = src + [dict(d, id=d["id"] + "-recrawl", dump=EARLIER_DUMP) for d in src[:10]]
    docs = [dict(d, edu_signal=i * 0.5) for i, d in enumerate(docs)]  # a column the dedup knows nothing about
    base = tmp_path / "base"
    base.mkdir()
    schema = pa.schema(
        [(name, pa.type_for_alias(kind)) for name, kind in FINEWEB_FIELDS] + [("edu_signal", pa.float64())]
    )
    pq.write_table(pa.Table.from_pylist(docs, schema=schema), base / "00000.parquet")
    per_dump_stage = run_dedup(base, tmp_path / "per_dump", scope="per_dump", engine="datasketch")
    signal = {d["id"]: d["edu_signal"] for d in docs}
    kept = pq.read_table(per_dump_stage / "00000.parquet").to_pylist()
    assert kept and all(r["edu_signal"] == signal[r["id"]] for r in kept)  # carried over
    per_dump = outcome(per_dump_stage)
    global_ = outcome(run_dedup(base, tmp_path / "global", engine="datasketch"))
    recrawled = [d["id"] for d in src[:10]]
    assert all(per_dump[i][0] == "kept" and per_dump[i + "-recrawl"][0] == "kept" for i in recrawled)
    assert all(global_[i][0] == "exact_duplicate" and global_[i + "-recrawl"][0] == "kept" for i in recrawled)


def test_filter_refuses_documents_read_in_another_order(runs, corpus, tmp_path):
    """The FineWeb v1 bug class: signatures computed on one file order, filter applied on another."""
    out = tmp_path / "reordered"
    shutil.copytree(runs["one_task"].parent / "dedup", out / "dedup")
    (out / "base").mkdir()
    files = sorted(corpus["base"].glob("*.parquet"))
    for src, dst in zip(files, files[1:] + files[:1]):  # same documents, another file order
        shutil.copy(src, out / "base" / dst.name)
    shutil.rmtree(out / "dedup" / "logs" / "filter")
    # first line of defence: the launch compares the base files with those the dedup was computed on
    with pytest.raises(ConfigError, match="changed since the dedup"):
        run_dedup(out / "base", out, tasks=1)
    # second, inside the filter step (the only one on Slurm, where base may not exist at launch time)
    (out / "dedup" / "work" / "base_files.json").unlink()
    with pytest.raises(InputChangedError, match="signature step read"):  # one task runs in this process
        run_dedup(out / "base", out, tasks=1)
    assert not (out / "dedup/logs/filter/completions").exists()


def test_datasketch_engine_refuses_a_corpus_above_its_bound(corpus, tmp_path):
    with pytest.raises(ConfigError, match="max_documents_in_memory=100"):
        run_dedup(corpus["base"], tmp_path, engine="datasketch", max_documents_in_memory=100)

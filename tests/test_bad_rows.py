"""Every bad row counted: `winnow base` on damaged JSONL, Parquet and WARC input, run as the user runs it.

Each run goes through the CLI in a subprocess. What must hold: exit code 0, no traceback in the task logs, the
summary invariant read = kept + removed + failed, each bad row under its named reason, and every document known
to be valid kept or removed with a reason (never lost with the file around it).
"""

import glob
import gzip
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from winnow.pipelines.summary import check_invariant

FINEWEB = "fineweb/fineweb-sample-10BT/fineweb-legal-docs.jsonl.gz"


@pytest.fixture(scope="module")
def fineweb_docs(shared_data) -> list[dict]:
    """Real FineWeb documents: the valid rows of every generated file."""
    with gzip.open(shared_data / FINEWEB, "rt") as f:
        return [{"id": d["id"], "text": d["text"], "url": d["url"]} for d in map(json.loads, f)][:400]


def winnow_base(tmp_path: Path, name: str, paths: list, fmt: str, project_root: Path) -> tuple[Path, dict]:
    """Run `winnow base` on the given files; (stage folder, summary.json). Fails the test on a crash."""
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(f"""
name: {name}
output_dir: {tmp_path / name}
input: {{paths: [{", ".join(str(p) for p in paths)}], format: {fmt}}}
executor: {{kind: local, tasks: 1}}
extract: {{extractor: resiliparse}}
""")
    env = {**os.environ, "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "winnow.pipelines.cli", "base", "-c", str(cfg)],
        cwd=project_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    stage = tmp_path / name / "base"
    assert proc.returncode == 0, proc.stderr[-3000:]
    for log in glob.glob(str(stage / "logs" / "**" / "*.log"), recursive=True):
        assert "Traceback" not in Path(log).read_text(errors="replace"), log
    summary = json.loads((stage / "summary.json").read_text())
    check_invariant(summary)
    return stage, summary


def parquet_rows(pattern: str) -> list[dict]:
    return [r for f in sorted(glob.glob(pattern, recursive=True)) for r in pq.read_table(f).to_pylist()]


def outcomes(stage: Path) -> dict[str, str]:
    """id → "kept" or the removing filter's reason, for every document that came out of the stage."""
    fate = {r["id"]: "kept" for r in parquet_rows(str(stage / "*.parquet"))}
    fate.update({r["id"]: r["filter_reason"] for r in parquet_rows(str(stage / "removed" / "**" / "*.parquet"))})
    return fate


def kept_rows(stage: Path) -> list[tuple]:
    """The kept rows without file_path (the input folder differs between the runs compared)."""
    return sorted(tuple(v for k, v in r.items() if k != "file_path") for r in parquet_rows(str(stage / "*.parquet")))


def jsonl(rows) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


# ---- the reported cases, reproduced exactly ----------------------------------------------------------------------


@pytest.mark.slow
def test_bad_jsonl_lines_cost_only_themselves(tmp_path, fineweb_docs, project_root):
    good = fineweb_docs[:30]
    bad_byte = b'{"id":"bad","text":"caf\xe9"}'  # one invalid UTF-8 byte (Latin-1 é)
    dirty, clean = tmp_path / "dirty", tmp_path / "clean"
    dirty.mkdir()
    clean.mkdir()
    (dirty / "end.jsonl").write_bytes(jsonl([*good[:10], bad_byte]))
    (dirty / "middle.jsonl").write_bytes(jsonl([*good[10:15], bad_byte.replace(b"bad", b"bad2"), *good[15:20]]))
    not_an_object, text_number, text_list = b"[1,2,3]", {"id": "num", "text": 42}, {"id": "list", "text": ["a"]}
    (dirty / "types.jsonl").write_bytes(
        jsonl([good[20], not_an_object, *good[21:25], text_number, text_list, *good[25:]])
    )
    (clean / "valid.jsonl").write_bytes(jsonl(good))

    stage, summary = winnow_base(tmp_path, "dirty-jsonl", [dirty / "*.jsonl"], "jsonl", project_root)
    clean_stage, clean_summary = winnow_base(tmp_path, "clean-jsonl", [clean / "*.jsonl"], "jsonl", project_root)

    assert clean_summary["read"] == 30
    assert summary["read"] == 30 + 2 + 3  # + the two rows with a replaced byte, + the three failed rows
    assert summary["failed"] == {"reader_not_an_object": 1, "reader_text_not_a_string": 2}
    assert summary["decoded"] == {"with_replacement": 2}
    fate = outcomes(stage)
    assert {d["id"] for d in good} | {"bad", "bad2"} <= set(fate)  # kept or removed, each with a reason
    assert kept_rows(stage) == kept_rows(clean_stage)
    assert {i: fate[i] for i in outcomes(clean_stage)} == outcomes(clean_stage)

    failed = parquet_rows(str(stage / "failed" / "reader" / "*.parquet"))
    assert sorted((r["id"], r["filter_reason"]) for r in failed) == [
        ("types.jsonl:2", "not_an_object"),
        ("types.jsonl:7", "text_not_a_string"),
        ("types.jsonl:8", "text_not_a_string"),
    ]
    assert {r["text"] for r in failed} == {"[1,2,3]", '{"id": "num", "text": 42}', '{"id": "list", "text": ["a"]}'}
    assert all(r["file_path"].endswith("types.jsonl") for r in failed)


@pytest.mark.slow
def test_bad_parquet_files_cost_only_themselves(tmp_path, fineweb_docs, project_root):
    good = fineweb_docs[:20]
    dirty, clean = tmp_path / "dirty", tmp_path / "clean"
    dirty.mkdir()
    clean.mkdir()
    pq.write_table(pa.Table.from_pylist(good[:10]), dirty / "a.parquet")
    pq.write_table(pa.Table.from_pylist(good[10:]), dirty / "c.parquet")
    pq.write_table(pa.table({"id": ["i0", "i1", "i2", "i3", "i4"], "text": [1, 2, 3, 4, 5]}), dirty / "b-ints.parquet")
    (dirty / "b-not.parquet").write_bytes(jsonl(good[:3]))  # JSONL under a Parquet name
    pq.write_table(pa.Table.from_pylist(good), clean / "valid.parquet")

    stage, summary = winnow_base(tmp_path, "dirty-parquet", [dirty / "*.parquet"], "parquet", project_root)
    clean_stage, _ = winnow_base(tmp_path, "clean-parquet", [clean / "*.parquet"], "parquet", project_root)

    assert summary["read"] == 25
    assert summary["failed"] == {"reader_text_not_a_string": 5}
    assert summary["skipped"] == {"unreadable_file": 1}
    assert {d["id"] for d in good} <= set(outcomes(stage))
    assert kept_rows(stage) == kept_rows(clean_stage)
    assert outcomes(stage) == outcomes(clean_stage)
    failed = parquet_rows(str(stage / "failed" / "reader" / "*.parquet"))
    assert [(r["id"], r["filter_reason"]) for r in failed] == [
        (f"b-ints.parquet:row {i}", "text_not_a_string") for i in range(5)
    ]


# ---- property: seeded malformed files, none may crash the stage -------------------------------------------------


def damage(rng: random.Random, data: bytes, how: str | None = None) -> tuple[bytes, range | None]:
    """Truncate, insert or overwrite random bytes; returns the new bytes and the byte range touched (None: an
    insertion, which moves everything after it)."""
    how = how or rng.choice(["truncate", "insert", "overwrite"])
    at = rng.randrange(len(data))
    if how == "truncate":
        return data[:at], range(at, len(data))
    if how == "insert":
        return data[:at] + rng.randbytes(rng.randint(1, 64)) + data[at:], None
    n = rng.randint(1, 64)
    return data[:at] + rng.randbytes(n) + data[at + n :], range(at, at + n)


BAD_ROWS = [  # rows that are no document: (line, why)
    (b"[1,2,3]", "not an object"),
    (b'{"id": "t", "text": 42}', "text a number"),
    (b'{"id": "t", "text": ["a", "b"]}', "text a list"),
    (b'{"id": "t", "text": {"a": 1}}', "text an object"),
    (b'{"id": "t", "text": true}', "text a bool"),
    (b'{"id": "t", "text": null}', "no text"),
    (b'{"id": ["x"], "text": "some text"}', "id a list"),
    (b'{"id": "t", "text": "some text", "url": ["x"]}', "url a list"),
    (b'{"id": "t", "text": "some text", "token_count": "many"}', "token_count a string"),
    (b'{"id": "t", "text": "cut sh', "truncated JSON"),
    (b"\x00\xff garbage \xfe", "binary garbage"),
]


def jsonl_file(rng: random.Random, docs: list[dict], number: int) -> tuple[bytes, set[str]]:
    """A JSONL file of real documents with bad rows mixed in, some damage, maybe gzipped; (bytes, the ids of the
    documents it certainly still holds: their line is still whole in the file)."""
    lines, ids = [], []
    for k, doc in enumerate(rng.sample(docs, rng.randint(3, 12))):
        doc, twist = {**doc, "id": f"f{number}-{k}"}, rng.random()
        if twist < 0.1:  # an invalid byte (Latin-1 é): still a document, decoded with replacement
            doc["text"] += " caf\udce9"
            lines.append(json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogateescape"))
        elif twist < 0.15:  # a lone surrogate escape: still a document, repaired
            lines.append(json.dumps({**doc, "text": doc["text"] + " \ud800"}).encode())
        elif twist < 0.2:  # a numeric id: read as its string
            doc["id"] = str(number * 100 + k)
            lines.append(json.dumps({**doc, "id": number * 100 + k}).encode())
        else:
            lines.append(json.dumps(doc).encode())
        ids.append(doc["id"])
        if rng.random() < 0.3:
            lines.append(rng.choice(BAD_ROWS)[0])
            ids.append(None)
        if rng.random() < 0.1:
            lines.append(b"")
            ids.append(None)
    data = b"".join(line + b"\n" for line in lines)
    if rng.random() < 0.3:  # compressed: damage hides what follows it, so nothing is claimed
        data = gzip.compress(data)
        return (damage(rng, data)[0] if rng.random() < 0.5 else data), set()
    if rng.random() < 0.7:
        data = damage(rng, data)[0]
    intact = {i for line, i in zip(lines, ids) if i is not None and b"\n" + line + b"\n" in b"\n" + data}
    return data, intact


def parquet_file(rng: random.Random, docs: list[dict], number: int) -> tuple[bytes, set[str]]:
    """A Parquet file of real documents, maybe with wrong types or damage; (bytes, ids of rows certainly intact:
    those of row groups whose bytes were not touched, in a file whose footer was not)."""
    rows = [{**d, "id": f"f{number}-{k}"} for k, d in enumerate(rng.sample(docs, rng.randint(3, 12)))]
    shape = rng.choice(["plain", "int_text", "no_text_column", "null_texts", "int_ids"])
    table = pa.Table.from_pylist(rows)
    valid = {r["id"] for r in rows}
    if shape == "int_text":
        table, valid = table.set_column(1, "text", pa.array(range(len(rows)))), set()
    elif shape == "no_text_column":
        table, valid = table.drop_columns(["text"]), set()
    elif shape == "null_texts":
        texts = [None if k % 3 == 0 else r["text"] for k, r in enumerate(rows)]
        table, valid = table.set_column(1, "text", pa.array(texts)), {r["id"] for k, r in enumerate(rows) if k % 3}
    elif shape == "int_ids":
        table = table.set_column(0, "id", pa.array(range(number * 100, number * 100 + len(rows))))
        valid = {str(i) for i in table.column("id").to_pylist()}
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=rng.choice([2, 3, 100]), compression=rng.choice(["zstd", "snappy"]))
    data = buf.getvalue()
    if rng.random() < 0.4:
        return data, valid
    # mostly overwrites: the one damage after which some rows can still be claimed
    data, touched = damage(rng, data, rng.choice(["overwrite", "overwrite", "truncate", "insert"]))
    footer = len(buf.getvalue()) - 8 - footer_length(buf.getvalue())
    if touched is None or touched.start < 4 or touched.stop > footer:
        return data, set()  # moved bytes, a damaged header or footer: no claim
    meta = pq.ParquetFile(io.BytesIO(buf.getvalue())).metadata
    ids = table.column("id").to_pylist()
    intact, first = set(), 0
    for g in range(meta.num_row_groups):  # a row group whose bytes were not touched still reads the same
        group = meta.row_group(g)
        spans = [chunk_span(group.column(c)) for c in range(group.num_columns)]
        if all(stop <= touched.start or start >= touched.stop for start, stop in spans):
            intact |= {str(i) for i in ids[first : first + group.num_rows]} & valid
        first += group.num_rows
    return data, intact


def footer_length(data: bytes) -> int:
    return int.from_bytes(data[-8:-4], "little")


def chunk_span(column) -> tuple[int, int]:
    start = column.data_page_offset
    if column.has_dictionary_page and column.dictionary_page_offset is not None:
        start = min(start, column.dictionary_page_offset)
    return start, start + column.total_compressed_size


def warc_file(rng: random.Random, shared_data: Path, pages: list[bytes]) -> bytes:
    """A damaged copy of a real WARC/ARC/WET file, or of a run of real page records."""
    sources = sorted(
        glob.glob(str(shared_data / "warc" / "cc" / "*")) + glob.glob(str(shared_data / "warc" / "edge" / "*"))
    )
    if rng.random() < 0.5:
        data = Path(rng.choice(sources)).read_bytes()
    else:
        first = rng.randrange(len(pages) - 6)
        data = b"".join(pages[first : first + rng.randint(1, 6)])
    if rng.random() < 0.2:
        data = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data  # plain WARC
    for _ in range(rng.randint(1, 3)):
        data = damage(rng, data)[0] if data else data
    return data


def page_records(shared_data: Path, n: int = 120) -> list[bytes]:
    index = [json.loads(line) for line in gzip.open(shared_data / "warc" / "pages" / "pages-index.jsonl.gz", "rt")]
    raw = (shared_data / "warc" / "pages" / "pages-00000.warc.gz").read_bytes()
    rows = [r for r in index if r["warc_file"] == "pages-00000.warc.gz"][:n]
    return [raw[r["offset"] : r["offset"] + r["length"]] for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize("fmt, n_files", [("jsonl", 80), ("parquet", 60), ("warc", 60)])
def test_malformed_files_never_crash_the_base_stage(tmp_path, shared_data, fineweb_docs, project_root, fmt, n_files):
    rng = random.Random(f"every bad row counted/{fmt}")
    folder = tmp_path / "input"
    folder.mkdir()
    intact: set[str] = set()
    pages = page_records(shared_data) if fmt == "warc" else []
    for i in range(n_files):
        if fmt == "jsonl":
            data, ids = jsonl_file(rng, fineweb_docs, i)
            suffix = ".jsonl.gz" if data[:2] == b"\x1f\x8b" else ".jsonl"
        elif fmt == "parquet":
            (data, ids), suffix = parquet_file(rng, fineweb_docs, i), ".parquet"
        else:
            data, ids, suffix = warc_file(rng, shared_data, pages), set(), ".warc.gz"
        (folder / f"f{i:03d}{suffix}").write_bytes(data)
        intact |= ids

    stage, summary = winnow_base(tmp_path, f"malformed-{fmt}", [folder / "*"], fmt, project_root)
    lost = intact - set(outcomes(stage))
    assert not lost, f"{len(lost)} valid documents neither kept nor removed: {sorted(lost)[:5]}"
    assert all(reason.startswith("reader_") for reason in summary["failed"]), summary["failed"]
    if fmt != "warc":
        assert len(intact) > n_files  # the claims are not a handful of rows
        assert summary["failed"] and summary["read"] > len(intact)
        # every failed row is kept with its reason; whole files and row groups are counted from their metadata
        per_file = {"reader_missing_text_column", "reader_unreadable_row_group"}
        written = parquet_rows(str(stage / "failed" / "reader" / "*.parquet"))
        assert len(written) == sum(n for reason, n in summary["failed"].items() if reason not in per_file)
    print(
        f"{fmt}: {n_files} files, {len(intact)} known-valid documents, read {summary['read']}, "
        f"failed {summary['failed']}, skipped {summary['skipped']}"
    )

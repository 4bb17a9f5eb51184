"""Stage folders are Hugging Face datasets: `datasets.load_dataset(<run>/<stage>)` reads only the kept documents,
`removed` / `failed` / each subset are configs of their own, offline. Real WARC shards through `winnow base` and
`winnow dedup`; real Llama-3-labelled FineWeb texts through the classifier stage (fastText) → score → subsets, then the
subsets again in FineWeb's layout with FineWeb-Edu's columns."""

import gzip
import json
import re
from pathlib import Path
from typing import get_args

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from winnow.blocks.writers.parquet import COLUMN_SETS, LAYOUTS, ScoredParquetWriter
from winnow.pipelines.cli import main as winnow
from winnow.pipelines.config import OutputConfig
from winnow.pipelines.summary import total

# huggingface.co/datasets/HuggingFaceFW/fineweb-edu: its columns and Arrow types, in its order
FINEWEB_EDU = pa.schema(
    [
        ("text", pa.string()),
        ("id", pa.string()),
        ("dump", pa.string()),
        ("url", pa.string()),
        ("file_path", pa.string()),
        ("language", pa.string()),
        ("language_score", pa.float64()),
        ("token_count", pa.int64()),
        ("score", pa.float64()),
        ("int_score", pa.int64()),
    ]
)
FINEWEB_FILE = re.compile(r"data/(CC-MAIN-\d{4}-\d{2})/\d{3}_\d{5}\.parquet")  # data/CC-MAIN-2024-10/000_00000.parquet


@pytest.fixture
def load(tmp_path, monkeypatch):
    """`datasets.load_dataset(folder, config, split="train")`, offline, with its caches under tmp_path."""
    import datasets

    cache = tmp_path / "hf" / "datasets"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)  # read when datasets was imported
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    return lambda folder, config=None: datasets.load_dataset(str(folder), config, split="train", cache_dir=str(cache))


def rows(folder: Path, pattern: str) -> list[dict]:
    return [row for path in sorted(folder.glob(pattern)) for row in pq.read_table(path).to_pylist()]


def ids(table) -> list[str]:
    return sorted(r["id"] for r in table)


def card_configs(folder: Path) -> dict[str, str]:
    """config name → path glob, from the README.md's YAML front matter."""
    front = (folder / "README.md").read_text().split("---\n")[1]
    return {c["config_name"]: c["data_files"][0]["path"] for c in yaml.safe_load(front)["configs"]}


def write_config(path: Path, **config) -> str:
    path.write_text(yaml.safe_dump(config))
    return str(path)


# ------------------------------------------------------------------ base and dedup on real WARC shards
@pytest.fixture(scope="module")
def pages_run(shared_data, tmp_path_factory) -> Path:
    """`winnow base` + `winnow dedup` on the first 60 pages of 2 shards (the English-heavy ones; each holds a page
    captured twice), and a base run whose 0.1 ms extraction timeout sends pages to failed/."""
    root = tmp_path_factory.mktemp("pages")
    shards = [str(shared_data / "warc" / "pages" / f"pages-0000{i}.warc.gz") for i in (4, 5)]
    common = {
        "name": "cards",
        "input": {"paths": shards, "format": "warc", "limit": 60},
        "executor": {"tasks": 2, "workers": 2},
        "dedup": {"engine": "datasketch"},
    }
    config = write_config(root / "run.yaml", output_dir=str(root / "run"), **common)
    assert winnow(["base", "-c", config]) == 0
    assert winnow(["dedup", "-c", config]) == 0
    timeouts = write_config(
        root / "timeouts.yaml",
        output_dir=str(root / "timeouts"),
        **{**common, "input": {**common["input"], "limit": 15}, "extract": {"timeout": 1e-4}},
    )
    assert winnow(["base", "-c", timeouts]) == 0
    return root


@pytest.mark.slow
def test_base_folder_loads_as_its_kept_documents_with_removed_as_a_config(pages_run, load):
    base = pages_run / "run" / "base"
    assert card_configs(base) == {"default": "*.parquet", "removed": "removed/*/*.parquet"}
    kept, removed = rows(base, "*.parquet"), rows(base, "removed/*/*.parquet")
    assert kept and removed

    documents = load(base)
    assert ids(documents) == ids(kept)  # exactly the top-level files: no removed document, nothing from logs/
    assert not set(documents["id"]) & {r["id"] for r in removed}
    assert documents.column_names == list(kept[0])

    dropped = load(base, "removed")
    assert sorted(zip(dropped["id"], dropped["filter_reason"])) == sorted(
        (r["id"], r["filter_reason"]) for r in removed
    )
    summary = json.loads((base / "summary.json").read_text())
    assert len(documents) == summary["kept"] and len(dropped) == total(summary["removed"])


@pytest.mark.slow
def test_a_base_run_that_kept_nothing_still_loads_its_failed_and_removed_documents(pages_run, load):
    base = pages_run / "timeouts" / "base"  # every page that reached trafilatura ran out of its 0.1 ms
    failed = rows(base, "failed/*/*.parquet")
    assert failed and not rows(base, "*.parquet")
    # no default config: an empty one would make datasets refuse the whole folder, and no other may pose as it
    assert card_configs(base) == {"removed": "removed/*/*.parquet", "failed": "failed/*/*.parquet"}
    loaded = load(base, "failed")
    # a 0.1 ms CPU timer mostly ends extraction as `timeout`; now and then it fires inside a C library, whose own
    # exception is then counted as `error`: either way a failed row with its reason
    assert ids(loaded) == ids(failed) and "timeout" in set(loaded["filter_reason"]) <= {"timeout", "error"}
    assert ids(load(base, "removed")) == ids(rows(base, "removed/*/*.parquet"))
    with pytest.raises(ValueError):  # which config? datasets asks for a name
        load(base)


@pytest.mark.slow
def test_dedup_folder_loads_as_its_kept_documents_and_removed_duplicates(pages_run, load):
    dedup = pages_run / "run" / "dedup"
    assert list(dedup.glob("work/*/*.parquet"))  # the resume files are Parquet too, and must stay out
    assert card_configs(dedup) == {"default": "*.parquet", "removed": "removed/*/*.parquet"}
    documents, duplicates = load(dedup), load(dedup, "removed")
    assert ids(documents) == ids(rows(dedup, "*.parquet"))
    assert ids(duplicates) == ids(rows(dedup, "removed/*/*.parquet"))
    assert not set(documents["id"]) & set(duplicates["id"])
    assert set(duplicates["filter_reason"]) <= {"exact_duplicate", "minhash_duplicate"}
    assert set(duplicates["duplicate_of"]) <= set(documents["id"])  # each removed in favour of a kept document
    assert "minhash_cluster_size" in documents.column_names


# ------------------------------------------------------------------ score and subsets on real labelled texts
def base_shard(docs: list[dict], path: Path) -> None:
    """A base-stage shard of real FineWeb texts in FineWeb's columns, alternating two dumps (token_count: words)."""
    dumps = ["CC-MAIN-2024-10", "CC-MAIN-2023-50"]
    pq.write_table(
        pa.table(
            {
                "text": [d["text"] for d in docs],
                "id": [f"<urn:uuid:{d['id']}>" for d in docs],
                "dump": [dumps[i % 2] for i in range(len(docs))],
                "url": [f"https://example.org/doc/{d['id']}" for d in docs],
                "date": ["2024-02-20T00:00:00Z"] * len(docs),
                "file_path": ["pages-00000.warc.gz"] * len(docs),
                "language": ["en"] * len(docs),
                "language_score": [0.9] * len(docs),
                "token_count": [len(d["text"].split()) for d in docs],
            }
        ),
        path,
    )


@pytest.fixture(scope="module")
def edu_run(shared_data, tmp_path_factory) -> Path:
    """classifier (fastText on the Llama-3 labels) → score → subsets; then subsets again from the same
    scores with `output.layout: fineweb` and `output.columns: fineweb-edu` into a second run folder."""
    root = tmp_path_factory.mktemp("edu")
    labels = shared_data / "annotations" / "fineweb-edu-llama3"
    config = write_config(
        root / "run.yaml",
        name="cards-edu",
        output_dir=str(root / "run"),
        executor={"tasks": 2, "workers": 2},
        subsets={"thresholds": [2, 3, 4]},
        classifier={
            "backbone": "fasttext",
            "labels": str(labels / "train.jsonl.gz"),
            "eval_labels": str(labels / "val.jsonl.gz"),
            "learning_curve": [1.0],
            "calibration_folds": 3,
            "cv_folds": 2,
        },
    )
    with gzip.open(labels / "val.jsonl.gz", "rt") as f:
        docs = [json.loads(line) for _, line in zip(range(120), f)]
    (root / "run" / "base").mkdir(parents=True)
    base_shard(docs[:60], root / "run" / "base" / "00000.parquet")
    base_shard(docs[60:] + [{"id": "empty", "text": ""}], root / "run" / "base" / "00001.parquet")
    for stage in ("classifier", "score", "subsets"):
        assert winnow([stage, "-c", config]) == 0
    assert (
        winnow(
            [
                "subsets",
                "-c",
                config,
                "--set",
                f"output_dir={root / 'fineweb'}",
                "--set",
                f"subsets.source={root / 'run' / 'score'}",
                "--set",
                "output.layout=fineweb",
                "--set",
                "output.columns=fineweb-edu",
            ]
        )
        == 0
    )
    return root


@pytest.mark.slow
def test_score_folder_loads_as_the_scored_documents_with_unscorable_removed(edu_run, load):
    score = edu_run / "run" / "score"
    documents, unscorable = load(score), load(score, "removed")
    assert ids(documents) == ids(rows(score, "*.parquet")) and len(documents) == 120
    assert unscorable["id"] == ["<urn:uuid:empty>"] and unscorable["filter_reason"] == ["empty_text"]
    assert {"score", "int_score"} <= set(documents.column_names)


@pytest.mark.slow
def test_subsets_folder_has_one_config_per_subset_all_the_default(edu_run, load):
    subsets = edu_run / "run" / "subsets"
    summary = json.loads((subsets / "summary.json").read_text())
    written = [name for name in summary["subsets"] if (subsets / name).is_dir()]
    assert list(card_configs(subsets)) == written and written[0] == "all"  # nothing removed: no `removed` config
    assert ids(load(subsets)) == ids(rows(subsets, "all/*.parquet"))
    for name in written:
        assert ids(load(subsets, name)) == ids(rows(subsets, f"{name}/*.parquet")), name
    edu3 = load(subsets, "edu-3")
    assert 0 < len(edu3) < 120 and min(edu3["int_score"]) >= 3


@pytest.mark.slow
def test_fineweb_layout_and_fineweb_edu_columns_match_the_published_dataset(edu_run, load):
    flat, subsets = edu_run / "run" / "subsets", edu_run / "fineweb" / "subsets"
    assert card_configs(subsets)["all"] == "all/data/*/*.parquet"
    for name in ("all", "edu-2", "edu-3"):
        files = sorted(p.relative_to(subsets / name).as_posix() for p in (subsets / name).rglob("*.parquet"))
        assert files and all(FINEWEB_FILE.fullmatch(f) for f in files), files
        for path in files:  # grouped by the document's dump
            assert set(pq.read_table(subsets / name / path).column("dump").to_pylist()) == {
                FINEWEB_FILE.fullmatch(path).group(1)
            }
            assert pq.read_schema(subsets / name / path).remove_metadata() == FINEWEB_EDU
        assert ids(load(subsets, name)) == ids(rows(flat, f"{name}/*.parquet")), name  # the same selection
    edu3 = load(subsets, "edu-3")
    assert edu3.column_names == FINEWEB_EDU.names
    assert {k: str(v.dtype) for k, v in edu3.features.items()} == {
        f.name: {"double": "float64"}.get(str(f.type), str(f.type)) for f in FINEWEB_EDU
    }
    assert not any(subsets.glob("*/*.parquet"))  # nothing left at the top of a subset folder


def test_config_accepts_exactly_the_writers_layouts_and_column_sets():
    assert get_args(OutputConfig.model_fields["layout"].annotation) == tuple(LAYOUTS)
    assert get_args(OutputConfig.model_fields["columns"].annotation) == tuple(COLUMN_SETS)
    assert OutputConfig().layout == "flat" and OutputConfig().columns == "winnow"  # today's files by default


def test_fineweb_layout_makes_every_dump_one_folder_under_data(tmp_path):
    from datatrove.data import Document

    writer = ScoredParquetWriter(str(tmp_path), layout="fineweb", columns="fineweb-edu")
    with writer:
        for i, dump in enumerate(["CC-MAIN-2024-10", "../../etc", None, "CC-MAIN-2024-10"]):
            writer.write(Document(text="t", id=str(i), metadata={"dump": dump, "score": 3.4, "int_score": 3}), rank=7)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet"))
    assert files == [
        "data/CC-MAIN-2024-10/000_00007.parquet",
        "data/_.._etc/000_00007.parquet",
        "data/unknown/000_00007.parquet",
    ]  # a dump never escapes data/, a missing one is `unknown`
    assert pq.read_table(tmp_path / files[0]).column("id").to_pylist() == ["0", "3"]

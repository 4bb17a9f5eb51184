"""Benchmark decontamination: the block on real FineWeb documents with real benchmark items planted in them, the
normalisation against lm-eval's janitor, and `winnow decontaminate` end to end on a small run folder."""

import gzip
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from datatrove.data import Document

from winnow.blocks.filters.decontamination import DecontaminationFilter, NgramIndex, normalize_words
from winnow.blocks.writers.parquet import ScoredParquetWriter
from winnow.pipelines.cli import main as winnow
from winnow.pipelines.config import ConfigError, load_config
from winnow.pipelines.report.run import Report, decontamination_section
from winnow.pipelines.stages.decontaminate import benchmark_items, resolved_tasks
from winnow.pipelines.summary import check_invariant
from winnow.proxy.tasks import MULTIPLE_CHOICE, load_task

FINEWEB = "fineweb/fineweb-sample-10BT/fineweb-legal-docs.jsonl.gz"
# The one document of the 2,800 FineWeb sample documents that shares a 13-gram with a benchmark item, and why: the
# page quotes Revised Statutes § 5352 (bigamy: "... shall be punished by a fine of not more than five hundred
# dollars, and by imprisonment ..."), and MMLU-Redux high_school_us_history item 3181 quotes the Chinese Exclusion
# Act of 1882 ("... shall be punished by a fine of not more than five hundred dollars for each ..."). Statutory
# boilerplate, not the item: a false removal, kept here so that any other one fails the test.
KNOWN_BOILERPLATE = {
    "<urn:uuid:05ce608e-f39e-4444-9b96-340f5ec8a67f>": (
        "mmlu",
        "mmlu/3181",
        "shall be punished by a fine of not more than five hundred dollars",
    )
}


@pytest.fixture(scope="module")
def fineweb(shared_data) -> list[dict]:
    with gzip.open(shared_data / FINEWEB, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def items(shared_data) -> list[tuple[str, str, str]]:
    """Every item the stage decontaminates against by default: the multiple-choice tasks and LAMBADA."""
    return benchmark_items([*MULTIPLE_CHOICE, "lambada"], shared_data / "benchmarks")


@pytest.fixture(scope="module")
def index(items) -> NgramIndex:
    return NgramIndex(items)


def run_filter(block: DecontaminationFilter, documents: list[Document]) -> list[Document]:
    """The block as a datatrove pipeline step runs it (documents in, kept documents out)."""
    return list(block.run(iter(documents)))


def planted(text: str, item_text: str, seed: int) -> str:
    """`item_text` inserted between two paragraphs of a real document, as a page quoting a quiz would hold it."""
    paragraphs = text.split("\n")
    at = random.Random(seed).randrange(1, max(2, len(paragraphs)))
    return "\n".join(paragraphs[:at] + [item_text] + paragraphs[at:])


def own_items(items, index, per_task: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """`per_task` items of each task, drawn with a seed, among those whose own text matches themselves first (an
    item whose every n-gram also occurs in an earlier item, e.g. HellaSwag's repeated contexts, is reported as that
    earlier one)."""
    rng, chosen = random.Random(seed), []
    by_task: dict[str, list] = {}
    for item in items:
        by_task.setdefault(item[0], []).append(item)
    for task, candidates in sorted(by_task.items()):
        picked = 0
        for item in rng.sample(candidates, len(candidates)):
            match = index.first_match(normalize_words(item[2]))
            if match and index.items[match[2]] == (task, item[1]):
                chosen.append(item)
                picked += 1
                if picked == per_task:
                    break
        assert picked == per_task, task
    return chosen


def test_benchmark_items_are_question_and_gold_answer_with_file_positions(shared_data):
    items = benchmark_items(["arc_easy", "winogrande", "lambada"], shared_data / "benchmarks")
    first = {}
    for task, item_id, text in items:
        first.setdefault(task, (item_id, text))
    arc = json.loads((shared_data / "benchmarks/llm-foundry/world_knowledge/arc_easy.jsonl").open().readline())
    question = arc["query"].removeprefix("Question: ")
    assert first["arc_easy"] == ("arc_easy/0", f"{question} {arc['choices'][arc['gold']]}")
    assert "Question:" not in first["arc_easy"][1] and "Answer:" not in first["arc_easy"][1]
    wino = json.loads(
        (shared_data / "benchmarks/llm-foundry/language_understanding/winogrande.jsonl").open().readline()
    )
    assert first["winogrande"][1] == f"{wino['context_options'][wino['gold']]} {wino['continuation']}"
    assert [i for t, i, _ in items if t == "lambada"][-1] == f"lambada/{len(load_task('lambada')) - 1}"


def test_normalisation_is_lm_evals_janitor_on_ascii_text(fineweb):
    janitor = pytest.importorskip("lm_eval.decontamination.janitor")  # the `parity` extra (lm-eval)
    ascii_docs = [d["text"] for d in fineweb if d["text"].isascii()][:300]
    assert len(ascii_docs) == 300
    reference = janitor.Janitor()  # n = 13, string.punctuation deleted, A-Z lowercased
    for text in ascii_docs:
        assert normalize_words(text) == reference.normalize_string(text).split()


def test_case_punctuation_and_spacing_variants_still_match(items, index):
    task, item_id, text = next(i for i in items if i[1] == "arc_easy/0")
    variants = [
        text.upper(),
        text.replace(" ", "\n\n  "),
        text.replace("?", " ? ").replace(".", "!!"),
        "“" + text.replace("'", "’") + "”",
        " - ".join(text.split()),  # a dash between every word: punctuation-only tokens vanish
    ]
    block = DecontaminationFilter(index)
    for variant in variants:
        doc = Document(text=f"Some page.\n{variant}\nThe end.", id="x")
        assert run_filter(block, [doc]) == [], variant
        assert (doc.metadata["contaminated_task"], doc.metadata["contaminated_item"]) == (task, item_id)
    # a changed word in every 13-word window is no match
    words = text.split()
    broken = " ".join(w if i % 8 else "zzz" for i, w in enumerate(words))
    assert run_filter(block, [Document(text=broken, id="y")]) != []


def test_planted_items_are_removed_with_their_task_and_item_and_the_rest_untouched(fineweb, items, index, tmp_path):
    plants = own_items(items, index, per_task=3)
    clean = [d for d in fineweb if d["id"] not in KNOWN_BOILERPLATE]
    hosts = random.Random(1).sample(clean, 2 * len(plants))
    documents, expected = [], {}
    for i, (host, (task, item_id, text)) in enumerate(zip(hosts, plants)):
        documents.append(Document(text=planted(host["text"], text, i), id=host["id"], metadata={"url": host["url"]}))
        expected[host["id"]] = (task, item_id)
    untouched = {d["id"]: d["text"] for d in hosts[len(plants) :]}
    documents += [Document(text=text, id=doc_id, metadata={}) for doc_id, text in untouched.items()]
    random.Random(2).shuffle(documents)

    removed_folder = tmp_path / "removed"
    block = DecontaminationFilter(index, exclusion_writer=ScoredParquetWriter(str(removed_folder)))
    kept = run_filter(block, documents)

    assert {d.id: d.text for d in kept} == untouched
    removed = pq.read_table(removed_folder / "00000.parquet").to_pylist()
    assert {r["id"]: (r["contaminated_task"], r["contaminated_item"]) for r in removed} == expected
    assert all(r["filter_reason"] == "contaminated" for r in removed)
    for row in removed:  # the reported n-gram is in the document and in the item, normalised
        item_text = next(text for _, item_id, text in plants if item_id == row["contaminated_item"])
        assert f" {row['contaminated_ngram']} " in f" {' '.join(normalize_words(row['text']))} "
        assert f" {row['contaminated_ngram']} " in f" {' '.join(normalize_words(item_text))} "
    stats = block.stats.stats
    assert {task: stats[f"contaminated/{task}"].total for task in {t for t, _ in expected.values()}} == {
        task: sum(1 for t, _ in expected.values() if t == task) for task in {t for t, _ in expected.values()}
    }
    assert stats["dropped_contaminated"].total == len(expected)


def test_no_false_removal_on_the_2800_fineweb_sample_documents_but_the_one_explained(fineweb, index):
    block = DecontaminationFilter(index)
    documents = [Document(text=d["text"], id=d["id"]) for d in fineweb]
    kept = run_filter(block, documents)
    assert len(documents) == 2800
    removed = {
        d.id: (d.metadata["contaminated_task"], d.metadata["contaminated_item"], d.metadata["contaminated_ngram"])
        for d in documents
        if "contaminated_item" in d.metadata
    }
    assert removed == KNOWN_BOILERPLATE
    assert len(kept) == 2800 - len(KNOWN_BOILERPLATE)


def test_short_items_are_matched_whole_from_min_words_and_otherwise_counted(fineweb):
    host = fineweb[0]["text"]
    items = [
        ("toy", "toy/0", "The quick brown fox jumps over the lazy sleeping dog"),  # 10 words: matched whole
        ("toy", "toy/1", "Paris is in France"),  # 4 words: too short to index
    ]
    index = NgramIndex(items, n=13, min_words=8)
    assert index.whole_items == {"toy": 1} and index.skipped_short_items == {"toy": 1} and index.lengths == [10]
    block = DecontaminationFilter(index)
    whole = Document(text=planted(host, "the quick, brown fox jumps over the LAZY sleeping dog!", 0), id="a")
    part = Document(text=planted(host, "the quick brown fox jumps over the lazy dog", 0), id="b")
    short = Document(text=planted(host, "Paris is in France.", 0), id="c")
    assert [d.id for d in run_filter(block, [whole, part, short])] == ["b", "c"]
    assert whole.metadata["contaminated_item"] == "toy/0"
    with pytest.raises(ValueError, match="min_words"):
        NgramIndex(items, n=5, min_words=8)


# ---- the stage ------------------------------------------------------------------------------------------------
SUBSET_COLUMNS = ["text", "id", "url", "token_count", "score", "int_score"]


def write_subset(folder, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    half = (len(rows) + 1) // 2
    for i, part in enumerate([rows[:half], rows[half:]]):
        pq.write_table(pa.table({c: [r[c] for r in part] for c in SUBSET_COLUMNS}), folder / f"{i:05d}.parquet")


@pytest.fixture
def run_folder(tmp_path, shared_data, fineweb):
    """A run folder holding only what decontaminate reads: subsets/all and subsets/edu-2 (real FineWeb documents,
    four with a real benchmark item planted) and subsets/summary.json."""
    bench = benchmark_items(["arc_easy", "winogrande"], shared_data / "benchmarks")
    plants = {0: bench[5], 7: bench[-3], 11: bench[100], 20: bench[-40]}
    rows = []
    for i, doc in enumerate(fineweb[:40]):
        text = planted(doc["text"], plants[i][2], i) if i in plants else doc["text"]
        score = (i * 7 % 50) / 10
        rows.append(
            {
                "text": text,
                "id": doc["id"],
                "url": doc["url"],
                "token_count": len(text.split()),
                "score": score,
                "int_score": int(round(score)),
            }
        )
    out = tmp_path / "run"
    write_subset(out / "subsets" / "all", rows)
    write_subset(out / "subsets" / "edu-2", [r for r in rows if r["int_score"] >= 2])
    # edu-4: in the summary but without documents, as a threshold no document reaches leaves it (the stage skips it)
    summary = {
        "all": {"int_score_at_least": None},
        "edu-2": {"int_score_at_least": 2},
        "edu-4": {"int_score_at_least": 4},
    }
    (out / "subsets" / "summary.json").write_text(json.dumps({"read": 40, "kept": 40, "subsets": summary}))
    config = {
        "name": "decontaminate-test",
        "output_dir": str(out),
        "executor": {"tasks": 2, "workers": 1},
        "ablate": {"benchmarks_dir": str(shared_data / "benchmarks")},
        "decontaminate": {"tasks": ["arc_easy", "winogrande"]},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    expected = {rows[i]["id"]: plants[i] for i in plants}
    return out, str(tmp_path / "run.yaml"), rows, expected


def rows_of(folder, pattern="*.parquet") -> list[dict]:
    return [row for path in sorted(folder.glob(pattern)) for row in pq.read_table(path).to_pylist()]


def test_the_stage_removes_planted_items_per_source_accounts_for_every_row_and_resumes(run_folder):
    out, config, rows, expected = run_folder
    assert winnow(["decontaminate", "-c", config]) == 0
    stage = out / "decontaminate"
    summary = json.loads((stage / "summary.json").read_text())
    check_invariant(summary)
    for name, subset in (("all", rows), ("edu-2", [r for r in rows if r["int_score"] >= 2])):
        kept, removed = rows_of(stage / name), rows_of(stage / name / "removed" / "contaminated")
        planted_here = {r["id"] for r in subset} & set(expected)
        assert {r["id"] for r in removed} == planted_here
        assert {r["id"]: (r["contaminated_task"], r["contaminated_item"]) for r in removed} == {
            i: expected[i][:2] for i in planted_here
        }
        assert sorted(r["id"] for r in kept) == sorted(r["id"] for r in subset if r["id"] not in planted_here)
        assert pq.read_schema(sorted((stage / name).glob("*.parquet"))[0]).names == SUBSET_COLUMNS  # same schema
        source = summary["sources"][name]
        check_invariant(source)
        assert (source["read"], source["kept"]) == (len(subset), len(subset) - len(planted_here))
    per_task = {}
    for doc_id in {r["id"] for r in rows} & set(expected):
        task = expected[doc_id][0]
        in_edu = next(r for r in rows if r["id"] == doc_id)["int_score"] >= 2
        per_task[task] = per_task.get(task, 0) + 1 + in_edu
    assert summary["removed"] == {"contaminated": per_task}
    assert summary["empty_sources"] == ["edu-4"] and set(summary["sources"]) == {"all", "edu-2"}
    assert summary["index"]["items"] == {t: len(load_task(t)) for t in ("arc_easy", "winogrande")}  # whole files
    assert "config_name: edu-2" in (stage / "README.md").read_text()

    # a re-run resumes: nothing read or written twice
    before = {p: p.stat().st_mtime_ns for p in stage.rglob("*.parquet")}
    assert winnow(["decontaminate", "-c", config]) == 0
    assert {p: p.stat().st_mtime_ns for p in stage.rglob("*.parquet")} == before
    assert json.loads((stage / "summary.json").read_text()) == summary
    # a task killed before it finished (no completion mark, its file half written) is redone alone, without duplicates
    kept_ids = sorted(r["id"] for r in rows_of(stage / "all"))
    (stage / "logs" / "all" / "completions" / "00001").unlink()
    (stage / "all" / "00001.parquet").write_bytes(b"PAR1 torn")
    assert winnow(["decontaminate", "-c", config]) == 0
    assert sorted(r["id"] for r in rows_of(stage / "all")) == kept_ids
    assert (stage / "all" / "00000.parquet").stat().st_mtime_ns == before[stage / "all" / "00000.parquet"]
    assert json.loads((stage / "summary.json").read_text()) == summary

    # the run report's section: per source and per task
    report = Report(out / "report")
    decontamination_section(report, load_config(config, check_inputs=False))
    text = "\n".join(report.lines)
    assert (
        f"| `decontaminate/all/` | 40 | {summary['sources']['all']['read'] - summary['sources']['all']['kept']} |"
        in text
    )
    assert "| source | arc_easy | winogrande |" in text


def test_the_default_tasks_leave_wikitext_out_and_a_missing_source_is_one_line(run_folder):
    out, config, _, _ = run_folder
    cfg = load_config(config, ["decontaminate.tasks=null"], check_inputs=False)
    assert "wikitext" in cfg.ablate.tasks and resolved_tasks(cfg) == [t for t in cfg.ablate.tasks if t != "wikitext"]
    with pytest.raises(ConfigError, match="decontaminate.tasks"):
        load_config(config, ["decontaminate.tasks=[nope]"], check_inputs=False)
    assert winnow(["decontaminate", "-c", config, "--set", "decontaminate.sources=[edu-9]"]) == 2

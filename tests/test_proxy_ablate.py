"""`winnow ablate` → `winnow report` → `winnow evaluate`, end to end on two small real FineWeb samples."""

import gzip
import json
import math
from pathlib import Path

import pytest
import yaml

from winnow.pipelines.cli import main as winnow
from winnow.pipelines.config import load_config

TASKS = ["arc_easy", "lambada", "wikitext"]


def _sample(source: Path, out: Path, n: int) -> None:
    with gzip.open(source, "rt") as f:
        out.write_text("".join(json.dumps({"text": json.loads(next(f))["text"]}) + "\n" for _ in range(n)))


@pytest.fixture(scope="module")
def run(shared_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("ablate")
    _sample(shared_data / "fineweb" / "fineweb-sample-10BT" / "fineweb-legal-docs.jsonl.gz", work / "legal.jsonl", 60)
    (work / "edu").mkdir()
    _sample(shared_data / "annotations" / "fineweb-edu-llama3" / "val.jsonl.gz", work / "edu" / "a.jsonl", 40)
    _sample(shared_data / "annotations" / "fineweb-edu-llama3" / "train.jsonl.gz", work / "edu" / "b.jsonl", 40)
    config = {
        "name": "ablate-test",
        "output_dir": str(work / "run"),
        "ablate": {
            "ablations": [
                {"name": "legal", "data": str(work / "legal.jsonl")},
                {"name": "edu", "data": str(work / "edu" / "*.jsonl")},
            ],
            "preset": "cpu-tiny",
            "model_overrides": {
                "n_layer": 2,
                "d_model": 32,
                "n_head": 2,
                "d_ffn": 64,
                "context_length": 64,
                "corpus_vocab_size": 1024,
            },
            "tokens": 30 * 4 * 64,
            "batch_size": 4,
            "eval_every": 15,
            "seeds": [0, 1],
            "tasks": TASKS,
            "eval_limit": 6,
            "wikitext_articles": 1,
            "benchmarks_dir": str(shared_data / "benchmarks"),
        },
    }
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert winnow(["ablate", "-c", str(path)]) == 0
    assert winnow(["report", "-c", str(path)]) == 0
    return path, work / "run"


@pytest.mark.slow
def test_each_ablation_is_tokenized_trained_and_evaluated_per_seed(run):
    _, out = run
    ablations = out / "ablate"
    assert json.loads((ablations / "tokenizer" / "sources.json").read_text())["vocab_size"] == 1024
    for name, docs in (("legal", 60), ("edu", 80)):
        summary = json.loads((ablations / name / "summary.json").read_text())
        assert summary["documents"] == docs and summary["tokens"] > 10_000
        assert (ablations / name / "logs" / "tokenize" / "completions").is_dir()  # launched through datatrove
        for seed in ("0", "1"):
            final = json.loads((ablations / name / f"seed-{seed}" / "final.json").read_text())
            assert final["tokens_trained"] == 30 * 4 * 64 and final["final_val_loss"] < math.log(
                1024
            )  # better than uniform
            results = summary["runs"][seed]["eval"]
            assert set(results) == set(TASKS)
            assert results["arc_easy"]["n"] == 6 and 0 <= results["arc_easy"]["acc_norm"] <= 1
            assert results["wikitext"]["word_perplexity"] > 1
    # two seeds: different initial weights, so different losses
    s = json.loads((ablations / "legal" / "summary.json").read_text())["runs"]
    assert s["0"]["final_val_loss"] != s["1"]["final_val_loss"]


@pytest.mark.slow
def test_rerunning_ablate_repeats_nothing(run):
    path, out = run
    stamps = {
        p: p.stat().st_mtime_ns
        for p in (out / "ablate").rglob("*")
        if p.suffix in (".ds", ".json", ".pt") and p.name != "summary.json"
    }
    assert winnow(["ablate", "-c", str(path)]) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


@pytest.mark.slow
def test_report_ranks_the_ablations_with_noise_bands(run):
    path, out = run
    # `winnow report` writes the whole-run report; the ablation comparison alone is in report/ablations/
    folder = out / "report" / "ablations"
    report = (folder / "report.md").read_text()
    for expected in ("| legal |", "| edu |", "## Ranking", "± ", "preset: cpu-tiny", "loss_curves.png"):
        assert expected in report
    page = (folder / "index.html").read_text()
    assert "data:image/png;base64," in page and "<table>" in page
    assert (folder / "loss_curves.png").stat().st_size > 10_000
    assert "| legal |" in (out / "report" / "report.md").read_text()  # and it is part of the run report


@pytest.mark.slow
def test_winnow_evaluate_scores_a_trained_model_folder(run, tmp_path, capsys):
    _, out = run
    model = out / "ablate" / "edu" / "seed-0" / "model"
    results_path = tmp_path / "results.json"
    assert (
        winnow(
            [
                "evaluate",
                "--model",
                str(model),
                "--tasks",
                "piqa,lambada",
                "--limit",
                "6",
                "--output",
                str(results_path),
            ]
        )
        == 0
    )
    results = json.loads(results_path.read_text())
    assert set(results) == {"piqa", "lambada"}
    assert results["piqa"]["n"] == 6 and set(results["piqa"]) >= {"acc", "acc_norm", "n"}
    assert "piqa" in capsys.readouterr().out


def test_config_rejects_duplicate_names_and_unknown_tasks(tmp_path):
    from winnow.pipelines.config import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "x",
                "output_dir": str(tmp_path),
                "ablate": {"ablations": [{"name": "a", "data": "x.jsonl"}, {"name": "a", "data": "y.jsonl"}]},
            }
        )
    )
    with pytest.raises(ConfigError, match="unique"):
        load_config(path, check_inputs=False)
    with pytest.raises(ConfigError, match="unknown tasks"):
        load_config(path, ["ablate.ablations=[]", "ablate.tasks=[boolq]"], check_inputs=False)

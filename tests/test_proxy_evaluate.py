"""The evaluator scores like lm-eval: checked on a model whose log-likelihoods we know by hand, then on real items.

The hand-checkable model is a real LlamaForCausalLM whose attention and MLP outputs are zeroed, so the
hidden state at a position is the token's embedding: with one-hot embeddings, RMSNorm scales them to
sqrt(d)·e_t, and an output matrix with columns log P(·|t) / sqrt(d) makes the network an exact bigram
model P(next | current) that we write down below.
"""

import math

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from tokenizers.processors import TemplateProcessing
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from winnow.proxy.evaluate import encode_pair, evaluate_items, score_tokens
from winnow.proxy.model import build_model, preset
from winnow.proxy.tasks import TASKS, Item, load_task, sample

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


def test_acc_and_acc_norm_disagree_where_length_normalisation_matters(bigram_model):
    model, tokenizer = bigram_model
    # choice 0 " sat": ln 0.3 = -1.204 over 4 characters (-0.301/char)
    # choice 1 " ran home": ln 0.4 + ln 1/8 = -2.996 over 9 characters (-0.333/char)
    # choice 2 " ran away home": -0.916 - 2.079 - 2.079 = -5.075 over 14 characters (-0.363/char)
    same_winner = Item([("the cat", " sat"), ("the cat", " ran home"), ("the cat", " ran away home")], gold=0)
    # choice 0 " dog": ln 0.05 = -2.996 over 4 characters (-0.749/char)
    # choice 1 " ran away": ln 0.4 + ln 1/8 = -2.996 - tie broken by the first index for acc;
    # per character -2.996/9 = -0.333 → acc_norm picks choice 1
    differ = Item([("the cat", " dog"), ("the cat", " ran away")], gold=1)
    result = evaluate_items(model, tokenizer, "arc_easy", [same_winner, differ], batch_size=3)
    assert result["n"] == 2
    assert result["acc"] == pytest.approx(0.5)  # item 1: acc picks choice 0 (log-likelihoods tie, first wins)
    assert result["acc_norm"] == pytest.approx(1.0)


def test_lambada_counts_greedy_matches(bigram_model):
    model, tokenizer = bigram_model
    items = [Item([("the cat", " ran")]), Item([("the cat", " sat")])]
    result = evaluate_items(model, tokenizer, "lambada", items)
    assert result["acc"] == pytest.approx(0.5)
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
    assert hellaswag[0].requests[3] == (
        "Roof shingle removal: A man is sitting on a roof. he",
        " starts pulling up roofing on a roof.",
    )
    assert hellaswag[0].gold == 3
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

"""Decision-mode annotation on OpenAI-compatible servers (`annotator.mode: logprobs`), and the jury at stage level.

vLLM and SGLang do not run on this machine (no GPU), and the embedded `transformers serve` cannot take the request:
transformers 5.24 refuses the pre-fill fields (HTTP 422) and ignores `logprobs`/`top_logprobs` (both are among its
unsupported chat-completion fields); a test below shows both on the real server. So the server is `FakeOpenAI`, a
real local HTTP server in this file that replies with chat completions in vLLM's response schema
(`choices[0].logprobs.content[0].top_logprobs`, entries `{token, logprob, bytes}`, `-9999.0` for a token vLLM gives
no probability, `finish_reason: "length"`), built from per-request plans or computed by the embedded model itself
(prompt built as vLLM builds it); the annotator, the annotate stage and the embedded server are the real ones.
"""

import asyncio
import gzip
import http.server
import json
import math
import statistics
import threading
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from winnow.classifiers.annotators import DECISION_PREFIX, EndpointAnnotator
from winnow.classifiers.prompt import load_prompt
from winnow.pipelines.summary import read_summary

MODEL = "meta-llama/Meta-Llama-3-70B-Instruct"


def vllm_token(token: str, logprob: float) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


END_OF_ANSWER = [("\n", -0.05), ("<|eot_id|>", -3.2), (".", -4.0)]


def vllm_reply(*positions: list[tuple[str, float]], prompt_tokens: int = 431) -> dict:
    """A vLLM /v1/chat/completions reply with logprobs: one entry per generated token, each with its top_logprobs
    (the first of which is the token generated). One position given = the score, then an end-of-answer token."""
    positions = positions if len(positions) > 1 else (positions[0], END_OF_ANSWER)
    content = [{**vllm_token(*top[0]), "top_logprobs": [vllm_token(*t) for t in top]} for top in positions]
    return {
        "id": "chatcmpl-6c0e3b1f2a7d4c1e9b8a",
        "object": "chat.completion",
        "created": 1733140000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "".join(top[0][0] for top in positions),
                    "reasoning_content": None,
                    "tool_calls": [],
                },
                "logprobs": {"content": content},
                "finish_reason": "length",
                "stop_reason": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + len(positions),
            "completion_tokens": len(positions),
            "prompt_tokens_details": None,
        },
        "prompt_logprobs": None,
    }


def peaked_at(score: int) -> list[tuple[str, float]]:
    """A top_logprobs list whose most likely score token is `score`, with non-score tokens mixed in."""
    weights = {str(k): 0.6 if k == score else 0.4 / (1 + abs(k - score)) ** 2 for k in range(6)}
    top = [(token, math.log(w)) for token, w in weights.items()] + [(" ", math.log(0.02)), ("\n", math.log(0.01))]
    return sorted(top, key=lambda t: -t[1])


class FakeOpenAI:
    """A real HTTP server speaking the OpenAI API: GET /v1/models, POST /v1/chat/completions answered by
    `plan(request_body, n)` (n = how many times this user message was asked, from 1) → (status, reply body)."""

    def __init__(self, plan):
        self.plan, self.requests, self.asked = plan, [], Counter()
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append(body)
                    user = body["messages"][0]["content"]
                    fake.asked[user] += 1
                    n = fake.asked[user]
                status, reply = fake.plan(body, n)
                self._send(status, reply)

            def _send(self, status, reply):
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()


def annotate_once(url: str, text: str = "Photosynthesis turns light into chemical energy.", **settings):
    annotator = EndpointAnnotator(
        base_url=url, model=MODEL, prompt=load_prompt(), mode="logprobs", backoff_s=0.01, **settings
    )

    async def one():
        try:
            return await annotator.annotate(text)
        finally:
            await annotator.aclose()

    return asyncio.run(one())


# ---- one request -------------------------------------------------------------------------------------------------
def test_score_is_the_renormalised_expectation_over_the_score_tokens():
    top = [
        ("3", -0.36),
        ("2", -1.61),
        ("4", -2.30),
        (" ", -3.9),
        ("1", -4.6),
        ("\n", -5.2),
        ("5", -6.1),
        ("0", -9999.0),
    ]
    with FakeOpenAI(lambda body, n: (200, vllm_reply(top))) as server:
        result = annotate_once(server.url)
    p = {token: math.exp(lp) for token, lp in top if token.strip()}
    expected = sum(int(k) * v for k, v in p.items()) / sum(p.values())
    assert result.status == "scored" and result.score == 3 and result.attempts == 1
    assert result.score_expected == pytest.approx(expected, abs=1e-12)
    probabilities = json.loads(result.response)
    assert sorted(probabilities) == ["0", "1", "2", "3", "4", "5"] and sum(probabilities.values()) == pytest.approx(1)
    assert (result.prompt_tokens, result.completion_tokens) == (431, 2)
    # the request: one forward pass continuing the pre-filled assistant turn, in the form vLLM and SGLang accept
    request = server.requests[0]
    assert request["messages"][-1] == {"role": "assistant", "content": DECISION_PREFIX}
    assert request["messages"][0]["role"] == "user" and "Photosynthesis" in request["messages"][0]["content"]
    assert request["continue_final_message"] is True and request["add_generation_prompt"] is False
    assert (request["max_tokens"], request["logprobs"], request["top_logprobs"]) == (2, True, 20)
    assert DECISION_PREFIX == "Educational score:"  # no trailing space: chat templates that trim would drop it


def test_scores_are_read_after_a_leading_space_token():
    """Llama-3's and Qwen's tokenizers split digits from the space before them: after "Educational score:" the first
    token is " ", and the score distribution is the next position's (a digit among the first position's
    alternatives is not the answer)."""
    space = [(" ", -0.01), ("  ", -5.0), ("3", -6.0)]
    digits = [("2", math.log(0.5)), ("3", math.log(0.3)), ("1", math.log(0.15)), ("\n", math.log(0.05))]
    with FakeOpenAI(lambda body, n: (200, vllm_reply(space, digits))) as server:
        result = annotate_once(server.url)
    assert result.status == "scored" and result.score == 2
    assert result.score_expected == pytest.approx((0.5 * 2 + 0.3 * 3 + 0.15 * 1) / 0.95)


def test_a_score_spelled_with_a_leading_space_counts_for_that_score():
    top = [(" 4", math.log(0.5)), ("4", math.log(0.2)), ("2", math.log(0.3))]
    with FakeOpenAI(lambda body, n: (200, vllm_reply(top))) as server:
        result = annotate_once(server.url)
    assert result.score == 4 and result.score_expected == pytest.approx(0.7 * 4 + 0.3 * 2)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        # the first token's alternatives hold no score (the model starts with prose)
        (vllm_reply([("The", -0.2), (" The", -2.0), ("**", -3.0)]), "no score token 0-5 among the 3 top_logprobs"),
        # only whitespace came out (the answer ended before a score)
        (vllm_reply([(" ", -0.01)], [("\n", -0.1)]), "no score token 0-5 among the 1 top_logprobs"),
        # what `transformers serve` answers: the logprobs fields are ignored
        (
            {
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "3"},
                        "logprobs": None,
                        "finish_reason": "length",
                    }
                ]
            },
            "no logprobs in the reply",
        ),
        ({"choices": [{"index": 0, "logprobs": {"content": [{"token": "3", "logprob": -0.1}]}}]}, "malformed reply"),
        ({"object": "error", "message": "oops"}, "malformed reply"),
        (b"<html>not json</html>", "malformed reply"),
    ],
    ids=["no-score-token", "only-whitespace", "no-logprobs", "no-top-logprobs", "no-choices", "not-json"],
)
def test_a_reply_without_score_probabilities_is_failed_with_its_reason(reply, reason):
    with FakeOpenAI(lambda body, n: (200, reply)) as server:
        result = annotate_once(server.url, max_attempts=2)
    assert result.status == "failed" and result.score is None and result.attempts == 2
    assert result.error.count(reason) == 2, result.error  # every attempt's reason, in order
    assert len(server.requests) == 2


def test_logprobs_mode_is_refused_for_the_embedded_server():
    from winnow.pipelines.config import AnnotatorConfig

    with pytest.raises(ValueError, match="transformers serve` returns none: use mode decision"):
        AnnotatorConfig(kind="local", mode="logprobs")
    assert AnnotatorConfig(kind="endpoint", mode="logprobs").resolved_mode() == "logprobs"


# ---- the embedded model (SmolLM2) -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    from winnow.classifiers.local_server import LocalServer, ensure_model_dir

    log = tmp_path_factory.mktemp("server") / "serve.log"
    with LocalServer(ensure_model_dir(), threads=1, log_path=log) as server:
        yield server


def run(annotator: EndpointAnnotator, texts: list[str]):
    async def all_of_them():
        try:
            return [await annotator.annotate(t) for t in texts]
        finally:
            await annotator.aclose()

    return asyncio.run(all_of_them())


@pytest.mark.slow
def test_the_embedded_transformers_serve_cannot_answer_the_logprobs_request(embedded):
    """The real embedded server (transformers 5.24's `transformers serve`) refuses the pre-fill fields with HTTP 422,
    which ends the document at once with that reason (no retry, no made-up score); and even without them it answers
    with no logprobs. Why `mode: logprobs` is refused for `kind: local`, which keeps its own decision endpoint."""
    import httpx

    annotator = EndpointAnnotator(
        base_url=embedded.base_url, model=embedded.model, prompt=load_prompt(), mode="logprobs", max_attempts=3
    )
    annotator.check()  # the same OpenAI model list as vLLM's
    [result] = run(annotator, ["Photosynthesis turns light into chemical energy in plants."])
    plain = httpx.post(
        f"{embedded.base_url}/v1/chat/completions",
        json={
            "model": embedded.model,
            "messages": [{"role": "user", "content": "Rate: photosynthesis. Educational score:"}],
            "max_tokens": 1,
            "logprobs": True,
            "top_logprobs": 20,
        },
        timeout=120,
    )
    assert result.status == "failed" and result.score is None and result.attempts == 1
    assert result.error.startswith("HTTP 422") and "continue_final_message" in result.error, result.error
    assert plain.status_code == 200 and not plain.json()["choices"][0].get("logprobs")


def model_plan(model_dir, prompts: list[str]):
    """What vLLM does with the request, on the embedded model in this process: the chat template applied with the
    request's continue_final_message / add_generation_prompt (vLLM calls the same transformers function), greedy
    decoding of max_tokens tokens, and each token's top_logprobs, answered in vLLM's schema."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    lock = threading.Lock()

    def plan(body, n):
        text = tokenizer.apply_chat_template(
            body["messages"],
            continue_final_message=body.get("continue_final_message", False),
            add_generation_prompt=body.get("add_generation_prompt", True),
            tokenize=False,
        )
        prompts.append(text)
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        positions = []
        with lock, torch.no_grad():
            for _ in range(body["max_tokens"]):
                logprobs = torch.log_softmax(model(ids).logits[0, -1].float(), -1)
                top = torch.topk(logprobs, body["top_logprobs"])
                positions.append([(tokenizer.decode([i]), float(v)) for i, v in zip(top.indices.tolist(), top.values)])
                ids = torch.cat([ids, top.indices[:1].view(1, 1)], dim=1)
        return 200, vllm_reply(*positions, prompt_tokens=ids.shape[1] - len(positions))

    return plan


@pytest.mark.slow
def test_logprobs_path_agrees_with_the_decision_endpoint_on_the_same_model(embedded, shared_data):
    """The same model two ways: `mode: logprobs` against an OpenAI server that builds the prompt as vLLM does, and
    `mode: decision` against the real embedded server's /v1/systemone (softmax over the six score tokens after the
    pre-filled "Educational score: "). SmolLM2's tokenizer writes " " before a digit, so the logprobs path reads the
    second generated token; both must give the same distribution over the scores."""
    with gzip.open(shared_data / "annotations" / "fineweb-edu-llama3" / "val.jsonl.gz", "rt") as f:
        texts = [json.loads(line)["text"] for _, line in zip(range(3), f)]
    decision = run(
        EndpointAnnotator(base_url=embedded.base_url, model=embedded.model, prompt=load_prompt(), mode="decision"),
        texts,
    )
    prompts: list[str] = []
    with FakeOpenAI(model_plan(embedded.model_dir, prompts)) as server:
        logprobs = run(
            EndpointAnnotator(base_url=server.url, model=MODEL, prompt=load_prompt(), mode="logprobs"), texts
        )
    # continued, not a new turn: the prompt ends in the pre-fill
    assert all(p.endswith("<|im_start|>assistant\nEducational score:") for p in prompts)
    for by_logprobs, by_decision in zip(logprobs, decision):
        assert by_logprobs.status == by_decision.status == "scored"
        assert by_logprobs.score == by_decision.score
        assert by_logprobs.score_expected == pytest.approx(by_decision.score_expected, abs=1e-3)
        p, q = json.loads(by_logprobs.response), json.loads(by_decision.response)
        assert max(abs(p[k] - q[k]) for k in p) < 1e-3, (p, q)


# ---- the jury, at stage level -----------------------------------------------------------------------------------
JURY_PLANS = [[3, 3, 1], [0, 2, 5], [4, "malformed", 4], ["no-score"] * 3, [2, 5, 5]]


def jury_plan(served: dict):
    """Documents get plans in the order they are first asked; sample n of a document gets plan[n - 1]. What each
    sample got is recorded in `served` (user message → list), which the test's expectations are computed from."""
    order: dict[str, int] = {}

    def plan(body, n):
        user = body["messages"][0]["content"]
        k = order.setdefault(user, len(order))
        outcome = JURY_PLANS[k % len(JURY_PLANS)][n - 1]
        served.setdefault(user, []).append(outcome)
        if outcome == "malformed":
            return 200, {"choices": []}
        if outcome == "no-score":
            return 200, vllm_reply([("Sure", -0.1), (",", -2.5)])
        return 200, vllm_reply(peaked_at(outcome))

    return plan


def expected_aggregate(scores: list[int], how: str) -> float:
    if how == "mean":
        return sum(scores) / len(scores)
    if how == "median":
        return float(statistics.median(scores))
    counts = Counter(scores)
    return float(min(s for s, c in counts.items() if c == max(counts.values())))  # ties to the lower score


@pytest.fixture(scope="module")
def source(tmp_path_factory, shared_data) -> Path:
    with gzip.open(shared_data / "annotations" / "fineweb-edu-llama3" / "val.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for _, line in zip(range(30), f)]
    folder = tmp_path_factory.mktemp("run") / "base"
    folder.mkdir()
    table = [{"text": r["text"], "id": f"val-{r['id']}", "url": f"https://example.org/{r['id']}"} for r in rows]
    pq.write_table(pa.Table.from_pylist(table), folder / "00000.parquet")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("how", ["mean", "median", "majority"])
def test_jury_of_three_samples_aggregates_and_accounts_for_every_document(tmp_path, source, how):
    from winnow.pipelines.cli import main

    served: dict[str, list] = {}
    config = tmp_path / "config.yaml"
    with FakeOpenAI(jury_plan(served)) as server:
        config.write_text(
            yaml.safe_dump(
                {
                    "name": "jury",
                    "output_dir": str(tmp_path / "run"),
                    "annotate": {"source": str(source), "n_documents": 10, "seed": 2},
                    "annotator": {
                        "kind": "endpoint",
                        "base_url": server.url,
                        "model": MODEL,
                        "mode": "logprobs",
                        "samples": 3,
                        "aggregate": how,
                        "max_attempts": 1,
                        "temperature": 0.7,
                        "concurrency": 4,
                    },
                }
            )
        )
        assert main(["annotate", "-c", str(config)]) == 0
    rows = [r for p in sorted((tmp_path / "run" / "annotate").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    sampled = {
        i
        for p in (tmp_path / "run" / "annotate" / "sample").glob("*.parquet")
        for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()
    }
    assert len(rows) == 10 and {r["id"] for r in rows} == sampled  # every document once
    prompt = load_prompt()
    assert len(served) == 10 and all(len(v) == 3 for v in served.values())  # three samples of each, no more
    seen_plans = set()
    for row in rows:
        outcomes = served[prompt.render(row["text"])]
        seen_plans.add(tuple(outcomes))
        scores = [o for o in outcomes if isinstance(o, int)]
        assert sorted(s for s in row["sample_scores"] if s is not None) == sorted(scores)
        assert row["mode"] == "logprobs" and row["attempts"] == 3
        if not scores:
            assert row["status"] == "failed" and row["score"] is None
            assert row["error"].count("no score token 0-5") == 3
            continue
        value = expected_aggregate(scores, how)
        assert row["status"] == "scored" and row["score_expected"] == pytest.approx(value)
        assert row["score"] == int(round(value))
    assert len(seen_plans) == len(JURY_PLANS)  # every plan was exercised (10 documents over 5 plans)
    summary = read_summary(tmp_path / "run" / "annotate")
    failed = sum(r["status"] == "failed" for r in rows)
    assert (summary["requested"], summary["scored"], summary["failed"]) == (10, 10 - failed, failed) and failed == 2
    assert summary["read"] == summary["kept"] + sum(summary["removed"]["unparseable"].values()) + summary["failed"]
    # the jury's agreement with itself, counted here pair by pair from what the server answered
    juries = [[o for o in served[prompt.render(r["text"])] if isinstance(o, int)] for r in rows]
    juries = [j for j in juries if len(j) >= 2]
    pairs = [(a >= 3, b >= 3) for j in juries for i, a in enumerate(j) for k, b in enumerate(j) if i != k]
    both = sum(a and b for a, b in pairs)
    agreement = summary["jury_agreement"]
    assert agreement["documents"] == len(juries) == 8  # 2 documents had no score, 2 others one malformed sample
    assert agreement["pairwise_f1"] == pytest.approx(2 * both / sum(a + b for a, b in pairs))
    rest = [(j[i] >= 3, round((sum(j) - j[i]) / (len(j) - 1)) >= 3) for j in juries if len(j) >= 3 for i in range(3)]
    both = sum(a and b for a, b in rest)
    assert agreement["sample_vs_rest_f1"] == pytest.approx(2 * both / sum(a + b for a, b in rest))

"""The annotator's limits, against real HTTP servers started here: a server dripping its reply a few bytes a second
ends at the `timeout_s` deadline, a 5 MB reply is cut off at `max_reply_bytes` without being held in memory, a valid
score with odd `usage` metadata keeps its score, a 429 with `Retry-After` is waited out, retries are jittered within
their bounds, and one task's documents share one connection.

Each server is `http.server` in a thread, as in tests/test_annotate.py; the annotator is driven as the stage's
rollout drives it, one `annotate()` per document inside one event loop (one datatrove task).
"""

import asyncio
import http.server
import json
import random
import threading
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from winnow.classifiers.annotators import MAX_BACKOFF_S, EndpointAnnotator, backoff_delay, retry_after_s
from winnow.classifiers.prompt import load_prompt
from winnow.pipelines.config import AnnotatorConfig, ConfigError, load_config

CHAT_ANSWER = {"choices": [{"message": {"content": "Some reasoning.\nEducational score: 3"}}]}
PROBABILITIES = {"0": 0.05, "1": 0.1, "2": 0.6, "3": 0.15, "4": 0.05, "5": 0.05}


class ScriptedServer:
    """A real HTTP/1.1 server on 127.0.0.1: request n (1-based) to any POST path is answered by `answer(handler, n)`.
    Records each request's client port (one port = one reused connection)."""

    def __init__(self, answer):
        self.requests = 0
        self.ports: list[int] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so that connection reuse is visible

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                server.requests += 1
                server.ports.append(self.client_address[1])
                try:
                    answer(self, server.requests)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up: what these tests provoke
                    self.close_connection = True

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def send(handler, status: int, body: bytes, **headers):
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()
    handler.wfile.write(body)


def annotator(server: ScriptedServer, **settings) -> EndpointAnnotator:
    return EndpointAnnotator(base_url=server.url, model="any", prompt=load_prompt(), **settings)


def annotate(a: EndpointAnnotator, *texts: str):
    """One task's event loop: the documents one after the other, as with concurrency 1."""

    async def task():
        return [await a.annotate(text) for text in texts]

    return asyncio.run(task())


# ---- a whole request has one deadline -----------------------------------------------------------------------------
def test_a_reply_dripping_in_ends_at_the_deadline(tmp_path):
    """Five bytes a second: every read is well inside 1 s, so only a deadline on the whole request stops it
    (a per-read timeout let this server hold a document for the 200 s its 1,000 bytes take)."""
    body = json.dumps({**CHAT_ANSWER, "padding": "x" * 1000}).encode()

    def drip(handler, n):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for i in range(len(body)):
            handler.wfile.write(body[i : i + 1])
            handler.wfile.flush()
            time.sleep(0.2)

    with ScriptedServer(drip) as server:
        started = time.monotonic()
        [result] = annotate(annotator(server, timeout_s=1, max_attempts=2, backoff_s=0), "a document")
        wall = time.monotonic() - started
    assert result.status == "failed" and result.score is None and result.attempts == 2 == server.requests
    assert result.error == "timeout after 1 s | timeout after 1 s"
    assert 2.0 <= wall < 2.0 + 0.5  # two attempts of 1 s each, and nothing more


# ---- a reply has a size cap ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed-until-close"])
def test_a_5_mb_reply_is_cut_off_at_max_reply_bytes(declared):
    """A server that declares 5 MB is refused without reading; one that just streams 5 MB (no length, the body ends
    when the connection closes) is read to the cap plus at most one network chunk, then dropped. Not retried: the
    same request gets the same runaway reply."""
    reply = b'{"choices": [{"message": {"content": "' + b"a" * 5_000_000 + b'"}}]}'  # built before measuring

    def flood(handler, n):
        handler.send_response(200)
        if declared:
            handler.send_header("Content-Length", str(len(reply)))
        else:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        view = memoryview(reply)
        for start in range(0, len(reply), 65536):
            handler.wfile.write(view[start : start + 65536])

    cap = 262_144
    with ScriptedServer(flood) as server:
        a = annotator(server, timeout_s=30, max_attempts=3, backoff_s=0, max_reply_bytes=cap)
        tracemalloc.start()
        try:
            [result] = annotate(a, "a document")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result.status == "failed" and result.attempts == 1 == server.requests
    assert result.error == f"reply_too_large: over {cap} bytes (annotator.max_reply_bytes)"
    # everything Python allocated meanwhile (both threads): the cap, one 64 kB chunk and room for httpx's buffers
    # (measured: 0.85 MB); reading the 5 MB whole, as before, peaked at 30 MB
    assert peak < cap + 65536 + 1_000_000, peak


def test_max_reply_bytes_is_a_positive_annotator_setting(tmp_path):
    assert AnnotatorConfig().max_reply_bytes == 262_144
    path = tmp_path / "c.yaml"
    path.write_text("name: t\noutput_dir: x\nannotator: {kind: endpoint, max_reply_bytes: 0}\n")
    with pytest.raises(ConfigError, match="annotator.max_reply_bytes"):
        load_config(path, check_inputs=False)


# ---- odd metadata does not cost a valid score ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "answer", "tokens"),
    [
        ("chat", {**CHAT_ANSWER, "usage": "n/a"}, (0, 0)),
        ("chat", {**CHAT_ANSWER, "usage": {"prompt_tokens": "x", "completion_tokens": 7}}, (0, 7)),
        ("chat", {**CHAT_ANSWER, "usage": {"prompt_tokens": -3, "completion_tokens": True}}, (0, 0)),
        ("chat", {**CHAT_ANSWER, "usage": {"prompt_tokens": 12.0, "completion_tokens": 1.5}}, (12, 0)),
        ("decision", {"answers": {"score": {"probabilities": PROBABILITIES}}, "usage": ["n/a"]}, (0, 0)),
    ],
    ids=["usage-string", "usage-count-string", "usage-negative-and-bool", "usage-floats", "decision-usage-list"],
)
def test_a_valid_score_with_malformed_usage_is_scored(mode, answer, tokens):
    with ScriptedServer(lambda handler, n: send(handler, 200, json.dumps(answer).encode())) as server:
        [result] = annotate(annotator(server, mode=mode, max_attempts=2, backoff_s=0), "a document")
    assert result.status == "scored" and result.attempts == 1 and result.error is None
    assert result.score == (3 if mode == "chat" else 2)
    assert (result.prompt_tokens, result.completion_tokens) == tokens


# ---- retries: Retry-After and jittered backoff --------------------------------------------------------------------
def test_a_429_with_retry_after_is_waited_out_then_scored():
    def busy_once(handler, n):
        if n == 1:
            return send(handler, 429, b'{"error": "rate limited"}', Retry_After="1")
        send(handler, 200, json.dumps(CHAT_ANSWER).encode())

    with ScriptedServer(busy_once) as server:
        started = time.monotonic()
        [result] = annotate(annotator(server, max_attempts=2, backoff_s=0), "a document")
        wall = time.monotonic() - started
    assert result.status == "scored" and result.score == 3 and result.attempts == 2 == server.requests
    assert 1.0 <= wall < 1.5  # backoff_s 0 alone would have retried at once


def test_retry_after_reads_seconds_and_http_dates_capped_at_the_max_backoff():
    now = time.time()
    in_30_s = format_datetime(datetime.fromtimestamp(now, UTC) + timedelta(seconds=30), usegmt=True)
    assert retry_after_s("1") == 1.0 and retry_after_s(" 7 ") == 7.0
    assert retry_after_s(in_30_s, now=now) == pytest.approx(30, abs=1)  # HTTP dates have whole seconds
    assert retry_after_s("3600") == MAX_BACKOFF_S == retry_after_s(in_30_s, now=now - 3600)
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # already past: no wait
    assert retry_after_s(None) is None and retry_after_s("soon") is None and retry_after_s("-5") is None


def test_backoff_is_jittered_between_half_and_all_of_the_exponential_wait():
    rng = random.Random(0)
    for attempt in range(1, 10):
        ceiling = min(2.0 * 2 ** (attempt - 1), MAX_BACKOFF_S)
        waits = [backoff_delay(attempt, 2.0, rng.random()) for _ in range(500)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert max(waits) - min(waits) > 0.4 * ceiling  # spread over the range, not one value for every task
    assert backoff_delay(1, 2.0, 0.0) == 1.0 and backoff_delay(3, 2.0, 0.5) == 6.0
    assert backoff_delay(20, 2.0, 0.999) <= MAX_BACKOFF_S and backoff_delay(4, 0.0, 0.7) == 0.0


def test_retries_of_a_failing_server_wait_the_jittered_backoff():
    """Two 503s without Retry-After, backoff_s 0.2: waits in [0.1, 0.2] then [0.2, 0.4]; the same jitter_seed
    gives the same waits."""
    walls = []
    for _ in range(2):
        with ScriptedServer(lambda handler, n: send(handler, 503, b"overloaded")) as server:
            started = time.monotonic()
            [result] = annotate(annotator(server, max_attempts=3, backoff_s=0.2, jitter_seed=7), "a document")
            walls.append(time.monotonic() - started)
        assert result.status == "failed" and result.attempts == 3
        assert result.error == "HTTP 503: overloaded | HTTP 503: overloaded | HTTP 503: overloaded"
    assert all(0.3 <= wall < 0.6 + 0.3 for wall in walls)
    assert abs(walls[0] - walls[1]) < 0.2  # the same draws; what differs is request overhead


# ---- one pooled client per task -----------------------------------------------------------------------------------
def test_a_tasks_documents_share_one_connection():
    with ScriptedServer(lambda handler, n: send(handler, 200, json.dumps(CHAT_ANSWER).encode())) as server:
        a = annotator(server)
        results = annotate(a, "one", "two", "three", "four")
        assert [r.status for r in results] == ["scored"] * 4
        assert server.requests == 4 and len(set(server.ports)) == 1  # keep-alive: one TCP connection for all
        again = annotate(a, "five")  # another event loop (another task) gets a client of its own
        assert again[0].status == "scored" and len(set(server.ports)) == 2

"""The LLM annotator: one OpenAI-compatible HTTP endpoint, asked to rate one document at a time.

Every document ends in exactly one of three states, never an exception:
  scored       an answer with a readable score 0-5
  unparseable  answers came back but none stated a score (reason: the parser's, see src/winnow/classifiers/parsing.py)
  failed       no usable answer after `max_attempts` (reason: HTTP status, timeout, unreachable, malformed reply,
               reply_too_large)
Limits, per request: `timeout_s` is a deadline for the whole request (connect, send and every read of the body), not
per read, so a server that drips a byte at a time cannot hold a document longer; the body is streamed and reading
stops past `max_reply_bytes`, so a runaway reply costs at most that much memory.
Retries wait `backoff_s * 2**(attempt-1)` seconds (capped at 60 s) with equal jitter (a uniform draw between half and
all of it, so that the requests of many tasks that failed together do not come back together), or longer when a 429
or 503 says `Retry-After` (seconds or an HTTP date; also capped at 60 s). Errors that a retry cannot fix (HTTP 400,
401, 403, 404, 422: a wrong model name, key or request; a reply over `max_reply_bytes`) end the document at once.
All documents of a task share one pooled HTTP client (connections are reused).

Three request modes share this path, so the embedded server and a vLLM/SGLang cluster are driven identically:
  chat      POST /v1/chat/completions with the rendered prompt; the answer text is parsed (FineWeb-Edu's way).
  decision  POST /v1/systemone (`transformers serve`'s typed-decision endpoint, started with a decision config whose
            template ends the assistant turn with "Educational score: "): one forward pass gives the probability of
            each score 0..5; score = the most likely, score_expected = Σ p·score. No text to parse.
  logprobs  the decision mode on any OpenAI-compatible server that returns `logprobs` (vLLM, SGLang): POST
            /v1/chat/completions with the assistant turn pre-filled with "Educational score:" and continued
            (`continue_final_message: true`, `add_generation_prompt: false`, which both accept), `max_tokens: 2`,
            `logprobs: true`, `top_logprobs: 20`. The scores are read at the first generated token that is not
            whitespace: tokenizers that split digits from the space before them (Llama-3, Qwen) first generate " ",
            others generate " 3" at once, and chat templates that trim messages (Llama-3's) drop a trailing space of
            the pre-fill, so neither is assumed. The probabilities of the score tokens "0".."5" among that position's
            top_logprobs (a token counts once stripped of spaces) are renormalised over the scores; score = the most
            likely, score_expected = Σ p·score. A reply without logprobs, or whose top tokens hold no score, is a
            malformed reply: retried, then failed with that reason. (`transformers serve` 5.24, the embedded server,
            refuses the pre-fill fields with HTTP 422 and never returns logprobs: it keeps `decision`.)

The API key is read from the environment variable named in the config at request time and only ever placed in the
Authorization header: it is not an attribute, not in any message, not in any output.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from winnow.classifiers.parsing import MAX_SCORE, MIN_SCORE, parse_score
from winnow.classifiers.prompt import Prompt

MAX_BACKOFF_S = 60.0
FATAL_STATUSES = {400, 401, 403, 404, 422}  # the same request can never succeed
RETRY_AFTER_STATUSES = {429, 503}  # the statuses whose Retry-After header says when to come back (RFC 9110 10.2.3)
MAX_REPLY_BYTES = 262_144  # a chat answer of max_tokens 512 is a few kB; a decision reply under 1 kB
SCORE_LABELS = [str(s) for s in range(MIN_SCORE, MAX_SCORE + 1)]
DECISION_PREFIX = "Educational score:"  # the pre-filled assistant turn; no trailing space (templates may trim it)
TOP_LOGPROBS = 20  # OpenAI's maximum, and vLLM's default --max-logprobs


class AnnotatorUnavailable(RuntimeError):
    """The endpoint cannot be used at all (unreachable, wrong model, refused key): stop before any work."""


class _Transient(Exception):
    """A failed request worth retrying (timeout, connection, 5xx, 429, malformed reply)."""

    def __init__(self, reason: str, retry_after_s: float | None = None):
        super().__init__(reason)
        self.retry_after_s = retry_after_s  # what the server asked for (Retry-After), if anything


class _Fatal(Exception):
    """A failed request that a retry cannot fix."""


@dataclass
class Annotation:
    """The outcome for one document (one sample of it when the jury has several)."""

    status: str  # scored | unparseable | failed
    score: int | None = None
    score_expected: float | None = None
    response: str | None = None  # raw answer text (chat) or the score probabilities as JSON (decision)
    attempts: int = 0
    error: str | None = None  # why it is not scored; every attempt's reason, in order
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def backoff_delay(attempt: int, backoff_s: float, jitter: float) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): equal jitter over the capped exponential backoff.

    `jitter` is a uniform draw in [0, 1); the wait lies in [d/2, d] with d = min(backoff_s * 2**(attempt-1), 60 s).
    Half is kept fixed so a restarting server still gets a pause; the random half spreads the retries of many
    documents that failed at the same moment.
    """
    ceiling = min(backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
    return ceiling / 2 + ceiling / 2 * jitter


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """A `Retry-After` header in seconds from now: delay-seconds ("120") or an HTTP date; None when absent or
    unreadable. Capped at 60 s (MAX_BACKOFF_S): a server asking for an hour does not stall a task for an hour."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is always GMT
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_BACKOFF_S)


def _token_count(usage: Any, key: str) -> int:
    """A token count from a reply's `usage`; 0 when usage or the count is missing or not a count (it is metadata:
    an odd value must not cost a valid score)."""
    value = usage.get(key) if isinstance(usage, dict) else None
    if isinstance(value, float) and value.is_integer():  # 12.0 from a server that writes every number as a float
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


async def _read_at_most(reply: httpx.Response, limit: int) -> tuple[bytearray, bool]:
    """The streamed body, reading no further than the chunk that crosses `limit` bytes; and whether it did cross."""
    body = bytearray()
    async with contextlib.aclosing(reply.aiter_bytes()) as chunks:
        async for chunk in chunks:
            body += chunk
            if len(body) > limit:
                return body, True
    return body, False


def api_root(base_url: str) -> str:
    """`http://host:8000/v1/` and `http://host:8000` both mean the server root `http://host:8000`."""
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


@dataclass
class EndpointAnnotator:
    base_url: str
    model: str
    prompt: Prompt
    mode: str = "chat"  # chat | decision | logprobs
    api_key_env: str | None = None
    timeout_s: float = 120.0
    max_attempts: int = 3
    backoff_s: float = 2.0
    temperature: float = 0.0
    max_tokens: int = 512
    extra_body: dict[str, Any] = field(default_factory=dict)
    max_reply_bytes: int = MAX_REPLY_BYTES
    jitter_seed: int | None = None  # seeds the backoff jitter (tests); None = a different draw in every task

    def __post_init__(self):
        self.root = api_root(self.base_url)
        self._jitter = random.Random(self.jitter_seed)
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def point_at(self, base_url: str) -> None:
        """A server started by the task (datatrove's server management) tells its address only once it is up."""
        self.base_url, self.root = base_url, api_root(base_url)
        self._client = None

    # ---- before any work -------------------------------------------------------------------------------------
    def check(self, connect_timeout_s: float = 10.0) -> None:
        """Fail fast: the server answers, accepts the key and serves `model`. Raises AnnotatorUnavailable."""
        if self.api_key_env and not os.environ.get(self.api_key_env):
            raise AnnotatorUnavailable(f"annotator.api_key_env: the environment variable {self.api_key_env} is not set")
        url = f"{self.root}/v1/models"
        try:
            reply = httpx.get(url, headers=self._headers(), timeout=connect_timeout_s)
        except httpx.HTTPError as e:
            raise AnnotatorUnavailable(
                f"annotator endpoint {self.root} is unreachable ({type(e).__name__}: {e}); start the server or fix "
                f"annotator.base_url"
            ) from None
        if reply.status_code in (401, 403):
            raise AnnotatorUnavailable(f"annotator endpoint {self.root} refused the API key (HTTP {reply.status_code})")
        if reply.status_code != 200:
            raise AnnotatorUnavailable(f"annotator endpoint {url} answered HTTP {reply.status_code}, not a model list")
        try:
            served = [m["id"] for m in reply.json().get("data", [])]
        except (ValueError, AttributeError, KeyError, TypeError):
            raise AnnotatorUnavailable(f"annotator endpoint {url} did not answer an OpenAI model list") from None
        if served and self.model not in served:
            raise AnnotatorUnavailable(
                f"annotator.model {self.model!r} is not served by {self.root}; it serves: {', '.join(served)}"
            )

    # ---- the task's connection pool ---------------------------------------------------------------------------
    def _pooled_client(self) -> httpx.AsyncClient:
        """One client per task, reused by all its documents (keep-alive connections instead of one TCP and TLS
        handshake per document). Made in the running event loop; a new loop (a new task) gets a new client."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = httpx.AsyncClient(
                timeout=self.timeout_s,  # per operation; the deadline for a whole request is in _request
                # the runner's concurrency bounds the connections; a pool limit would make requests queue inside
                # their own deadline
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
                # no compressed replies: max_reply_bytes then bounds what is decoded, not only what is received
                headers={"Accept-Encoding": "identity"},
            )
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the pooled client (from the event loop that used it)."""
        if self._client is not None and self._client_loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = self._client_loop = None

    def _wait_before_retry(self, attempt: int, asked_s: float | None) -> float:
        """Jittered backoff, or what the server asked for (Retry-After) when that is longer; at most 60 s."""
        return min(max(backoff_delay(attempt, self.backoff_s, self._jitter.random()), asked_s or 0.0), MAX_BACKOFF_S)

    async def _attempts(self, rendered: str, result, accept) -> tuple[list[str], bool]:
        """Request until `accept(answer)` takes an answer (returns None, else the reason it did not) or `max_attempts`
        is spent. A fatal error stops at once; a transient one or a refused answer waits (jittered backoff, or the
        server's Retry-After) and tries again. Returns every failed attempt's reason, in order, and whether any
        answer came back. `result.attempts` counts the requests (the synthesis generator retries the same way)."""
        reasons: list[str] = []
        got_answer = False
        client = self._pooled_client()
        for attempt in range(1, self.max_attempts + 1):
            result.attempts = attempt
            asked_s = None
            try:
                answer = await self._request(client, rendered, result)
            except _Fatal as e:
                reasons.append(str(e))
                break
            except _Transient as e:
                reasons.append(str(e))
                asked_s = e.retry_after_s
            else:
                got_answer = True
                refused = accept(answer)
                if refused is None:
                    break
                reasons.append(refused)
            if attempt < self.max_attempts:
                await asyncio.sleep(self._wait_before_retry(attempt, asked_s))
        return reasons, got_answer

    # ---- one document ----------------------------------------------------------------------------------------
    async def annotate(self, text: str) -> Annotation:
        """Rate one document: retry until scored or `max_attempts` is spent; never raises for a bad answer."""
        result = Annotation(status="failed")
        started = time.monotonic()

        def accept(answer) -> str | None:
            result.response, result.score, result.score_expected, reason = answer
            if result.score is None:
                return reason
            result.status, result.error = "scored", None
            return None

        reasons, got_answer = await self._attempts(self.prompt.render(text), result, accept)
        if result.status != "scored":
            result.status = "unparseable" if got_answer else "failed"
            result.error = " | ".join(reasons)
        result.seconds = time.monotonic() - started
        return result

    async def _request(self, client: httpx.AsyncClient, rendered: str, result: Annotation):
        """One request. Returns (response text, score, score_expected, unparseable reason) or raises."""
        if self.mode == "decision":
            url = f"{self.root}/v1/systemone"
            question = {"type": "score", "instructions": rendered, "criteria": SCORE_LABELS}
            payload = {"model": self.model, "state": "", "questions": {"score": question}}
        elif self.mode == "logprobs":
            url = f"{self.root}/v1/chat/completions"
            payload = {
                "model": self.model,
                "messages": [
                    {"role": "user", "content": rendered},
                    {"role": "assistant", "content": DECISION_PREFIX},
                ],
                "continue_final_message": True,
                "add_generation_prompt": False,
                "temperature": self.temperature,
                "max_tokens": 2,  # " " then "3" for tokenizers that split digits from spaces
                "logprobs": True,
                "top_logprobs": TOP_LOGPROBS,
            }
        else:
            url = f"{self.root}/v1/chat/completions"
            payload = {
                "model": self.model,
                "messages": [{"role": "user", "content": rendered}],
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
            }
        payload.update(self.extra_body)
        try:
            async with asyncio.timeout(self.timeout_s):  # one deadline: connect, send, headers and the whole body
                async with client.stream("POST", url, json=payload, headers=self._headers()) as reply:
                    if reply.status_code != 200:
                        head, _ = await _read_at_most(reply, 200)
                        detail = head[:200].decode("utf-8", "replace").replace("\n", " ")
                        if reply.status_code in FATAL_STATUSES:
                            raise _Fatal(f"HTTP {reply.status_code}: {detail}")
                        asked = reply.headers.get("Retry-After") if reply.status_code in RETRY_AFTER_STATUSES else None
                        raise _Transient(f"HTTP {reply.status_code}: {detail}", retry_after_s(asked))
                    declared = reply.headers.get("Content-Length", "")
                    if declared.isdigit() and int(declared) > self.max_reply_bytes:
                        raise self._too_large()  # refused without reading a byte of it
                    raw, over = await _read_at_most(reply, self.max_reply_bytes)
                    if over:
                        raise self._too_large()
        except (TimeoutError, httpx.TimeoutException):  # asyncio's deadline, or httpx's own per-operation one
            raise _Transient(f"timeout after {self.timeout_s:g} s") from None
        except httpx.TransportError as e:
            raise _Transient(f"server unreachable ({type(e).__name__})") from None
        except httpx.DecodingError:
            raise _Transient("malformed reply: undecodable body") from None
        try:
            body = json.loads(raw)
            if self.mode == "decision":
                return self._read_decision(body, result)
            if self.mode == "logprobs":
                return self._read_logprobs(body, result)
            return self._read_chat(body, result)
        except _NoScoreTokens as e:
            raise _Transient(f"malformed reply: {e}") from None
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise _Transient(f"malformed reply: {raw[:120].decode('utf-8', 'replace')!r}") from None

    def _too_large(self) -> _Fatal:
        # fatal, not retried: the same request gets the same runaway answer (a server ignoring max_tokens, or a URL
        # that serves something other than the API); asking again would only download it again
        return _Fatal(f"reply_too_large: over {self.max_reply_bytes} bytes (annotator.max_reply_bytes)")

    @staticmethod
    def _read_chat(body: dict, result: Annotation):
        text = body["choices"][0]["message"]["content"] or ""
        parsed = parse_score(text)
        result.prompt_tokens += _token_count(body.get("usage"), "prompt_tokens")
        result.completion_tokens += _token_count(body.get("usage"), "completion_tokens")
        return text, parsed.score, None, parsed.reason

    @staticmethod
    def _read_decision(body: dict, result: Annotation):
        probabilities = {str(k): float(v) for k, v in body["answers"]["score"]["probabilities"].items()}
        if sorted(probabilities) != SCORE_LABELS:
            raise ValueError(f"labels {sorted(probabilities)}")
        result.prompt_tokens += _token_count(body.get("usage"), "input_tokens")
        best = max(probabilities, key=probabilities.get)
        expected = sum(int(label) * p for label, p in probabilities.items())
        return json.dumps(probabilities), int(best), expected, None

    @staticmethod
    def _read_logprobs(body: dict, result: Annotation):
        """Score-token probabilities at the first generated token that is not whitespace (vLLM's / SGLang's
        `choices[0].logprobs.content[i].top_logprobs`, each `{token, logprob, bytes}`)."""
        logprobs = body["choices"][0].get("logprobs")
        if not logprobs or not logprobs.get("content"):
            raise _NoScoreTokens("no logprobs in the reply (the server ignores `logprobs`; use mode chat)")
        positions = logprobs["content"]
        position = next((p for p in positions if p["token"].strip()), positions[-1])
        top = position["top_logprobs"]
        mass = dict.fromkeys(SCORE_LABELS, 0.0)
        for entry in top:
            label = entry["token"].strip()
            if label in mass:
                mass[label] += math.exp(float(entry["logprob"]))
        total = sum(mass.values())
        if not total > 0:
            seen = [entry["token"] for entry in top][:6]
            raise _NoScoreTokens(f"no score token 0-5 among the {len(top)} top_logprobs (top: {seen})")
        probabilities = {label: p / total for label, p in mass.items()}
        result.prompt_tokens += _token_count(body.get("usage"), "prompt_tokens")
        result.completion_tokens += _token_count(body.get("usage"), "completion_tokens")
        best = max(probabilities, key=probabilities.get)
        expected = sum(int(label) * p for label, p in probabilities.items())
        return json.dumps(probabilities), int(best), expected, None


class _NoScoreTokens(ValueError):
    """A well-formed logprobs reply that still gives no score distribution."""


async def annotate_document(document, generate, annotator: EndpointAnnotator) -> dict:
    """datatrove InferenceRunner rollout: one annotation of `document`, as a JSON-able dict.

    `generate` (the runner's own request path) is not used: it has no timeout for local URLs, ends the whole task
    on an HTTP 500, retries a fixed 6 times over ~5 minutes, and returns text only (no decision endpoint).
    """
    return (await annotator.annotate(document.text)).to_dict()

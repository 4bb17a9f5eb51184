"""The LLM annotator: one OpenAI-compatible HTTP endpoint, asked to rate one document at a time.

Every document ends in exactly one of three states, never an exception:
  scored       an answer with a readable score 0-5
  unparseable  answers came back but none stated a score (reason: the parser's, see src/winnow/classifiers/parsing.py)
  failed       no usable answer after `max_attempts` (reason: HTTP status, timeout, unreachable, malformed reply)
Retries wait `backoff_s * 2**(attempt-1)` seconds (capped at 60 s). Errors that a retry cannot fix (HTTP 400, 401,
403, 404, 422: a wrong model name, key or request) end the document at once.

Two request modes share this path, so the embedded server and a vLLM/SGLang cluster are driven identically:
  chat      POST /v1/chat/completions with the rendered prompt; the answer text is parsed (FineWeb-Edu's way).
  decision  POST /v1/systemone (`transformers serve`'s typed-decision endpoint, started with a decision config whose
            template ends the assistant turn with "Educational score: "): one forward pass gives the probability of
            each score 0..5; score = the most likely, score_expected = Σ p·score. No text to parse.

The API key is read from the environment variable named in the config at request time and only ever placed in the
Authorization header: it is not an attribute, not in any message, not in any output.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from winnow.classifiers.parsing import MAX_SCORE, MIN_SCORE, parse_score
from winnow.classifiers.prompt import Prompt

MAX_BACKOFF_S = 60.0
FATAL_STATUSES = {400, 401, 403, 404, 422}  # the same request can never succeed
SCORE_LABELS = [str(s) for s in range(MIN_SCORE, MAX_SCORE + 1)]


class AnnotatorUnavailable(RuntimeError):
    """The endpoint cannot be used at all (unreachable, wrong model, refused key): stop before any work."""


class _Transient(Exception):
    """A failed request worth retrying (timeout, connection, 5xx, 429, malformed reply)."""


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


def api_root(base_url: str) -> str:
    """`http://host:8000/v1/` and `http://host:8000` both mean the server root `http://host:8000`."""
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


@dataclass
class EndpointAnnotator:
    base_url: str
    model: str
    prompt: Prompt
    mode: str = "chat"  # chat | decision
    api_key_env: str | None = None
    timeout_s: float = 120.0
    max_attempts: int = 3
    backoff_s: float = 2.0
    temperature: float = 0.0
    max_tokens: int = 512
    extra_body: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.root = api_root(self.base_url)

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

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

    # ---- one document ----------------------------------------------------------------------------------------
    async def annotate(self, text: str) -> Annotation:
        """Rate one document: retry until scored or `max_attempts` is spent; never raises for a bad answer."""
        rendered = self.prompt.render(text)
        result = Annotation(status="failed")
        reasons: list[str] = []
        got_answer = False
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=self.timeout_s, headers=self._headers()) as client:
            for attempt in range(1, self.max_attempts + 1):
                result.attempts = attempt
                try:
                    answer = await self._request(client, rendered, result)
                except _Fatal as e:
                    reasons.append(str(e))
                    break
                except _Transient as e:
                    reasons.append(str(e))
                else:
                    got_answer = True
                    result.response, result.score, result.score_expected, reason = answer
                    if result.score is not None:
                        result.status, result.error = "scored", None
                        break
                    reasons.append(reason)
                if attempt < self.max_attempts:
                    await asyncio.sleep(min(self.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S))
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
            reply = await client.post(url, json=payload)
        except httpx.TimeoutException:
            raise _Transient(f"timeout after {self.timeout_s:g} s") from None
        except httpx.TransportError as e:
            raise _Transient(f"server unreachable ({type(e).__name__})") from None
        if reply.status_code != 200:
            detail = reply.text[:200].replace("\n", " ")
            error = _Fatal if reply.status_code in FATAL_STATUSES else _Transient
            raise error(f"HTTP {reply.status_code}: {detail}")
        try:
            body = reply.json()
            if self.mode == "decision":
                return self._read_decision(body, result)
            return self._read_chat(body, result)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise _Transient(f"malformed reply: {reply.text[:120]!r}") from None

    @staticmethod
    def _read_chat(body: dict, result: Annotation):
        text = body["choices"][0]["message"]["content"] or ""
        usage = body.get("usage") or {}
        result.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        result.completion_tokens += int(usage.get("completion_tokens") or 0)
        parsed = parse_score(text)
        return text, parsed.score, None, parsed.reason

    @staticmethod
    def _read_decision(body: dict, result: Annotation):
        probabilities = {str(k): float(v) for k, v in body["answers"]["score"]["probabilities"].items()}
        if sorted(probabilities) != SCORE_LABELS:
            raise ValueError(f"labels {sorted(probabilities)}")
        usage = body.get("usage") or {}
        result.prompt_tokens += int(usage.get("input_tokens") or 0)
        best = max(probabilities, key=probabilities.get)
        expected = sum(int(label) * p for label, p in probabilities.items())
        return json.dumps(probabilities), int(best), expected, None


async def annotate_document(document, generate, annotator: EndpointAnnotator) -> dict:
    """datatrove InferenceRunner rollout: one annotation of `document`, as a JSON-able dict.

    `generate` (the runner's own request path) is not used: it has no timeout for local URLs, ends the whole task
    on an HTTP 500, retries a fixed 6 times over ~5 minutes, and returns text only (no decision endpoint).
    """
    return (await annotator.annotate(document.text)).to_dict()

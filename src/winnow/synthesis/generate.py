"""One synthetic generation: a rendered prompt sent to an OpenAI-compatible chat endpoint, the answer kept whole.

`TextGenerator` is the annotator's client (winnow.classifiers.annotators.EndpointAnnotator: the whole-request
deadline, the reply cap, retries with jittered backoff and Retry-After, the pooled connection, the start-up
check) with only the reading of an answer changed: the text is kept as it is (no score to parse) with the
reply's `finish_reason` and token counts. Every request ends in one of two states, never an exception:

  generated  an answer with text; `truncated` is True when it stopped on max_tokens (finish_reason "length")
  failed     no usable answer after `max_attempts` (reason: HTTP status, timeout, unreachable, malformed reply,
             empty completion, reply_too_large); `error` lists every attempt's reason, in order

Sampling settings beyond temperature and max_tokens (top_p, stop) travel in the request body.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from winnow.classifiers.annotators import EndpointAnnotator, _token_count
from winnow.classifiers.prompt import Prompt

# the rendered synthesis prompt arrives whole: the annotator's document template is the identity
WHOLE_PROMPT = Prompt(version="synthesis", template="<EXAMPLE>", max_chars=0)


@dataclass
class Generation:
    status: str = "failed"  # generated | failed
    text: str | None = None
    finish_reason: str | None = None  # the server's: stop | length | ...
    truncated: bool = False  # stopped on max_tokens
    attempts: int = 0
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class TextGenerator(EndpointAnnotator):
    prompt: Prompt = WHOLE_PROMPT
    mode: str = "chat"
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)

    def __post_init__(self):
        super().__post_init__()
        self.extra_body = {"top_p": self.top_p, **({"stop": list(self.stop)} if self.stop else {}), **self.extra_body}

    async def generate(self, rendered: str) -> Generation:
        """One generation: retried until an answer with text comes back or `max_attempts` is spent."""
        result = Generation()
        started = time.monotonic()

        def accept(answer) -> str | None:
            text, finish_reason = answer
            if not text.strip():
                return f"empty completion (finish_reason {finish_reason})"
            result.status, result.text, result.finish_reason = "generated", text, finish_reason
            result.truncated = finish_reason == "length"
            return None

        reasons, _ = await self._attempts(rendered, result, accept)
        if result.status != "generated":
            result.error = " | ".join(reasons)
        result.seconds = time.monotonic() - started
        return result

    def _read_chat(self, body: dict, result: Generation):
        choice = body["choices"][0]
        text = choice["message"]["content"] or ""
        if not isinstance(text, str):
            raise TypeError("content is not text")
        # usage counts every attempt's tokens: a retried answer was still computed (and paid for)
        result.prompt_tokens += _token_count(body.get("usage"), "prompt_tokens")
        result.completion_tokens += _token_count(body.get("usage"), "completion_tokens")
        return text, choice.get("finish_reason")


async def generate_document(document, generate, generator: TextGenerator) -> dict:
    """datatrove InferenceRunner rollout: one generation for a plan entry (its prompt is the document's text).
    The runner's own `generate` is not used, for the reasons given in annotators.annotate_document."""
    return (await generator.generate(document.text)).to_dict() | {"model": generator.label}

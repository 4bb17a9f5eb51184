"""Reading the score out of an LLM's answer to the FineWeb-Edu prompt, and combining several answers.

The prompt asks the model to end with "Educational score:  <total points>". Real answers (see
../shared/data/annotations/) write it with markdown (`**Educational score:** 3`), extra words
(`Educational score: 2 points`, `The educational score is: 2`), a scale (`3/5`, `3 out of 5`), trailing
punctuation (`2.`) or quotes, and sometimes state it first and justify afterwards. The last such statement wins,
because models revise themselves. A missing statement, a non-integer or a value outside 0-5 is *unparseable*,
with the reason; a score is never guessed from other numbers in the text.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass

MIN_SCORE, MAX_SCORE = 0, 5

_SCORE_STATEMENT = re.compile(
    r"educational\s+score"  # the words the prompt asks for, any case
    r"[*_`'\"\s]*"  # markdown emphasis or quotes closing the label
    r"(?:is\s*)?[:=\-–]?\s*(?:is\s*)?"  # "score: N", "score is N", "score is: N", "score = N"
    r"[*_`'\"\s]*"  # markdown or quotes opening the number
    r"(?P<number>-?\d+(?:[.,]\d+)?)"
    r"(?P<scale>\s*(?:/|out\s+of)\s*\d+)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ParsedScore:
    score: int | None  # 0..5, or None when unparseable
    reason: str | None = None  # why it is unparseable

    @property
    def ok(self) -> bool:
        return self.score is not None


def parse_score(answer: str | None) -> ParsedScore:
    """The integer score 0..5 stated last as "Educational score: N" in `answer`, or why there is none."""
    if not answer or not answer.strip():
        return ParsedScore(None, "empty answer")
    matches = list(_SCORE_STATEMENT.finditer(answer))
    if not matches:
        return ParsedScore(None, "no 'Educational score: N' statement")
    last = matches[-1]
    rest_of_sentence = re.split(r"\n|[.!?](?:\s|$)", answer[last.end() :], maxsplit=1)[0]
    if re.search(r"\d", rest_of_sentence):  # e.g. "Educational score: **2 (lowered to 0)**"
        return ParsedScore(
            None, f"ambiguous score statement {answer[last.start() : last.end() + len(rest_of_sentence)]!r}"
        )
    raw = last.group("number").replace(",", ".")
    value = float(raw)
    if value != int(value):
        return ParsedScore(None, f"non-integer score {raw}")
    if not MIN_SCORE <= value <= MAX_SCORE:
        return ParsedScore(None, f"score {int(value)} outside {MIN_SCORE}-{MAX_SCORE}")
    return ParsedScore(int(value))


AGGREGATIONS = ("mean", "median", "majority")


def aggregate_scores(scores: list[int | None], how: str = "mean") -> float | None:
    """One score from several answers (a jury of samples or models); unparseable ones (None) are left out.

    `mean` and `median` may be fractional (FineWeb-Edu trains a regressor on such targets); `majority` is the most
    frequent score, ties broken towards the lower score so that a split jury never inflates a document's value.
    """
    valid = [s for s in scores if s is not None]
    if not valid:
        return None
    if how == "mean":
        return statistics.fmean(valid)
    if how == "median":
        return float(statistics.median(valid))
    if how == "majority":
        counts = Counter(valid)
        best = max(counts.values())
        return float(min(s for s, n in counts.items() if n == best))
    raise ValueError(f"aggregation {how!r}: expected one of {', '.join(AGGREGATIONS)}")

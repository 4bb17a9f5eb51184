"""The benchmarks, read from `../shared/data/benchmarks/` in their native files, as log-likelihood requests.

Every multiple-choice task becomes an `Item`: one (context, continuation) pair per choice and the gold
index. Prompts follow lm-evaluation-harness / lighteval's zero-shot "cloze" formulation (the answer text
is scored, never a letter), which is what FineWeb and SmolLM report for small models:

| task | context | continuation |
|---|---|---|
| arc_easy, arc_challenge | "Question: {q}\\nAnswer:" | " {choice}" |
| piqa | "Question: {goal}\\nAnswer:" | " {solution}" |
| hellaswag | "{activity}: {ctx_a} {Ctx_b}" (lm-eval's preprocessing) | " {ending}" |
| openbookqa | "{question stem}" | " {choice}" |
| siqa | "Question: {context} {question}\\nAnswer:" | " {answer}" |
| commonsense_qa | "Question: {q}\\nAnswer:" | " {answer}" |
| mmlu | "Question: {q}\\nAnswer:" (cloze, as FineWeb) | " {choice}" |
| winogrande | the sentence up to the blank, with each option (partial scoring) | the rest of the sentence |
| lambada | the passage without its last word | " {last word}" (greedy match = correct) |
| wikitext | — | whole articles (rolling log-likelihood → perplexity) |

SIQA and CommonsenseQA come in llm-foundry's letter form (options listed inside the query); we parse
the options back out of the query to score them in cloze form.

Items keep their index in the whole task file (`Item.doc_id`), so an item has the same id in every
ablation and whichever items `select` keeps: `limit_mode="first"` takes the first N items of the file
(lm-eval's `--limit`), `"sample"` N items drawn with a fixed seed (kept in file order).
The lm-eval task YAMLs in `lm_eval_tasks/` describe the same prompts for lm-evaluation-harness
(`make eval-parity` checks that both score them alike).
"""

from __future__ import annotations

import ast
import bz2
import csv
import functools
import io
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Item:
    requests: list[tuple[str, str]]  # (context, continuation) per choice; one pair for lambada
    gold: int = 0
    doc_id: int = -1  # index in the whole task file (set by load_task)

    @property
    def choice_chars(self) -> list[int]:
        """len(choice) per request as lm-eval's acc_norm counts it: the continuation without the leading
        target delimiter (" "). WinoGrande's choices differ in the context, its continuation is shared."""
        return [len(x[1:]) if x.startswith(" ") else len(x) for _, x in self.requests]


LIMIT_MODES = ("first", "sample")


def default_benchmarks_dir() -> Path:
    """The benchmark files beside a checkout (`ablate.benchmarks_dir`'s default), from the working folder."""
    return Path("../shared/data/benchmarks")


def load_task(name: str, benchmarks_dir: str | Path | None = None) -> list:
    """All items of a task (wikitext: a list of article strings). Read once per process (HellaSwag and
    MMLU take seconds to parse), so treat the list as read-only."""
    root = Path(benchmarks_dir) if benchmarks_dir else default_benchmarks_dir()
    if name not in REGISTRY:
        raise ValueError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    return _load(name, root.resolve())


@functools.cache
def _load(name: str, root: Path) -> list:
    items = REGISTRY[name].load(root)
    for i, item in enumerate(items):
        if isinstance(item, Item):
            item.doc_id = i
    return items


def select(n_items: int, limit: int | None, mode: str = "sample", seed: int = 1234) -> list[int]:
    """Indices (ascending) of the items to evaluate: all of them, the first `limit` ("first", lm-eval's
    --limit) or `limit` drawn with `seed` ("sample")."""
    if mode not in LIMIT_MODES:
        raise ValueError(f"limit mode {mode!r}; modes: {', '.join(LIMIT_MODES)}")
    if limit is None or limit >= n_items:
        return list(range(n_items))
    if mode == "first":
        return list(range(limit))
    return sorted(random.Random(seed).sample(range(n_items), limit))


def sample(items: list, limit: int | None, seed: int) -> list:
    """`limit` items drawn with a fixed seed (kept in file order), or all of them."""
    return [items[i] for i in select(len(items), limit, "sample", seed)]


# ---- readers, one per native format --------------------------------------------------------------------


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _question_answer(question: str) -> str:
    q = question.strip()
    if not q.startswith("Question:"):
        q = f"Question: {q}"
    return f"{q}\nAnswer:"


def _arc(root: Path, name: str) -> list[Item]:
    rows = _jsonl(root / "llm-foundry" / "world_knowledge" / f"{name}.jsonl")
    return [Item([(_question_answer(r["query"]), f" {c}") for c in r["choices"]], r["gold"]) for r in rows]


def _piqa(root: Path) -> list[Item]:
    rows = _jsonl(root / "llm-foundry" / "commonsense_reasoning" / "piqa.jsonl")
    return [Item([(_question_answer(r["query"]), f" {c}") for c in r["choices"]], r["gold"]) for r in rows]


def _openbookqa(root: Path) -> list[Item]:
    rows = _jsonl(root / "llm-foundry" / "commonsense_reasoning" / "openbook_qa.jsonl")
    return [Item([(r["query"], f" {c}") for c in r["choices"]], r["gold"]) for r in rows]


_OPTION = re.compile(r"^([A-E])\. (.*)$")


def _lettered(query: str) -> tuple[str, list[str]]:
    """Split llm-foundry's 'Context/Question … Choices:\\nA. …\\nB. …\\nAnswer:' into the text and the options."""
    head, _, tail = query.partition("\nChoices:\n")
    options = [m.group(2) for line in tail.splitlines() if (m := _OPTION.match(line))]
    return head, options


def _siqa(root: Path) -> list[Item]:
    items = []
    for r in _jsonl(root / "llm-foundry" / "commonsense_reasoning" / "siqa.jsonl"):
        head, options = _lettered(r["query"])
        context = re.sub(r"^Context: ", "", head).replace("\nQuestion: ", " ")
        items.append(Item([(f"Question: {context}\nAnswer:", f" {o}") for o in options], r["gold"]))
    return items


def _commonsense_qa(root: Path) -> list[Item]:
    items = []
    for r in _jsonl(root / "llm-foundry" / "commonsense_reasoning" / "commonsense_qa.jsonl"):
        head, options = _lettered(r["query"])
        items.append(Item([(_question_answer(head), f" {o}") for o in options], r["gold"]))
    return items


def _winogrande(root: Path) -> list[Item]:
    rows = _jsonl(root / "llm-foundry" / "language_understanding" / "winogrande.jsonl")
    return [Item([(c, f" {r['continuation']}") for c in r["context_options"]], r["gold"]) for r in rows]


def _lambada(root: Path) -> list[Item]:
    rows = _jsonl(root / "llm-foundry" / "language_understanding" / "lambada_openai.jsonl")
    return [Item([(r["context"].rstrip(), f" {r['continuation'].strip()}")]) for r in rows]


def _hellaswag_clean(text: str) -> str:
    """lm-eval's HellaSwag preprocessing: WikiHow '[title]' markers become sentence breaks, other brackets go."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


_SENTENCE_END = re.compile(r"^(.*[.!?]) (\S.*)$")


def hellaswag_context(line: str) -> str:
    """The six-line file's context line is `activity_label + ": " + ctx` with ctx = ctx_a + " " + ctx_b as in
    the original jsonl; lm-eval (and lighteval) build `ctx_a + " " + ctx_b.capitalize()`. ctx_b, the unfinished
    noun phrase that follows ctx_a's last sentence, is non-empty exactly for the ActivityNet items, whose
    context does not end a sentence ("… on a roof. he" → "… on a roof. He"); WikiHow items have none."""
    label, sep, ctx = line.partition(": ")
    if sep and ctx and ctx.rstrip()[-1:] not in ".!?" and (m := _SENTENCE_END.match(ctx)):
        ctx = f"{m.group(1)} {m.group(2).capitalize()}"
    return f"{label}{sep}{ctx}"


def _hellaswag(root: Path) -> list[Item]:
    with bz2.open(root / "hellaswag" / "hellaswag_val_full.txt.bz2", "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    items = []
    for i in range(0, len(lines) - 5, 6):  # 6 lines per item: context, gold, 4 endings
        context = _hellaswag_clean(hellaswag_context(lines[i]))
        endings = [_hellaswag_clean(e) for e in lines[i + 2 : i + 6]]
        items.append(Item([(context, f" {e}") for e in endings], int(lines[i + 1])))
    return items


def _mmlu(root: Path) -> list[Item]:
    items = []
    for path in sorted((root / "mmlu-redux").glob("mmlu_*.csv")):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("cp1252")  # mmlu_moral_scenarios.csv
        # 13 questions carry Windows line breaks inside quoted fields: "\n" as in the other questions (and as
        # lm-eval sees them, reading the files as text)
        text = text.replace("\r\n", "\n")
        delimiter = ";" if text.splitlines()[0].count(";") > text.splitlines()[0].count(",") else ","
        for row in csv.DictReader(io.StringIO(text), delimiter=delimiter):
            choices = ast.literal_eval(row["choices"])
            items.append(Item([(_question_answer(row["question"]), f" {c}") for c in choices], int(row["answer"])))
    return items


def _wikitext_detokenize(text: str) -> str:
    """Undo WikiText's tokenisation (' @-@ ', ' , ', '( x )'), as lm-eval does before scoring."""
    for a, b in (
        (" @-@ ", "-"),
        (" @,@ ", ","),
        (" @.@ ", "."),
        (" : ", ": "),
        (" ; ", "; "),
        (" . ", ". "),
        (" ! ", "! "),
        (" ? ", "? "),
        (" , ", ", "),
        ("= = = =", "===="),
        ("= = =", "==="),
        ("= =", "=="),
    ):
        text = text.replace(a, b)
    text = re.sub(r"\(\s*([^\)]*?)\s*\)", r"(\1)", text)
    text = re.sub(r"\[\s*([^\]]*?)\s*\]", r"[\1]", text)
    text = re.sub(r'"\s*([^"]*?)\s*"', r'"\1"', text)
    return text.replace(" 's", "'s").replace(" n't", "n't").replace(" \n", "\n").replace("\n ", "\n")


def _wikitext(root: Path) -> list[str]:
    """WikiText-2 test, one string per article (an article starts at a ' = Title = ' line)."""
    lines = (root / "wikitext-2" / "test.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    articles, current = [], []
    for line in lines:
        if re.match(r"^ = [^=].* = $", line.rstrip("\n")) and current:
            articles.append("".join(current))
            current = []
        current.append(line)
    if current:
        articles.append("".join(current))
    return [_wikitext_detokenize(a).strip() for a in articles if a.strip()]


@dataclass(frozen=True)
class Task:
    """A benchmark: how its items are read, and how they are scored (proxy/evaluate.py)."""

    name: str
    load: Callable[[Path], list]
    kind: str  # "multiple_choice" (acc, acc_norm) | "greedy_last_word" (lambada) | "perplexity" (wikitext)


# The task registry: the only list of benchmark names. Config defaults and validation (ablate.tasks), the CLI's
# `winnow evaluate --tasks` default and the evaluator read it. Adding a task: a loader above and one line here.
REGISTRY: dict[str, Task] = {
    t.name: t
    for t in [
        Task("arc_easy", lambda root: _arc(root, "arc_easy"), "multiple_choice"),
        Task("arc_challenge", lambda root: _arc(root, "arc_challenge"), "multiple_choice"),
        Task("hellaswag", _hellaswag, "multiple_choice"),
        Task("piqa", _piqa, "multiple_choice"),
        Task("siqa", _siqa, "multiple_choice"),
        Task("openbookqa", _openbookqa, "multiple_choice"),
        Task("winogrande", _winogrande, "multiple_choice"),
        Task("commonsense_qa", _commonsense_qa, "multiple_choice"),
        Task("mmlu", _mmlu, "multiple_choice"),
        Task("lambada", _lambada, "greedy_last_word"),
        Task("wikitext", _wikitext, "perplexity"),
    ]
}
TASKS = list(REGISTRY)
MULTIPLE_CHOICE = [name for name, task in REGISTRY.items() if task.kind == "multiple_choice"]

"""process_docs for the lm-eval task YAMLs beside this file: winnow's local benchmark files → the fields of the
hub datasets that lm-evaluation-harness's own tasks read (so each YAML's doc_to_text/doc_to_choice is lm-eval's
template wherever winnow scores the same prompt; see README.md here for each task's formulation).

Loaded by lm-eval (`--include_path src/winnow/proxy/lm_eval_tasks`, run from the repository root so the YAMLs'
`../shared/data/benchmarks/...` paths resolve; `make eval-parity` substitutes another benchmarks folder). Needs
only `datasets` and, for HellaSwag, lm-eval itself: this module imports nothing from winnow, so it shows the
conversion independently of winnow's readers in winnow/proxy/tasks.py.
"""

from __future__ import annotations

import ast
import csv
import io
import re

import datasets


def _strip_question(query: str) -> str:
    """llm-foundry's queries carry lm-eval's "Question: " prefix (PIQA also a trailing newline): the bare question."""
    q = query.strip()
    return q[len("Question:") :].strip() if q.startswith("Question:") else q


def process_arc(dataset: datasets.Dataset) -> datasets.Dataset:
    # lm-eval's arc_easy/arc_challenge: "Question: {{question}}\nAnswer:" → " {{choices.text}}"
    return dataset.map(
        lambda d: {"question": _strip_question(d["query"]), "choice_texts": d["choices"], "label": d["gold"]},
        remove_columns=dataset.column_names,
    )


def process_piqa(dataset: datasets.Dataset) -> datasets.Dataset:
    # lm-eval's piqa: "Question: {{goal}}\nAnswer:" → " {{[sol1, sol2]}}"
    return dataset.map(
        lambda d: {
            "goal": _strip_question(d["query"]),
            "sol1": d["choices"][0],
            "sol2": d["choices"][1],
            "label": d["gold"],
        },
        remove_columns=dataset.column_names,
    )


def process_openbookqa(dataset: datasets.Dataset) -> datasets.Dataset:
    # lm-eval's openbookqa: "{{question_stem}}" → " {{choices.text}}"
    return dataset.map(
        lambda d: {"question_stem": d["query"], "choice_texts": d["choices"], "label": d["gold"]},
        remove_columns=dataset.column_names,
    )


_OPTION = re.compile(r"^([A-E])\. (.*)$")


def _lettered(query: str) -> tuple[str, list[str]]:
    """llm-foundry's 'Context/Question … Choices:\\nA. …\\nB. …\\nAnswer:' → (the text, the options)."""
    head, _, tail = query.partition("\nChoices:\n")
    return head, [m.group(2) for line in tail.splitlines() if (m := _OPTION.match(line))]


def process_siqa(dataset: datasets.Dataset) -> datasets.Dataset:
    def convert(d):
        head, options = _lettered(d["query"])
        context, _, question = head.removeprefix("Context: ").partition("\nQuestion: ")
        return {"context": context, "question": question, "answers": options, "label": d["gold"]}

    return dataset.map(convert, remove_columns=dataset.column_names)


def process_commonsense_qa(dataset: datasets.Dataset) -> datasets.Dataset:
    def convert(d):
        head, options = _lettered(d["query"])
        return {"question": _strip_question(head), "answers": options, "label": d["gold"]}

    return dataset.map(convert, remove_columns=dataset.column_names)


# ---- WinoGrande: llm-foundry keeps lm-eval's partial-scoring split ----------------------------------------


def winogrande_gold(doc: dict) -> int:
    """doc_to_text returning an int is lm-eval's signal for multiple inputs (one context per option)."""
    return int(doc["gold"])


def winogrande_options(doc: dict) -> list[str]:
    return list(doc["context_options"])  # sentence[:blank] + option, as lm-eval's doc_to_choice


def winogrande_continuation(doc: dict) -> str:
    return doc["continuation"].strip()  # sentence[blank + 1:].strip(), as lm-eval's doc_to_target


# ---- HellaSwag: the six-line text file → the hub's fields → lm-eval's own process_docs ----------------------

_SENTENCE_END = re.compile(r"^(.*[.!?]) (\S.*)$")


def _split_ctx(ctx: str) -> tuple[str, str]:
    """ctx = ctx_a + " " + ctx_b in the original data. ctx_b (the unfinished noun phrase after ctx_a's last
    sentence) is non-empty for exactly the ActivityNet items, whose context does not end a sentence; the
    WikiHow items have ctx_b = "" (their text ends with ".", "!" or "?")."""
    if ctx.rstrip()[-1:] in ".!?":
        return ctx, ""
    m = _SENTENCE_END.match(ctx)
    return (m.group(1), m.group(2)) if m else (ctx, "")


def process_hellaswag(dataset: datasets.Dataset) -> datasets.Dataset:
    """`dataset` has one row per line of hellaswag_val_full.txt.bz2: per item `activity_label: ctx`, the gold
    index, 4 endings. Rebuilt into the hub's columns, then preprocessed by lm-eval's hellaswag.utils.process_docs
    (ctx_a + " " + ctx_b.capitalize(), WikiHow bracket markers removed)."""
    from lm_eval.tasks.hellaswag.utils import process_docs

    lines = dataset["text"]
    docs = []
    for i in range(0, len(lines) - 5, 6):
        label, _, ctx = lines[i].partition(": ")
        ctx_a, ctx_b = _split_ctx(ctx)
        docs.append(
            {
                "activity_label": label,
                "ctx_a": ctx_a,
                "ctx_b": ctx_b,
                "endings": lines[i + 2 : i + 6],
                "label": lines[i + 1].strip(),
            }
        )
    return process_docs(datasets.Dataset.from_list(docs))


# ---- MMLU-Redux: 57 CSV files (48 with ",", 9 with ";"; one cp1252) read as whole documents ------------------


def process_mmlu(dataset: datasets.Dataset) -> datasets.Dataset:
    """One row per CSV file (read as latin-1, which maps every byte, so the bytes are recovered exactly)."""
    rows = []
    for document in dataset["text"]:
        raw = document.encode("latin-1")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("cp1252")  # mmlu_moral_scenarios.csv
        header = text.splitlines()[0]
        delimiter = ";" if header.count(";") > header.count(",") else ","
        for row in csv.DictReader(io.StringIO(text), delimiter=delimiter):
            rows.append(
                {"question": row["question"], "choices": ast.literal_eval(row["choices"]), "answer": int(row["answer"])}
            )
    return datasets.Dataset.from_list(rows)

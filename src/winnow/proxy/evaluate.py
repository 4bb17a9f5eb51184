"""Zero-shot evaluation of a causal LM by log-likelihood, scored as lm-evaluation-harness 0.4.x scores it.

For a multiple-choice item every choice is a (context, " " + choice) request; the model's summed
log-probability ll of the continuation tokens gives, per item:
- `acc`: 1 if argmax(ll) is the gold choice;
- `acc_norm`: 1 if argmax(ll / len(choice)) is gold, len counted in characters WITHOUT the leading target
  delimiter — lm-eval 0.4.x's acc_norm (it removes the bias towards short answers);
- `acc_norm_lighteval`: the same with the continuation's length INCLUDING its leading space (lighteval's
  character normalisation; winnow's acc_norm before 0.3). It differs from acc_norm on ~0.5 % of items;
- `prob_correct`: softmax over the choices' summed log-likelihoods, the gold choice's probability (continuous);
- `logprob_correct_norm`: the gold choice's ll / len(choice) (continuous, in nats per character).
Ties go to the first choice (numpy's argmax). WinoGrande's choices differ in the context and share the
continuation, so both normalisations divide by the same length and acc_norm = acc (lm-eval reports only acc).
LAMBADA: `acc` when every target token is the model's greedy choice (acc_norm = acc kept for the averages),
`prob_correct` = exp(ll) and `logprob_correct_norm` = ll / len(word) of the target word, and `perplexity`.
WikiText-2 reports word/byte/token perplexity from a rolling (non-overlapping window) log-likelihood of whole
articles. A task's metric is the mean over its items; `<metric>_stderr` is the standard error of that mean
(sample standard deviation / sqrt(n), lm-eval's `mean_stderr`; for 0/1 metrics sqrt(p(1-p)/(n-1))). `stderr` is
acc_norm's (what the report reads).

Context/continuation tokenisation follows lm-eval: trailing blanks of the context move to the
continuation, the pair is encoded as a whole and the context's tokens are cut off the front. The
tokenizer's own special tokens are kept (proxy tokenizers put `<|endoftext|>` first, as in training).

Outputs (`write_lm_eval_outputs`), beside a checkpoint's `eval.json` or `winnow evaluate --output`:
    results.json              lm-eval's layout: results[task]["acc,none"], ["acc_stderr,none"], …, n-samples,
                              configs, versions, n-shot, higher_is_better, config, git_hash, date
    samples_<task>.jsonl      one record per evaluated item (lm-eval's --log_samples keys: doc_id = the item's
                              index in the whole task file, target = gold index, arguments, resps,
                              filtered_resps) plus acc, acc_norm, acc_norm_lighteval (0/1), prob_correct,
                              logprob_correct_norm (floats) and choice_chars; `read_samples` reads it back.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from pathlib import Path

import torch

from winnow.proxy.tasks import MULTIPLE_CHOICE, REGISTRY, Item, default_benchmarks_dir, load_task, select


def load_model(path: str | Path, device: str = "cpu", dtype: str | None = None):
    """A HF model folder, or a .gguf file (de-quantised to float by transformers' GGUF loader); bf16 on a GPU,
    float32 on CPU, unless `dtype` ("float32", "bfloat16") says otherwise."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if dtype is not None:
        dtype = getattr(torch, dtype)
    else:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    if path.suffix == ".gguf":
        kwargs = {"gguf_file": path.name}
        folder = str(path.parent)
    else:
        kwargs, folder = {}, str(path)
    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kwargs).to(device)
    model.eval()
    return model, tokenizer


def max_length(model) -> int:
    return int(getattr(model.config, "max_position_embeddings", 2048))


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    blanks = len(context) - len(context.rstrip())
    if blanks:
        context, continuation = context[:-blanks], context[-blanks:] + continuation
    whole = tokenizer(context + continuation).input_ids
    n_context = len(tokenizer(context).input_ids)
    return whole[:n_context], whole[n_context:]


@torch.no_grad()
def score_tokens(
    model, sequences: list[tuple[list[int], list[int]]], batch_size: int = 16, progress=None
) -> list[tuple[float, bool]]:
    """For each (context ids, continuation ids): (sum of log P(continuation), all tokens greedy?)."""
    limit = max_length(model)
    device = next(model.parameters()).device
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    prepared = []
    for context, continuation in sequences:
        full = (context + continuation)[-(limit + 1) :]
        prepared.append((full[:-1], full[-len(continuation) :]))
    order = sorted(range(len(prepared)), key=lambda i: -len(prepared[i][0]))  # longest first, like lm-eval
    results: list[tuple[float, bool]] = [(0.0, False)] * len(prepared)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        width = max(len(prepared[i][0]) for i in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for row, i in enumerate(batch):
            inputs = prepared[i][0]
            ids[row, : len(inputs)] = torch.tensor(inputs)
            mask[row, : len(inputs)] = 1
        hidden = decoder(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        # only the positions that predict continuation tokens go through the (large) output layer
        rows, cols, targets, spans = [], [], [], []
        for row, i in enumerate(batch):
            n_inputs, target = len(prepared[i][0]), prepared[i][1]
            positions = range(n_inputs - len(target), n_inputs)
            spans.append((len(targets), len(target)))
            rows.extend([row] * len(target))
            cols.extend(positions)
            targets.extend(target)
        logits = head(hidden[torch.tensor(rows), torch.tensor(cols)]).float()
        logprobs = torch.log_softmax(logits, dim=-1)
        targets_t = torch.tensor(targets, device=logprobs.device)
        picked = logprobs.gather(1, targets_t[:, None]).squeeze(1)
        greedy = logprobs.argmax(dim=-1) == targets_t
        for (offset, n), i in zip(spans, batch):
            results[i] = (picked[offset : offset + n].sum().item(), bool(greedy[offset : offset + n].all()))
        if progress is not None:
            progress.update(len(batch))
    return results


MC_METRICS = ("acc", "acc_norm", "acc_norm_lighteval", "prob_correct", "logprob_correct_norm")
PERPLEXITY_METRICS = ("word_perplexity", "byte_perplexity", "bits_per_byte", "token_perplexity")
RECORDS_VERSION = 2  # of the per-item records and metric definitions (part of an evaluation's request)


def score_items(model, tokenizer, name: str, items: list, batch_size: int = 16, progress=None) -> list[dict]:
    """One lm-eval-shaped record per item (see the module docstring); WikiText: per article."""
    if name == "wikitext":
        return _perplexity_records(model, tokenizer, items, progress)
    requests = [request for item in items for request in item.requests]
    encoded = [encode_pair(tokenizer, c, x) for c, x in requests]
    scores = score_tokens(model, encoded, batch_size, progress)
    records, start = [], 0
    for item in items:
        k = len(item.requests)
        pairs = scores[start : start + k]
        record = _item_record(name, item, [s for s, _ in pairs], [g for _, g in pairs])
        if name == "lambada":  # its perplexity is per target token
            record["tokens"] = len(encoded[start][1])
        records.append(record)
        start += k
    return records


def _item_record(name: str, item, logliks: list[float], greedy: list[bool]) -> dict:
    chars = item.choice_chars
    gold = item.gold
    if name == "lambada":
        ll = logliks[0]
        correct = float(greedy[0])
        metrics = {
            "acc": correct,
            "acc_norm": correct,
            "acc_norm_lighteval": correct,
            "prob_correct": math.exp(ll),
            "logprob_correct_norm": ll / max(chars[0], 1),
        }
    else:
        top = max(logliks)
        log_total = top + math.log(sum(math.exp(ll - top) for ll in logliks))
        lighteval = [len(x) for _, x in item.requests]
        metrics = {
            "acc": float(_argmax(logliks) == gold),
            "acc_norm": float(_argmax([ll / max(n, 1) for ll, n in zip(logliks, chars)]) == gold),
            "acc_norm_lighteval": float(_argmax([ll / max(n, 1) for ll, n in zip(logliks, lighteval)]) == gold),
            "prob_correct": math.exp(logliks[gold] - log_total),
            "logprob_correct_norm": logliks[gold] / max(chars[gold], 1),
        }
    return {
        "doc_id": item.doc_id,
        "doc": {"choices": [x[1:] if x.startswith(" ") else x for _, x in item.requests], "gold": gold},
        "target": gold,
        "arguments": [[c, x] for c, x in item.requests],
        "resps": [[[ll, g]] for ll, g in zip(logliks, greedy)],
        "filtered_resps": [[ll, g] for ll, g in zip(logliks, greedy)],
        "filter": "none",
        "metrics": list(MC_METRICS),
        **metrics,
        "choice_chars": chars,
    }


def aggregate(name: str, records: list[dict]) -> dict:
    """A task's metrics from its per-item records (fractions; `stderr` = acc_norm's)."""
    n = len(records)
    if name == "wikitext":
        logprob = sum(r["loglikelihood"] for r in records)
        n_tokens = sum(r["tokens"] for r in records)
        n_words = sum(r["word_perplexity"][1] for r in records)
        n_bytes = sum(r["byte_perplexity"][1] for r in records)
        bits = -logprob / n_bytes / math.log(2)
        return {
            "acc": None,
            "acc_norm": None,
            "n": n,
            "token_perplexity": math.exp(-logprob / n_tokens),
            "word_perplexity": math.exp(-logprob / n_words),
            "byte_perplexity": 2**bits,
            "bits_per_byte": bits,
        }
    result: dict = {}
    for metric in MC_METRICS:
        values = [r[metric] for r in records]
        result[metric] = sum(values) / n
        result[f"{metric}_stderr"] = _mean_stderr(values)
    result["n"] = n
    result["stderr"] = result["acc_norm_stderr"]
    if name == "lambada":
        logprob = sum(r["filtered_resps"][0][0] for r in records)
        n_tokens = sum(r["tokens"] for r in records)
        result["perplexity"] = math.exp(-logprob / n_tokens)
    return result


def evaluate_items(model, tokenizer, name: str, items: list, batch_size: int = 16, progress=None) -> dict:
    """Metrics of one task on the given items (fractions)."""
    return aggregate(name, score_items(model, tokenizer, name, items, batch_size, progress))


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: values[i])


def _mean_stderr(values: list[float]) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


@torch.no_grad()
def _perplexity_records(model, tokenizer, articles: list, progress=None) -> list[dict]:
    """Rolling log-likelihood in disjoint windows of the model's context; the first token is predicted from EOS.
    `articles` are (doc_id, text) pairs or bare strings."""
    window = max_length(model)
    prefix = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.bos_token_id
    records = []
    for index, article in enumerate(articles):
        doc_id, text = article if isinstance(article, tuple) else (index, article)
        ids = tokenizer(text, add_special_tokens=False).input_ids
        full = [prefix] + ids
        # window k scores ids[start:start+window]; its context is what precedes them (score_tokens keeps
        # only the last `window` inputs, so each window sees one token of the previous one, as in lm-eval)
        pieces = [
            (full[max(0, start + 1 - window) : start + 1], ids[start : start + window])
            for start in range(0, len(ids), window)
        ]
        logprob = sum(score for score, _ in score_tokens(model, pieces, batch_size=1))
        n_words = len(re.split(r"\s+", text.strip()))
        n_bytes = len(text.encode("utf-8"))
        records.append(
            {
                "doc_id": doc_id,
                "target": "",
                "resps": [[logprob]],
                "filtered_resps": [logprob],
                "filter": "none",
                "metrics": ["word_perplexity", "byte_perplexity", "bits_per_byte"],
                "loglikelihood": logprob,
                "tokens": len(ids),
                # lm-eval logs (loglikelihood, weight) pairs for its weighted perplexities
                "word_perplexity": [logprob, n_words],
                "byte_perplexity": [logprob, n_bytes],
                "bits_per_byte": [logprob, n_bytes],
            }
        )
        if progress is not None:
            progress.update(1)
    return records


def evaluate_with_samples(
    model,
    tokenizer,
    tasks: list[str],
    limit: int | None = None,
    seed: int = 1234,
    batch_size: int = 16,
    benchmarks_dir: str | Path | None = None,
    show_progress: bool = True,
    wikitext_articles: int | None = -1,
    limit_mode: str = "sample",
) -> tuple[dict, dict]:
    """({task: metrics}, {task: per-item records}) on `limit` items per task: the first ones
    (`limit_mode="first"`, lm-eval's --limit) or drawn with `seed` ("sample"); WikiText: `wikitext_articles`
    articles (-1 = the same `limit`). Each results entry also carries `n_original` (items in the task file)."""
    from tqdm import tqdm

    results, samples = {}, {}
    for name in tasks:
        n = wikitext_articles if name == "wikitext" and wikitext_articles != -1 else limit
        every = load_task(name, benchmarks_dir)
        keep = select(len(every), n, limit_mode, seed)
        items = [(i, every[i]) for i in keep] if name == "wikitext" else [every[i] for i in keep]
        total = len(items) if name == "wikitext" else sum(len(i.requests) for i in items)
        with tqdm(total=total, desc=name, disable=not show_progress, leave=False, dynamic_ncols=True) as bar:
            records = score_items(model, tokenizer, name, items, batch_size, bar)
        results[name] = {**aggregate(name, records), "n_original": len(every)}
        samples[name] = records
    return results, samples


def evaluate(model, tokenizer, tasks: list[str], **options) -> dict:
    """{task: {"acc", "acc_norm", ..., "n"}}: `evaluate_with_samples` (same options) without the per-item records."""
    return evaluate_with_samples(model, tokenizer, tasks, **options)[0]


# ---- lm-eval-shaped outputs ------------------------------------------------------------------------------


def lm_eval_results(results: dict, request: dict, model_path: str | Path) -> dict:
    """`results` ({task: metrics}) in lm-evaluation-harness 0.4.x's results layout."""
    out: dict = {"results": {}, "group_subtasks": {}, "configs": {}, "versions": {}, "n-shot": {}}
    out["higher_is_better"], out["n-samples"] = {}, {}
    for task, r in results.items():
        kind = REGISTRY[task].kind
        if kind == "perplexity":
            metrics = {m: r[m] for m in PERPLEXITY_METRICS}
            entry = {"alias": task}
            for m, v in metrics.items():
                entry[f"{m},none"], entry[f"{m}_stderr,none"] = v, "N/A"
            better = {m: False for m in metrics}  # perplexities: lower is better
            output_type = "loglikelihood_rolling"
        else:
            metrics = {m: r[m] for m in MC_METRICS}
            entry = {"alias": task}
            for m, v in metrics.items():
                entry[f"{m},none"], entry[f"{m}_stderr,none"] = v, r[f"{m}_stderr"]
            if "perplexity" in r:
                entry["perplexity,none"], entry["perplexity_stderr,none"] = r["perplexity"], "N/A"
            better = {m: True for m in metrics}
            output_type = "multiple_choice" if kind == "multiple_choice" else "loglikelihood"
        out["results"][task] = entry
        out["group_subtasks"][task] = []
        out["versions"][task] = float(RECORDS_VERSION)
        out["n-shot"][task] = 0
        out["higher_is_better"][task] = better
        out["n-samples"][task] = {"original": r.get("n_original", r["n"]), "effective": r["n"]}
        out["configs"][task] = {
            "task": task,
            "dataset_path": str(request.get("benchmarks_dir") or default_benchmarks_dir()),
            "output_type": output_type,
            "target_delimiter": " ",
            "num_fewshot": 0,
            "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": better[m]} for m in metrics],
            "metadata": {
                "version": float(RECORDS_VERSION),
                "formulation": "winnow.proxy.tasks (zero-shot cloze; see its module docstring)",
                "limit": request.get("limit"),
                "limit_mode": request.get("limit_mode"),
                "seed": request.get("seed"),
            },
        }
    out["config"] = {
        "model": "winnow",
        "model_args": f"pretrained={model_path}",
        "batch_size": request.get("batch_size"),
        "device": request.get("device"),
        "limit": request.get("limit"),
        "limit_mode": request.get("limit_mode"),
        "random_seed": request.get("seed"),
    }
    out["git_hash"] = _winnow_version()
    out["date"] = time.time()
    out["model_name"] = str(model_path)
    return out


def write_lm_eval_outputs(folder: str | Path, results: dict, samples: dict, request: dict, model_path) -> None:
    """results.json and samples_<task>.jsonl in `folder` (each file written atomically)."""
    from winnow.files import write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for task, records in samples.items():
        path = folder / f"samples_{task}.jsonl"
        partial = path.with_name(path.name + ".partial")
        with partial.open("w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        partial.replace(path)
    write_json(folder / "results.json", lm_eval_results(results, request, model_path))


def read_samples(folder: str | Path, task: str) -> list[dict]:
    """The per-item records of `task` that an evaluation wrote into `folder` (ordered by doc_id)."""
    path = Path(folder) / f"samples_{task}.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return sorted(records, key=lambda r: r["doc_id"])


def _winnow_version() -> str:
    """winnow's version and, in a git checkout, its commit (lm-eval's `git_hash`)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version("winnow-curate")
    except PackageNotFoundError:
        text = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"winnow-{text}" + (f"+{commit}" if commit else "")


def average_acc_norm(results: dict) -> float | None:
    """The mean acc_norm over the tasks that have one (LAMBADA's acc counts, WikiText does not)."""
    values = [r["acc_norm"] for r in results.values() if r.get("acc_norm") is not None]
    return sum(values) / len(values) if values else None


def format_table(results: dict) -> str:
    header = f"{'task':<16}{'n':>6}{'acc':>8}{'acc_norm':>10}{'±':>6}{'p(gold)':>9}{'ll/char':>9}   other"
    lines = [header]
    shown = {"n", "stderr", "n_original", "seconds", *MC_METRICS}
    for name, r in results.items():
        pct = lambda v: f"{100 * v:.1f}" if v is not None else "-"  # noqa: E731
        num = lambda v: f"{v:.3f}" if v is not None else "-"  # noqa: E731
        other = ", ".join(
            f"{k}={v:.3f}" for k, v in r.items() if k not in shown and not k.endswith("_stderr") and v is not None
        )
        stderr = f"{100 * r['stderr']:.1f}" if r.get("stderr") is not None else "-"
        lines.append(
            f"{name:<16}{r['n']:>6}{pct(r['acc']):>8}{pct(r['acc_norm']):>10}{stderr:>6}"
            f"{num(r.get('prob_correct')):>9}{num(r.get('logprob_correct_norm')):>9}   {other}"
        )
    avg = average_acc_norm(results)
    if avg is not None:
        lines.append(f"{'average':<16}{'':>6}{'':>8}{100 * avg:>10.1f}")
    return "\n".join(lines)


__all__ = [
    "Item",
    "MC_METRICS",
    "MULTIPLE_CHOICE",
    "evaluate",
    "evaluate_items",
    "evaluate_with_samples",
    "format_table",
    "load_model",
    "read_samples",
    "score_items",
    "score_tokens",
    "write_lm_eval_outputs",
]

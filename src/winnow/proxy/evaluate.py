"""Zero-shot evaluation of a causal LM by log-likelihood, the way lm-evaluation-harness and lighteval score it.

For a multiple-choice item every choice is a (context, continuation) request; the model's summed
log-probability of the continuation tokens picks the answer:
- `acc`: argmax of the summed log-likelihood;
- `acc_norm`: argmax of the log-likelihood divided by the continuation's length in characters
  (lm-eval's `acc_norm`, lighteval's character-normalised accuracy; it removes the bias towards short answers).
LAMBADA counts an item correct when every target token is the model's greedy choice; WikiText-2 reports
word/byte perplexity from a rolling (non-overlapping window) log-likelihood of whole articles.

Context/continuation tokenisation follows lm-eval: trailing blanks of the context move to the
continuation, the pair is encoded as a whole and the context's tokens are cut off the front. The
tokenizer's own special tokens are kept (proxy tokenizers put `<|endoftext|>` first, as in training).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from winnow.proxy.tasks import MULTIPLE_CHOICE, Item, load_task, sample


def load_model(path: str | Path, device: str = "cpu"):
    """A HF model folder, or a .gguf file (de-quantised to float by transformers' GGUF loader)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
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


def evaluate_items(model, tokenizer, name: str, items: list, batch_size: int = 16, progress=None) -> dict:
    """Metrics of one task on the given items (fractions)."""
    if name == "wikitext":
        return _perplexity(model, tokenizer, items, progress)
    requests = [request for item in items for request in item.requests]
    encoded = [encode_pair(tokenizer, c, x) for c, x in requests]
    scores = score_tokens(model, encoded, batch_size, progress)
    if name == "lambada":
        correct = [greedy for _, greedy in scores]
        acc = sum(correct) / len(correct)
        logprob = sum(s for s, _ in scores)
        n_tokens = sum(len(x) for _, x in encoded)
        return {
            "acc": acc,
            "acc_norm": acc,
            "n": len(items),
            "stderr": _stderr(acc, len(items)),
            "perplexity": math.exp(-logprob / n_tokens),
        }
    acc, acc_norm, start = 0, 0, 0
    for item in items:
        k = len(item.requests)
        logliks = [s for s, _ in scores[start : start + k]]
        lengths = [len(continuation) for _, continuation in item.requests]
        start += k
        acc += _argmax(logliks) == item.gold
        acc_norm += _argmax([ll / n for ll, n in zip(logliks, lengths)]) == item.gold
    n = len(items)
    return {"acc": acc / n, "acc_norm": acc_norm / n, "n": n, "stderr": _stderr(acc_norm / n, n)}


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: values[i])


def _stderr(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / max(n - 1, 1))


@torch.no_grad()
def _perplexity(model, tokenizer, articles: list[str], progress=None) -> dict:
    """Rolling log-likelihood in disjoint windows of the model's context; the first token is predicted from EOS."""
    window = max_length(model)
    prefix = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.bos_token_id
    logprob, n_tokens, n_words, n_bytes = 0.0, 0, 0, 0
    for text in articles:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        full = [prefix] + ids
        # window k scores ids[start:start+window]; its context is what precedes them (score_tokens keeps
        # only the last `window` inputs, so each window sees one token of the previous one, as in lm-eval)
        pieces = [
            (full[max(0, start + 1 - window) : start + 1], ids[start : start + window])
            for start in range(0, len(ids), window)
        ]
        for score, _ in score_tokens(model, pieces, batch_size=1):
            logprob += score
        n_tokens += len(ids)
        n_words += len(re.split(r"\s+", text.strip()))
        n_bytes += len(text.encode("utf-8"))
        if progress is not None:
            progress.update(1)
    return {
        "acc": None,
        "acc_norm": None,
        "n": len(articles),
        "token_perplexity": math.exp(-logprob / n_tokens),
        "word_perplexity": math.exp(-logprob / n_words),
        "bits_per_byte": -logprob / n_bytes / math.log(2),
    }


def evaluate(
    model,
    tokenizer,
    tasks: list[str],
    limit: int | None = None,
    seed: int = 1234,
    batch_size: int = 16,
    benchmarks_dir: str | Path | None = None,
    show_progress: bool = True,
    wikitext_articles: int | None = -1,
) -> dict:
    """{task: {"acc", "acc_norm", "n", ...}} on `limit` items per task drawn with `seed`
    (WikiText: `wikitext_articles` articles; -1 = the same `limit`)."""
    from tqdm import tqdm

    results = {}
    for name in tasks:
        n = wikitext_articles if name == "wikitext" and wikitext_articles != -1 else limit
        items = sample(load_task(name, benchmarks_dir), n, seed)
        total = len(items) if name == "wikitext" else sum(len(i.requests) for i in items)
        with tqdm(total=total, desc=name, disable=not show_progress, leave=False, dynamic_ncols=True) as bar:
            results[name] = evaluate_items(model, tokenizer, name, items, batch_size, bar)
    return results


def average_acc_norm(results: dict) -> float | None:
    """The mean acc_norm over the tasks that have one (LAMBADA's acc counts, WikiText does not)."""
    values = [r["acc_norm"] for r in results.values() if r.get("acc_norm") is not None]
    return sum(values) / len(values) if values else None


def format_table(results: dict) -> str:
    lines = [f"{'task':<16}{'n':>6}{'acc':>8}{'acc_norm':>10}{'±':>6}   other"]
    for name, r in results.items():
        pct = lambda v: f"{100 * v:.1f}" if v is not None else "-"  # noqa: E731
        other = ", ".join(f"{k}={v:.3f}" for k, v in r.items() if k not in ("acc", "acc_norm", "n", "stderr"))
        stderr = f"{100 * r['stderr']:.1f}" if r.get("stderr") is not None else "-"
        lines.append(f"{name:<16}{r['n']:>6}{pct(r['acc']):>8}{pct(r['acc_norm']):>10}{stderr:>6}   {other}")
    avg = average_acc_norm(results)
    if avg is not None:
        lines.append(f"{'average':<16}{'':>6}{'':>8}{100 * avg:>10.1f}")
    return "\n".join(lines)


__all__ = ["Item", "MULTIPLE_CHOICE", "evaluate", "evaluate_items", "load_model", "score_tokens", "format_table"]

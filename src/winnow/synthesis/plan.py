"""The generation plan: which seed, topic, format and audience each requested generation gets — decided once.

    seed documents (id, text) ──► MiniLM embeddings of their extracts (the classifier's SentenceEncoder)
        ──► k-means into `topics` clusters (seeded) ──► topic of each seed
        ──► generation i: format × audience pair i mod P (P = formats × audiences), topic (i + i // L) mod K
            (L = lcm(P, K)), seed = the topic's next member in a seeded shuffle

Every P consecutive generations cover every format × audience pair; every K consecutive ones cover every topic
once, so each topic gets n/K generations (±1) whatever its size: a topic with many near-identical pages (a
crawl's boilerplate cluster) cannot dominate the synthetic set, which is Cosmopedia's lesson. The shift by
i // L walks through all P × K (pair, topic) cells once n reaches P × K. Within a topic the seeds are used in
turn, each before any is used twice.

Everything is a pure function of its inputs and `seed`; the stage writes the result to `plan.jsonl` before any
request, so a rerun reads the same plan instead of recomputing it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def embed(texts: list[str], encoder: str = "all-MiniLM-L6-v2", max_tokens: int = 256) -> np.ndarray:
    """One L2-normalised MiniLM vector per text (k-means on unit vectors clusters by cosine similarity)."""
    from winnow.classifiers.model import SentenceEncoder  # torch: only when a plan is made

    vectors = SentenceEncoder(encoder, max_tokens=max_tokens).encode(texts)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def assign_topics(embeddings: np.ndarray, k: int, seed: int) -> list[int]:
    """A topic 0..k'-1 per row (k' = min(k, rows)), by k-means; topics are numbered by their first member, so the
    numbering does not depend on k-means' internal order."""
    from sklearn.cluster import KMeans

    n = len(embeddings)
    k = max(1, min(k, n))
    if k == 1:
        return [0] * n
    labels = KMeans(n_clusters=k, random_state=seed, n_init=10).fit_predict(embeddings)
    renumber: dict[int, int] = {}
    for label in labels:
        renumber.setdefault(int(label), len(renumber))
    return [renumber[int(label)] for label in labels]


def make_plan(
    seed_ids: Sequence[str],
    topics: Sequence[int],
    n_generations: int,
    formats: Sequence[str],
    audiences: Sequence[str],
    seed: int,
) -> list[dict]:
    """`n_generations` entries {id, index, seed_id, topic, format, audience}, spread evenly over topic × format ×
    audience (see the module docstring)."""
    if len(seed_ids) != len(topics) or not seed_ids:
        raise ValueError(f"{len(seed_ids)} seeds and {len(topics)} topics: need one topic per seed, at least one seed")
    rng = np.random.default_rng(seed)
    pairs = [(f, a) for f in formats for a in audiences]
    pairs = [pairs[j] for j in rng.permutation(len(pairs))]
    members: dict[int, list[str]] = {}
    for seed_id, topic in zip(seed_ids, topics, strict=True):
        members.setdefault(int(topic), []).append(str(seed_id))
    topic_order = sorted(members)
    topic_order = [topic_order[j] for j in rng.permutation(len(topic_order))]
    for topic in members:
        members[topic] = [members[topic][j] for j in rng.permutation(len(members[topic]))]
    used = dict.fromkeys(members, 0)
    n_pairs, n_topics = len(pairs), len(topic_order)
    cycle = math.lcm(n_pairs, n_topics)
    plan = []
    for i in range(n_generations):
        format_name, audience = pairs[i % n_pairs]
        topic = topic_order[(i + i // cycle) % n_topics]
        group = members[topic]
        seed_id = group[used[topic] % len(group)]
        used[topic] += 1
        plan.append(
            {
                "id": f"gen-{i:07d}",
                "index": i,
                "seed_id": seed_id,
                "topic": topic,
                "format": format_name,
                "audience": audience,
            }
        )
    return plan

"""How well an LLM annotator agrees with itself (winnow.classifiers.evaluate.jury_agreement), on the real five-sample
Llama-3.1-70B annotations of the shared data: the ceiling of a classifier judged against single sampled labels."""

import gzip
import itertools
import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from winnow.classifiers.evaluate import jury_agreement


@pytest.fixture(scope="module")
def juries(shared_data) -> list[list]:
    path = shared_data / "annotations" / "llama31-multilingual" / "cc_merged_annotations.jsonl.gz"
    with gzip.open(path, "rt") as f:
        return [json.loads(line)["scores"] for line in f]


def f1(pairs) -> float:
    pairs = list(pairs)
    both = sum(a and b for a, b in pairs)
    return 2 * both / sum(a + b for a, b in pairs)


def test_agreement_of_real_five_sample_juries_matches_a_pair_by_pair_count(juries):
    out = jury_agreement(juries)
    scored = [[int(s) for s in j if s is not None] for j in juries]
    scored = [j for j in scored if len(j) >= 2]
    assert out["documents"] == len(scored) and 900 < len(scored) <= 1000  # unparseable answers (None) left out
    pairs = ((a >= 3, b >= 3) for j in scored for a, b in itertools.permutations(j, 2))
    assert out["pairwise_f1"] == pytest.approx(f1(pairs))
    rest = ((j[i] >= 3, round(np.mean(j[:i] + j[i + 1 :])) >= 3) for j in scored if len(j) >= 3 for i in range(len(j)))
    assert out["sample_vs_rest_f1"] == pytest.approx(f1(rest))
    low, high = out["sample_vs_rest_f1_ci95"]
    assert low < out["sample_vs_rest_f1"] < high
    assert out["pairwise_spearman"] == pytest.approx(spearmanr([j[0] for j in scored], [j[1] for j in scored])[0])
    # a sampled LLM is far from agreeing with itself: the mean of the others agrees better than one other sample
    assert out["sample_vs_rest_f1"] > out["pairwise_f1"]


def test_a_unanimous_jury_agrees_perfectly_and_a_lone_sample_is_not_a_jury():
    assert jury_agreement([[None, 4]]) is None and jury_agreement([]) is None
    out = jury_agreement([[4, 4, 4], [1, 1, 1], [3, 3, 3], [0, 0]])
    assert out["pairwise_f1"] == out["sample_vs_rest_f1"] == 1.0 and out["documents"] == 4
    assert jury_agreement([[4, 1, 1], [1, 4, 1]])["pairwise_f1"] == 0.0


def test_jury_agreement_command_reads_a_file_of_sampled_scores(shared_data, capsys):
    from winnow.pipelines.cli import main

    path = shared_data / "annotations" / "llama31-multilingual" / "cc_merged_annotations.jsonl.gz"
    assert main(["jury-agreement", "--labels", str(path), "--key", "scores"]) == 0
    out = json.loads(capsys.readouterr().out)
    with gzip.open(path, "rt") as f:
        juries = [json.loads(line)["scores"] for line in f]
    assert out["pairwise_f1"] == jury_agreement(juries)["pairwise_f1"] and out["rows"] == len(juries)
    assert out["skipped"]["unscored_samples"] == sum(s is None for j in juries for s in j)
    # the annotate stage's column is the default key; this file has none: one line, exit 2
    assert main(["jury-agreement", "--labels", str(path)]) == 2
    assert "no row has two scored samples" in capsys.readouterr().err

"""winnow.proxy.compare on generated per-item data whose truth is known: a planted effect, no effect, more items.

The per-item values are drawn here (numpy, fixed seeds) because the question is statistical: does the bootstrap
find an effect that is there, stay undecided when there is none, and predict how many items would decide?
Real per-item samples of trained models go through the same code in tests/test_proxy_ablate.py."""

import json
import math

import numpy as np
import pytest

from winnow.proxy.compare import (
    compare_ablations,
    compare_pair,
    fmt_result,
    from_arrays,
    load_ablation,
    tokens_needed,
)


def _ablations(n: int, effect: float, seeds: int = 2, seed: int = 0, tasks=("t1", "t2")):
    """Two ablations on the same items: a per-item difficulty shared by both (what pairing cancels), a per-seed
    offset, and B's items `effect` lower in probability of being right (0/1 acc) and in a continuous score."""
    rng = np.random.default_rng(seed)
    out = {"A": {}, "B": {}}
    for task in tasks:
        difficulty = rng.uniform(0.2, 0.8, n)
        for name, shift in (("A", effect / 2), ("B", -effect / 2)):
            seed_noise = rng.normal(0, 0.005, (seeds, 1))
            p = np.clip(difficulty + shift + seed_noise, 0, 1)
            out[name][task] = {
                "acc": (rng.random((seeds, n)) < p).astype(float),
                "prob_correct": np.clip(p + rng.normal(0, 0.05, (seeds, n)), 0, 1),
            }
    return {name: from_arrays(list(range(seeds)), t) for name, t in out.items()}


def test_a_planted_effect_is_found_in_the_right_direction():
    data = _ablations(n=400, effect=0.10)
    result = compare_pair(data["A"], data["B"], "prob_correct", n_boot=2000)
    for key in ("t1", "t2", "average"):
        assert result[key]["winner"] == "a", key
        assert result[key]["lo"] > 0 and result[key]["lo"] < result[key]["effect"] < result[key]["hi"]
        assert abs(result[key]["effect"] - 0.10) < 0.02
    # the same data with the names swapped: B > A
    swapped = compare_pair(data["B"], data["A"], "prob_correct", n_boot=2000)
    assert swapped["average"]["winner"] == "b"
    assert fmt_result(swapped["average"], "B", "A", "prob_correct").startswith("A > B (95 % CI [")


def test_no_effect_stays_undecided_with_zero_inside_the_interval():
    data = _ablations(n=300, effect=0.0, seed=3)
    result = compare_pair(data["A"], data["B"], "acc", n_boot=2000)
    for key in ("t1", "t2", "average"):
        assert result[key]["winner"] is None, key
        assert result[key]["lo"] < 0 < result[key]["hi"]
    assert fmt_result(result["average"], "A", "B", "acc").startswith("undecided (A − B 95 % CI [")


def test_false_positives_are_about_five_percent():
    """Over 40 independent no-effect data sets, a 95 % interval excludes 0 rarely (expected 2; 6+ has p < 0.01)."""
    decided = sum(
        compare_pair(*_ablations(n=200, effect=0.0, seed=s, tasks=("t",)).values(), "acc", n_boot=1000)["t"]["winner"]
        is not None
        for s in range(40)
    )
    assert decided <= 5


def test_pairing_is_by_doc_id_not_by_position():
    data = _ablations(n=200, effect=0.2)
    b = data["B"]["tasks"]["t1"]
    order = np.random.default_rng(1).permutation(200)
    shuffled = {m: v[:, order] for m, v in b["values"].items()}
    b_shuffled = from_arrays(data["B"]["seeds"], {"t1": shuffled}, {"t1": b["doc_id"][order]})
    a_only = from_arrays(data["A"]["seeds"], {"t1": data["A"]["tasks"]["t1"]["values"]})
    straight = compare_pair(a_only, from_arrays(data["B"]["seeds"], {"t1": b["values"]}), "prob_correct")
    permuted = compare_pair(a_only, b_shuffled, "prob_correct")
    assert permuted["t1"] == straight["t1"]  # same items, same bootstrap: identical result
    # and a B with only half the items is compared on the common half
    half = from_arrays(data["B"]["seeds"], {"t1": {m: v[:, :100] for m, v in b["values"].items()}})
    assert compare_pair(a_only, half, "prob_correct")["t1"]["n_items"] == 100


def test_results_are_deterministic_and_depend_on_the_rng_seed():
    data = _ablations(n=150, effect=0.03)
    first = compare_ablations(data, n_boot=2000)
    assert json.dumps(first, default=str) == json.dumps(compare_ablations(data, n_boot=2000), default=str)
    other = compare_ablations(data, n_boot=2000, seed=1)["pairs"][0]["metrics"]["acc"]["average"]
    assert other["effect"] == first["pairs"][0]["metrics"]["acc"]["average"]["effect"]
    assert other["se"] != first["pairs"][0]["metrics"]["acc"]["average"]["se"]


def _tiled(ablation: dict, times: int) -> dict:
    """The ablation's items repeated `times` times (new doc ids): the same effect and per-item spread."""
    tasks = {task: {m: np.tile(v, times) for m, v in t["values"].items()} for task, t in ablation["tasks"].items()}
    return from_arrays(ablation["seeds"], tasks)


def test_the_more_items_estimate_decides_a_borderline_case():
    """Undecided at 150 items (one seed), with an estimate of the items that would decide. The estimate's arithmetic:
    the same items repeated to ≥ 1.3 × that many decide, to ≤ 0.7 × do not (one seed: repeating items would fake a
    seed effect). Its realism: fresh items from the same generator (whose true effect is the planted one) decide at
    2 × the estimate, on the average over two tasks."""
    effect = 0.04
    data = _ablations(n=150, effect=effect, seed=6, seeds=1)
    small = compare_pair(data["A"], data["B"], "acc")
    for key in ("t1", "average"):
        r = small[key]
        assert r["winner"] is None and r["items_needed"] is not None, key
        ratio = r["items_needed"] / r["n_items"]
        assert 1.5 < ratio < 50, key
        up, down = math.ceil(1.3 * ratio), max(math.floor(0.7 * ratio), 1)
        bigger = compare_pair(_tiled(data["A"], up), _tiled(data["B"], up), "acc")[key]
        assert bigger["winner"] == "a" and abs(bigger["effect"] - r["effect"]) < 1e-9, key
        smaller = compare_pair(_tiled(data["A"], down), _tiled(data["B"], down), "acc")[key]
        assert smaller["winner"] is None, key
    # items_needed counts both tasks' items: 2 × as many in all is that many per task
    fresh = _ablations(n=small["average"]["items_needed"], effect=effect, seed=10)
    assert compare_pair(fresh["A"], fresh["B"], "acc")["average"]["winner"] == "a"


def test_seed_noise_larger_than_the_effect_is_not_fixed_by_items():
    rng = np.random.default_rng(0)
    n = 400
    base = rng.random(n)
    # per-seed offsets of ±0.05 around a 0.01 effect: the seeds disagree far more than the effect
    a = from_arrays([0, 1, 2, 3], {"t": {"prob_correct": base + np.array([[0.06], [-0.04], [0.05], [-0.05]])}})
    b = from_arrays([0, 1, 2, 3], {"t": {"prob_correct": base + np.array([[-0.05], [0.05], [-0.04], [0.04]])}})
    r = compare_pair(a, b, "prob_correct")["t"]
    assert r["winner"] is None and r["se_seeds"] > r["se_items"]
    assert r["more_items"] is None and "add seeds" in fmt_result(r, "A", "B", "prob_correct")


def test_headline_metric_is_the_one_with_the_best_signal_to_noise():
    data = _ablations(n=300, effect=0.06)
    result = compare_ablations(data)
    snr = result["snr"]
    # the continuous score carries less noise per item than a 0/1 accuracy, so it wins here
    assert snr["prob_correct"] > snr["acc"]
    assert result["headline"]["metric"] == "prob_correct" and "prob_correct" in result["headline"]["why"]
    assert [name for name, _ in result["headline"]["ranking"]] == ["A", "B"]


def test_three_ablations_give_three_pairs():
    data = _ablations(n=100, effect=0.1)
    data["C"] = data["A"]
    result = compare_ablations(data, n_boot=200)
    assert [(p["a"], p["b"]) for p in result["pairs"]] == [("A", "B"), ("A", "C"), ("B", "C")]
    same = result["pairs"][1]["metrics"]["acc"]["average"]
    assert same["effect"] == 0 and same["winner"] is None and "no difference" in fmt_result(same, "A", "C")


def test_a_negligible_effect_is_not_given_an_absurd_item_count():
    data = _ablations(n=300, effect=0.0, seed=3, tasks=("t",))
    r = compare_pair(data["A"], data["B"], "acc")["t"]
    assert r["winner"] is None
    r = {**r, "effect": 1e-6, "items_needed": 10**12, "more_items": 10**12 - r["n_items"]}
    assert "more than 100× the items" in fmt_result(r, "A", "B")
    assert "more than 100× the tokens" in fmt_result(
        {**r, "items_needed": 400, "more_items": 100, "n_items": 300}, "A", "B", tokens={"factor": 1e9, "why": ""}
    )


def test_tokens_needed_extrapolates_a_growing_effect():
    # effect = 0.01 * ln(T / 1e4): 0.023, 0.035, 0.046 at 1e5, 3e5, 1e6; se 0.03 → needs 0.0588 ≈ ln ratio 5.88
    points = [(t, 0.01 * np.log(t / 1e4), 0.03) for t in (1e5, 3e5, 1e6)]
    est = tokens_needed(points)
    assert est["factor"] == pytest.approx(np.exp(1.96 * 3) * 1e4 / 1e6, rel=0.01)
    assert tokens_needed(points[:1]) is None
    shrinking = [(t, -e, s) for t, e, s in points[::-1]]
    assert tokens_needed([(t, e, s) for (t, _, s), (_, e, _) in zip(points, shrinking)])["factor"] is None


def test_load_ablation_reads_samples_files_and_matches_items_across_seeds(tmp_path):
    for seed, ids in ((0, [3, 1, 7]), (1, [1, 7, 3, 9])):
        folder = tmp_path / "x" / f"seed-{seed}"
        folder.mkdir(parents=True)
        lines = [{"doc_id": i, "target": 0, "acc": i % 2, "prob_correct": i / 10} for i in ids]
        (folder / "samples_piqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    data = load_ablation(tmp_path / "x", [0, 1], ["piqa", "wikitext"])
    assert list(data["tasks"]) == ["piqa"]  # wikitext wrote no samples
    piqa = data["tasks"]["piqa"]
    assert piqa["doc_id"].tolist() == [1, 3, 7]  # item 9 only in seed 1
    assert piqa["values"]["prob_correct"].tolist() == [[0.1, 0.3, 0.7]] * 2
    assert set(piqa["values"]) == {"acc", "prob_correct"}

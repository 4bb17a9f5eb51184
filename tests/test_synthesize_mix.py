"""A mixed ablation source (synthetic + a subset at a stated token ratio) on real FineWeb documents: the mix holds
the stated shares of GPT-2 tokens, is the largest the sources allow, is written once, and the ablate stage reads it
as a single source."""

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from winnow.pipelines.config import ConfigError, RunConfig
from winnow.pipelines.stages.ablate import write_mixes
from winnow.proxy.mix import write_mix


@pytest.fixture(scope="module")
def sources(tmp_path_factory, shared_data) -> tuple[Path, Path]:
    """Two folders of real FineWeb documents: 'synthetic' with token_count (as synthesize writes), 'subset' JSONL
    without (counted with GPT-2)."""
    with gzip.open(shared_data / "annotations" / "fineweb-edu-llama3" / "train.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for _, line in zip(range(120), f)]
    root = tmp_path_factory.mktemp("sources")
    synthetic, subset = root / "synthesize", root / "edu-2"
    synthetic.mkdir()
    subset.mkdir()
    records = [{"text": r["text"], "id": f"s{r['id']}", "token_count": len(r["text"].split())} for r in rows[:40]]
    pq.write_table(pa.Table.from_pylist(records), synthetic / "00000.parquet")
    with open(subset / "docs.jsonl", "w") as f:
        for r in rows[40:]:
            f.write(json.dumps({"text": r["text"], "id": f"e{r['id']}"}) + "\n")
    return synthetic, subset


def test_mix_holds_the_stated_token_shares_and_is_written_once(tmp_path, sources):
    synthetic, subset = str(sources[0]), str(sources[1] / "*.jsonl")
    mix = write_mix([synthetic, subset], [0.3, 0.7], tmp_path / "mix", seed=0)
    taken = {t["source"]: t for t in mix["taken"]}
    rows = pq.read_table(tmp_path / "mix" / "00000.parquet").to_pylist()
    assert len(rows) == sum(t["documents"] for t in mix["taken"]) and {r["source"] for r in rows} == set(taken)
    largest = max(r["token_count"] for r in rows)
    tokens = {s: sum(r["token_count"] for r in rows if r["source"] == s) for s in taken}
    assert tokens == {s: t["tokens"] for s, t in taken.items()}
    total = sum(tokens.values())
    # the shares are the ratio to within one document per source
    assert abs(tokens[synthetic] - 0.3 * total) <= 2 * largest and abs(tokens[subset] - 0.7 * total) <= 2 * largest
    # the largest mix the sources allow: one of them is (nearly) used up
    available = sum(r["token_count"] for r in pq.read_table(sources[0] / "00000.parquet").to_pylist())
    assert tokens[synthetic] >= available - largest or taken[subset]["documents"] >= 80 - 1
    again = write_mix([synthetic, subset], [0.3, 0.7], tmp_path / "mix", seed=0)
    assert again == mix
    with pytest.raises(ValueError, match="other sources or ratio"):
        write_mix([synthetic, subset], [0.5, 0.5], tmp_path / "mix", seed=0)


def test_a_mixed_ablation_is_checked_at_load_and_read_as_one_source(tmp_path, sources):
    synthetic, subset = str(sources[0]), str(sources[1] / "*.jsonl")
    with pytest.raises(ValueError, match="sum to 1"):
        RunConfig(
            name="t",
            output_dir=str(tmp_path),
            ablate={"ablations": [{"name": "m", "data": [synthetic, subset], "ratio": [0.3, 0.6]}]},
        )
    with pytest.raises(ValueError, match="one token share per source"):
        RunConfig(
            name="t", output_dir=str(tmp_path), ablate={"ablations": [{"name": "m", "data": [synthetic, subset]}]}
        )
    with pytest.raises(ValueError, match="only for a mix"):
        RunConfig(
            name="t", output_dir=str(tmp_path), ablate={"ablations": [{"name": "m", "data": synthetic, "ratio": [1.0]}]}
        )
    ablations = [
        {"name": "synthetic", "data": synthetic},
        {"name": "mix", "data": [synthetic, subset], "ratio": [0.3, 0.7]},
    ]
    cfg = RunConfig(name="t", output_dir=str(tmp_path / "run"), ablate={"ablations": ablations})
    resolved = write_mixes(cfg, cfg.ablate)
    assert resolved.ablations[0].data == synthetic
    assert resolved.ablations[1].data == str(tmp_path / "run" / "ablate" / "mix" / "mix")
    assert (tmp_path / "run" / "ablate" / "mix" / "mix" / "mix.json").is_file()
    cfg.ablate.ablations[1].data = [synthetic, str(tmp_path / "nothing" / "*.parquet")]
    with pytest.raises(ConfigError, match="ablate.ablations\\[mix\\].data: no JSONL/Parquet"):
        write_mixes(cfg, cfg.ablate)

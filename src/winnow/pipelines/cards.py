"""Dataset cards: each stage folder that holds documents gets a README.md whose YAML `configs:` make it a
Hugging Face dataset, on disk or once uploaded as it is (`hf upload-large-folder`):

    load_dataset("<run>/base", split="train")              # the kept documents (the `default` config)
    load_dataset("<run>/base", "removed", split="train")   # what the filters removed, with filter_reason
    load_dataset("<run>/subsets", "edu-3", split="train")  # one config per subset folder, `all` the default

Every config names its Parquet files with an explicit glob (`*.parquet`, `removed/*/*.parquet`, `edu-3/*.parquet`,
`data/*/*.parquet` in FineWeb's layout), so nothing else in the folder (logs/, work/, summary.json, plots) is ever
read as data. Only the Hub's standard keys are used: config_name, default, data_files, split, path.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from winnow.files import write_text
from winnow.pipelines import registry
from winnow.pipelines.summary import read_summary, total

LICENSE = "ODC-By 1.0, subject to Common Crawl Terms of Use"
EXCLUDED = ("removed", "failed")  # folders of documents a stage did not keep: one config each, when not empty
ARROW_NAMES = {"double": "float64", "float": "float32", "halffloat": "float16"}  # as the Hub's viewer names them


def document_configs(stage_dir: str | os.PathLike, summary: dict) -> list[tuple[str, str]]:
    """(config name, Parquet glob relative to the folder) for each config, the kept documents' first.

    Kept documents are the top-level files (`data/*/*.parquet` in FineWeb's layout); a subsets folder has one
    config per subset of its summary instead, and a subset with no documents (no folder) has none.
    """
    folder = Path(stage_dir)
    kept = list(summary.get("subsets", {})) or ["default"]
    configs = []
    for name in kept:
        prefix = "" if name == "default" else f"{name}/"
        path = f"{prefix}data/*/*.parquet" if any(folder.glob(f"{prefix}data/*/*.parquet")) else f"{prefix}*.parquet"
        if configs and not any(folder.glob(path)):
            continue
        configs.append((name, path))  # the first is written even when empty: nothing else may become the default
    configs += [(name, f"{name}/*/*.parquet") for name in EXCLUDED if any(folder.glob(f"{name}/*/*.parquet"))]
    return configs


def front_matter(stage: str, configs: list[tuple[str, str]]) -> dict:
    """The card's YAML metadata: FineWeb's license tag, and the configs (the first is the default)."""
    return {
        "license": "odc-by",
        "pretty_name": f"winnow {stage}",
        "task_categories": ["text-generation"],
        "configs": [{"config_name": name, **({"default": True} if i == 0 else {}),
                     "data_files": [{"split": "train", "path": path}]} for i, (name, path) in enumerate(configs)],
    }


def _files(folder: Path, pattern: str) -> list[Path]:
    return sorted(folder.glob(pattern))


def _rows(files: list[Path]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def _columns(files: list[Path]) -> list[tuple[str, str]]:
    import pyarrow.parquet as pq

    if not files:
        return []
    return [(f.name, ARROW_NAMES.get(str(f.type), str(f.type))) for f in pq.read_schema(files[0])]


def _breakdown(mapping: dict) -> str:
    parts = [f"{name} {total(value):,}" for name, value in mapping.items() if total(value)]
    return f" ({', '.join(parts)})" if parts else ""


def card_text(stage_dir: str | os.PathLike, stage: str, config_file: str | None) -> str:
    """README.md for a finished stage folder: YAML front matter, then what it is, counts, columns, how to load it."""
    folder = Path(stage_dir)
    summary = read_summary(folder)
    configs = document_configs(folder, summary)
    files = {name: _files(folder, path) for name, path in configs}
    default = configs[0][0]
    source = f"with the config `{config_file}`" if config_file else "without a config file"
    lines = [
        "---", yaml.safe_dump(front_matter(stage, configs), sort_keys=False, allow_unicode=True).rstrip(), "---", "",
        f"# winnow {stage}", "",
        f"{registry.get(stage).help}. Written by `winnow {stage}` {source}; the stage rewrites this card each time it "
        "finishes.", "",
        "| documents | count |", "|---|---:|",
        f"| read | {summary['read']:,} |",
        f"| kept | {summary['kept']:,} |",
        f"| removed | {total(summary.get('removed', {})):,}{_breakdown(summary.get('removed', {}))} |",
        f"| failed | {total(summary.get('failed', {})):,}{_breakdown(summary.get('failed', {}))} |", "",
    ]
    subsets = summary.get("subsets", {})
    if subsets:
        lines += ["| subset | int_score ≥ | documents | tokens |", "|---|---:|---:|---:|"]
        lines += [f"| `{name}` | {'' if s['int_score_at_least'] is None else s['int_score_at_least']} | "
                  f"{s['documents']:,} | {s['tokens']:,} |" for name, s in subsets.items()]
        lines.append("")
    lines += ["## Configs", "", "| config | files | rows |", "|---|---|---:|"]
    lines += [f"| `{name}`{' (default)' if name == default else ''} | `{path}` | {_rows(files[name]):,} |"
              for name, path in configs]
    missing = [name for name in subsets if name not in files]
    if missing:
        lines += ["", f"No documents, so no config: {', '.join(f'`{name}`' for name in missing)}."]
    lines += ["", "Nothing else in this folder (logs/, work/, summary.json, plots) belongs to a config.", "",
              "## Columns", "", f"`{default}`:", "", "| column | type |", "|---|---|"]
    kept_columns = _columns(files[default])
    lines += [f"| `{name}` | {kind} |" for name, kind in kept_columns]
    for name, _ in configs[1:]:
        columns = _columns(files[name])
        if set(columns) == set(kept_columns):
            continue
        extra = ", ".join(f"`{column}` ({kind})" for column, kind in columns if (column, kind) not in kept_columns)
        listed = ", ".join(f"`{column}` ({kind})" for column, kind in columns)
        lines += ["", f"`{name}`: the same columns plus {extra}." if set(kept_columns) < set(columns) else
                  f"`{name}`: {listed}."]
    example = [name for name, _ in configs[1:]][:1]
    lines += ["", "## Loading", "", "```python", "from datasets import load_dataset", "",
              f'documents = load_dataset("path/to/{folder.name}", split="train")  # the `{default}` config']
    lines += [f'{name.replace("-", "")} = load_dataset("path/to/{folder.name}", "{name}", split="train")'
              for name in example]
    lines += ["```", "",
              f"Uploaded as it is (`hf upload-large-folder <user>/<name> path/to/{folder.name} --repo-type=dataset`), "
              "the same configs work on the Hub and in its dataset viewer.", "",
              "## License", "", f"{LICENSE}, as FineWeb: the texts come from web pages crawled by Common Crawl.", ""]
    return "\n".join(lines)


def write_dataset_card(stage_dir: str | os.PathLike, stage: str, config_file: str | None = None) -> Path:
    """Write `<stage_dir>/README.md` from the folder's Parquet files and its summary.json (written first)."""
    return write_text(Path(stage_dir) / "README.md", card_text(stage_dir, stage, config_file))

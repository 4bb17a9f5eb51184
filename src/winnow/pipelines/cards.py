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
DEFAULT = "default"  # the kept documents' config; in subsets/, `all` is the default instead
EXCLUDED = ("removed", "failed")  # folders of documents a stage did not keep: one config each, when not empty
ARROW_NAMES = {"double": "float64", "float": "float32", "halffloat": "float16"}  # as the Hub's viewer names them


def document_configs(stage_dir: str | os.PathLike, summary: dict) -> list[tuple[str, str]]:
    """(config name, Parquet glob relative to the folder) of each config that has files, the kept documents' first.

    Kept documents are the top-level files (`data/*/*.parquet` in FineWeb's layout); a subsets folder has one
    config per subset of its summary instead (`all` first). A config without files is left out: `datasets`
    resolves every config of a card at once, so one empty config would make the whole folder unloadable.
    """
    folder = Path(stage_dir)
    configs = []
    for name in list(summary.get("subsets", {})) or [DEFAULT]:
        prefix = "" if name == DEFAULT else f"{name}/"
        fineweb = f"{prefix}data/*/*.parquet"
        configs.append((name, fineweb if any(folder.glob(fineweb)) else f"{prefix}*.parquet"))
    configs += [(name, f"{name}/*/*.parquet") for name in EXCLUDED]
    return [(name, path) for name, path in configs if any(folder.glob(path))]


def front_matter(stage: str, configs: list[tuple[str, str]], default: str | None) -> dict:
    """The card's YAML metadata: FineWeb's license tag, and the configs."""
    return {
        "license": "odc-by",
        "pretty_name": f"winnow {stage}",
        "task_categories": ["text-generation"],
        "configs": [
            {
                "config_name": name,
                **({"default": True} if name == default else {}),
                "data_files": [{"split": "train", "path": path}],
            }
            for name, path in configs
        ],
    }


def _files(folder: Path, pattern: str) -> list[Path]:
    return sorted(folder.glob(pattern))


def _rows(files: list[Path]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def _columns(files: list[Path]) -> list[tuple[str, str]]:
    import pyarrow.parquet as pq

    return [(f.name, ARROW_NAMES.get(str(f.type), str(f.type))) for f in pq.read_schema(files[0])]


def _breakdown(mapping: dict) -> str:
    parts = [f"{name} {total(value):,}" for name, value in mapping.items() if total(value)]
    return f" ({', '.join(parts)})" if parts else ""


def _counts(summary: dict) -> list[str]:
    lines = [
        "| documents | count |",
        "|---|---:|",
        f"| read | {summary['read']:,} |",
        f"| kept | {summary['kept']:,} |",
    ]
    for name in EXCLUDED:
        mapping = summary.get(name, {})
        lines.append(f"| {name} | {total(mapping):,}{_breakdown(mapping)} |")
    subsets = summary.get("subsets", {})
    if subsets:
        lines += ["", "| subset | int_score ≥ | documents | tokens |", "|---|---:|---:|---:|"]
        lines += [
            f"| `{name}` | {'any' if s['int_score_at_least'] is None else s['int_score_at_least']} | "
            f"{s['documents']:,} | {s['tokens']:,} |"
            for name, s in subsets.items()
        ]
    return lines + [""]


def _configs(configs: list[tuple[str, str]], files: dict, kept: list[str], default: str | None) -> list[str]:
    lines = ["## Configs", "", "| config | files | rows |", "|---|---|---:|"]
    lines += [f"| `{name}` | `{path}` | {_rows(files[name]):,} |" for name, path in configs]
    lines.append("")
    empty = [name for name in kept if name not in files]
    if empty:
        lines += [f"No documents, so no config: {', '.join(f'`{name}`' for name in empty)}."]
    if default:
        lines += [f"`load_dataset` without a config name reads `{default}`."]
    else:
        lines += ["No kept documents, so no default config: name the config to load."]
    return lines + ["Nothing else in this folder (logs/, work/, summary.json, plots) belongs to a config.", ""]


def _columns_section(configs: list[tuple[str, str]], files: dict) -> list[str]:
    if not configs:
        return []
    first = configs[0][0]
    reference = _columns(files[first])
    lines = ["## Columns", "", f"`{first}`:", "", "| column | type |", "|---|---|"]
    lines += [f"| `{name}` | {kind} |" for name, kind in reference]
    for name, _ in configs[1:]:
        columns = _columns(files[name])
        if set(columns) == set(reference):
            continue
        extra = ", ".join(f"`{column}` ({kind})" for column, kind in columns if (column, kind) not in reference)
        listed = ", ".join(f"`{column}` ({kind})" for column, kind in columns)
        lines += [
            "",
            f"`{name}`: the same columns plus {extra}." if set(reference) < set(columns) else f"`{name}`: {listed}.",
        ]
    return lines + [""]


def _loading(folder: str, configs: list[tuple[str, str]], default: str | None) -> list[str]:
    lines = ["## Loading", "", "```python", "from datasets import load_dataset", ""]
    if default:
        lines.append(f'documents = load_dataset("path/to/{folder}", split="train")  # the `{default}` config')
    lines += [
        f'{name.replace("-", "_")} = load_dataset("path/to/{folder}", "{name}", split="train")'
        for name, _ in configs
        if name != default
    ][:1]
    return lines + [
        "```",
        "",
        f"Uploaded as it is (`hf upload-large-folder <user>/<name> path/to/{folder} "
        "--repo-type=dataset`), the same configs work on the Hub and in its dataset viewer.",
        "",
    ]


def card_text(stage_dir: str | os.PathLike, stage: str, config_file: str | None) -> str:
    """README.md for a finished stage folder: YAML front matter, then what it is, counts, configs, columns, loading."""
    folder = Path(stage_dir)
    summary = read_summary(folder)
    configs = document_configs(folder, summary)
    files = {name: _files(folder, path) for name, path in configs}
    kept = list(summary.get("subsets", {})) or [DEFAULT]
    default = kept[0] if kept[0] in files else None
    source = f"with the config `{config_file}`" if config_file else "without a config file"
    about = registry.get(stage).help
    return "\n".join(
        [
            "---",
            yaml.safe_dump(front_matter(stage, configs, default), sort_keys=False, allow_unicode=True).rstrip(),
            "---",
            "",
            f"# winnow {stage}",
            "",
            f"{about[:1].upper()}{about[1:]}. Written by `winnow {stage}` {source}; the stage rewrites this card "
            "each time it finishes.",
            "",
            *_counts(summary),
            *_configs(configs, files, kept, default),
            *_columns_section(configs, files),
            *_loading(folder.name, configs, default),
            "## License",
            "",
            f"{LICENSE} (as FineWeb and FineWeb-Edu).",
            "",
        ]
    )


def write_dataset_card(stage_dir: str | os.PathLike, stage: str, config_file: str | None = None) -> Path:
    """Write `<stage_dir>/README.md` from the folder's Parquet files and its summary.json (written first)."""
    return write_text(Path(stage_dir) / "README.md", card_text(stage_dir, stage, config_file))

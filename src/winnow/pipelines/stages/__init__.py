"""One module per stage of winnow.pipelines.registry, each with `run(cfg, args) -> int`.

A stage reads what the stage before it wrote under the run folder and writes `<output_dir>/<stage>/`
(documents as Parquet, `removed/<reason>/`, `failed/`, `summary.json` with read = kept + Σremoved + Σfailed).
"""

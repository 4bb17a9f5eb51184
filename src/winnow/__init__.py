"""winnow: reproducible web-scale data curation for LLM pre-training (the FineWeb / FineWeb-Edu recipe on datatrove).

    winnow.blocks       datatrove PipelineSteps of our own, usable in any datatrove pipeline (imports nothing of ours)
    winnow.classifiers  the educational-value annotation prompt, annotators, classifier training and saved models
    winnow.proxy        proxy language models: tokenising, training, evaluating, comparing ablations
    winnow.pipelines    the recipe: the stage registry, one module per stage, execution, report, CLI, config

docs/architecture.md is the map.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("winnow-curate")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

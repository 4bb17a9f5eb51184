"""Commands that are not stages of a run: `winnow evaluate` (any causal LM on the benchmarks) and
`winnow eval-extract` (extractors against trafilatura's ground truth), `winnow export-classifier` (a saved classifier
as a Hugging Face model folder). Each has `add_arguments(parser)` and
`main(args) -> int`."""

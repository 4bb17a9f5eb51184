"""Commands that are not stages of a run: `winnow evaluate` (any causal LM on the benchmarks) and
`winnow eval-extract` (extractors against trafilatura's ground truth). Each has `add_arguments(parser)` and
`main(args) -> int`."""

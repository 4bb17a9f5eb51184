"""The one error family of winnow. Library code raises these; only the CLI entry point (winnow.pipelines.cli)
turns one into a single stderr line and an exit code: 2 for a configuration problem, 1 for a failed stage.

Each message names the file, key or path at fault and the way out.
"""


class WinnowError(Exception):
    """Base of every error winnow raises on purpose."""

    exit_code = 1


class ConfigError(WinnowError, ValueError):
    """A configuration or operator problem (bad key, missing input, refused mix of outputs), found before work."""

    exit_code = 2


class StageFailed(WinnowError):
    """A stage ran but did not finish: tasks failed, or Slurm jobs ended without completing it."""


class AccountingError(WinnowError, RuntimeError):
    """The numbers of a stage do not add up: a document was lost or counted twice."""

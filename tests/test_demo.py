"""The demo's closing check: every stage summary in the run folder must add up."""

import json

import pytest

from winnow.pipelines.recipe import DEMO_STAGES, print_accounting
from winnow.errors import AccountingError


def test_demo_runs_every_stage_in_the_recipe_order():
    assert [name for name, _, _ in DEMO_STAGES] == [
        "base", "dedup", "annotate", "classifier", "score", "subsets", "ablate", "report"]


def test_accounting_check_passes_balanced_summaries_and_stops_on_a_lost_document(tmp_path, capsys):
    # hand-written summaries (the real ones are checked as each stage writes them): one balanced, one not
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "summary.json").write_text(json.dumps(
        {"read": 10, "kept": 6, "removed": {"language": {"other_language": 3}}, "failed": {"timeout": 1}}))
    print_accounting(tmp_path)
    assert "base" in capsys.readouterr().out
    (tmp_path / "dedup").mkdir()
    (tmp_path / "dedup" / "summary.json").write_text(json.dumps(
        {"read": 6, "kept": 4, "removed": {"minhash_duplicate": 1}, "failed": {}}))
    with pytest.raises(AccountingError, match="read=6"):
        print_accounting(tmp_path)

"""The demo's closing check: every stage summary in the run folder must add up."""

import json

import pytest

from winnow.errors import AccountingError
from winnow.pipelines.recipe import print_accounting


def test_accounting_check_passes_balanced_summaries_and_stops_on_a_lost_document(tmp_path, capsys):
    # hand-written summaries (the real ones are checked as each stage writes them): one balanced, one not
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "summary.json").write_text(
        json.dumps({"read": 10, "kept": 6, "removed": {"language": {"other_language": 3}}, "failed": {"timeout": 1}})
    )
    print_accounting(tmp_path)
    assert "base" in capsys.readouterr().out
    (tmp_path / "dedup").mkdir()
    (tmp_path / "dedup" / "summary.json").write_text(
        json.dumps({"read": 6, "kept": 4, "removed": {"minhash_duplicate": 1}, "failed": {}})
    )
    with pytest.raises(AccountingError, match="read=6"):
        print_accounting(tmp_path)

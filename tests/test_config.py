"""Configuration errors are one clear line and a non-zero exit, before any work; overrides reach the blocks."""

import subprocess
import sys

import pytest

from winnow.pipelines.cli import main
from winnow.pipelines.config import ConfigError, load_config
from winnow.pipelines.stages.base import build_pipeline


def winnow_process(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "winnow.pipelines.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def demo_like(tmp_path, shared_data):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"""
name: t
output_dir: {tmp_path / "run"}
input: {{paths: {shared_data}/warc/edge/*.warc.gz, format: warc}}
executor: {{kind: local, tasks: 1}}
""")
    return cfg


@pytest.mark.parametrize(
    "setting, names",
    [
        ("executor.taks=2", "executor.taks"),  # typo in a key
        ("executor.tasks=many", "executor.tasks"),  # wrong type
        ("input.paths=/nonexistent/*.warc.gz", "/nonexistent/*.warc.gz"),  # missing input
        ("filters.gopher_quality.min_words=3", "filters.gopher_quality.min_words"),  # unknown filter argument
        ("filters.bloom={x: 1}", "filters.bloom"),  # unknown filter
        ("extract.extractor=magic", "extract.extractor"),  # unknown extractor
    ],
)
def test_bad_config_is_one_line_and_nonzero_exit(demo_like, tmp_path, capsys, setting, names):
    assert main(["base", "-c", str(demo_like), "--set", setting]) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert names in lines[0] and str(demo_like) in lines[0]
    assert not (tmp_path / "run" / "base" / "logs").exists()  # nothing ran


def test_the_winnow_command_exits_nonzero_on_a_bad_config(demo_like, project_root):
    result = winnow_process(
        "base", "-c", str(demo_like), "--set", "filters.c4_quality.min_sentences=2", cwd=project_root
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"winnow: config error: {demo_like}: filters.c4_quality.min_sentences: "
        "unknown argument (known: split_paragraph, remove_citations, "
        "filter_no_terminal_punct, min_num_sentences, min_words_per_line, "
        "max_word_length, filter_lorem_ipsum, filter_javascript, filter_curly_bracket, "
        "filter_policy, language)"
    )


def test_filter_overrides_reach_the_blocks(demo_like):
    cfg = load_config(
        demo_like,
        [
            "filters.fineweb_quality.list_ratio=true",
            "filters.gopher_quality.min_doc_words=10",
            "filters.word_splitter=spacy",
            "extract.extractor=resiliparse",
        ],
    )
    pipeline, roles = build_pipeline(cfg)
    blocks = dict(zip([name for _, name in roles], pipeline))
    assert blocks["fineweb_quality"].list_ratio is True
    assert blocks["gopher_quality"].min_doc_words == 10 and blocks["gopher_quality"].word_splitter == "spacy"
    assert type(blocks["extractor"]).__name__ == "ResiliparseExtractor"
    assert [name for _, name in roles][:3] == ["reader", "url", "extractor"]  # FineWeb's order


def test_language_prescreen_only_before_slow_extractors(demo_like):
    def names(*sets):
        return [name for _, name in build_pipeline(load_config(demo_like, list(sets)))[1]]

    assert names()[:4] == ["reader", "url", "language_prescreen", "extractor"]  # trafilatura (default)
    assert "language_prescreen" not in names("filters.language_prescreen.max_score=0")  # FineWeb-exact
    assert "language_prescreen" not in names("extract.extractor=resiliparse")


def test_fineweb_preset_is_the_default(demo_like):
    pipeline, roles = build_pipeline(load_config(demo_like))
    blocks = dict(zip([name for _, name in roles], pipeline))
    assert blocks["c4_quality"].filter_no_terminal_punct is False  # FineWeb dropped this C4 rule
    assert blocks["fineweb_quality"].list_ratio is False  # not in FineWeb v1
    assert blocks["language"].languages == ["en"] and blocks["language"].language_threshold == 0.65
    assert blocks["url"].soft_word_threshold == 2
    assert blocks["extractor"].favour_precision is True and blocks["extractor"].timeout == 1.0


def test_load_config_rejects_a_non_mapping_filter_section(demo_like):
    with pytest.raises(ConfigError, match="filters.url"):
        load_config(demo_like, ["filters.url=3"])

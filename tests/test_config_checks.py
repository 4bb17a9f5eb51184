"""Every operator mistake in a run config is refused at load with one line naming the file and the key, exit code 2,
and nothing written: wrongly typed filter arguments, values out of range, a bad run folder, an unreadable config
file, and values a Slurm script could not carry."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from winnow.pipelines.config import ConfigError, RunConfig, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.fixture
def run_folder(tmp_path):
    """An empty folder the winnow command runs in; the config's relative output_dir lands here."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def write_config(folder: Path, shared_data: Path, **settings) -> Path:
    """run.yaml in `folder`: a small valid run on the real Common Crawl files, with `settings` on top (a section's
    mapping is merged into that section)."""
    data = {"name": "checks", "output_dir": "run", "input": {"paths": f"{shared_data}/warc/cc/*.warc.gz"}}
    for key, value in settings.items():
        data[key] = {**data[key], **value} if isinstance(data.get(key), dict) else value
    config = folder / "run.yaml"
    config.write_text(yaml.safe_dump(data))
    return config


def refused_by_the_cli(config: Path, cwd: Path) -> str:
    """The one stderr line of `winnow base -c config`, after asserting exit code 2 and that nothing was written."""
    before = sorted(cwd.rglob("*"))
    result = subprocess.run(
        [sys.executable, "-m", "winnow.pipelines.cli", "base", "-c", str(config)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("winnow: config error: "), lines
    assert sorted(cwd.rglob("*")) == before  # no run folder, no base/, no input listing
    return lines[0]


# ------------------------------------------------------------------------------------------------ through the CLI


@pytest.mark.parametrize(
    "settings, key, why",
    [
        ({"filters": {"gopher_quality": {"min_doc_words": "lots"}}}, "filters.gopher_quality.min_doc_words", "int"),
        ({"filters": {"language": {"languages": [["en"]]}}}, "filters.language.languages", "list[str]"),
        ({"filters": {"c4_quality": {"filter_policy": "maybe"}}}, "filters.c4_quality.filter_policy", "bool"),
        ({"filters": {"gopher_repetition": {"top_n_grams": [[2, "x"]]}}}, "filters.gopher_repetition.top_n_grams", "["),
        ({"extract": {"timeout": -1}}, "extract.timeout", "greater than 0"),
        ({"input": {"limit": -5}}, "input.limit", "must be -1"),
        ({"subsets": {"thresholds": [2, 6]}}, "subsets.thresholds.1", "less than or equal to 5"),
    ],
)
def test_a_wrong_value_is_one_line_and_nothing_is_written(run_folder, shared_data, settings, key, why):
    config = write_config(run_folder, shared_data, **settings)
    line = refused_by_the_cli(config, run_folder)
    assert f"{config}: {key}: " in line and why in line and "(got " in line


@pytest.mark.parametrize("output_dir", ["", "  "])
def test_an_empty_output_dir_is_refused(run_folder, shared_data, output_dir):
    config = write_config(run_folder, shared_data, output_dir=output_dir)
    assert f"{config}: output_dir: must name the run folder" in refused_by_the_cli(config, run_folder)


def test_an_output_dir_that_is_a_file_is_refused(run_folder, shared_data):
    (run_folder / "taken").write_text("not a folder\n")
    for output_dir in ("taken", "taken/run"):
        config = write_config(run_folder, shared_data, output_dir=output_dir)
        assert f"{config}: output_dir: taken is a file" in refused_by_the_cli(config, run_folder)


def test_a_config_that_is_not_utf8_is_refused(run_folder, shared_data):
    config = write_config(run_folder, shared_data)
    config.write_bytes(config.read_bytes() + "dump: CC-MAIN-2024-10 # café\n".encode("latin-1"))
    offset = config.read_bytes().index(b"\xe9")
    line = refused_by_the_cli(config, run_folder)
    assert line == f"winnow: config error: {config}: not UTF-8 text (byte 0xe9 at offset {offset})"


def test_a_config_path_that_is_a_folder_is_refused(run_folder):
    line = refused_by_the_cli(run_folder, run_folder)
    assert line == f"winnow: config error: {run_folder}: is a folder, not a config file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its permissions")
def test_an_unreadable_config_is_refused(run_folder, shared_data):
    config = write_config(run_folder, shared_data)
    config.chmod(0)
    line = refused_by_the_cli(config, run_folder)
    assert line == f"winnow: config error: {config}: cannot read the config file (permission denied)"


def test_an_unreadable_config_is_one_line(tmp_path, monkeypatch):
    # the same refusal in-process, where the test runs as root (which reads any file)
    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "run.yaml")
    assert str(err.value) == f"{tmp_path / 'run.yaml'}: cannot read the config file (permission denied)"


@pytest.mark.parametrize(
    "settings, key",
    [
        ({"name": "my run"}, "name"),  # a space cannot be part of a Slurm job name
        ({"output_dir": "run folder"}, "output_dir"),  # a space would reach sbatch
        ({"output_dir": "run;id"}, "output_dir"),
    ],
)
def test_slurm_values_are_refused_before_the_stage_folder_exists(run_folder, shared_data, settings, key):
    # before these checks moved into the config, <output_dir>/base/ was created before the Slurm executor refused
    config = write_config(run_folder, shared_data, executor={"kind": "slurm"}, **settings)
    line = refused_by_the_cli(config, run_folder)
    assert f"{config}: {key}: with executor.kind slurm" in line and "(got " in line


# ------------------------------------------------------------------------------------------------ load_config


@pytest.fixture
def config(tmp_path, shared_data):
    return write_config(tmp_path, shared_data, output_dir=str(tmp_path / "run"))


@pytest.mark.parametrize(
    "setting, key",
    [
        ("input.limit=0", "input.limit"),
        ("input.limit=-2", "input.limit"),
        ("executor.tasks=0", "executor.tasks"),
        ("executor.workers=0", "executor.workers"),
        ("executor.cpus_per_task=0", "executor.cpus_per_task"),
        ("executor.mem_per_cpu_gb=0", "executor.mem_per_cpu_gb"),
        ("executor.mem_per_cpu_gb=0.0005", "executor.mem_per_cpu_gb"),  # 0 MB: Slurm would give all the memory
        ("extract.timeout=0", "extract.timeout"),
        ("extract.timeout=-1", "extract.timeout"),
        ("dedup.minhash.n_grams=0", "dedup.minhash.n_grams"),
        ("dedup.minhash.seed=-1", "dedup.minhash.seed"),
        ("dedup.minhash.seed=4294967296", "dedup.minhash.seed"),  # numpy's RandomState takes < 2**32
        ("dedup.max_documents_in_memory=0", "dedup.max_documents_in_memory"),
        ("dedup.tasks=0", "dedup.tasks"),
        ("dedup.bucket_workers=0", "dedup.bucket_workers"),
        ("annotate.n_documents=0", "annotate.n_documents"),
        ("annotate.seed=-1", "annotate.seed"),
        ("annotate.checkpoint_every=0", "annotate.checkpoint_every"),
        ("classifier.seed=-1", "classifier.seed"),
        ("classifier.calibration_folds=1", "classifier.calibration_folds"),
        ("classifier.learning_curve=[0.5, 0]", "classifier.learning_curve.1"),
        ("classifier.learning_curve=[1.5]", "classifier.learning_curve.0"),
        ("classifier.learning_rate=0", "classifier.learning_rate"),
        ("classifier.dev_share=1", "classifier.dev_share"),
        ("classifier.fasttext.lr=0", "classifier.fasttext.lr"),
        ("classifier.fasttext.bucket=10", "classifier.fasttext.bucket"),
        ("score.batch_size=0", "score.batch_size"),
        ("score.tasks=0", "score.tasks"),
        ("subsets.thresholds=[-1]", "subsets.thresholds.0"),
        ("subsets.thresholds=[3, 6]", "subsets.thresholds.1"),
        ("subsets.tasks=0", "subsets.tasks"),
        ("ablate.tokens=0", "ablate.tokens"),
        ("ablate.micro_batch_size=0", "ablate.micro_batch_size"),
        ("ablate.learning_rate=-0.1", "ablate.learning_rate"),
        ("ablate.seeds=[]", "ablate.seeds"),
        ("ablate.seeds=[0, 0]", "ablate.seeds"),
        ("ablate.seeds=[-1]", "ablate.seeds.0"),
        ("ablate.eval_limit=0", "ablate.eval_limit"),
        ("ablate.wikitext_articles=0", "ablate.wikitext_articles"),
        ("ablate.eval_seed=-5", "ablate.eval_seed"),
        ("ablate.eval_every=0", "ablate.eval_every"),
    ],
)
def test_a_value_out_of_range_is_refused_at_load(config, setting, key):
    with pytest.raises(ConfigError) as err:
        load_config(config, [setting])
    message = str(err.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"{config}: {key}: ") and "(got " in message, message
    assert "Value error" not in message  # pydantic's prefix is not the user's business


@pytest.mark.parametrize(
    "setting",
    [
        "input.limit=-1",
        "input.limit=1",
        "executor.workers=-1",
        "extract.timeout=0.05",
        "subsets.thresholds=[0, 5]",
        "subsets.thresholds=[]",
        "classifier.learning_curve=[1.0]",
        "ablate.eval_limit=null",
        "ablate.wikitext_articles=null",
        "ablate.seeds=[7]",
        "annotate.max_chars=0",  # <= 0 shows the whole document
        "score.batch_size=null",
    ],
)
def test_the_edges_of_each_range_load(config, setting):
    load_config(config, [setting])


def test_every_default_is_valid():
    RunConfig(name="defaults", output_dir="run")


@pytest.mark.parametrize("preset", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_passes_the_checks(preset, tmp_path, shared_data):
    cfg = load_config(preset, [f"output_dir={tmp_path / 'run'}", f"input.paths={shared_data}/warc/cc/*.warc.gz"])
    assert cfg.source_file == str(preset)


def test_filter_arguments_are_stored_as_the_types_the_filters_declare(config):
    cfg = load_config(
        config,
        ['filters.gopher_quality.min_doc_words="10"', "filters.fineweb_quality.stop_chars=[., '!']"],
    )
    assert cfg.filters.overrides() == {
        "gopher_quality": {"min_doc_words": 10},
        "fineweb_quality": {"stop_chars": (".", "!")},
    }


@pytest.mark.parametrize(
    "setting, message",
    [
        ("filters.gopher_quality.min_doc_words=true", "filters.gopher_quality.min_doc_words: expected int or null"),
        ("filters.language.language_threshold=high", "filters.language.language_threshold: expected float"),
        ("filters.url.soft_word_threshold=2.5", "filters.url.soft_word_threshold: expected int (got 2.5)"),
        ("filters.language.languages=[[en]]", "filters.language.languages: expected list[str] or str or null"),
    ],
)
def test_a_wrongly_typed_filter_argument_is_refused_at_load(config, setting, message):
    with pytest.raises(ConfigError) as err:
        load_config(config, [setting], check_inputs=False)
    assert str(err.value).startswith(f"{config}: {message}") and len(str(err.value).splitlines()) == 1

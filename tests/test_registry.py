"""The stage registry is the one list of stages: a stage added there (here: a throwaway stage, in this test only)
shows in the CLI, the whole-recipe order, the Slurm upstream order, `winnow status` and the report, and the
Makefile has a target for every registered stage, without any other file knowing its name."""

import argparse
import json
import subprocess
import sys
import textwrap

import pytest

from winnow.pipelines import cli, guard, recipe, registry, status
from winnow.pipelines.config import load_config
from winnow.pipelines.report.run import write_run_report

TOY_MODULE = '''
"""A throwaway stage: reads nothing, keeps 2 of 3 documents, writes summary.json like every stage."""
import json
from pathlib import Path


def run(cfg, args):
    folder = Path(cfg.output_dir) / "toy"
    folder.mkdir(parents=True, exist_ok=True)
    summary = {"read": 3, "kept": 2, "removed": {"too_short": 1}, "failed": {}, "shout": args.shout}
    (folder / "summary.json").write_text(json.dumps(summary))
    return 0
'''


@pytest.fixture
def toy_stage(tmp_path, monkeypatch):
    (tmp_path / "winnow_toy_stage.py").write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    stage = registry.Stage(
        "toy",
        "winnow_toy_stage",
        "a throwaway stage that only exists in this test",
        arguments=(registry.Arg(("--shout",), {"default": "hello"}),),
    )
    monkeypatch.setitem(registry.STAGES, "toy", stage)  # removed again after the test
    config = tmp_path / "run.yaml"
    config.write_text(f"name: toy\noutput_dir: {tmp_path / 'run'}\n")
    return stage, config


def test_a_registered_stage_reaches_every_reader(toy_stage, capsys, monkeypatch):
    stage, config = toy_stage
    cfg = load_config(config, check_inputs=False)

    # the CLI: listed in the help, in `winnow stages`, and runnable with its own option
    assert "a throwaway stage that only exists in this test" in cli.build_parser().format_help()
    assert cli.main(["stages"]) == 0
    assert capsys.readouterr().out.split()[-1] == "toy"
    # the Slurm upstream order: it waits for every recipe stage before it (and for no optional one: it reads none)
    assert registry.upstream_folders("toy", cfg) == [s.name for s in registry.recipe() if s.name != "toy"]

    # before it runs: status and the report say so, with the command that runs it
    status.run(cfg, argparse.Namespace(stage=None))
    assert "toy: not run (make toy)" in capsys.readouterr().out
    md = (write_run_report(cfg) / "report.md").read_text()
    assert "| toy | not run (`make toy`) |" in md

    # the whole-recipe run reaches it (only it here: DEMO_STAGES picks stages by name) with its CLI defaults
    assert registry.recipe()[-1] is stage
    monkeypatch.setenv("DEMO_STAGES", "toy")
    assert recipe.run(cfg, argparse.Namespace(data=None)) == 0
    assert json.loads((cfg.stage_dir("toy") / "summary.json").read_text())["shout"] == "hello"
    assert "toy" in json.loads((cfg.stage_dir("..") / "run" / "timings.json").read_text())
    capsys.readouterr()

    # after it ran: status and the report show it finished, with its accounting
    status.run(cfg, argparse.Namespace(stage=None))
    assert "toy: finished" in capsys.readouterr().out
    md = (write_run_report(cfg) / "report.md").read_text()
    assert "| toy | finished | 3 | 2 | 1 | 0 |" in md

    # and through the real command line, with the stage's own option
    assert cli.main(["toy", "-c", str(config), "--shout", "hi"]) == 0
    assert json.loads((cfg.stage_dir("toy") / "summary.json").read_text())["shout"] == "hi"


def test_the_toy_stage_is_gone_after_its_test():
    assert "toy" not in registry.names()


def test_an_alias_runs_the_same_stage_and_a_duplicate_name_is_refused():
    assert registry.get("train-classifier") is registry.get("classifier")
    with pytest.raises(ValueError, match="registered already"):
        registry.register(registry.Stage("base", "x", "a second base"))
    with pytest.raises(KeyError, match="stages: base, dedup"):
        registry.get("nope")


def test_every_stage_has_a_make_target_that_runs_its_command(project_root):
    # the Makefile's one pattern rule reads `winnow stages`; `make -n` prints the command without running it
    for name in registry.names():
        out = subprocess.run(
            ["make", "-n", name, "CONFIG=x.yaml"], cwd=project_root, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        assert f"winnow {name} -c x.yaml" in out.stdout, out.stdout


def test_every_stage_module_has_run_and_a_docstring():
    for stage in registry.STAGES.values():
        module = stage.load()
        assert callable(module.run) and module.__doc__, stage.name


def test_the_readme_has_a_section_per_stage_in_registry_order(project_root):
    # scripts/assemble_readme.sh orders the stage sections by the registry
    readme = (project_root / "README.md").read_text()
    positions = [readme.find(f"<!-- stage: {name} -->") for name in registry.names()]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), dict(zip(registry.names(), positions))


def test_a_stage_that_fails_is_one_line_and_exit_1(toy_stage, capsys, tmp_path):
    stage, config = toy_stage
    (tmp_path / "winnow_toy_stage.py").write_text(
        textwrap.dedent("""
        from winnow.errors import StageFailed
        def run(cfg, args):
            raise StageFailed("toy/step: 1 of 1 tasks failed; see the task log")
    """)
    )
    sys.modules.pop("winnow_toy_stage", None)
    assert cli.main(["toy", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert err == "winnow: error: toy/step: 1 of 1 tasks failed; see the task log\n"


def test_the_readme_is_assembled_from_the_sections(project_root, tmp_path):
    # README.md is generated (scripts/assemble_readme.sh); an edit made to it directly would be lost
    out = tmp_path / "README.md"
    subprocess.run(["bash", "scripts/assemble_readme.sh", str(out)], cwd=project_root, check=True, timeout=60)
    assert out.read_text() == (project_root / "README.md").read_text()


def test_a_run_folder_with_an_old_stage_folder_name_is_refused(tmp_path, capsys):
    # winnow < 0.2 wrote scored/; reading past it would score everything again next to the old scores
    config = tmp_path / "run.yaml"
    config.write_text(f"name: old\noutput_dir: {tmp_path / 'run'}\n")
    (tmp_path / "run" / "scored").mkdir(parents=True)
    assert cli.main(["status", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("winnow: config error: ") and "rename it to" in err and err.count("\n") == 1
    (tmp_path / "run" / "scored").rename(tmp_path / "run" / "score")
    assert cli.main(["status", "-c", str(config)]) == 0


def test_an_optional_stage_is_upstream_only_of_the_stages_that_read_it(tmp_path):
    """`make distill` after `make score` must not make re-running score refuse its own folder: score's fingerprint
    includes distill's only when score.classifier is the student (and ablate's synthesize's only when an ablation
    trains on it); then a changed student does refuse the scores made with the old one."""
    run = tmp_path / "run"
    plain = tmp_path / "plain.yaml"
    plain.write_text(f"name: t\noutput_dir: {run}\n")
    reading = tmp_path / "reading.yaml"
    reading.write_text(
        f"name: t\noutput_dir: {run}\nscore: {{classifier: {run / 'distill'}}}\n"
        f"ablate: {{ablations: [{{name: synthetic, data: {run / 'synthesize'}}}]}}\n"
    )
    plain_cfg, reading_cfg = load_config(plain, check_inputs=False), load_config(reading, check_inputs=False)
    assert registry.get("distill").in_recipe is False and registry.get("synthesize").in_recipe is False
    assert "distill" not in registry.upstream_folders("score", plain_cfg)
    assert "synthesize" not in registry.upstream_folders("ablate", plain_cfg)
    assert "distill" in registry.upstream_folders("score", reading_cfg)
    assert "synthesize" in registry.upstream_folders("ablate", reading_cfg)
    assert "classifier" in registry.upstream_folders("score", plain_cfg)  # recipe stages stay upstream

    score = registry.get("score")
    configs = {"plain": plain_cfg, "reading": reading_cfg}
    before = {k: guard.fingerprint(c, score, registry.upstream_folders("score", c)) for k, c in configs.items()}
    (run / "distill").mkdir(parents=True)
    (run / "distill" / guard.FINGERPRINT_FILE).write_text('{"stage": "distill"}')  # distill runs after score
    after = {k: guard.fingerprint(c, score, registry.upstream_folders("score", c)) for k, c in configs.items()}
    assert after["plain"] == before["plain"]
    assert guard.differences(before["reading"], after["reading"]) == ["the distill stage's output it was computed from"]

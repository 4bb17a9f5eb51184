#!/usr/bin/env bash
# MANUAL CHECK, NOT RUN IN CI (it installs a CUDA torch: about 0.55 GB for the torch wheel plus about
# 2.2 GB of nvidia-* wheels it depends on, about 6 GB once unpacked, plus datatrove and our own deps).
#
# Proves that the built wheel installs into a user's existing environment without touching their
# datatrove and torch: it
#   1. builds the wheel from a copy of the working tree (pyproject.toml, README.md, src/) and checks that it
#      holds every winnow subpackage, every .py under src/winnow, the prompts/*.txt and proxy/*.sbatch data;
#   2. makes a fresh virtualenv holding a datatrove and a torch that differ from the versions constraints.txt
#      pins but fit our ranges (the "user's environment");
#   3. pip-installs the wheel with the [all] extras into it and fails if pip changed or removed any package
#      that was there before (datatrove and torch above all), or if `pip check` finds a broken requirement;
#   4. from a folder outside the repository runs `winnow --version`, `winnow stages`, imports the block
#      packages and runs a tiny datatrove pipeline (in-memory Documents -> GopherQuality -> JsonlWriter).
# Everything lives in one temporary folder that is removed at the end (KEEP=1 keeps it).
#
# Settings (environment, all optional):
#   PYTHON              interpreter for the virtualenv       (default python3.11)
#   DATATROVE_VERSION   the user's datatrove                  (default 0.10.0; constraints.txt pins 0.10.1)
#   TORCH_VERSION       the user's torch                      (default 2.14.1; constraints.txt pins 2.13.0+cpu)
#   EXTRAS              extras of the wheel to install        (default all)
#   EXTRA_PREINSTALL    more requirements for the user's environment, e.g. "pydantic==2.6.4" to see the
#                       check fail when our ranges force a change (default none)
#   KEEP                1 = keep the temporary folder and print where it is
#
# Usage: bash scripts/check_wheel_install.sh      (ends with "OK: ..." or exits non-zero)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3.11}
DATATROVE_VERSION=${DATATROVE_VERSION:-0.10.0}
TORCH_VERSION=${TORCH_VERSION:-2.14.1}
EXTRAS=${EXTRAS:-all}
KEEP=${KEEP:-0}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/winnow-wheel-check.XXXXXX")
cleanup() {
    if [[ "$KEEP" == 1 ]]; then echo "kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
export TMPDIR="$WORK/tmp"   # pip's build folders and the smoke pipeline's output stay inside $WORK
mkdir -p "$TMPDIR"

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo; echo "=== $* ==="; }

# the user's versions must differ from the ones CI pins, or the check proves nothing
pinned() { grep -i -E "^$1==" "$REPO/constraints.txt" | head -1 | cut -d= -f3; }
PIN_DT=$(pinned datatrove); PIN_TORCH=$(pinned torch)
[[ "$DATATROVE_VERSION" != "$PIN_DT" ]] || fail "DATATROVE_VERSION=$DATATROVE_VERSION is the version constraints.txt pins"
[[ "$TORCH_VERSION" != "$PIN_TORCH" ]] || fail "TORCH_VERSION=$TORCH_VERSION is the version constraints.txt pins"
echo "constraints.txt pins datatrove==$PIN_DT torch==$PIN_TORCH; the user's environment gets datatrove==$DATATROVE_VERSION torch==$TORCH_VERSION"

step "fresh virtualenv ($PYTHON)"
"$PYTHON" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
PIP=("$VPY" -m pip --disable-pip-version-check)
"${PIP[@]}" install --quiet --upgrade pip > "$WORK/pip-upgrade.log" 2>&1 || { cat "$WORK/pip-upgrade.log"; fail "pip upgrade failed"; }
"${PIP[@]}" --version

step "build the wheel from a copy of the working tree"
mkdir -p "$WORK/src-copy" "$WORK/wheel"
tar -C "$REPO" --exclude='__pycache__' --exclude='*.egg-info' --exclude='*.pyc' -cf - pyproject.toml README.md src \
    | tar -C "$WORK/src-copy" -xf -
"${PIP[@]}" wheel --no-deps -w "$WORK/wheel" "$WORK/src-copy" > "$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log"; fail "building the wheel failed"; }
WHEEL=$(ls "$WORK"/wheel/winnow_curate-*.whl)
echo "built $(basename "$WHEEL") ($(stat -c %s "$WHEEL") bytes)"

step "wheel contents"
"$VPY" - "$WHEEL" "$REPO/src" <<'EOF'
import pathlib, sys, zipfile
wheel, src = sys.argv[1], pathlib.Path(sys.argv[2])
names = set(zipfile.ZipFile(wheel).namelist())
skip = lambda p: "__pycache__" in p.parts or p.suffix == ".pyc"
expected = sorted(str(p.relative_to(src)) for p in (src / "winnow").rglob("*") if p.is_file() and not skip(p))
missing = [p for p in expected if p not in names]
packages = sorted(str(p.parent.relative_to(src)) for p in (src / "winnow").rglob("__init__.py") if not skip(p))
data = sorted(n for n in names if n.endswith((".txt", ".sbatch")) and n.startswith("winnow/"))
print(f"{len(packages)} packages, {len(expected)} files under src/winnow, {len(names)} entries in the wheel")
print("data files:", ", ".join(data))
if not any(n.startswith("winnow/classifiers/prompts/") and n.endswith(".txt") for n in names):
    sys.exit("no winnow/classifiers/prompts/*.txt in the wheel")
if "winnow/proxy/train.sbatch" not in names:
    sys.exit("no winnow/proxy/train.sbatch in the wheel")
if missing:
    sys.exit("missing from the wheel: " + ", ".join(missing))
EOF

step "the user's environment: datatrove[processing,io]==$DATATROVE_VERSION torch==$TORCH_VERSION"
"${PIP[@]}" install "datatrove[processing,io]==$DATATROVE_VERSION" "torch==$TORCH_VERSION" ${EXTRA_PREINSTALL:-} \
    > "$WORK/preinstall.log" 2>&1 || { cat "$WORK/preinstall.log"; fail "could not set up the user's environment"; }
"${PIP[@]}" freeze --all | sort > "$WORK/before.txt"
echo "before:"; "${PIP[@]}" list 2>/dev/null | grep -i -E "^(datatrove|torch) "

step "pip install $(basename "$WHEEL")[$EXTRAS]"
"${PIP[@]}" install "$WHEEL[$EXTRAS]" > "$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; fail "pip install failed"; }
echo "pip's lines about datatrove / torch:"
grep -E "^(Requirement already satisfied|Collecting|Downloading|Attempting uninstall|  Found existing|Successfully uninstalled)[: ]+(datatrove|torch)[^-_a-z]" \
    "$WORK/install.log" | sed -E 's/ \(from .*\) \(/ (/' || true
grep -i -E "uninstall" "$WORK/install.log" || echo "(pip uninstalled nothing)"
grep -E "^Successfully installed" "$WORK/install.log"
"${PIP[@]}" freeze --all | sort > "$WORK/after.txt"
echo "after:"; "${PIP[@]}" list 2>/dev/null | grep -i -E "^(datatrove|torch) "

changed=$(comm -23 "$WORK/before.txt" "$WORK/after.txt")
if [[ -n "$changed" ]]; then
    echo "packages of the user's environment that pip changed or removed (before -> after):" >&2
    while read -r line; do
        name=${line%%==*}
        echo "  $line -> $(grep -i -E "^${name}==" "$WORK/after.txt" || echo removed)" >&2
    done <<< "$changed"
    fail "installing the wheel changed the user's environment"
fi
echo "every package that was there before is unchanged ($(wc -l < "$WORK/before.txt") packages)"
"${PIP[@]}" check

step "smoke checks from a folder outside the repository"
mkdir -p "$WORK/outside" && cd "$WORK/outside"
WANT_VERSION=$(basename "$WHEEL" | cut -d- -f2)
got=$("$WORK/venv/bin/winnow" --version); echo "$got"
[[ "$got" == *"$WANT_VERSION"* ]] || fail "winnow --version says '$got', the wheel is $WANT_VERSION"
"$WORK/venv/bin/winnow" stages
"$VPY" -c "import winnow.blocks.filters, winnow.blocks.extractors, winnow.blocks.dedup; from winnow.blocks.extractors import EXTRACTORS; print(sorted(EXTRACTORS))"
"$VPY" - "$WORK/venv" "$DATATROVE_VERSION" "$TORCH_VERSION" 2> "$WORK/pipeline.log" <<'EOF' \
    || { cat "$WORK/pipeline.log" >&2; fail "the datatrove pipeline with winnow's GopherQuality failed"; }
import json, pathlib, sys, tempfile
from importlib.metadata import version

import torch
import winnow
from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.writers import JsonlWriter

from winnow.blocks.filters import GopherQuality

venv, want_dt, want_torch = sys.argv[1:]
if not winnow.__file__.startswith(venv):
    sys.exit(f"winnow imported from {winnow.__file__}, not from the virtualenv")
good = ("The river runs through the old town, past the market and the church. "
        "People come here every morning to buy bread, fish and vegetables from the farmers. "
        "In the afternoon the square is quiet, and the children play football near the fountain. ") * 5
docs = [Document(text=good, id="good"), Document(text="buy now " * 3, id="too-short")]
out = pathlib.Path(tempfile.mkdtemp())
LocalPipelineExecutor(
    pipeline=[docs, GopherQuality(), JsonlWriter(str(out / "kept"), compression=None)],
    tasks=1, workers=1, logging_dir=str(out / "logs"),
).run()
kept = [json.loads(line)["id"] for f in sorted((out / "kept").glob("*.jsonl")) for line in f.read_text().splitlines()]
print(f"datatrove {version('datatrove')}, torch {torch.__version__}: GopherQuality kept {kept} of ['good', 'too-short']")
if kept != ["good"]:
    sys.exit("the pipeline should keep exactly ['good']")
if version("datatrove") != want_dt or version("torch") != want_torch:
    sys.exit(f"expected datatrove {want_dt} and torch {want_torch} at run time")
EOF

echo
echo "OK: $(basename "$WHEEL")[$EXTRAS] installed next to datatrove $DATATROVE_VERSION and torch $TORCH_VERSION without changing them; CLI, imports and a datatrove pipeline work"

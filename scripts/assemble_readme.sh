#!/usr/bin/env bash
# README.md = the intro, the whole-recipe section, then one section per stage in the stage registry's order
# (docs/sections/<stage>.md, written beside the code it documents; the order comes from `winnow stages`),
# then the sections that are not stages. `scripts/assemble_readme.sh OUT` writes OUT instead of README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
s=docs/sections
out=${1:-README.md}
stages=$(.venv/bin/python -m winnow.pipelines.cli stages)
{
  cat $s/00-intro.md
  echo; cat $s/demo.md
  for stage in $stages; do
    test -f "$s/$stage.md" || { echo "assemble_readme: no $s/$stage.md for stage $stage" >&2; exit 2; }
    echo; echo "<!-- stage: $stage -->"; cat "$s/$stage.md"
  done
  for f in extract datasets slurm ray architecture; do
    if [ -f "$s/$f.md" ]; then echo; cat "$s/$f.md"; fi
  done
  cat $s/99-end.md
} > "$out"

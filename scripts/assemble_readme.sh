#!/usr/bin/env bash
# README.md = the intro + one section per stage (docs/sections/*.md, written beside the code they document).
set -euo pipefail
cd "$(dirname "$0")/.."
s=docs/sections
{
  cat $s/00-intro.md
  for f in demo base extract dedup annotate classifier ablate slurm; do echo; cat "$s/$f.md"; done
  cat $s/99-end.md
} > README.md

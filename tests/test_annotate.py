"""The annotation stage on real FineWeb documents, against the real embedded server (SmolLM2 via `transformers serve`).

Faults a real server cannot be made to produce on demand (an HTTP 500, a garbage body, a hang, a dropped
connection) come from `FaultyProxy`, a small real HTTP server in this file that sits in front of the real server:
it answers the fault itself or forwards the request unchanged.

The servers run with one thread (annotator.threads) and the stages under `nice`: the machine is shared.
"""

import gzip
import http.server
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from winnow.classifiers.parsing import parse_score
from winnow.pipelines.config import ConfigError, RunConfig, load_config
from winnow.pipelines.stages import annotate
from winnow.pipelines.summary import read_summary

WINNOW = [sys.executable, "-m", "winnow.pipelines.cli"]


# ---- real documents ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, shared_data) -> Path:
    """A base-stage-like folder: 40 real FineWeb documents (with their Llama-3 label) in two 'dumps'."""
    with gzip.open(shared_data / "annotations" / "fineweb-edu-llama3" / "val.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for _, line in zip(range(40), f)]
    folder = tmp_path_factory.mktemp("run") / "base"
    folder.mkdir()
    records = [
        {
            "text": r["text"],
            "id": f"val-{r['id']}",
            "url": f"https://example.org/{r['id']}",
            "dump": "CC-MAIN-2024-10" if i % 4 else "CC-MAIN-2023-50",
            "llama3_score": r["scores"]["score"],
        }
        for i, r in enumerate(rows)
    ]
    pq.write_table(pa.Table.from_pylist(records[:25]), folder / "00000.parquet")
    pq.write_table(pa.Table.from_pylist(records[25:]), folder / "00001.parquet")
    return folder


def write_config(tmp_path: Path, base_dir: Path, annotate_section: dict, annotator_section: dict) -> Path:
    config = {
        "name": "t",
        "output_dir": str(tmp_path / "run"),
        "annotate": {"source": str(base_dir), **annotate_section},
        "annotator": annotator_section,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def winnow_annotate(config: Path, *sets: str, timeout: float = 300) -> subprocess.CompletedProcess:
    command = ["nice", "-n", "10", *WINNOW, "annotate", "-c", str(config), *sum((["--set", s] for s in sets), [])]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def rows_of(run_dir: Path) -> list[dict]:
    rows = []
    for path in sorted((run_dir / "annotate").glob("*.parquet")):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def sampled_ids(run_dir: Path) -> set[str]:
    return {
        i
        for p in (run_dir / "annotate" / "sample").glob("*.parquet")
        for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()
    }


# ---- sampling (no server) ---------------------------------------------------------------------------------------
def _cfg(tmp_path, base_dir, **annotate_section) -> RunConfig:
    return RunConfig(name="t", output_dir=str(tmp_path), annotate={"source": str(base_dir), **annotate_section})


def test_sample_is_seeded_and_fixed_once(tmp_path, base_dir):
    first = sampled_ids_from(annotate.write_sample(_cfg(tmp_path / "a", base_dir, n_documents=10, seed=3)))
    again = sampled_ids_from(annotate.write_sample(_cfg(tmp_path / "b", base_dir, n_documents=10, seed=3)))
    other = sampled_ids_from(annotate.write_sample(_cfg(tmp_path / "c", base_dir, n_documents=10, seed=4)))
    assert len(first) == 10 and first == again and first != other
    # documents come from both source files
    all_ids = set(pq.read_table(base_dir / "00001.parquet").column("id").to_pylist())
    assert first & all_ids
    with pytest.raises(ConfigError, match="different sample"):
        annotate.write_sample(_cfg(tmp_path / "a", base_dir, n_documents=11, seed=3))


def sampled_ids_from(folder: Path) -> set[str]:
    return {i for p in folder.glob("*.parquet") for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()}


def test_stratified_sample_keeps_each_dumps_share(tmp_path, base_dir):
    cfg = _cfg(tmp_path, base_dir, n_documents=8, seed=0, stratify_by="dump", tasks=2)
    folder = annotate.write_sample(cfg)
    rows = [r for p in sorted(folder.glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert len(list(folder.glob("*.parquet"))) == 2  # one file per task
    strata = [r["stratum"] for r in rows]
    # 40 documents, 10 from CC-MAIN-2023-50: a quarter of the sample
    assert sorted(strata) == ["CC-MAIN-2023-50"] * 2 + ["CC-MAIN-2024-10"] * 6
    assert len({r["id"] for r in rows}) == 8 and all(r["text"] for r in rows)


def test_asking_for_more_than_there_is_takes_everything_once(tmp_path, base_dir):
    ids = sampled_ids_from(annotate.write_sample(_cfg(tmp_path, base_dir, n_documents=1000)))
    assert len(ids) == 40


def test_default_source_is_the_latest_finished_stage(tmp_path, base_dir):
    cfg = RunConfig(name="t", output_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="nothing to annotate"):
        annotate.source_dir(cfg)
    for stage in ("base", "dedup"):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / "00000.parquet").write_bytes((base_dir / "00000.parquet").read_bytes())
    with pytest.raises(ConfigError, match="dedup is not finished"):
        annotate.source_dir(cfg)  # a dedup still running (or killed) must not be sampled
    (tmp_path / "dedup" / "summary.json").write_text("{}")
    assert annotate.source_dir(cfg) == tmp_path / "dedup"


def test_annotator_config_is_checked_at_load(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: t\noutput_dir: x\nannotator: {kind: endpoint, temperature: -1}\n")
    with pytest.raises(ConfigError, match="annotator.temperature"):
        load_config(path, check_inputs=False)
    path.write_text("name: t\noutput_dir: x\nannotator: {kind: endpoint, api_key: sk-123}\n")
    with pytest.raises(ConfigError, match="unknown key 'annotator.api_key'"):
        load_config(path, check_inputs=False)


# ---- the real server --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    from winnow.classifiers.local_server import LocalServer, ensure_model_dir

    log = tmp_path_factory.mktemp("server") / "serve.log"
    with LocalServer(ensure_model_dir(), threads=1, log_path=log) as server:
        yield server


class FaultyProxy:
    """A real HTTP server: for each distinct request body, `faults[k]` lists what the first attempts get
    ("500", "garbage", "hang", "drop"); later attempts are forwarded to `upstream` (or get 503 without one)."""

    def __init__(self, upstream: str | None, faults: list[list[str]], hang_s: float = 30.0):
        self.upstream, self.faults, self.hang_s = upstream, faults, hang_s
        self.seen: dict[bytes, int] = {}
        self.attempts: dict[bytes, int] = {}
        self.authorization: set[str] = set()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                proxy.authorization.add(self.headers.get("Authorization", ""))
                body = (
                    httpx.get(proxy.upstream + self.path).content
                    if proxy.upstream
                    else json.dumps({"data": [{"id": "any"}]}).encode()
                )
                self._send(200, body)

            def do_POST(self):
                proxy.authorization.add(self.headers.get("Authorization", ""))
                body = self.rfile.read(int(self.headers["Content-Length"]))
                k = proxy.seen.setdefault(body, len(proxy.seen))
                n = proxy.attempts[body] = proxy.attempts.get(body, 0) + 1
                plan = proxy.faults[k % len(proxy.faults)]
                fault = plan[n - 1] if n <= len(plan) else "forward"
                if fault == "500":
                    return self._send(500, b'{"error": "internal"}')
                if fault == "garbage":
                    return self._send(200, b"<html>\x00\xff not json")
                if fault == "hang":
                    time.sleep(proxy.hang_s)
                    return self._send(200, b"{}")
                if fault == "drop":
                    self.close_connection = True
                    return self.connection.shutdown(2)
                if not proxy.upstream:
                    return self._send(503, b"no upstream")
                reply = httpx.post(
                    proxy.upstream + self.path, content=body, headers={"Content-Type": "application/json"}, timeout=300
                )
                self._send(reply.status_code, reply.content)

            def _send(self, status, body):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def run_in_process(config: Path, *sets: str) -> int:
    from winnow.pipelines.cli import main

    return main(["annotate", "-c", str(config), *sum((["--set", s] for s in sets), [])])


@pytest.mark.slow
def test_faults_that_never_clear_end_as_failed_with_their_reason(tmp_path, base_dir):
    proxy = FaultyProxy(None, [["500"] * 9, ["garbage"] * 9, ["hang"] * 9], hang_s=5)
    config = write_config(
        tmp_path,
        base_dir,
        {"n_documents": 3, "seed": 5},
        {
            "kind": "endpoint",
            "base_url": proxy.url,
            "model": "any",
            "mode": "decision",
            "timeout_s": 1,
            "max_attempts": 2,
            "backoff_s": 0.1,
        },
    )
    try:
        assert run_in_process(config) == 0
    finally:
        proxy.close()
    rows = rows_of(tmp_path / "run")
    assert {r["id"] for r in rows} == sampled_ids(tmp_path / "run") and len(rows) == 3
    assert all(r["status"] == "failed" and r["score"] is None and r["attempts"] == 2 for r in rows)
    errors = sorted(r["error"].split(" | ")[0].split(":")[0] for r in rows)
    assert errors == ["HTTP 500", "malformed reply", "timeout after 1 s"]
    summary = read_summary(tmp_path / "run" / "annotate")
    assert (summary["requested"], summary["scored"], summary["unparseable"], summary["failed"]) == (3, 0, 0, 3)
    assert summary["reasons"]["failed"] == {"HTTP 500": 1, "malformed reply": 1, "timeout after 1 s": 1}


@pytest.mark.slow
def test_transient_faults_are_retried_until_the_real_server_scores(tmp_path, base_dir, real_server, monkeypatch):
    monkeypatch.setenv("WINNOW_TEST_ANNOTATOR_KEY", "sk-test-4c1d-never-written")
    proxy = FaultyProxy(real_server.base_url, [["500", "garbage"], ["drop"]])
    config = write_config(
        tmp_path,
        base_dir,
        {"n_documents": 2, "seed": 6},
        {
            "kind": "endpoint",
            "base_url": proxy.url,
            "model": real_server.model,
            "mode": "decision",
            "api_key_env": "WINNOW_TEST_ANNOTATOR_KEY",
            "timeout_s": 120,
            "max_attempts": 3,
            "backoff_s": 0.1,
        },
    )
    try:
        assert run_in_process(config) == 0
    finally:
        proxy.close()
    rows = rows_of(tmp_path / "run")
    assert len(rows) == 2 and {r["id"] for r in rows} == sampled_ids(tmp_path / "run")
    assert sorted(r["attempts"] for r in rows) == [2, 3]  # 500 then garbage then scored; dropped then scored
    for row in rows:
        assert row["status"] == "scored" and row["error"] is None
        probabilities = json.loads(row["response"])
        assert sorted(probabilities) == ["0", "1", "2", "3", "4", "5"]
        assert row["score"] == int(max(probabilities, key=probabilities.get))
        assert row["score_expected"] == pytest.approx(sum(int(k) * p for k, p in probabilities.items()))
        assert row["prompt_version"] == "fineweb_edu_v1" and row["prompt_tokens"] > 100
    # the key reached the server, and nothing the stage wrote contains it
    assert proxy.authorization == {"Bearer sk-test-4c1d-never-written"}
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert b"sk-test-4c1d" not in path.read_bytes(), path
    summary = read_summary(tmp_path / "run" / "annotate")
    assert (
        summary["scored"] == 2 and summary["attempts"] == {"2": 1, "3": 1} and sum(summary["histogram"].values()) == 2
    )


@pytest.mark.slow
def test_real_answer_without_a_score_line_is_unparseable_after_retries(tmp_path, base_dir, real_server):
    """A real chat answer cut to one token (max_tokens: 1) cannot hold "Educational score: N": the document is asked
    `max_attempts` times and recorded unparseable with the parser's reason, never given a guessed score."""
    config = write_config(
        tmp_path,
        base_dir,
        {"n_documents": 1, "seed": 7, "max_chars": 300},
        {
            "kind": "endpoint",
            "base_url": real_server.base_url,
            "model": real_server.model,
            "mode": "chat",
            "max_tokens": 1,
            "max_attempts": 2,
            "backoff_s": 0.1,
        },
    )
    assert run_in_process(config) == 0
    [row] = rows_of(tmp_path / "run")
    assert row["status"] == "unparseable" and row["score"] is None and row["attempts"] == 2
    assert row["response"] and row["completion_tokens"] == 2  # one token per attempt
    reason = "no 'Educational score: N' statement"
    assert parse_score(row["response"]).reason == reason and row["error"] == f"{reason} | {reason}"
    summary = read_summary(tmp_path / "run" / "annotate")
    assert summary["unparseable"] == 1 and summary["removed"] == {"unparseable": {reason: 1}}
    assert summary["parse_rate"] == 0.0 and summary["tokens"]["completion"] == 2


def test_unreachable_server_fails_fast_with_one_message(tmp_path, base_dir, capsys):
    config = write_config(
        tmp_path, base_dir, {"n_documents": 3}, {"kind": "endpoint", "base_url": "http://127.0.0.1:9/v1", "model": "m"}
    )
    started = time.monotonic()
    assert run_in_process(config) == 2
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "annotator endpoint http://127.0.0.1:9 is unreachable" in err[0]
    assert not (tmp_path / "run" / "annotate").exists()  # nothing started, nothing to clean up


@pytest.mark.slow
def test_wrong_model_name_fails_fast_naming_what_is_served(tmp_path, base_dir, real_server, capsys):
    config = write_config(
        tmp_path,
        base_dir,
        {"n_documents": 3},
        {"kind": "endpoint", "base_url": real_server.base_url + "/v1", "model": "llama-70b"},
    )
    assert run_in_process(config) == 2
    err = capsys.readouterr().err
    assert "'llama-70b' is not served" in err and real_server.model in err


@pytest.mark.slow
def test_server_dying_midway_leaves_every_document_accounted_for(tmp_path, base_dir, real_server):
    """Kills the module's real server, so this is the last test that uses it."""
    run_dir = tmp_path / "run"
    config = write_config(
        tmp_path,
        base_dir,
        {"n_documents": 4, "seed": 12},
        {
            "kind": "endpoint",
            "base_url": real_server.base_url,
            "model": real_server.model,
            "mode": "decision",
            "concurrency": 1,
            "max_attempts": 2,
            "backoff_s": 0.2,
        },
    )
    stage = subprocess.Popen(
        ["nice", "-n", "10", *WINNOW, "annotate", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(lambda: _done_in_checkpoints(run_dir, 10) >= 1, 300, "a first annotated document")
    real_server.process.send_signal(signal.SIGKILL)
    _, err = stage.communicate(timeout=300)
    assert stage.returncode == 0, err[-2000:]
    rows = rows_of(run_dir)
    assert sorted(r["id"] for r in rows) == sorted(sampled_ids(run_dir))
    failed = [r for r in rows if r["status"] == "failed"]
    assert failed and all(r["attempts"] == 2 and "server unreachable" in r["error"] for r in failed)
    summary = read_summary(run_dir / "annotate")
    assert summary["requested"] == 4 == summary["scored"] + summary["unparseable"] + summary["failed"]
    assert summary["failed"] == len(failed) and summary["reasons"]["failed"] == {"server unreachable": len(failed)}


# ---- the embedded default, end to end ----------------------------------------------------------------------------
def _done_in_checkpoints(run_dir: Path, per_chunk: int) -> int:
    checkpoints = run_dir / "annotate" / "checkpoints"
    last = checkpoints / "last_chunk" / "00000.txt"
    done = (int(last.read_text()) + 1) * per_chunk if last.is_file() and last.read_text().strip() else 0
    for chunk in checkpoints.glob("00000/chunk_*.jsonl"):
        done += sum(1 for line in chunk.read_text().splitlines() if line.strip())
    return done


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def _server_requests(log: Path) -> int:
    return log.read_text().count('"POST /v1/systemone HTTP/1.1" 200')


@pytest.mark.slow
def test_embedded_default_killed_midway_resumes_without_duplicates_or_gaps(tmp_path, base_dir):
    run_dir = tmp_path / "run"
    config = write_config(tmp_path, base_dir, {"n_documents": 4, "seed": 11, "checkpoint_every": 2}, {"kind": "local"})
    command = ["nice", "-n", "10", *WINNOW, "annotate", "-c", str(config)]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children = []
    try:
        # kill -9 once the first chunk is complete and the second one has started
        _wait_for(lambda: _done_in_checkpoints(run_dir, 2) >= 3, 240, "3 annotated documents")
        children = psutil.Process(first.pid).children(recursive=True)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    done_before = _done_in_checkpoints(run_dir, 2)
    [pid_file] = (run_dir / "annotate" / "logs" / "server").glob("*.pid")
    server = psutil.Process(int(pid_file.read_text()))
    assert server in children
    # the embedded server goes by itself (it is told to die with its parent) ...
    _wait_for(
        lambda: not server.is_running() or server.status() == psutil.STATUS_ZOMBIE, 30, "the orphaned server to exit"
    )
    # ... datatrove's local executor also forks a multiprocess Manager, which a kill -9 leaves behind: not ours,
    # but this test started it, so it ends it
    for child in children:
        if child != server and child.is_running():
            child.kill()
    assert not (run_dir / "annotate" / "summary.json").exists()

    second = winnow_annotate(config)
    assert second.returncode == 0, second.stderr[-2000:]
    rows = rows_of(run_dir)
    assert sorted(r["id"] for r in rows) == sorted(sampled_ids(run_dir))  # each sampled document exactly once
    assert all(r["status"] == "scored" and 0 <= r["score"] <= 5 for r in rows)
    # the rerun asked the server only for the documents the killed run had not finished
    logs = sorted((run_dir / "annotate" / "logs" / "server").glob("*.log"), key=lambda p: p.stat().st_mtime)
    assert _server_requests(logs[-1]) == 4 - done_before
    summary = read_summary(run_dir / "annotate")
    assert (summary["requested"], summary["scored"], summary["failed"]) == (4, 4, 0)
    assert "no useful judgement" in summary["note"] and (run_dir / "annotate" / "score_histogram.png").stat().st_size

    assert run_in_process(config) == 0  # complete: nothing is annotated again
    assert len(rows_of(run_dir)) == 4 and read_summary(run_dir / "annotate") == summary
    assert len(sorted((run_dir / "annotate" / "logs" / "server").glob("*.log"))) == 2  # no server started

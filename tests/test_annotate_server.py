"""`annotator.kind: server`: each annotate task starts its own LLM server through datatrove's server management and
stops it at the end — the user gives a model path, not a running endpoint.

vLLM and SGLang need a GPU and are not installable here; the same code path (datatrove's InferenceRunner starting the
server, polling /v1/models, watching its health, our annotator pointed at it once ready, the server stopped with the
task) is driven with `server_type: embedded`, which datatrove starts as a CustomServer running the real SmolLM2 model.
What differs for vLLM/SGLang is only datatrove's own command line for them; the checks that run before any work for
those types are tested here with a real folder and a missing package.
"""

import psutil
import pytest

from test_annotate import base_dir, rows_of, winnow_annotate, write_config  # noqa: F401 (fixture)
from winnow.pipelines.summary import read_summary


def _servers_running() -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        if "transformers.cli.transformers" in cmdline and "serve" in cmdline:
            found.append(p)
    return found


def test_the_task_starts_its_server_scores_like_the_embedded_default_and_stops_it(tmp_path, base_dir):  # noqa: F811
    before = {p.pid for p in _servers_running()}
    annotate = {"n_documents": 4, "seed": 5, "checkpoint_every": 2}
    (tmp_path / "server").mkdir()
    (tmp_path / "local").mkdir()
    server = write_config(
        tmp_path / "server", base_dir, annotate, {"kind": "server", "server_type": "embedded", "mode": "decision"}
    )
    done = winnow_annotate(server, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "server" / "run"
    rows = rows_of(run_dir)
    summary = read_summary(run_dir / "annotate")
    assert len(rows) == 4 and summary["requested"] == 4
    assert all(r["status"] == "scored" for r in rows), [r["error"] for r in rows]
    # datatrove started it: its log is in the stage's server log folder, and it is gone with the task
    logs = list((run_dir / "annotate" / "logs" / "server").glob("server_rank_*.log"))
    assert logs and "Uvicorn running" in "".join(p.read_text() for p in logs)
    assert {p.pid for p in _servers_running()} - before == set()

    local = write_config(tmp_path / "local", base_dir, annotate, {"kind": "local", "mode": "decision"})
    done = winnow_annotate(local, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = {r["id"]: r["score_expected"] for r in rows_of(tmp_path / "local" / "run")}
    got = {r["id"]: r["score_expected"] for r in rows}
    assert got.keys() == expected.keys()
    assert all(abs(got[k] - expected[k]) < 1e-6 for k in got), (got, expected)


@pytest.mark.parametrize("server_type", ["vllm", "sglang"])
def test_gpu_servers_are_checked_before_any_work(tmp_path, base_dir, server_type):  # noqa: F811
    config = write_config(tmp_path, base_dir, {"n_documents": 2}, {"kind": "server", "server_type": server_type})
    done = winnow_annotate(config, f"annotator.model={tmp_path / 'nowhere'}")
    assert done.returncode != 0
    assert f"annotator.model {tmp_path / 'nowhere'}: no such model folder" in done.stderr
    (tmp_path / "model").mkdir()
    done = winnow_annotate(config, f"annotator.model={tmp_path / 'model'}")
    assert done.returncode != 0
    assert f"annotator.server_type {server_type}: the {server_type} package is not installed" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "run" / "annotate" / "sample").exists()


def test_the_server_command_datatrove_would_run_for_vllm_carries_the_parallelism(tmp_path, monkeypatch):
    """The vLLM command line (datatrove's VLLMServer) built from our config: tp/dp and the extra flags."""
    import asyncio

    from datatrove.pipeline.inference.servers import vllm_server

    from winnow.pipelines.config import RunConfig
    from winnow.pipelines.stages.annotate import build_runner

    (tmp_path / "llama").mkdir()
    cfg = RunConfig(
        name="t",
        output_dir=str(tmp_path / "run"),
        annotator={
            "kind": "server",
            "server_type": "vllm",
            "model": str(tmp_path / "llama"),
            "tp": 4,
            "dp": 2,
            "max_context": 4096,
            "server_args": {"gpu-memory-utilization": 0.9},
        },
    )
    runner = build_runner(cfg, tmp_path / "run" / "annotate")
    assert runner.config.server_type == "vllm" and runner.config.tp == 4 and runner.config.dp == 2
    started = []

    async def fake_exec(*cmd, **kwargs):  # a test double: vllm cannot run here; we record what would be run
        started.append(cmd)
        raise RuntimeError("not starting vllm in a test")

    monkeypatch.setattr(vllm_server, "check_required_dependencies", lambda *a, **k: None)
    monkeypatch.setattr(asyncio, "create_subprocess_exec", fake_exec)

    async def start():  # datatrove's servers are made inside the event loop that runs them
        server = vllm_server.VLLMServer(runner.config, rank=0)
        server._port = 8000
        await server._start_vllm_task()

    with pytest.raises(RuntimeError, match="not starting vllm"):
        asyncio.run(start())
    cmd = " ".join(started[0])
    assert cmd.startswith(f"vllm serve {tmp_path / 'llama'} --port 8000 --max-model-len 4096")
    assert "--tensor-parallel-size=4" in cmd and "--data-parallel-size=2" in cmd
    assert "--gpu-memory-utilization=0.9" in cmd

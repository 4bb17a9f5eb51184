"""Main-text extractors (HTML → plain text) that account for every document.

datatrove's stock extractors drop a document silently when extraction times out, raises or returns nothing.
Here each outcome is named:
  extracted            text found, document forwarded
  passed_plain_text    already text (WET conversion records, JSONL/Parquet input): forwarded unchanged
  dropped_no_main_text the extractor found no main text → written to removed/<extractor step>/ (a removal)
  failed_timeout / failed_error / failed_worker_died → written to the failure writer and logged (a failure)

This module holds the base class every extractor of winnow derives from; the registry of names
(`EXTRACTORS`) is in `winnow.blocks.extractors`.
"""

from __future__ import annotations

import contextlib
import signal
import threading

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.extractors.base import BaseExtractor, ExtractorSandbox
from datatrove.utils.logging import logger


class ExtractionTimeout(BaseException):
    """Raised by CpuTimeout. A BaseException, like KeyboardInterrupt, so that the `except Exception` blocks inside
    extraction libraries (trafilatura swallows any Exception from its readability fallback) cannot absorb it."""


class CpuTimeout:
    """Per-document timeout in this process, on CPU time: SIGPROF interrupts the extraction after `timeout`
    seconds of CPU used by this process (datatrove's sandbox instead ships every page to a worker process and
    waits on the wall clock).

    CPU time, not wall time, so that a page's fate does not depend on how busy the machine is: on shared cores
    a wall-clock limit times out different pages on every run, and a re-run would not reproduce its output.
    Signals reach only a process's main thread, where datatrove's local executor runs each task; elsewhere
    use isolation="process". A C call that never returns to Python cannot be interrupted (lxml returns often).
    """

    def __init__(self, timeout: float):
        self.timeout = timeout

    def __enter__(self):
        self._previous = signal.signal(signal.SIGPROF, self._expired)
        return self

    @staticmethod
    def _expired(signum, frame):
        raise ExtractionTimeout("extraction used more CPU time than its timeout")

    def process_document(self, text, extract_fn):
        signal.setitimer(signal.ITIMER_PROF, self.timeout, 0.05)  # re-fires every 50 ms should a bare except eat it
        try:
            return extract_fn(text)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, self._previous)


class NoTimeout:
    """For extractors fast and safe enough to run without a guard (resiliparse: linear-time C++)."""

    def __enter__(self):
        return self

    def process_document(self, text, extract_fn):
        return extract_fn(text)

    def __exit__(self, *exc):
        pass


class AccountedExtractor(BaseExtractor):
    """Base for our extractors: every document is forwarded, removed (no main text) or failed, with a reason.

    Args:
        timeout: seconds per document
        isolation: "signal" (CPU-time limit in this process, see CpuTimeout), "process" (datatrove's persistent
            worker process, killed after `timeout` wall-clock seconds) or "none"
        exclusion_writer: where documents with no main text go (removed/)
        failure_writer: where documents whose extraction failed go (failed/), with filter_reason
    """

    def __init__(self, timeout: float = 1.0, isolation: str = "signal", exclusion_writer=None, failure_writer=None):
        super().__init__(timeout)
        if isolation not in ("process", "signal", "none"):
            raise ValueError(f"isolation must be process, signal or none, got {isolation!r}")
        self.isolation = isolation
        self.exclusion_writer = exclusion_writer
        self.failure_writer = failure_writer

    def _guard(self):
        if self.isolation == "signal" and threading.current_thread() is not threading.main_thread():
            logger.warning("not in the main thread: signal timeouts impossible, using a worker process")
            return ExtractorSandbox(timeout=self.timeout, warmup_text="")
        if self.isolation == "process":
            return ExtractorSandbox(timeout=self.timeout, warmup_text="")
        if self.isolation == "signal":
            return CpuTimeout(self.timeout)
        return NoTimeout()

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with (
            self.exclusion_writer or contextlib.nullcontext() as removed,
            self.failure_writer or contextlib.nullcontext() as failed,
            self._guard() as guard,
        ):
            for doc in data:
                self.stat_update("total")
                if doc.metadata.get("content_type") == "text/plain":
                    self.stat_update("passed_plain_text")
                    yield doc
                    continue
                reason = None
                with self.track_time():
                    try:
                        text = guard.process_document(doc.text, self.extract)
                    except (TimeoutError, ExtractionTimeout):
                        reason = "timeout"
                    except EOFError:
                        reason = "worker_died"
                    except Exception as e:  # a bug or a page that breaks the library: count, log, go on
                        reason = "error"
                        logger.warning(
                            f"extraction error on {doc.id} ({doc.metadata.get('url')}): {type(e).__name__}: {e}"
                        )
                if reason:
                    self.stat_update(f"failed_{reason}")
                    logger.info(f"extraction {reason}: {doc.id} {doc.metadata.get('url')}")
                    if failed:
                        doc.metadata["filter_reason"] = reason
                        failed.write(doc, rank)
                    continue
                if not text or not text.strip():
                    self.stat_update("dropped_no_main_text")
                    if removed:
                        doc.metadata["filter_reason"] = "no_main_text"
                        removed.write(doc, rank)
                    continue
                doc.text = text
                doc.metadata["content_type"] = "text/plain"
                self.stat_update("extracted")
                self.update_doc_stats(doc)
                yield doc

"""Per-generation filters read from the generation's own metadata: the request's status and finish reason."""

from __future__ import annotations

from datatrove.pipeline.filters.base_filter import BaseFilter

# what counts as an ending: a sentence, a quote or a bracket closed, a code block or list item finished
ENDINGS = (".", "!", "?", '"', "'", ")", "]", "”", "’", "`", ":", ";", "*")


class GenerationFailed(BaseFilter):
    """Drops a row whose generation request failed (metadata `status` other than "generated")."""

    name = "✗ failed generations"

    def filter(self, doc) -> bool | tuple[bool, str]:
        return True if doc.metadata.get("status") == "generated" else (False, "generation_failed")


class TruncatedGeneration(BaseFilter):
    """Drops a generation that stopped on the token limit (finish_reason "length") and does not end like a finished
    text; one that happens to end on a full sentence at the limit is kept (its last sentence is complete)."""

    name = "✂ truncated generations"

    def __init__(self, endings: tuple[str, ...] = ENDINGS, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.endings = tuple(endings)

    def filter(self, doc) -> bool | tuple[bool, str]:
        if doc.metadata.get("finish_reason") != "length":
            return True
        if (doc.text or "").rstrip().endswith(self.endings):
            self.stat_update("length_limit_with_ending")
            return True
        return False, "truncated"

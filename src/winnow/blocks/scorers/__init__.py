"""Scorers: blocks that write a quality score on every document as metadata (Dolma / RedPajama-V2 style)."""

from winnow.blocks.scorers.edu import EduScorer, unscorable_reason

__all__ = ["EduScorer", "unscorable_reason"]

"""The annotation prompt: a versioned text file with one document placeholder, and the document's truncation.

The default, `prompts/fineweb_edu_v1.txt`, is FineWeb-Edu's additive 5-point prompt, verbatim (the `utils/prompt.txt`
published with the fineweb-edu-classifier, placeholder `<EXAMPLE>`, double space in "Educational score:  <total
points>" included). Any other prompt is a text file holding the same placeholder; its version is its file name plus
a hash of its text, so editing a prompt can never be mistaken for the prompt a run was annotated with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

PROMPTS_DIR = Path(__file__).parent / "prompts"
DEFAULT_PROMPT = "fineweb_edu_v1"
DOCUMENT_PLACEHOLDER = "<EXAMPLE>"
# FineWeb-Edu showed Llama-3-70B only the start of each page: the fineweb-edu-llama3-annotations card says the first
# 1,000 characters (a discussion on that card reports 1,500 were used; set annotate.max_chars to follow it).
FINEWEB_EDU_MAX_CHARS = 1000


@dataclass(frozen=True)
class Prompt:
    """A prompt template; `render(text)` is what the annotator sends for one document."""

    version: str  # e.g. "fineweb_edu_v1", or "<file stem>-<sha256[:8]>" for a user's file
    template: str
    max_chars: int = FINEWEB_EDU_MAX_CHARS  # characters of the document kept; <= 0 keeps everything

    def truncate(self, text: str) -> str:
        return text if self.max_chars <= 0 else text[: self.max_chars]

    def render(self, text: str) -> str:
        return self.template.replace(DOCUMENT_PLACEHOLDER, self.truncate(text), 1)


def load_prompt(name_or_path: str = DEFAULT_PROMPT, max_chars: int = FINEWEB_EDU_MAX_CHARS) -> Prompt:
    """A shipped prompt by name (`fineweb_edu_v1`) or any text file holding the `<EXAMPLE>` placeholder once."""
    shipped = PROMPTS_DIR / f"{name_or_path}.txt"
    path = shipped if shipped.is_file() else Path(name_or_path)
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in PROMPTS_DIR.glob("*.txt")))
        raise FileNotFoundError(f"prompt {name_or_path!r}: neither a shipped prompt ({names}) nor a file")
    template = path.read_text(encoding="utf-8")
    if template.count(DOCUMENT_PLACEHOLDER) != 1:
        raise ValueError(f"prompt {path}: must contain the placeholder {DOCUMENT_PLACEHOLDER} exactly once")
    if path == shipped:
        version = path.stem
    else:
        version = f"{path.stem}-{hashlib.sha256(template.encode()).hexdigest()[:8]}"
    return Prompt(version=version, template=template, max_chars=max_chars)

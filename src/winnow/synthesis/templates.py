"""The synthesis prompts: one versioned folder of templates, one file per format, and the audiences they address.

A prompt folder (shipped: `prompts/v1/`) holds `<format>.txt` files, each with the placeholders `<EXTRACT>` (the
seed document's first `extract_chars` characters) and `<AUDIENCE>` (a phrase from `audiences.json`, which maps an
audience name to how the prompt addresses it). Shipped formats follow Cosmopedia's: textbook section, blog post,
story, how-to; audiences: young children, high-school students, college students, researchers/professionals.

The version is the folder name for a shipped folder, or `<folder name>-<sha256[:8]>` of all its files for any
other folder, so an edited prompt can never pass for the one a run was generated with.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

PROMPTS_DIR = Path(__file__).parent / "prompts"
DEFAULT_PROMPTS = "v1"
EXTRACT_PLACEHOLDER = "<EXTRACT>"
AUDIENCE_PLACEHOLDER = "<AUDIENCE>"
AUDIENCES_FILE = "audiences.json"


@dataclass(frozen=True)
class Templates:
    version: str
    formats: dict[str, str]  # format name → template
    audiences: dict[str, str]  # audience name → the phrase the prompt addresses

    def render(self, format_name: str, audience: str, extract: str) -> str:
        template = self.formats[format_name]
        return template.replace(AUDIENCE_PLACEHOLDER, self.audiences[audience], 1).replace(
            EXTRACT_PLACEHOLDER, extract, 1
        )


def truncate_extract(text: str, max_chars: int) -> str:
    """The seed's first `max_chars` characters, cut back to the last whitespace so no word is cut in half."""
    text = " ".join((text or "").split())
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    return cut[:space] if space > max_chars // 2 else cut


def load_templates(name_or_path: str = DEFAULT_PROMPTS) -> Templates:
    """A shipped prompt folder by name (`v1`) or any folder of `<format>.txt` files plus `audiences.json`.
    Raises FileNotFoundError / ValueError naming the file."""
    shipped = PROMPTS_DIR / name_or_path
    if shipped.parent != PROMPTS_DIR:  # an absolute or nested path is the user's folder, never a shipped version
        shipped = PROMPTS_DIR / "-"
    folder = shipped if shipped.is_dir() else Path(name_or_path)
    if not folder.is_dir():
        names = ", ".join(sorted(p.name for p in PROMPTS_DIR.iterdir() if p.is_dir()))
        raise FileNotFoundError(f"synthesis prompts {name_or_path!r}: neither a shipped version ({names}) nor a folder")
    audiences_path = folder / AUDIENCES_FILE
    if not audiences_path.is_file():
        raise FileNotFoundError(f"{audiences_path}: missing (a JSON object: audience name → how the prompt names it)")
    audiences = json.loads(audiences_path.read_text(encoding="utf-8"))
    if not isinstance(audiences, dict) or not audiences or not all(isinstance(v, str) for v in audiences.values()):
        raise ValueError(f"{audiences_path}: must be a JSON object of audience name → phrase")
    formats = {}
    for path in sorted(folder.glob("*.txt")):
        template = path.read_text(encoding="utf-8")
        for placeholder in (EXTRACT_PLACEHOLDER, AUDIENCE_PLACEHOLDER):
            if template.count(placeholder) != 1:
                raise ValueError(f"{path}: must contain the placeholder {placeholder} exactly once")
        formats[path.stem] = template
    if not formats:
        raise FileNotFoundError(f"{folder}: no <format>.txt templates")
    if folder == shipped:
        version = folder.name
    else:
        digest = hashlib.sha256()
        for path in sorted(folder.glob("*.txt")) + [audiences_path]:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        version = f"{folder.name}-{digest.hexdigest()[:8]}"
    return Templates(version=version, formats=formats, audiences=audiences)

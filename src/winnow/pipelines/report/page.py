"""The run report's Markdown as one self-contained HTML page: every image inlined as base64, no external file.

Only the Markdown the report writes is understood: `#`–`####` headings, pipe tables (`\\|` for a pipe inside
a cell), fenced code, `![alt](file.png)` on its own line, `- ` and `1. ` lists, `> ` notes, `**bold**`,
`` `code` ``, and `<details [open]><summary>text</summary>` … `</details>` lines (GitHub shows those the same way).
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1180px;margin:1.5em auto;
 padding:0 1.2em;color:#1f2328;line-height:1.45;font-size:15px}
h1{font-size:1.9em;border-bottom:2px solid #d0d7de;padding-bottom:.25em}
h2{font-size:1.45em;margin-top:1.8em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
h3{font-size:1.15em;margin-top:1.4em}h4{font-size:1em;margin-top:1.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
th,td{border:1px solid #d0d7de;padding:4px 9px;text-align:right;vertical-align:top}
th{background:#f3f5f7}tr:nth-child(even) td{background:#fafbfc}
td:first-child,th:first-child{text-align:left}
.left{text-align:left}td.text{text-align:left;max-width:640px;font-size:.88em;color:#333;word-break:break-word}
pre{background:#f6f8fa;padding:.8em 1em;overflow-x:auto;font-size:.85em;border-radius:6px}
code{background:#f0f2f4;padding:0 .25em;border-radius:3px;font-size:.92em}
img{max-width:100%;border:1px solid #e4e7eb;border-radius:4px;margin:.4em 0}
blockquote{margin:.8em 0;padding:.5em 1em;border-left:4px solid #bf8700;background:#fff8e5;color:#4d3800}
blockquote.notrun{border-left-color:#8c959f;background:#f3f4f6;color:#57606a}
nav ul{columns:2;font-size:.95em}details{margin:.6em 0}summary{cursor:pointer;color:#0969da;font-weight:500}
.lead{font-size:1.05em;color:#444}
"""


NUMBER = re.compile(r"[\s*–+\-]*[\d.,]*\s*(%|s|k|M)?\s*(± [\d.,]+)?[\s*]*")  # "1,234", "19.2 %", "**0.81**", "–"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def inline(text: str) -> str:
    """Escape, then the inline Markdown the report uses: `code`, **bold**, [link](#heading)."""
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        part = html.escape(part)
        part = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", part)
        # links only to the page's own headings: document text quoted in the report may hold [x](javascript:...)
        part = re.sub(r"\[([^\]]+)\]\((#[a-z0-9-]+)\)", r'<a href="\2">\1</a>', part)
        out.append(part)
    return "".join(out)


def table_cells(line: str) -> list[str]:
    row = line.strip()[1:]
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row)]


def image_tag(alt: str, target: str, folder: Path) -> str:
    path = folder / target
    if not path.is_file():
        return f"<p><i>(missing image {html.escape(target)})</i></p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def markdown_to_html(text: str, folder: Path, title: str) -> str:
    """The page for `text`; image paths are read relative to `folder` and inlined."""
    body: list[str] = []
    table: list[list[str]] | None = None
    code: list[str] | None = None
    listing: str | None = None  # "ul" or "ol" while inside a list

    def close_table():
        nonlocal table
        if table is None:
            return
        header, rows = table[0], table[1:]
        # a column of numbers is right-aligned (the style's default), any other column left-aligned
        texty = [any(not NUMBER.fullmatch(row[i]) for row in rows if i < len(row)) for i in range(len(header))]
        body.append(
            "<table><tr>"
            + "".join(f"<th{' class=left' if texty[i] else ''}>{inline(c)}</th>" for i, c in enumerate(header))
            + "</tr>"
        )
        for row in rows:
            cells = []
            for i, c in enumerate(row):
                cls = ' class="text"' if len(c) > 80 else ' class="left"' if i < len(texty) and texty[i] else ""
                cells.append(f"<td{cls}>{inline(c)}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        body.append("</table>")
        table = None

    paragraph: list[str] = []  # consecutive text lines form one paragraph

    def close_paragraph():
        if paragraph:
            body.append(f"<p>{inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    def close_list():
        nonlocal listing
        if listing:
            body.append(f"</{listing}>")
            listing = None

    for line in text.splitlines():
        stripped = line.strip()
        if code is None and (not stripped or re.match(r"^(\||```|#{1,4} |!\[|>|<|- |\d+\. )", stripped)):
            close_paragraph()
        if code is not None:
            if line.startswith("```"):
                body.append("<pre>" + html.escape("\n".join(code)) + "</pre>")
                code = None
            else:
                code.append(line)
            continue
        if line.startswith("|"):
            close_list()
            cells = table_cells(line)
            if table is not None and all(c and set(c) <= set("-:") for c in cells):
                continue  # the header separator
            table = (table or []) + [cells]
            continue
        close_table()
        list_item = re.match(r"^(- |\d+\. )(.*)", stripped)
        if list_item:
            kind = "ul" if list_item.group(1) == "- " else "ol"
            if listing != kind:
                close_list()
                body.append(f"<{kind}>")
                listing = kind
            body.append(f"<li>{inline(list_item.group(2))}</li>")
            continue
        close_list()
        if line.startswith("```"):
            code = []
        elif heading := re.match(r"^(#{1,4}) (.*)", line):
            level, words = len(heading.group(1)), heading.group(2)
            body.append(f'<h{level} id="{slug(words)}">{inline(words)}</h{level}>')
        elif image := re.match(r"^!\[([^\]]*)\]\(([^)]+)\)\s*$", stripped):
            body.append(image_tag(image.group(1), image.group(2), folder))
        elif stripped.startswith(">"):
            words = stripped.lstrip("> ")
            cls = ' class="notrun"' if words.startswith("**Not run") else ""
            body.append(f"<blockquote{cls}>{inline(words)}</blockquote>")
        elif summary := re.match(r"^<details( open)?><summary>(.*)</summary>$", stripped):
            body.append(f"<details{summary.group(1) or ''}><summary>{inline(summary.group(2))}</summary>")
        elif stripped == "</details>":
            body.append(stripped)
        elif stripped:
            paragraph.append(stripped)
    close_paragraph()
    close_table()
    close_list()
    if code is not None:
        body.append("<pre>" + html.escape("\n".join(code)) + "</pre>")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )

"""A fast main-text extractor: resiliparse's DOM and main-content pass, then block-level boilerplate pruning.

trafilatura (what FineWeb runs, in precision mode) spends ~95 % of a FineWeb run's CPU time. resiliparse's C
main-content extraction is ~14× faster but keeps navigation, "related articles", comment prompts and footers.
This extractor parses the page once with resiliparse, asks for its main content as minimal HTML (paragraphs,
headings, list items, links), cuts that into blocks, and drops blocks the way jusText-style classifiers do —
measured on trafilatura's own ground truth, tuned on one half of it and checked on the other (winnow
eval-extract --split; the tables are in docs/sections/extract.md):

1. skip author boxes, footers, captions, disclaimers, ratings, bylines and post metadata by their class or id
   (a subset of trafilatura's own discard list), and read <noscript> text and embedded tweets as text;
2. drop link-heavy blocks (link density: share of a block's characters inside <a>);
3. drop short blocks that match boilerplate phrases (cookie notices, copyright, "read more", sharing prompts);
4. cut the page at the first "tail marker" after the text has started ("Related posts", "Über den Autor", ...);
5. classify the rest as good (long, few links), short or bad, keep the span from the first to the last good
   block, drop the small sections that headings open at its end, and drop runs of short blocks that sit
   between bad blocks (jusText's context rule);
6. when resiliparse's main-content pass leaves almost nothing (it sometimes drops a whole page), prune the
   whole page's text the same way instead.

Everything runs in-process (no per-document subprocess): the C parser does the heavy part and the pruning is a
few regular expressions per block, no Python DOM walk (a readability-style DOM scoring pass was tried: 7× slower
and less accurate).
"""

from __future__ import annotations

import html as html_entities
import re

from winnow.blocks.extractors.base import AccountedExtractor

# Phrases that mark a short block as boilerplate wherever it occurs (several languages: the pages are mostly
# German and English). Matched case-insensitively on blocks shorter than `max_boilerplate_chars`.
BOILERPLATE_PHRASES = re.compile(
    r"©|\b(?:cookies?|copyright|all rights reserved|alle rechte vorbehalten|tous droits|todos los derechos|"
    r"read more|weiterlesen|mehr erfahren|mehr lesen|lire la suite|leer más|"
    r"share (?:this|on)|teilen|follow us|folge uns|folgen sie uns|subscribe|abonnieren|newsletter|"
    r"sign in|sign up|log ?in|anmelden|registrieren|passwor[dt]|"
    r"leave a (?:reply|comment)|hinterlasse|kommentar\w*|comments?|antworten|reply|"
    r"related (?:posts|articles|stories)|you (?:may|might) also like|auch interessant|könnte (?:dich|sie) auch|"
    r"weitere artikel|mehr zum thema|ähnliche beiträge|"
    r"privacy|datenschutz\w*|impressum|terms of (?:use|service)|nutzungsbedingungen|"
    r"advertisement|anzeige|werbung|sponsored|"
    r"javascript|zurück zu\w*|back to top|nach oben|next post|previous post|vorheriger|nächster)\b",
    re.IGNORECASE,
)

# Short lines that open the sections following an article (related links, author box, comments, sharing):
# once one appears after the main text has started, the rest of the page is not main text. From "see also" on,
# phrases found on the tuning half of the evaluation pages (docs/sections/extract.md).
TAIL_MARKERS = re.compile(
    r"^(related posts|more from|you (may|might) also|recommended|most (read|popular)|latest|about the author|"
    r"the author|comments$|leave a (reply|comment)|post a comment|"
    r"ähnliche|weitere (artikel|beiträge|news|nachrichten)|mehr (aus|von|artikel|news)|das könnte|"
    r"neueste|aktuelle (news|artikel|beiträge)|meist ?gelesen|über (den|die) autor|zum autor|die autorin|"
    r"der autor|hinterlasse|schreibe einen kommentar|diesen artikel teilen|schlagworte|schlagwörter|"
    r"vous aimerez|à lire également|te puede interesar|noticias relacionadas|más noticias|"
    r"see also|read also|further reading|more (stories|news)|top stories|trending|"
    r"quellen|quellenangaben|originalpublikation|top themen|die meistgelesenen|in den schlagzeilen|"
    r"empfehlungen der redaktion|wie bewerten sie|sie könnten auch|das könnte sie auch|entdecke weitere|"
    r"unsere partner|lee también|contexto de la noticia|notas relacionadas|zobacz (również|też)|"
    r"czytaj (także|też|również)|polecamy)",
    re.IGNORECASE,
)

# Containers whose class or id names them as an author box, a footer, an image caption, a disclaimer, a rating
# widget, a byline or post metadata: a subset of trafilatura's OVERALL_DISCARD_XPATH and DISCARD_IMAGE_ELEMENTS
# (trafilatura/xpaths.py), limited like there to div/p/section/span/list elements so that a page-wide wrapper
# (<body class="author-page">, <article class="has-caption">) is never skipped. Each of the rest of trafilatura's
# list, tried one by one on the tuning half, changed nothing (related, newsletter, cookie, breadcrumb, ...:
# resiliparse's main-content pass already drops those) or cost article text (share, menu, navigation, sidebar,
# widget, teaser, slide, hidden, link, bottom: names of containers that also hold article text).
BOILERPLATE_CONTAINERS = (
    ":is(div, p, section, span, ul, li):is([class*=author], [class*=footer], [class*=caption], [class*=disclaimer], "
    "[class*=rating], [class*=byline], [class*=meta], [id*=author], [id*=footer])"
)

# Posts quoted in an article through the social network's embed code (<blockquote class="twitter-tweet">).
EMBEDDED_POSTS = "blockquote.twitter-tweet"

_TAG = re.compile(r"<[^>]*>")
_LINK = re.compile(r"<a\b[^>]*>(.*?)</a>", re.DOTALL)
_BREAK = re.compile(r"<br>|</?(?:p|ul|ol|pre)>|</li>|</h[1-6]>")


class Block:
    """One paragraph, heading or list item of the main-content candidate."""

    __slots__ = ("text", "heading", "link_density", "label")

    def __init__(self, text: str, heading: bool, link_density: float):
        self.text = text
        self.heading = heading
        self.link_density = link_density
        self.label = "short"


def blocks_of(markup: str) -> list[Block]:
    """resiliparse minimal HTML → blocks (text with white space collapsed, heading flag, link density)."""
    blocks = []
    for line in _BREAK.sub("\n", markup.replace("<li>", "\n<li>")).split("\n"):
        if "<" in line:
            heading = line.lstrip().startswith("<h")
            link_text = "".join(_LINK.findall(line))
            link_chars = len(_TAG.sub("", link_text).replace(" ", "")) if link_text else 0
            line = _TAG.sub("", line)
        else:
            heading, link_chars = False, 0
        if "&" in line:
            line = html_entities.unescape(line)
        text = " ".join(line.split())
        if text:
            chars = len(text.replace(" ", ""))
            blocks.append(Block(text, heading, min(1.0, link_chars / chars) if chars else 0.0))
    return blocks


class FastExtractor(AccountedExtractor):
    """resiliparse main content + block-level boilerplate pruning, in-process (no worker process).

    Accounting as every project extractor (winnow.blocks.extractors.base.AccountedExtractor): extracted, removed with
    no_main_text, or failed with a reason.

    Args:
        max_link_density: blocks with a larger share of characters inside links are navigation (jusText: 0.2
            for good blocks; we drop only clearly link-made blocks, 0.5, measured on the evaluation pages).
        min_good_chars: a block at least this long with few links counts as main text (jusText: 200 for
            "long" blocks; shorter here because resiliparse cuts blocks at <br>).
        max_boilerplate_chars: boilerplate phrases only condemn blocks shorter than this.
        max_good_link_density: good blocks have at most this link density (jusText's 0.2 is for its longer
            blocks; 0.3 here).
        edge_blocks: short blocks kept beyond the first/last good block (0: measured best F1).
        max_marker_chars: only lines up to this long can be tail markers.
        min_main_content_chars: below this many characters of resiliparse main content (as minimal HTML),
            fall back to the whole page.
        min_good_heading_chars: headings this long count as text (lead paragraphs set as <h2>).
        max_tail_section_chars, max_tail_section_share: the sections that headings open at the end of the text
            go when together they hold fewer characters than this and less than this share of the text
            (200 and 0.2: measured on the tuning half).
        skip_containers, read_noscript, keep_embedded_posts, prune_links, prune_phrases, cut_at_tail_markers,
            keep_good_span, drop_small_tail_sections, short_context, fallback_whole_page, keep_heading_before:
            switch one heuristic off (the ablation in docs/sections/extract.md).
        timeout, isolation, exclusion_writer, failure_writer: as AccountedExtractor. The default isolation is a
            CPU-time signal in this process (cheap; guards the Python pruning — the C parser is linear-time).
        favour_precision: accepted for the uniform factory signature; there is no separate precision mode.
    """

    name = "⚡ Fast extractor"
    _requires_dependencies = ["resiliparse"]

    def __init__(
        self,
        max_link_density: float = 0.5,
        min_good_chars: int = 50,
        max_good_link_density: float = 0.3,
        max_boilerplate_chars: int = 100,
        prune_links: bool = True,
        prune_phrases: bool = True,
        keep_good_span: bool = True,
        edge_blocks: int = 0,
        cut_at_tail_markers: bool = True,
        max_marker_chars: int = 60,
        short_context: bool = True,
        fallback_whole_page: bool = True,
        min_main_content_chars: int = 500,
        min_good_heading_chars: int = 100,
        keep_heading_before: bool = True,
        skip_containers: bool = True,
        read_noscript: bool = True,
        keep_embedded_posts: bool = True,
        drop_small_tail_sections: bool = True,
        max_tail_section_chars: int = 200,
        max_tail_section_share: float = 0.2,
        timeout: float = 1.0,
        favour_precision: bool = True,
        isolation: str = "signal",
        exclusion_writer=None,
        failure_writer=None,
    ):
        super().__init__(timeout, isolation, exclusion_writer, failure_writer)
        self.max_link_density = max_link_density
        self.min_good_chars = min_good_chars
        self.max_good_link_density = max_good_link_density
        self.max_boilerplate_chars = max_boilerplate_chars
        self.prune_links = prune_links
        self.prune_phrases = prune_phrases
        self.keep_good_span = keep_good_span
        self.edge_blocks = edge_blocks
        self.cut_at_tail_markers = cut_at_tail_markers
        self.max_marker_chars = max_marker_chars
        self.short_context = short_context
        self.fallback_whole_page = fallback_whole_page
        self.min_main_content_chars = min_main_content_chars
        self.min_good_heading_chars = min_good_heading_chars
        self.keep_heading_before = keep_heading_before
        self.skip_containers = skip_containers
        self.read_noscript = read_noscript
        self.keep_embedded_posts = keep_embedded_posts
        self.drop_small_tail_sections = drop_small_tail_sections
        self.max_tail_section_chars = max_tail_section_chars
        self.max_tail_section_share = max_tail_section_share

    def extract(self, text: str) -> str:
        """HTML → main text, one block per line ("" when nothing is left)."""
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree

        tree = HTMLTree.parse(text)  # parsed once: extraction leaves the tree as it was, the fallback reuses it
        if self.keep_embedded_posts and "twitter-tweet" in text and tree.body is not None:
            # resiliparse's main-content pass drops elements whose class names a social network; an embedded
            # tweet quoted in an article is article text (trafilatura keeps it)
            for quote in tree.body.query_selector_all(EMBEDDED_POSTS):
                quote.class_name = ""
        options = dict(
            preserve_formatting="minimal_html",
            links=True,
            alt_texts=False,
            comments=False,
            noscript=self.read_noscript,  # lazy-loading pages put their text (again) in <noscript>
        )
        if self.skip_containers:
            options["skip_elements"] = [BOILERPLATE_CONTAINERS]
        markup = extract_plain_text(tree, main_content=True, **options)
        if self.fallback_whole_page and len(markup) < self.min_main_content_chars:
            # resiliparse's main-content pass sometimes removes everything (e.g. a page whose whole body sits in
            # an element with a "hidden"-like class); then prune the whole page's text block by block instead.
            markup = extract_plain_text(tree, main_content=False, **options)
        blocks = blocks_of(markup)
        for block in blocks:
            self.label(block)
        if self.cut_at_tail_markers:
            blocks = self.cut_tail(blocks)
        if self.keep_good_span:
            blocks = self.good_span(blocks)
        if self.drop_small_tail_sections:
            blocks = self.without_small_tail_sections(blocks)
        if self.short_context:
            self.relabel_short(blocks)
        return "\n".join(block.text for block in blocks if block.label != "bad")

    def label(self, block: Block) -> None:
        length = len(block.text)
        if self.prune_links and block.link_density > self.max_link_density:
            block.label = "bad"
        elif self.prune_phrases and length < self.max_boilerplate_chars and BOILERPLATE_PHRASES.search(block.text):
            block.label = "bad"
        elif (
            length >= self.min_good_chars
            and block.link_density <= self.max_good_link_density
            and (not block.heading or length >= self.min_good_heading_chars)
        ):
            block.label = "good"

    def cut_tail(self, blocks: list[Block]) -> list[Block]:
        """Drop everything from the first tail marker (a short line such as "Related posts") after a good block."""
        seen_good = False
        for i, block in enumerate(blocks):
            if block.label == "good":
                seen_good = True
            elif seen_good and len(block.text) <= self.max_marker_chars and TAIL_MARKERS.match(block.text):
                return blocks[:i]
        return blocks

    def relabel_short(self, blocks: list[Block]) -> None:
        """jusText's context rule: a run of short blocks is bad when the nearest classified blocks on both
        sides are bad (or missing)."""
        n = len(blocks)
        i = 0
        while i < n:
            if blocks[i].label != "short":
                i += 1
                continue
            j = i
            while j < n and blocks[j].label == "short":
                j += 1
            before = blocks[i - 1].label if i > 0 else "bad"
            after = blocks[j].label if j < n else "bad"
            if before == after == "bad":
                for k in range(i, j):
                    blocks[k].label = "bad"
            i = j

    def good_span(self, blocks: list[Block]) -> list[Block]:
        """Blocks from the first to the last good one, widened by up to `edge_blocks` short blocks each side
        (a heading, a byline, an ingredient list next to the text), stopping at the first bad block."""
        good = [i for i, b in enumerate(blocks) if b.label == "good"]
        if not good:
            return blocks
        first, last = good[0], good[-1]
        before = blocks[first - 1] if first > 0 else None
        if self.keep_heading_before and before is not None and before.heading and before.label == "short":
            first -= 1  # the article's headline or a section title right before the text
        while first > 0 and good[0] - first < self.edge_blocks and blocks[first - 1].label == "short":
            first -= 1
        while last + 1 < len(blocks) and last - good[-1] < self.edge_blocks and blocks[last + 1].label == "short":
            last += 1
        return blocks[first : last + 1]

    def without_small_tail_sections(self, blocks: list[Block]) -> list[Block]:
        """Drop the sections at the end of the text that headings open when together they hold little text (an
        author box, "Weitere Informationen" with a contact, a "Related topics" line): fewer than
        `max_tail_section_chars` characters and less than `max_tail_section_share` of the text. The first block
        never goes."""
        kept = sum(len(b.text) for b in blocks if b.label != "bad")
        limit = min(self.max_tail_section_chars, self.max_tail_section_share * kept)
        end, chars = len(blocks), 0
        for i in range(len(blocks) - 1, 0, -1):
            block = blocks[i]
            if block.label == "bad":
                continue
            chars += len(block.text)
            if chars >= limit:
                break
            if block.heading:
                end = i
        return blocks[:end]

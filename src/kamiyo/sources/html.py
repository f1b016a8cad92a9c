"""A small, forgiving HTML tree on top of the standard library's html.parser.

Enough for source parsers: find elements by tag and class, read attributes and text. Broken
markup never raises; unclosed tags are closed at the end, stray end tags are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"})
SELF_CLOSING_SIBLINGS = frozenset({"li", "p", "dd", "dt", "option", "tr", "td", "th"})
SKIPPED = frozenset({"script", "style"})
# Elements that break a line when rendered: their text never runs into the neighbouring text.
BLOCKS = frozenset(
    {"address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure", "footer",
     "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table",
     "td", "th", "tr", "ul"}
)  # fmt: skip
_SPACES = re.compile(r"\s+")


class Node:
    __slots__ = ("attrs", "children", "tag")

    def __init__(self, tag: str, attrs: dict[str, str] | None = None) -> None:
        self.tag = tag
        self.attrs = attrs or {}
        self.children: list[Node | str] = []

    @property
    def classes(self) -> frozenset[str]:
        return frozenset(self.attrs.get("class", "").split())

    def attr(self, name: str) -> str | None:
        return self.attrs.get(name)

    def iter(self) -> Iterator[Node]:
        """This node and every element below it, in document order."""
        stack: list[Node] = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed([c for c in node.children if isinstance(c, Node)]))

    def find_all(self, tag: str | None = None, cls: str | None = None) -> Iterator[Node]:
        for node in self.iter():
            if node is not self and (tag is None or node.tag == tag) and (cls is None or cls in node.classes):
                yield node

    def find(self, tag: str | None = None, cls: str | None = None) -> Node | None:
        return next(self.find_all(tag, cls), None)

    def text(self) -> str:
        """All text below, whitespace collapsed; block elements (`<p>`, `<br>`, `<li>`, …) part words."""
        parts: list[str] = []
        stack: list[Node | str] = [self]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                parts.append(item)
            elif item.tag in BLOCKS:
                stack.extend([" ", *reversed(item.children), " "])
            elif item.tag not in SKIPPED:
                stack.extend(reversed(item.children))
        return _SPACES.sub(" ", "".join(parts)).strip()


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SELF_CLOSING_SIBLINGS and self.stack[-1].tag == tag:
            self.stack.pop()
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_html(text: str) -> Node:
    """The document's root node; never raises on malformed markup."""
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root

"""A structural parser and editor for CoreDNS's Corefile (the Caddyfile syntax).

The parser understands server blocks (keys, then a braced body), directives with arguments, nested
blocks, quoted strings and comments, and remembers where each server block sits in the text. The
editor only ever inserts, replaces or cuts the one server block hybrid-knative owns (recognised by
its marker comment), so every other byte of the Corefile stays as it was.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Literal

from hybrid_knative.errors import PermanentError

MARKER = "# managed by hybrid-knative"
# after the closing brace ensure() added to a braceless server block; disable takes both braces back
BRACES_ADDED = "  # braces added by hybrid-knative (a second server block needs them)"
NO_NEWLINE = "; no newline at the end"
TTL = 60

TokenKind = Literal["word", "open", "close", "newline", "comment"]


class CorefileError(PermanentError):
    """The Corefile cannot be parsed, or our zone clashes with a server block someone else wrote."""


@dataclasses.dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    start: int
    end: int
    line: int


@dataclasses.dataclass(frozen=True)
class Directive:
    name: str
    args: tuple[str, ...] = ()
    block: tuple[Directive, ...] | None = None

    def find(self, name: str) -> list[Directive]:
        return [d for d in self.block or () if d.name == name]


@dataclasses.dataclass(frozen=True)
class ServerBlock:
    keys: tuple[str, ...]
    directives: tuple[Directive, ...]
    comments: tuple[str, ...]
    start: int  # offset of the first key
    end: int  # offset just after the closing brace (braceless: after its last token)
    braced: bool = True
    keys_end: int = 0  # offset just after the last key

    @property
    def ours(self) -> bool:
        return any(c.startswith(MARKER) for c in self.comments)

    @property
    def snippet(self) -> bool:
        """A snippet definition ``(name) { … }``: imported by others, never a server of its own."""
        return len(self.keys) == 1 and self.keys[0].startswith("(") and self.keys[0].endswith(")")

    def find(self, name: str) -> list[Directive]:
        return [d for d in self.directives if d.name == name]

    @property
    def zones(self) -> list[tuple[str, int]]:
        return [split_key(k) for k in self.keys]


@dataclasses.dataclass(frozen=True)
class Corefile:
    text: str
    blocks: tuple[ServerBlock, ...]

    @property
    def ours(self) -> list[ServerBlock]:
        return [b for b in self.blocks if b.ours]

    @property
    def servers(self) -> list[ServerBlock]:
        return [b for b in self.blocks if not b.snippet]


def split_key(key: str) -> tuple[str, int]:
    """``dns://hk.internal.:53`` → (``hk.internal``, 53); the root zone is ``.``."""
    text = key.lower()
    for scheme in ("dns://",):
        text = text.removeprefix(scheme)
    port = 53
    host, sep, rest = text.rpartition(":")
    if sep and rest.isdigit() and "]" not in rest:
        text, port = host, int(rest)
    if text in ("", "."):
        return ".", port
    return text.removesuffix("."), port


def tokenize(text: str) -> list[Token]:
    """Tokens the way CoreDNS's Caddyfile lexer (coredns/caddy caddyfile/lexer.go) reads them.

    - ``#`` outside a quoted token starts a comment up to the end of the line, also in the middle of
      a word (``foo#bar`` is the word ``foo``);
    - a ``"`` opens a quoted token only at the start of a token; the closing ``"`` ends the token
      (``"a b"c`` is two tokens); inside, ``\\"`` is a quote and any other backslash is kept;
      a ``"`` inside a word is an ordinary character;
    - ``\\r`` is ignored; ``{`` and ``}`` are braces when they are a whole unquoted token.
    """
    tokens: list[Token] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            tokens.append(Token("newline", "\n", i, i + 1, line))
            line += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == "#":
            j = text.find("\n", i)
            j = n if j < 0 else j
            tokens.append(Token("comment", text[i:j].rstrip("\r"), i, j, line))
            i = j
        elif ch == '"':
            start, start_line, parts = i, line, []
            i += 1
            while True:
                if i >= n:
                    raise CorefileError(f"Corefile line {start_line}: a quoted string is not closed")
                c = text[i]
                if c == "\\" and i + 1 < n:
                    nxt = text[i + 1]
                    parts.append(nxt if nxt == '"' else "\\" + nxt)
                    line += nxt == "\n"
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                line += c == "\n"
                parts.append(c)
                i += 1
            tokens.append(Token("word", "".join(parts), start, i, start_line))
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] != "#":
                i += 1
            word = text[start:i].replace("\r", "")
            kind: TokenKind = "open" if word == "{" else "close" if word == "}" else "word"
            tokens.append(Token(kind, word, start, i, line))
    return tokens


def parse(text: str) -> Corefile:
    """Server blocks as CoreDNS's Caddyfile parser (coredns/caddy caddyfile/parse.go) sees them.

    Also accepted: top-level ``import`` lines (kept as they are, not server blocks), snippet
    definitions ``(name) { … }`` (kept; never a zone), and a single server block without braces
    (its directives run to the end of the file)."""
    tokens = tokenize(text)
    blocks: list[ServerBlock] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind in ("newline", "comment"):
            i += 1
            continue
        if tok.kind != "word":
            raise CorefileError(f"Corefile line {tok.line}: unexpected {tok.text!r} where a server block should start")
        if tok.text == "import":  # a top-level import line: its own statement
            while i < len(tokens) and tokens[i].kind not in ("newline", "open", "close"):
                i += 1
            continue
        keys: list[str] = []
        start = keys_end = tok.start
        expecting = False
        while i < len(tokens) and tokens[i].kind != "open":
            t = tokens[i]
            if t.kind == "close":
                raise CorefileError(f"Corefile line {t.line}: unexpected '}}'")
            if t.kind == "newline" and not expecting:
                break
            if t.kind == "word":
                expecting = t.text.endswith(",")
                keys.extend(k for k in t.text.split(",") if k)
                keys_end = t.end
            i += 1
        comments: list[str] = []
        if i < len(tokens) and tokens[i].kind == "open":
            directives, i, end = _body(tokens, i + 1, comments, tokens[i].line)
            blocks.append(ServerBlock(tuple(keys), tuple(directives), tuple(comments), start, end, keys_end=keys_end))
            continue
        # no '{': a single server block whose directives run to the end of the file
        if blocks:
            raise CorefileError(f"Corefile line {tok.line}: server block {' '.join(keys)} has no '{{'",
                                resolution="only a Corefile with a single server block may leave out the braces")
        directives, end = _braceless(tokens, i, comments)
        blocks.append(ServerBlock(tuple(keys), tuple(directives), tuple(comments), start, end, braced=False,
                                  keys_end=keys_end))
        break
    return Corefile(text, tuple(blocks))


def _braceless(tokens: list[Token], i: int, comments: list[str]) -> tuple[list[Directive], int]:
    directives: list[Directive] = []
    words: list[str] = []
    end = tokens[i - 1].end if i else 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind == "comment":
            comments.append(tok.text)
        elif tok.kind == "word":
            words.append(tok.text)
            end = tok.end
        elif tok.kind == "newline":
            if words:
                directives.append(Directive(words[0], tuple(words[1:])))
                words = []
        elif tok.kind == "open":
            if not words:
                raise CorefileError(f"Corefile line {tok.line}: '{{' without a directive before it")
            inner, i, end = _body(tokens, i + 1, comments, tok.line)
            directives.append(Directive(words[0], tuple(words[1:]), tuple(inner)))
            words = []
            continue
        else:
            raise CorefileError(f"Corefile line {tok.line}: unexpected '}}'")
        i += 1
    if words:
        directives.append(Directive(words[0], tuple(words[1:])))
    return directives, end


def _body(tokens: list[Token], i: int, comments: list[str], opened: int) -> tuple[list[Directive], int, int]:
    """Directives up to the matching '}'; returns them, the next index and the end offset."""
    directives: list[Directive] = []
    words: list[str] = []
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind == "comment":
            comments.append(tok.text)
        elif tok.kind == "word":
            words.append(tok.text)
        elif tok.kind == "newline":
            if words:
                directives.append(Directive(words[0], tuple(words[1:])))
                words = []
        elif tok.kind == "open":
            if not words:
                raise CorefileError(f"Corefile line {tok.line}: '{{' without a directive before it")
            inner, i, _ = _body(tokens, i + 1, comments, tok.line)
            directives.append(Directive(words[0], tuple(words[1:]), tuple(inner)))
            words = []
            continue
        else:  # close
            if words:
                directives.append(Directive(words[0], tuple(words[1:])))
            return directives, i + 1, tok.end
        i += 1
    raise CorefileError(f"Corefile line {opened}: '{{' is never closed")


def zone_block(zone: str, ingress_ip: str) -> str:
    """Our server block: every name in ``zone`` answers with the ingress address (template plugin,
    built into stock CoreDNS); other record types get an empty NOERROR answer, never NXDOMAIN."""
    addr = ipaddress.ip_address(ingress_ip)
    rtype = "A" if addr.version == 4 else "AAAA"
    return (
        f"{zone}:53 {{\n"
        f"    {MARKER}: every name in {zone} answers with the Kourier ingress address.\n"
        "    # Re-added by `hybrid-knative repair`, removed by `microk8s disable hybrid-knative`.\n"
        "    errors\n"
        f"    template IN {rtype} {zone} {{\n"
        f'        answer "{{{{ .Name }}}} {TTL} IN {rtype} {addr}"\n'
        "    }\n"
        f"    template ANY ANY {zone} {{\n"
        "        rcode NOERROR\n"
        "    }\n"
        "}"
    )


def _line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def without_ours(text: str) -> str:
    """The Corefile minus hybrid-knative's block(s); the same text when there is none (and without
    the braces ensure() put around a braceless server block, so the text is as it was)."""
    text = _without_ours(text)
    for note, cut in ((BRACES_ADDED + NO_NEWLINE, 1), (BRACES_ADDED, 0)):
        at = text.find("}" + note + "\n")
        if at < 0:
            continue
        first = next((b for b in parse(text).blocks if b.braced and b.end == at + 1), None)
        if first is not None and text[first.keys_end:first.keys_end + 2] == " {":
            text = (text[:first.keys_end] + text[first.keys_end + 2:at - cut]  # cut: the newline ensure() added
                    + text[at + 1 + len(note) + 1:])
        break
    return text


def _without_ours(text: str) -> str:
    core = parse(text)
    for block in reversed(core.ours):
        start = _line_start(text, block.start)
        last = text[block.end:block.end + 1] != "\n"  # ensure() leaves no newline after it when the text had none
        end = block.end if last else block.end + 1
        before, after = text[:start], text[end:]
        if not after and before.endswith("\n\n"):
            before = before[:-2] if last and block.end == len(text) else before[:-1]  # what ensure() put in front
        text = before + after
    return text


def ensure(text: str, zone: str, ingress_ip: str) -> str:
    """The Corefile with our block for ``zone`` (replaced in place when present, else appended)."""
    core = parse(text)
    for block in core.servers:
        if block.ours:
            continue
        for key_zone, port in block.zones:
            if key_zone == zone and port == 53:
                raise CorefileError(
                    f"CoreDNS already has a server block for {zone} that hybrid-knative did not write",
                    details=f"server block {' '.join(block.keys)} in the Corefile of kube-system/coredns",
                    resolution="remove that block (`microk8s kubectl -n kube-system edit configmap coredns`), "
                    "or choose another zone with --domain",
                )
    wanted = zone_block(zone, ingress_ip)
    ours = core.ours
    if ours:
        first = ours[0]
        replaced = text[:first.start] + wanted + text[first.end:]
        rest = parse(replaced).ours[1:]
        if rest:  # duplicates (should not happen): keep only the first
            kept = parse(replaced).ours[0]
            head, tail = replaced[:kept.end], replaced[kept.end:]
            replaced = head + without_ours(tail)
        return replaced
    braceless = next((b for b in core.blocks if not b.braced), None)
    if braceless is not None:  # a second server block needs braces around the first (Caddyfile rule)
        head, body = text[:braceless.keys_end], text[braceless.keys_end:]
        sep, note = ("", BRACES_ADDED) if body.endswith("\n") else ("\n", BRACES_ADDED + NO_NEWLINE)
        return f"{head} {{{body}{sep}}}{note}\n\n{wanted}\n"
    if text and not text.endswith("\n"):  # keep "no newline at the end": without_ours() gives the text back
        return f"{text}\n\n{wanted}"
    return f"{text}\n{wanted}\n" if text else f"{wanted}\n"

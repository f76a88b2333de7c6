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
    end: int  # offset just after the closing brace

    @property
    def ours(self) -> bool:
        return any(c.startswith(MARKER) for c in self.comments)

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
    tokens: list[Token] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            tokens.append(Token("newline", "\n", i, i + 1, line))
            line += 1
            i += 1
        elif ch in " \t\r":
            i += 1
        elif ch == "#":
            j = text.find("\n", i)
            j = n if j < 0 else j
            tokens.append(Token("comment", text[i:j].rstrip("\r"), i, j, line))
            i = j
        else:
            start, parts, quoted = i, [], False
            while i < n and text[i] not in " \t\r\n":
                if text[i] == '"':
                    quoted = True
                    i += 1
                    while i < n and text[i] != '"':
                        if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\':
                            i += 1
                        elif text[i] == "\n":
                            line += 1
                        parts.append(text[i])
                        i += 1
                    if i >= n:
                        raise CorefileError(f"Corefile line {line}: a quoted string is not closed")
                    i += 1
                else:
                    parts.append(text[i])
                    i += 1
            word = "".join(parts)
            kind: TokenKind = "word"
            if not quoted and word == "{":
                kind = "open"
            elif not quoted and word == "}":
                kind = "close"
            tokens.append(Token(kind, word, start, i, line))
    return tokens


def parse(text: str) -> Corefile:
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
        keys: list[str] = []
        start = tok.start
        while i < len(tokens) and tokens[i].kind != "open":
            t = tokens[i]
            if t.kind == "close":
                raise CorefileError(f"Corefile line {t.line}: unexpected '}}'")
            if t.kind == "word":
                keys.extend(k for k in t.text.split(",") if k)
            i += 1
        if i >= len(tokens):
            raise CorefileError(f"Corefile line {tok.line}: server block {' '.join(keys)} has no '{{'")
        comments: list[str] = []
        directives, i, end = _body(tokens, i + 1, comments, tokens[i].line)
        blocks.append(ServerBlock(tuple(keys), tuple(directives), tuple(comments), start, end))
    return Corefile(text, tuple(blocks))


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
    """The Corefile minus hybrid-knative's block(s); the same text when there is none."""
    core = parse(text)
    for block in reversed(core.ours):
        start = _line_start(text, block.start)
        end = block.end + 1 if text[block.end:block.end + 1] == "\n" else block.end
        before, after = text[:start], text[end:]
        if not after and before.endswith("\n\n"):
            before = before[:-1]  # the blank line ensure() put in front of the block
        text = before + after
    return text


def ensure(text: str, zone: str, ingress_ip: str) -> str:
    """The Corefile with our block for ``zone`` (replaced in place when present, else appended)."""
    core = parse(text)
    for block in core.blocks:
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
    sep = "" if not text or text.endswith("\n") else "\n"
    return f"{text}{sep}\n{wanted}\n" if text else f"{wanted}\n"

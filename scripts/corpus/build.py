#!/usr/bin/env python3
"""Rebuilds tests/corpus/cases.jsonl: detector test data published by two other projects.

    scripts/corpus/build.py --gitleaks GITLEAKS_GIT_DIR --presidio PRESIDIO_GIT_DIR

Both arguments are git directories (bare or not) that contain the pinned commits below; the
script reads them with `git show COMMIT:path` and fetches nothing. It needs Python 3.11 and its
standard library only. The same inputs give the same file, byte for byte.

gitleaks (MIT): every rule in cmd/generate/config/rules/*.go builds its true positives (`tps`)
and false positives (`fps`) in Go, partly from literals, partly with
`secrets.NewSecret(regex)`, which expands a regex into a random matching string with
github.com/lucasjones/reggen. The rule files are interpreted here by a small interpreter for
the subset of Go they use (see `Interp`), with the helpers of cmd/generate/config/utils
(generate.go, patterns.go) interpreted from the same commit; `NewSecret` is reggen's algorithm
over Python's regex parser (see `reggen`), driven by a seeded generator. Each rule function is
run SAMPLES times with different seeds, as gitleaks' generator would be on SAMPLES runs:
literal cases come out the same each time and are kept once, generated ones give one sample per
run. For every true positive the secret gitleaks' own rule reports — the rule's regex, its
secret group, its entropy threshold — gives the expected span(s); where that regex cannot be
run here, the secret handed to GenerateSampleSecret(s) gives it.

Presidio (MIT): the parametrized cases of presidio-analyzer/tests/test_{email,phone,
credit_card,us_ssn,iban}_recognizer.py, read with Python's ast module: a case expecting at
least one result is a true positive with the expected spans, one expecting none a false
positive.

Each output line is {"source", "rule", "kind", "text", "spans"?}; spans are [start, end)
offsets in Unicode code points of `text`. Exact duplicates are dropped.
"""

from __future__ import annotations

import argparse
import ast
import base64
import json
import math
import random
import re
import re._constants as sre_c
import re._parser as sre_parse
import subprocess
import sys
from pathlib import Path

GITLEAKS_COMMIT = "b58d3f102cf3a2c84cb7f923d05c25c9b1aed84b"
PRESIDIO_COMMIT = "0aa9f8e44275cb52c00fbbebe19168e934e1f076"

# How many times each gitleaks rule function is run (each run draws new random secrets).
SAMPLES = 3
# How many times a run whose generated true positives fail their rule is drawn again.
MAX_ATTEMPTS = 20

PRESIDIO_TESTS = {
    "presidio-analyzer/tests/test_email_recognizer.py": "EmailRecognizer",
    "presidio-analyzer/tests/test_phone_recognizer.py": "PhoneRecognizer",
    "presidio-analyzer/tests/test_credit_card_recognizer.py": "CreditCardRecognizer",
    "presidio-analyzer/tests/test_us_ssn_recognizer.py": "UsSsnRecognizer",
    "presidio-analyzer/tests/test_iban_recognizer.py": "IbanRecognizer",
}
# PhoneRecognizer's default leniency; its tests also run other leniencies on the same texts.
PRESIDIO_PHONE_DEFAULT_LENIENCY = 1


def git_show(repo: Path, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:{path}"],
        check=True,
        capture_output=True,
    ).stdout.decode("utf-8")


def git_ls(repo: Path, commit: str, directory: str) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "--name-only", f"{commit}:{directory}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return sorted(out.split())


# --------------------------------------------------------------------------------------------
# Go source: tokens
# --------------------------------------------------------------------------------------------

GO_KEYWORDS = {
    "break", "case", "chan", "const", "continue", "default", "defer", "else", "fallthrough",
    "for", "func", "go", "goto", "if", "import", "interface", "map", "package", "range",
    "return", "select", "struct", "switch", "type", "var",
}  # fmt: skip

_GO_TOKEN = re.compile(
    r"""
      (?P<nl>\n)
    | (?P<ws>[ \t\r\f]+)
    | (?P<comment>//[^\n]*|/\*.*?\*/)
    | (?P<raw>`[^`]*`)
    | (?P<str>"(?:\\.|[^"\\\n])*")
    | (?P<rune>'(?:\\.|[^'\\\n])*')
    | (?P<num>[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>\.\.\.|:=|\+=|-=|==|!=|<=|>=|&&|\|\||<-|\+\+|--|&\^|<<|>>|[-+*/%&|^<>=!(){}\[\],;:.~])
    """,
    re.X | re.S,
)

_GO_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", "'": "'", '"': '"',
}  # fmt: skip


def go_unquote(lit: str) -> str:
    """The value of a Go interpreted string or rune literal (quotes included)."""
    body, out, i = lit[1:-1], bytearray(), 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        e = body[i + 1]
        if e in _GO_ESCAPES:
            out += _GO_ESCAPES[e].encode()
            i += 2
        elif e == "x":
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
        elif e in "01234567":
            out.append(int(body[i + 1 : i + 4], 8))
            i += 4
        elif e in "uU":
            n = 4 if e == "u" else 8
            out += chr(int(body[i + 2 : i + 2 + n], 16)).encode()
            i += 2 + n
        else:
            raise SyntaxError(f"unknown escape \\{e} in {lit!r}")
    return out.decode("utf-8", "surrogateescape")


def go_tokens(src: str) -> list[tuple[str, object]]:
    """Tokens as (kind, value), with Go's automatic semicolons inserted at line ends."""
    toks: list[tuple[str, object]] = []

    def ends_statement() -> bool:
        if not toks:
            return False
        kind, val = toks[-1]
        if kind == "name":
            return val not in GO_KEYWORDS or val in ("break", "continue", "fallthrough", "return")
        return kind in ("str", "num") or val in ("++", "--", ")", "]", "}")

    pos = 0
    while pos < len(src):
        m = _GO_TOKEN.match(src, pos)
        if not m:
            raise SyntaxError(f"cannot tokenize Go at {src[pos:pos + 40]!r}")
        pos = m.end()
        kind, text = m.lastgroup, m.group()
        if kind == "nl" or (kind == "comment" and "\n" in text):
            if ends_statement():
                toks.append(("op", ";"))
        elif kind in ("ws", "comment"):
            pass
        elif kind == "raw":
            toks.append(("str", text[1:-1].replace("\r", "")))
        elif kind == "str":
            toks.append(("str", go_unquote(text)))
        elif kind == "rune":
            toks.append(("num", ord(go_unquote(text))))
        elif kind == "num":
            toks.append(("num", float(text) if any(c in text for c in ".eE") else int(text)))
        else:
            toks.append((kind, text))
    if ends_statement():
        toks.append(("op", ";"))
    toks.append(("eof", None))
    return toks


# --------------------------------------------------------------------------------------------
# Go source: syntax (the subset the rule files and their helpers use)
# --------------------------------------------------------------------------------------------

_BINARY_PRECEDENCE = {
    "||": 1, "&&": 2,
    "==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3,
    "+": 4, "-": 4, "|": 4, "^": 4,
    "*": 5, "/": 5, "%": 5, "<<": 5, ">>": 5, "&": 5, "&^": 5,
}  # fmt: skip


class GoParser:
    """Parses a Go file into tuples: ('func', name, params, variadic, body) and
    ('var', names, type, exprs).

    Expressions: ('lit', v), ('name', n), ('sel', x, n), ('call', f, args, spread),
    ('index', x, i), ('unary', op, x), ('binary', op, a, b), ('composite', type, elements),
    ('type', t). Statements: ('define'|'assign', lhs, op, rhs), ('expr', e), ('vars', specs),
    ('return', exprs), ('for', kind, head, body) with a ('range', lhs, op, x) head for ranges,
    ('if', init, cond, then, else), ('break',), ('continue',), ('block', stmts),
    ('incdec', x, op). Anything else is a SyntaxError.
    """

    def __init__(self, src: str):
        self.toks = go_tokens(src)
        self.i = 0
        self.imports: dict[str, str] = {}

    # -- tokens --
    def peek(self, k: int = 0) -> tuple[str, object]:
        return self.toks[self.i + k]

    def at(self, val: str, k: int = 0) -> bool:
        kind, v = self.peek(k)
        return v == val and kind in ("op", "name")

    def next(self) -> tuple[str, object]:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, val: str) -> None:
        t = self.next()
        if t[1] != val:
            raise SyntaxError(f"expected {val!r}, got {t!r} near {self.toks[self.i:self.i + 8]!r}")

    def name(self) -> str:
        kind, v = self.next()
        if kind != "name":
            raise SyntaxError(f"expected a name, got {v!r}")
        return str(v)

    def skip_semis(self) -> None:
        while self.at(";"):
            self.next()

    # -- file --
    def parse_file(self) -> list[tuple]:
        decls: list[tuple] = []
        self.expect("package")
        self.name()
        self.skip_semis()
        while self.at("import"):
            self.next()
            if self.at("("):
                self.next()
                self.skip_semis()
                while not self.at(")"):
                    self.import_spec()
                    self.skip_semis()
                self.next()
            else:
                self.import_spec()
            self.skip_semis()
        while self.peek()[0] != "eof":
            if self.at("func"):
                decls.append(self.func_decl())
            elif self.at("var") or self.at("const"):
                decls.extend(self.var_decl())
            else:
                raise SyntaxError(f"unsupported top-level declaration {self.peek()!r}")
            self.skip_semis()
        return decls

    def import_spec(self) -> None:
        alias = self.name() if self.peek()[0] == "name" else None
        kind, path = self.next()
        assert kind == "str", path
        self.imports[alias or str(path).rsplit("/", 1)[-1]] = str(path)

    def func_decl(self) -> tuple:
        self.expect("func")
        if self.at("("):
            raise SyntaxError("methods are not supported")
        name = self.name()
        self.expect("(")
        groups: list[list[tuple]] = [[]]
        depth = 0
        while depth or not self.at(")"):
            t = self.next()
            depth += t[1] in ("(", "[", "{")
            depth -= t[1] in (")", "]", "}")
            if t[1] == "," and depth == 0:
                groups.append([])
            else:
                groups[-1].append(t)
        self.next()
        # Every parameter is named here: the first token of each group is its name.
        params = [str(g[0][1]) for g in groups if g]
        variadic = bool(groups[-1]) and ("op", "...") in groups[-1]
        while not self.at("{"):  # the result type
            self.next()
        return ("func", name, params, variadic, self.block())

    def var_decl(self) -> list[tuple]:
        self.next()  # var or const
        if not self.at("("):
            return [self.var_spec()]
        self.next()
        specs = []
        self.skip_semis()
        while not self.at(")"):
            specs.append(self.var_spec())
            self.skip_semis()
        self.next()
        return specs

    def var_spec(self) -> tuple:
        names = [self.name()]
        while self.at(","):
            self.next()
            names.append(self.name())
        typ = None if self.at("=") or self.at(";") else self.parse_type()
        exprs: list[tuple] = []
        if self.at("="):
            self.next()
            exprs = self.expr_list()
        return ("var", names, typ, exprs)

    # -- statements --
    def block(self) -> list[tuple]:
        self.expect("{")
        stmts = []
        self.skip_semis()
        while not self.at("}"):
            stmts.append(self.statement())
            self.skip_semis()
        self.next()
        return stmts

    def statement(self) -> tuple:
        if self.at("var") or self.at("const"):
            return ("vars", self.var_decl())
        if self.at("return"):
            self.next()
            return ("return", [] if self.at(";") or self.at("}") else self.expr_list())
        if self.at("for"):
            return self.for_stmt()
        if self.at("if"):
            return self.if_stmt()
        if self.at("break") or self.at("continue"):
            return (str(self.next()[1]),)
        if self.at("{"):
            return ("block", self.block())
        return self.simple_stmt(no_lit=False)

    def simple_stmt(self, no_lit: bool) -> tuple:
        lhs = self.expr_list(no_lit)
        if self.at(":=") or self.at("=") or self.at("+="):
            op = str(self.next()[1])
            if self.at("range"):
                self.next()
                return ("range", lhs, op, self.expr(no_lit))
            return ("define" if op == ":=" else "assign", lhs, op, self.expr_list(no_lit))
        if self.at("++") or self.at("--"):
            return ("incdec", lhs[0], str(self.next()[1]))
        if len(lhs) != 1:
            raise SyntaxError("expression list used as a statement")
        return ("expr", lhs[0])

    def for_stmt(self) -> tuple:
        self.expect("for")
        if self.at("{"):
            return ("for", "forever", None, self.block())
        if self.at("range"):
            self.next()
            return ("for", "range", ("range", [], ":=", self.expr(True)), self.block())
        head = self.simple_stmt(no_lit=True)
        if head[0] == "range":
            return ("for", "range", head, self.block())
        if head[0] == "expr" and self.at("{"):
            return ("for", "while", head[1], self.block())
        raise SyntaxError("three-clause for loops are not supported")

    def if_stmt(self) -> tuple:
        self.expect("if")
        init, head = None, self.simple_stmt(no_lit=True)
        if self.at(";"):
            self.next()
            init, head = head, ("expr", self.expr(True))
        assert head[0] == "expr", head
        then = self.block()
        other = None
        if self.at("else"):
            self.next()
            other = [self.if_stmt()] if self.at("if") else self.block()
        return ("if", init, head[1], then, other)

    # -- expressions --
    def expr_list(self, no_lit: bool = False) -> list[tuple]:
        exprs = [self.expr(no_lit)]
        while self.at(","):
            self.next()
            exprs.append(self.expr(no_lit))
        return exprs

    def expr(self, no_lit: bool = False, min_prec: int = 1) -> tuple:
        x = self.unary(no_lit)
        while True:
            kind, op = self.peek()
            prec = _BINARY_PRECEDENCE.get(op) if kind == "op" else None
            if prec is None or prec < min_prec:
                return x
            self.next()
            x = ("binary", op, x, self.expr(no_lit, prec + 1))

    def unary(self, no_lit: bool) -> tuple:
        kind, op = self.peek()
        if kind == "op" and op in ("+", "-", "!", "^", "*", "&", "<-"):
            self.next()
            return ("unary", op, self.unary(no_lit))
        return self.primary(no_lit)

    def primary(self, no_lit: bool) -> tuple:
        x = self.operand()
        while True:
            if self.at("."):
                self.next()
                x = ("sel", x, self.name())
            elif self.at("["):
                self.next()
                index = self.expr()
                self.expect("]")
                x = ("index", x, index)
            elif self.at("("):
                self.next()
                args, spread = [], False
                while not self.at(")"):
                    args.append(self.expr())
                    if self.at("..."):
                        self.next()
                        spread = True
                    if not self.at(")"):
                        self.expect(",")
                self.next()
                x = ("call", x, args, spread)
            elif self.at("{") and (x[0] == "type" or (not no_lit and x[0] in ("name", "sel"))):
                x = ("composite", x, self.composite_body())
            else:
                return x

    def operand(self) -> tuple:
        kind, val = self.peek()
        if kind in ("str", "num"):
            self.next()
            return ("lit", val)
        if self.at("("):
            self.next()
            x = self.expr()
            self.expect(")")
            return x
        if self.at("[") or self.at("map"):
            return ("type", self.parse_type())
        if kind == "name" and val not in GO_KEYWORDS:
            self.next()
            return ("name", val)
        raise SyntaxError(f"unsupported operand {self.peek()!r}")

    def composite_body(self) -> list[tuple]:
        self.expect("{")
        elements = []
        self.skip_semis()
        while not self.at("}"):
            key, value = None, self.element()
            if self.at(":"):
                self.next()
                key, value = value, self.element()
            elements.append((key, value))
            if not self.at("}"):
                self.expect(",")
            self.skip_semis()
        self.next()
        return elements

    def element(self) -> tuple:
        if self.at("{"):  # a composite literal whose type is elided
            return ("composite", None, self.composite_body())
        return self.expr()

    def parse_type(self) -> tuple:
        if self.at("["):
            self.next()
            if self.at("]"):
                self.next()
                return ("slice", self.parse_type())
            size = self.expr()
            self.expect("]")
            return ("array", size, self.parse_type())
        if self.at("map"):
            self.next()
            self.expect("[")
            key = self.parse_type()
            self.expect("]")
            return ("map", key, self.parse_type())
        if self.at("*"):
            self.next()
            return ("ptr", self.parse_type())
        name = self.name()
        if self.at("."):
            self.next()
            name += "." + self.name()
        return ("named", name)


# --------------------------------------------------------------------------------------------
# Go regular expressions: reggen's generation, and translation to Python's `re`
# --------------------------------------------------------------------------------------------


class Unsupported(Exception):
    """A Go regex construct this translation does not cover."""


_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": r"\x00-\x7f", "blank": r"\t ",
    "cntrl": r"\x00-\x1f\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z",
    "print": " -~", "punct": r"!-/:-@\[-`{-~", "space": r"\t\n\v\f\r ", "upper": "A-Z",
    "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}  # fmt: skip
_CLASS_ESCAPES = set("dDwWsS")
_SPECIAL_IN_CLASS = set("\\]^-[&~|")


def _class_atom(p: str, i: int) -> tuple[int, str, bool]:
    """One atom of a Go character class at p[i]: (next index, Python text, is a char)."""
    c = p[i]
    if c != "\\":
        return i + 1, ("\\" + c if c in _SPECIAL_IN_CLASS else c), True
    e = p[i + 1]
    if e in _CLASS_ESCAPES:
        return i + 2, "\\" + e, False
    if e == "x" and p[i + 2] == "{":
        end = p.index("}", i)
        return end + 1, f"\\U{int(p[i + 3:end], 16):08x}", True
    if e == "x":
        return i + 4, p[i : i + 4], True
    if e in "pPQEC":
        raise Unsupported(f"\\{e}")
    return i + 2, p[i : i + 2], True


def _translate_class(p: str, i: int) -> tuple[int, str]:
    """A Go character class starting at p[i] == '[' as a Python class; Go's Perl-mode rules."""
    i += 1
    out = "["
    if p[i] == "^":
        out += "^"
        i += 1
    first = True
    while first or p[i] != "]":
        if p.startswith("[:", i):
            end = p.index(":]", i)
            name = p[i + 2 : end]
            if name.startswith("^") or name not in _POSIX_CLASSES:
                raise Unsupported(f"[:{name}:]")
            out += _POSIX_CLASSES[name]
            i = end + 2
            first = False
            continue
        if first and p[i] == "]":
            i, atom, is_char = i + 1, "\\]", True
        else:
            i, atom, is_char = _class_atom(p, i)
        first = False
        # `-` makes a range only between two characters and not before the closing `]`.
        if is_char and p[i] == "-" and p[i + 1] != "]":
            i, hi, hi_char = _class_atom(p, i + 1)
            if not hi_char:
                raise Unsupported("range ending in a class escape")
            out += atom + "-" + hi
        else:
            out += atom
    return i + 1, out + "]"


def go_regex_to_python(p: str) -> str:
    """A Python `re` pattern (to be compiled with re.ASCII) matching what Go's RE2 syntax does.

    Differences handled: flags set mid-group (`a(?i)b`) apply up to the end of the group, across
    `|`, and become scoped groups here; `\\z`; `$` is the end of the text in Go (without the m
    flag), where Python's also matches before a final newline; POSIX classes; `{` that is not a
    repetition is a literal in Go; repeated group names (after merging regexes) are renamed.
    """
    multiline = re.search(r"\(\?[a-zA-Z-]*m", p) is not None
    out: list[str] = []
    # Per open group: the flags set by `(?flags)` inside it so far (each an open `(?f:` here).
    levels: list[list[str]] = [[]]
    names: dict[str, int] = {}
    i = 0
    while i < len(p):
        c = p[i]
        if c == "\\":
            e = p[i + 1]
            if e == "z":
                out.append(r"\Z")
            elif e in "pPQEC":
                raise Unsupported(f"\\{e}")
            elif e == "x" and p[i + 2] == "{":
                end = p.index("}", i)
                out.append(f"\\U{int(p[i + 3:end], 16):08x}")
                i = end + 1
                continue
            else:
                out.append(p[i : i + 2])
            i += 2
        elif c == "[":
            i, cls = _translate_class(p, i)
            out.append(cls)
        elif c == "(":
            m = re.match(r"\(\?(?:P?<(\w+)>|([imsU-]*)([:)]))", p[i:])
            if p.startswith("(?", i) and not m:
                raise Unsupported(p[i : i + 6])
            if not m:
                out.append("(")
                levels.append([])
                i += 1
                continue
            name, flags, end = m.groups()
            if "U" in (flags or ""):
                raise Unsupported("(?U)")
            if name is not None:
                names[name] = names.get(name, 0) + 1
                if names[name] > 1:
                    name = f"{name}_{names[name]}"
                out.append(f"(?P<{name}>")
                levels.append([])
            elif end == ":":
                out.append(f"(?{flags}:")
                levels.append([])
            else:
                out.append(f"(?{flags}:")
                levels[-1].append(flags)
            i += m.end()
        elif c == ")":
            out.append(")" * len(levels.pop()) + ")")
            i += 1
        elif c == "|":
            opened = levels[-1]
            out.append(")" * len(opened) + "|" + "".join(f"(?{f}:" for f in opened))
            i += 1
        elif c == "$" and not multiline:
            out.append(r"\Z")
            i += 1
        elif c == "{":
            m = re.match(r"\{\d+(?:,\d*)?\}", p[i:])
            out.append(m.group() if m else r"\{")
            i += m.end() if m else 1
        else:
            out.append(c)
            i += 1
    out.append(")" * len(levels[0]))
    return "".join(out)


# reggen draws "any character" from these, and picks from them for classes that reach U+10FFFF
# (negated classes): https://github.com/lucasjones/reggen/blob/37ba4fa293bb/reggen.go
_REGGEN_PRINTABLE = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ \t\n\r"
_REGGEN_PRINTABLE_NO_NL = _REGGEN_PRINTABLE[:-2]
# Go's \d \w \s (ASCII only).
_GO_CATEGORIES = {
    sre_c.CATEGORY_DIGIT: ("0123456789", False),
    sre_c.CATEGORY_NOT_DIGIT: ("0123456789", True),
    sre_c.CATEGORY_WORD: ("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_", False),
    sre_c.CATEGORY_NOT_WORD: (
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_",
        True,
    ),
    sre_c.CATEGORY_SPACE: ("\t\n\f\r ", False),
    sre_c.CATEGORY_NOT_SPACE: ("\t\n\f\r ", True),
}


def _go_fold(chars: set[str]) -> set[str]:
    """Go's case folding of a class under (?i): both ASCII cases, and the two non-ASCII runes
    in the orbits of s (U+017F) and k (U+212A)."""
    folded = set(chars)
    for ch in chars:
        if ch.isascii() and ch.isalpha():
            folded.add(ch.swapcase())
    if folded & {"s", "S"}:
        folded.add("\u017f")
    if folded & {"k", "K"}:
        folded.add("\u212a")
    return folded


def reggen(pattern: str, rng: random.Random) -> str:
    """gitleaks' secrets.NewSecret(pattern): reggen's Generate(1) with `rng` for Go's math/rand.

    With limit 1, reggen repeats `x*`, `x?` and `x{0,n}` zero or one time (even odds), and `x+`,
    `x{m}`, `x{m,n}`, `x{m,}` (m >= 1) exactly m times; picks alternatives and characters of a
    class uniformly; draws `.` and negated classes from its printable characters; emits nothing
    for anchors and boundaries; and, as Go's parser folds literals under (?i) to their smallest
    case-equivalent rune, writes ASCII letters in upper case there.
    """
    parsed = sre_parse.parse(go_regex_to_python(pattern), re.ASCII)
    out: list[str] = []
    _generate(list(parsed), rng, 0, out)
    return "".join(out)


def _class_pool(items: list, flags: int) -> list[str]:
    """The characters reggen picks from for an sre IN item list: all of the class's, or, for a
    class that reaches U+10FFFF in Go (negated, or with \\D \\W \\S), those of its printable
    characters that the class contains."""
    chars: set[str] = set()
    negated = unbounded = False
    for op, av in items:
        if op is sre_c.NEGATE:
            negated = True
        elif op is sre_c.LITERAL:
            chars.add(chr(av))
        elif op is sre_c.RANGE:
            chars.update(chr(c) for c in range(av[0], av[1] + 1))
            unbounded = unbounded or av[1] == 0x10FFFF
        elif op is sre_c.CATEGORY:
            members, complement = _GO_CATEGORIES[av]
            if complement:
                chars.update(c for c in _REGGEN_PRINTABLE if c not in members)
                unbounded = True
            else:
                chars.update(members)
        else:
            raise Unsupported(f"class item {op}")
    if flags & re.IGNORECASE:
        chars = _go_fold(chars)
    if negated:
        return [c for c in _REGGEN_PRINTABLE if c not in chars]
    if unbounded:
        return [c for c in _REGGEN_PRINTABLE if c in chars]
    return sorted(chars)


def _generate(items: list, rng: random.Random, flags: int, out: list[str]) -> None:
    for op, av in items:
        if op is sre_c.LITERAL:
            c = chr(av)
            out.append(c.upper() if flags & re.IGNORECASE and c.isascii() and c.isalpha() else c)
        elif op is sre_c.NOT_LITERAL:
            excluded = _go_fold({chr(av)}) if flags & re.IGNORECASE else {chr(av)}
            out.append(rng.choice([c for c in _REGGEN_PRINTABLE if c not in excluded]))
        elif op is sre_c.ANY:
            out.append(
                rng.choice(_REGGEN_PRINTABLE if flags & re.DOTALL else _REGGEN_PRINTABLE_NO_NL)
            )
        elif op is sre_c.IN:
            out.append(rng.choice(_class_pool(av, flags)))
        elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT):
            lo, hi, sub = av
            n = lo if lo >= 1 else (rng.randrange(2) if hi >= 1 else 0)
            for _ in range(n):
                _generate(list(sub), rng, flags, out)
        elif op is sre_c.SUBPATTERN:
            _, add, remove, sub = av
            _generate(list(sub), rng, (flags | add) & ~remove, out)
        elif op is sre_c.BRANCH:
            _generate(list(rng.choice(av[1])), rng, flags, out)
        elif op is sre_c.AT:
            pass
        else:
            raise Unsupported(f"cannot generate {op}")


# --------------------------------------------------------------------------------------------
# Go evaluation
# --------------------------------------------------------------------------------------------


class GoRegex:
    """A compiled Go regex (gitleaks' regexp package): its pattern, run through Python's re."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        self._compiled: re.Pattern | None = None
        self.error: str | None = None

    def compiled(self) -> re.Pattern | None:
        if self._compiled is None and self.error is None:
            try:
                self._compiled = re.compile(go_regex_to_python(self.pattern), re.ASCII)
            except (Unsupported, re.error) as e:
                self.error = str(e)
        return self._compiled


class Struct:
    def __init__(self, type_name: str, fields: dict):
        self.type_name = type_name
        self.fields = fields


class Builder:
    """strings.Builder."""

    def __init__(self) -> None:
        self.parts: list[str] = []


class Replacer:
    """strings.NewReplacer: at each position the first matching old string (in argument
    order) is replaced; matches do not overlap."""

    def __init__(self, pairs: list[str]):
        self.pairs = list(zip(pairs[::2], pairs[1::2]))

    def replace(self, s: str) -> str:
        out, i = [], 0
        while i < len(s):
            for old, new in self.pairs:
                if old and s.startswith(old, i):
                    out.append(new)
                    i += len(old)
                    break
            else:
                out.append(s[i])
                i += 1
        return "".join(out)


class Qual:
    """A name from a package that is not interpreted (fmt.Sprintf, base64.StdEncoding, ...)."""

    def __init__(self, name: str):
        self.name = name


class Func:
    def __init__(
        self, package: "Package", name: str, params: list[str], variadic: bool, body: list[tuple]
    ):
        self.package, self.name, self.params, self.body = package, name, params, body
        self.variadic = variadic


class Sample(str):
    """A text from GenerateSampleSecret(s): it remembers the secret it was built around."""

    secret: str


class Return(Exception):
    def __init__(self, value: object):
        self.value = value


class Break(Exception):
    pass


class Continue(Exception):
    pass


class Package:
    def __init__(self, name: str):
        self.name = name
        self.funcs: dict[str, Func] = {}
        self.var_decls: dict[str, tuple] = {}
        self.vars: dict[str, object] = {}
        self.imports: dict[str, str] = {}  # per package: the rule files share their imports


class Scope:
    def __init__(self, parent: "Scope | None"):
        self.parent = parent
        self.vars: dict[str, object] = {}

    def lookup(self, name: str) -> "Scope | None":
        s: Scope | None = self
        while s is not None:
            if name in s.vars:
                return s
            s = s.parent
        return None


_GITLEAKS_MODULE = "github.com/zricethezav/gitleaks/v8/"


class Interp:
    """Runs the functions of gitleaks' rules and utils packages.

    utils.Validate / utils.ValidateWithPaths are not run (they build gitleaks' detector): they
    record the rule and its test cases in `self.validated`. secrets.NewSecret is `reggen`.
    """

    def __init__(self, packages: dict[str, Package]):
        self.packages = packages
        self.rng = random.Random("gitleaks/init")
        self.validated: list[tuple[Struct, list[str], list[str]]] = []
        self.generated_patterns: list[str] = []

    # -- calls --
    def call(self, fn: Func, args: list[object]) -> object:
        scope = Scope(None)
        if fn.variadic:
            n = len(fn.params) - 1
            args = args[:n] + [args[n:]]
        for name, value in zip(fn.params, args):
            scope.vars[name] = value
        try:
            self.exec_block(fn.body, scope, fn.package)
        except Return as r:
            return r.value
        return None

    def package_var(self, pkg: Package, name: str) -> object:
        if name not in pkg.vars:
            _, names, typ, exprs = pkg.var_decls[name]
            values = self.eval_exprs(exprs, Scope(None), pkg) if exprs else [zero(typ)] * len(names)
            for n, v in zip(names, values):
                pkg.vars[n] = v
        return pkg.vars[name]

    # -- statements --
    def exec_block(self, stmts: list[tuple], scope: Scope, pkg: Package) -> None:
        for stmt in stmts:
            self.exec(stmt, scope, pkg)

    def exec(self, stmt: tuple, scope: Scope, pkg: Package) -> None:
        kind = stmt[0]
        if kind == "expr":
            self.eval(stmt[1], scope, pkg)
        elif kind == "define":
            values = self.eval_exprs(stmt[3], scope, pkg)
            for target, value in zip(stmt[1], values):
                if target[1] != "_":
                    scope.vars[target[1]] = value
        elif kind == "assign":
            values = self.eval_exprs(stmt[3], scope, pkg)
            for target, value in zip(stmt[1], values):
                if stmt[2] == "+=":
                    value = self.eval(target, scope, pkg) + value
                self.store(target, value, scope, pkg)
        elif kind == "var":
            _, names, typ, exprs = stmt
            values = self.eval_exprs(exprs, scope, pkg) if exprs else [zero(typ) for _ in names]
            for n, v in zip(names, values):
                scope.vars[n] = v
        elif kind == "vars":  # declared in the current scope
            self.exec_block(stmt[1], scope, pkg)
        elif kind == "block":
            self.exec_block(stmt[1], Scope(scope), pkg)
        elif kind == "return":
            values = self.eval_exprs(stmt[1], scope, pkg)
            raise Return(values[0] if len(values) == 1 else tuple(values) or None)
        elif kind == "if":
            inner = Scope(scope)
            if stmt[1] is not None:
                self.exec(stmt[1], inner, pkg)
            if self.eval(stmt[2], inner, pkg):
                self.exec_block(stmt[3], Scope(inner), pkg)
            elif stmt[4] is not None:
                self.exec_block(stmt[4], Scope(inner), pkg)
        elif kind == "for":
            self.exec_for(stmt, scope, pkg)
        elif kind == "break":
            raise Break()
        elif kind == "continue":
            raise Continue()
        elif kind == "incdec":
            self.store(
                stmt[1], self.eval(stmt[1], scope, pkg) + (1 if stmt[2] == "++" else -1), scope, pkg
            )
        else:
            raise NotImplementedError(kind)

    def exec_for(self, stmt: tuple, scope: Scope, pkg: Package) -> None:
        _, kind, head, body = stmt
        if kind == "range":
            _, targets, _, over = head
            seq = self.eval(over, scope, pkg)
            # Go ranges over a map in random order; here, in the order of its literal.
            pairs = list(seq.items()) if isinstance(seq, dict) else list(enumerate(seq or []))
        else:
            pairs = None
        n = 0
        while True:
            inner = Scope(scope)
            if pairs is not None:
                if n >= len(pairs):
                    return
                for target, value in zip(targets, pairs[n]):
                    if target[1] != "_":
                        inner.vars[target[1]] = value
                n += 1
            elif kind == "while" and not self.eval(head, scope, pkg):
                return
            try:
                self.exec_block(body, inner, pkg)
            except Continue:
                continue
            except Break:
                return

    def store(self, target: tuple, value: object, scope: Scope, pkg: Package) -> None:
        if target[0] == "name":
            name = target[1]
            if name == "_":
                return
            owner = scope.lookup(name)
            if owner is not None:
                owner.vars[name] = value
            elif name in pkg.var_decls:
                pkg.vars[name] = value
            else:
                raise NameError(name)
        elif target[0] == "sel":
            obj = self.eval(target[1], scope, pkg)
            assert isinstance(obj, Struct), target
            obj.fields[target[2]] = value
        elif target[0] == "index":
            self.eval(target[1], scope, pkg)[self.eval(target[2], scope, pkg)] = value
        else:
            raise NotImplementedError(target)

    # -- expressions --
    def eval_exprs(self, exprs: list[tuple], scope: Scope, pkg: Package) -> list[object]:
        values = [self.eval(e, scope, pkg) for e in exprs]
        if len(exprs) == 1 and isinstance(values[0], tuple):
            return list(values[0])  # a, b := f()
        return values

    def eval(self, e: tuple, scope: Scope, pkg: Package) -> object:
        kind = e[0]
        if kind == "lit":
            return e[1]
        if kind == "name":
            return self.resolve(e[1], scope, pkg)
        if kind == "sel":
            base = e[1]
            if base[0] == "name" and scope.lookup(base[1]) is None and base[1] in pkg.imports:
                return self.package_member(pkg.imports[base[1]], e[2])
            obj = self.eval(base, scope, pkg)
            if isinstance(obj, Qual):
                return Qual(f"{obj.name}.{e[2]}")
            if isinstance(obj, Struct) and e[2] != "ContainsStopWord":  # a field, else a method
                return obj.fields.get(e[2])
            return ("method", obj, e[2])
        if kind == "call":
            return self.eval_call(e, scope, pkg)
        if kind == "composite":
            return self.composite(e[1], e[2], scope, pkg, None)
        if kind == "binary":
            return self.binary(e[1], e[2], e[3], scope, pkg)
        if kind == "unary":
            x = self.eval(e[2], scope, pkg)
            if e[1] in ("&", "*", "+"):
                return x  # values here are references already
            if e[1] == "!":
                return not x
            if e[1] == "-":
                return -x
            raise NotImplementedError(e[1])
        if kind == "index":
            return self.eval(e[1], scope, pkg)[self.eval(e[2], scope, pkg)]
        if kind == "type":
            return ("typevalue", e[1])
        raise NotImplementedError(kind)

    def binary(self, op: str, a: tuple, b: tuple, scope: Scope, pkg: Package) -> object:
        x = self.eval(a, scope, pkg)
        if op == "&&":
            return x and self.eval(b, scope, pkg)
        if op == "||":
            return x or self.eval(b, scope, pkg)
        y = self.eval(b, scope, pkg)
        if op == "+":
            return str(x) + str(y) if isinstance(x, str) else x + y
        ops = {
            "-": lambda: x - y, "*": lambda: x * y, "/": lambda: x // y if isinstance(x, int) else x / y,
            "%": lambda: x % y, "==": lambda: x == y, "!=": lambda: x != y, "<": lambda: x < y,
            "<=": lambda: x <= y, ">": lambda: x > y, ">=": lambda: x >= y,
        }  # fmt: skip
        return ops[op]()

    def resolve(self, name: str, scope: Scope, pkg: Package) -> object:
        owner = scope.lookup(name)
        if owner is not None:
            return owner.vars[name]
        if name in pkg.funcs:
            return pkg.funcs[name]
        if name in pkg.var_decls:
            return self.package_var(pkg, name)
        if name in ("nil", "true", "false"):
            return {"nil": None, "true": True, "false": False}[name]
        return Qual(name)  # a builtin: append, len, make, string, ...

    def package_member(self, path: str, member: str) -> object:
        if path.startswith(_GITLEAKS_MODULE + "cmd/generate/config/"):
            pkg = self.packages.get(path.rsplit("/", 1)[-1])
            if pkg is not None and member in pkg.funcs:
                return pkg.funcs[member]
            if pkg is not None and member in pkg.var_decls:
                return self.package_var(pkg, member)
        short = {
            _GITLEAKS_MODULE + "cmd/generate/secrets": "secrets",
            _GITLEAKS_MODULE + "cmd/generate/config/utils": "utils",
            _GITLEAKS_MODULE + "config": "config",
            _GITLEAKS_MODULE + "regexp": "regexp",
        }.get(path, path.rsplit("/", 1)[-1])
        return Qual(f"{short}.{member}")

    def composite(
        self, typ: tuple | None, elements: list, scope: Scope, pkg: Package, elided: tuple | None
    ) -> object:
        t = (
            elided
            if typ is None
            else (typ[1] if typ[0] == "type" else ("named", qual_name(typ, pkg)))
        )
        while t is not None and t[0] == "ptr":
            t = t[1]
        if t is None:
            raise SyntaxError("composite literal without a type")
        if t[0] in ("slice", "array"):
            return [self.element(v, scope, pkg, t[-1]) for _, v in elements]
        if t[0] == "map":
            return {
                self.eval(k, scope, pkg): self.element(v, scope, pkg, t[2]) for k, v in elements
            }
        fields = {}
        for k, v in elements:  # a struct: keys are field names
            fields[k[1]] = self.element(v, scope, pkg, None)
        return Struct(t[1], fields)

    def element(self, v: tuple, scope: Scope, pkg: Package, elem_type: tuple | None) -> object:
        if v[0] == "composite" and v[1] is None:
            return self.composite(None, v[2], scope, pkg, elem_type)
        return self.eval(v, scope, pkg)

    def eval_call(self, e: tuple, scope: Scope, pkg: Package) -> object:
        _, fn_expr, arg_exprs, spread = e
        fn = self.eval(fn_expr, scope, pkg)
        args = [self.eval(a, scope, pkg) for a in arg_exprs]
        if spread:
            args = args[:-1] + list(args[-1] or [])
        if isinstance(fn, Func):
            qualified = f"{fn.package.name}.{fn.name}"
            result = self.call(fn, args)
            if qualified in ("utils.GenerateSampleSecret", "utils.GenerateSampleSecrets"):
                result = tag_samples(result, str(args[1]))
            return result
        if isinstance(fn, tuple) and fn[0] == "typevalue":
            return convert(fn[1], args[0])
        if isinstance(fn, tuple) and fn[0] == "method":
            return self.method(fn[1], fn[2], args)
        if isinstance(fn, Qual):
            return self.builtin(fn.name, args)
        raise TypeError(f"cannot call {fn!r}")

    def method(self, obj: object, name: str, args: list) -> object:
        if isinstance(obj, Builder):
            if name == "WriteString":
                obj.parts.append(args[0])
                return (len(args[0]), None)
            if name == "String":
                return "".join(obj.parts)
        if isinstance(obj, Replacer) and name == "Replace":
            return obj.replace(args[0])
        if isinstance(obj, GoRegex):
            if name == "String":
                return obj.pattern
            if name == "MatchString":
                rx = obj.compiled()
                if rx is None:
                    raise Unsupported(obj.error)
                return rx.search(args[0]) is not None
        if (
            isinstance(obj, Struct)
            and obj.type_name == "config.Allowlist"
            and name == "ContainsStopWord"
        ):
            # config/allowlist.go: a stop word anywhere in the lower-cased secret.
            lowered = args[0].lower()
            for word in obj.fields.get("StopWords") or []:
                if word.lower() in lowered:
                    return (True, word)
            return (False, "")
        raise NotImplementedError(f"method {type(obj).__name__}.{name}")

    def builtin(self, name: str, args: list) -> object:
        if name == "append":
            return list(args[0] or []) + args[1:]
        if name == "len":
            return len(args[0] or [])
        if name == "make":  # make(map[K]V) or make([]T, len[, cap])
            typ = args[0][1]
            return (
                {}
                if typ[0] == "map"
                else [zero(typ[1]) for _ in range(args[1] if len(args) > 1 else 0)]
            )
        if name == "string":
            return (
                args[0].decode("utf-8", "surrogateescape")
                if isinstance(args[0], bytes)
                else chr(args[0])
            )
        if name in ("utils.Validate", "utils.ValidateWithPaths"):  # utils/validate.go, not loaded
            rule, tps, fps = args
            if name == "utils.ValidateWithPaths":  # path -> text; path-only cases have no text
                tps = [t for t in tps.values() if t]
                fps = [t for t in fps.values() if t]
            self.validated.append((rule, list(tps or []), list(fps or [])))
            return rule
        if name == "secrets.NewSecret":
            self.generated_patterns.append(args[0])
            return reggen(args[0], self.rng)
        if name == "regexp.MustCompile":
            return GoRegex(args[0])
        if name == "fmt.Sprintf":
            return go_sprintf(args[0], args[1:])
        if name == "strings.NewReplacer":
            return Replacer(args)
        if name == "strings.Join":
            return args[1].join(args[0])
        if name in _STRING_FUNCS:
            return _STRING_FUNCS[name](*args)
        if name.startswith("base64.") and name.endswith(".EncodeToString"):
            return b64_encode(name.split(".")[1], args[0])
        raise NotImplementedError(f"builtin {name}")


_STRING_FUNCS = {
    "strings.ToUpper": lambda s: s.upper(),
    "strings.ToLower": lambda s: s.lower(),
    "strings.Repeat": lambda s, n: s * n,
    "strings.ReplaceAll": lambda s, a, b: s.replace(a, b),
    "strings.Contains": lambda s, sub: sub in s,
    "strings.TrimSpace": lambda s: s.strip(" \t\n\r\v\f"),
}


def qual_name(typ: tuple, pkg: Package) -> str:
    if typ[0] == "name":
        return typ[1]
    if typ[0] == "sel" and typ[1][0] == "name":
        path = pkg.imports.get(typ[1][1], typ[1][1])
        short = "config" if path == _GITLEAKS_MODULE + "config" else path.rsplit("/", 1)[-1]
        return f"{short}.{typ[2]}"
    raise SyntaxError(f"unsupported composite type {typ!r}")


def zero(typ: tuple | None) -> object:
    if typ is None:
        return None
    if typ == ("named", "strings.Builder"):
        return Builder()
    if typ == ("named", "string"):
        return ""
    if typ[0] == "named" and typ[1] in ("int", "int64", "float64"):
        return 0
    if typ[0] == "named" and typ[1] == "bool":
        return False
    return None  # nil slices and maps


def convert(typ: tuple, value: object) -> object:
    if typ == ("slice", ("named", "byte")):
        return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
    raise NotImplementedError(f"conversion to {typ!r}")


def b64_encode(encoding: str, data: object) -> str:
    raw = data if isinstance(data, bytes) else str(data).encode("utf-8", "surrogateescape")
    urlsafe = encoding in ("URLEncoding", "RawURLEncoding")
    out = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode()
    return out.rstrip("=") if encoding.startswith("Raw") else out


def go_sprintf(fmt: str, args: list) -> str:
    it = iter(args)

    def verb(m: re.Match) -> str:
        if m.group() == "%%":
            return "%"
        v = next(it)
        if m.group(1) == "q":
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "surrogateescape")
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)

    return re.sub(r"%%|%[-+# 0]*\d*(?:\.\d+)?([svdq])", verb, fmt)


def tag_samples(result: object, secret: str) -> object:
    def tag(text: str) -> str:
        s = Sample(text)
        s.secret = secret
        return s

    if isinstance(result, list):
        return [tag(t) for t in result]
    return tag(str(result))


def load_package(name: str, sources: list[str]) -> Package:
    pkg = Package(name)
    for src in sources:
        parser = GoParser(src)
        for decl in parser.parse_file():
            if decl[0] == "func":
                pkg.funcs[decl[1]] = Func(pkg, *decl[1:])
            else:
                for n in decl[1]:
                    pkg.var_decls[n] = decl
        pkg.imports.update(parser.imports)
    return pkg


# --------------------------------------------------------------------------------------------
# gitleaks cases
# --------------------------------------------------------------------------------------------


def shannon_entropy(s: str) -> float:
    # detect/utils.go: over the bytes of the secret.
    data = s.encode("utf-8", "surrogateescape")
    counts: dict[int, int] = {}
    for b in data:
        counts[b] = counts.get(b, 0) + 1
    return -sum(c / len(data) * math.log2(c / len(data)) for c in counts.values()) if data else 0.0


def secret_spans(rule: Struct, text: str) -> list[list[int]] | None:
    """Where gitleaks' rule finds its secret in `text` (detect/detect.go: every match, the
    match trimmed of newlines, its secret group or else its first non-empty unnamed group, kept
    when its entropy is above the rule's threshold; the rule's allowlists are not applied).
    None when the rule's regex cannot run here or finds nothing."""
    regex = rule.fields.get("Regex")
    if not isinstance(regex, GoRegex) or regex.compiled() is None:
        return None
    rx = regex.compiled()
    assert rx is not None
    group = rule.fields.get("SecretGroup") or 0
    threshold = rule.fields.get("Entropy") or 0
    spans = []
    for m in rx.finditer(text):
        lead = len(m.group()) - len(m.group().lstrip("\n"))
        trimmed = m.group().strip("\n")
        inner = rx.search(trimmed)
        if inner is None:
            continue
        start, end = inner.span()
        if inner.lastindex:
            if group:
                start, end = inner.span(group)
            else:
                # jwt-base64 names its groups to tag which JWT header was found: gitleaks
                # reports that 10-character tag as the secret; the secret is the whole match.
                named = set(rx.groupindex.values())
                for g in range(1, (rx.groups or 0) + 1):
                    if inner.group(g) and g not in named:
                        start, end = inner.span(g)
                        break
        secret = trimmed[start:end]
        if threshold and shannon_entropy(secret) <= threshold:
            continue
        if secret:
            spans.append([m.start() + lead + start, m.start() + lead + end])
    return spans or None


def count(stats: dict, key: str) -> None:
    stats[key] = stats.get(key, 0) + 1


def run_rule(interp: Interp, fn: Func, sample: int, stats: dict) -> tuple | None:
    """One run of a rule function: (rule, tps, fps) as handed to Validate, or None for a rule
    without test cases.

    gitleaks' generator stops when a generated true positive fails its rule (low entropy, say):
    the published config comes from a run where none did. A run whose true positives are not
    all found by the rule here is likewise drawn again, with the next seed.
    """
    for attempt in range(MAX_ATTEMPTS):
        seed = f"gitleaks/{fn.name}/{sample}" + (f"/{attempt}" if attempt else "")
        interp.rng = random.Random(seed)
        interp.validated = []
        interp.call(fn, [])
        if len(interp.validated) > 1:
            raise RuntimeError(f"{fn.name}: {len(interp.validated)} Validate calls")
        if not interp.validated:
            return None
        rule, tps, _ = interp.validated[0]
        if all(secret_spans(rule, t) for t in tps):
            break
        count(stats, "gitleaks rule runs drawn again")
    return interp.validated[0]


def tp_spans(rule: Struct, text: str, stats: dict) -> list[list[int]] | None:
    """The expected spans of a true positive: where the rule finds its secret, else where the
    secret handed to GenerateSampleSecret(s) is."""
    regex = rule.fields.get("Regex")
    if isinstance(regex, GoRegex) and regex.compiled() is None:
        stats.setdefault("gitleaks rule regexes not run here", set()).add(
            f"{rule.fields['RuleID']}: {regex.error}"
        )
    spans = secret_spans(rule, text)
    if spans is not None:
        count(stats, "gitleaks tp spans from the rule's regex")
    elif isinstance(text, Sample) and text.secret in text:
        start = text.index(text.secret)
        spans = [[start, start + len(text.secret)]]
        count(stats, "gitleaks tp spans from the sample's secret")
    else:
        stats.setdefault("gitleaks tps without spans", []).append(
            f"{rule.fields['RuleID']}: {text[:60]!r}"
        )
    return spans


def gitleaks_cases(repo: Path, stats: dict) -> list[dict]:
    rules_dir = "cmd/generate/config/rules"
    rule_sources = [
        git_show(repo, GITLEAKS_COMMIT, f"{rules_dir}/{f}")
        for f in git_ls(repo, GITLEAKS_COMMIT, rules_dir)
        if f.endswith(".go")
    ]
    utils_sources = [
        git_show(repo, GITLEAKS_COMMIT, f"cmd/generate/config/utils/{f}")
        for f in ("generate.go", "patterns.go")
    ]
    packages = {
        "rules": load_package("rules", rule_sources),
        "utils": load_package("utils", utils_sources),
    }
    interp = Interp(packages)

    # The rules gitleaks' config is generated from, in its order (cmd/generate/config/main.go).
    main = git_show(repo, GITLEAKS_COMMIT, "cmd/generate/config/main.go")
    listed = main[main.index("configRules := []*config.Rule{") :]
    rule_funcs = re.findall(r"rules\.(\w+)\(\)", listed[: listed.index("\n\t}\n")])
    stats["gitleaks rules"] = len(rule_funcs)

    cases: list[dict] = []
    for fn_name in rule_funcs:
        seen: set[tuple[str, str]] = set()
        for sample in range(SAMPLES):
            run = run_rule(interp, packages["rules"].funcs[fn_name], sample, stats)
            if run is None:  # "validate TODO"
                stats.setdefault("gitleaks rules without test cases", set()).add(fn_name)
                break
            rule, tps, fps = run
            for kind, texts in (("tp", tps), ("fp", fps)):
                for text in texts:
                    if (kind, text) in seen:
                        continue  # a literal case, again
                    seen.add((kind, text))
                    if kind == "fp" and ("tp", text) in seen:
                        # ValidateWithPaths: a true positive of the rule at another path, and
                        # without paths simply a true positive.
                        count(stats, "gitleaks fps dropped: a tp of the rule at another path")
                        continue
                    case = {"source": "gitleaks", "rule": rule.fields["RuleID"], "kind": kind}
                    case["text"] = str(text)
                    spans = tp_spans(rule, text, stats) if kind == "tp" else None
                    if spans:
                        case["spans"] = spans
                    cases.append(case)
    stats["gitleaks generator patterns"] = len(set(interp.generated_patterns))
    folded = sorted({p for p in interp.generated_patterns if "(?i" in p})
    if folded:
        stats["gitleaks generator patterns with (?i)"] = folded
    return cases


# --------------------------------------------------------------------------------------------
# Presidio cases
# --------------------------------------------------------------------------------------------


def presidio_cases(repo: Path, stats: dict) -> list[dict]:
    cases: list[dict] = []
    for path, recognizer in PRESIDIO_TESTS.items():
        tree = ast.parse(git_show(repo, PRESIDIO_COMMIT, path))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            for deco in fn.decorator_list:
                if not (
                    isinstance(deco, ast.Call)
                    and ast.unparse(deco.func) == "pytest.mark.parametrize"
                ):
                    continue
                names = [n.strip() for n in ast.literal_eval(deco.args[0]).split(",")]
                for row in deco.args[1].elts:
                    values = dict(zip(names, ast.literal_eval(row)))
                    # The same texts are also tested at other leniencies: keep the default's.
                    if (
                        values.get("leniency", PRESIDIO_PHONE_DEFAULT_LENIENCY)
                        != PRESIDIO_PHONE_DEFAULT_LENIENCY
                    ):
                        count(stats, "presidio rows at a non-default leniency")
                        continue
                    text = values.get("text", values.get("iban"))
                    expected = values["expected_len"]
                    positions = values.get("expected_positions", values.get("expected_res", ()))
                    case = {
                        "source": "presidio",
                        "rule": recognizer,
                        "kind": "tp" if expected else "fp",
                        "text": text,
                    }
                    if expected:
                        if len(positions) != expected:
                            raise RuntimeError(
                                f"{path}: {text!r}: {expected} results, {len(positions)} spans"
                            )
                        case["spans"] = [list(p) for p in positions]
                    cases.append(case)
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--gitleaks",
        type=Path,
        required=True,
        help=f"a gitleaks git directory with {GITLEAKS_COMMIT}",
    )
    ap.add_argument(
        "--presidio",
        type=Path,
        required=True,
        help=f"a Presidio git directory with {PRESIDIO_COMMIT}",
    )
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[2] / "tests/corpus/cases.jsonl"
    )
    args = ap.parse_args()
    if sys.version_info[:2] != (3, 11):
        print(
            f"warning: written for Python 3.11, running {sys.version.split()[0]}", file=sys.stderr
        )

    stats: dict = {}
    cases = gitleaks_cases(args.gitleaks, stats) + presidio_cases(args.presidio, stats)
    lines, seen = [], set()
    for case in cases:
        line = json.dumps(case, ensure_ascii=False)
        if line not in seen:
            seen.add(line)
            lines.append(line)
    args.out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")

    counts: dict[str, int] = {}
    for line in lines:
        case = json.loads(line)
        key = f"{case['source']} {case['kind']}"
        counts[key] = counts.get(key, 0) + 1
    print(f"wrote {len(lines)} cases to {args.out}", file=sys.stderr)
    for key, value in sorted(counts.items()) + sorted(stats.items()):
        if isinstance(value, (list, set)):
            print(f"  {key}:", file=sys.stderr)
            for item in sorted(value):
                print(f"    {item}", file=sys.stderr)
        else:
            print(f"  {key}: {value}", file=sys.stderr)


if __name__ == "__main__":
    main()

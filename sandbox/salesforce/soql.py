"""An anchored recursive-descent parser for the SOQL subset the sandbox supports.

The parser turns text into a small AST and knows nothing about the org schema; checking field
names and value types is :mod:`.query`'s job. It is deliberately strict: everything it does not
understand is a :class:`SoqlSyntaxError` (reported as ``MALFORMED_QUERY``), never a silently
ignored clause. A permissive parser that dropped an unknown ``WHERE`` term would return every
row, which is the worst possible failure for a sync test oracle.

Supported grammar (keywords are case-insensitive)::

    query      := SELECT (COUNT '(' ')' | field (',' field)*) FROM name
                  [WHERE cond] [ORDER BY order (',' order)*] [LIMIT int] [OFFSET int]
    field      := name ('.' name)*                      -- Owner.Email, Account.Owner.Name
    cond       := unary ((AND unary)+ | (OR unary)+)?   -- mixing AND/OR needs parentheses, as in SOQL
    unary      := NOT unary | '(' cond ')' | predicate
    predicate  := field op value | field [NOT] IN '(' value (',' value)* ')' | field LIKE string
    op         := '=' | '!=' | '<>' | '<' | '<=' | '>' | '>='
    value      := string | number | date | datetime | NULL | TRUE | FALSE | date-literal
    order      := field [ASC | DESC] [NULLS (FIRST | LAST)]

Literals: strings in single quotes with SOQL backslash escapes (``\\' \\" \\\\ \\n \\r \\t \\b \\f
\\uXXXX``, and ``\\% \\_`` inside LIKE patterns); unquoted dates ``2024-01-31``; unquoted datetimes
``2024-01-31T10:00:00Z`` / ``+01:00`` / ``-0500`` with optional fractional seconds; date literals
``TODAY YESTERDAY TOMORROW THIS_MONTH LAST_MONTH THIS_YEAR LAST_90_DAYS LAST_N_DAYS:n
NEXT_N_DAYS:n``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "And",
    "Comparison",
    "DateLiteral",
    "FieldPath",
    "InList",
    "Literal",
    "Not",
    "Or",
    "OrderItem",
    "Query",
    "SoqlSyntaxError",
    "parse",
]

KEYWORDS = frozenset(
    {
        "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC",
        "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "NULL", "TRUE", "FALSE", "GROUP", "HAVING",
        "WITH", "FOR", "INCLUDES", "EXCLUDES", "USING", "TYPEOF",
    }
)  # fmt: skip

# Date literals without and with a numeric argument (``LAST_N_DAYS:30``).
DATE_LITERALS = frozenset(
    {"TODAY", "YESTERDAY", "TOMORROW", "THIS_MONTH", "LAST_MONTH", "THIS_YEAR", "LAST_90_DAYS"}
)
DATE_LITERALS_N = frozenset({"LAST_N_DAYS", "NEXT_N_DAYS"})

_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}


class SoqlSyntaxError(ValueError):
    """The text is not valid SOQL (or uses SOQL the sandbox does not support).

    ``pos`` is the 0-based character offset of the offending token.
    """

    def __init__(self, message: str, pos: int):
        super().__init__(message)
        self.message = message
        self.pos = pos

    def render(self, text: str) -> str:
        """Format like Salesforce: the query line, a caret, ``ERROR at Row:r:Column:c``, the message."""
        return render_error(text, self.pos, self.message)


def render_error(text: str, pos: int, message: str) -> str:
    """Salesforce-style error text pointing at ``pos`` in ``text``."""
    pos = max(0, min(pos, len(text)))
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    row = text.count("\n", 0, pos) + 1
    col = pos - line_start + 1
    return f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n{message}"


# ---------------------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class FieldPath:
    """A field reference, possibly through parent relationships (``Account.Owner.Email``)."""

    parts: tuple[str, ...]
    pos: int

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class DateLiteral:
    """A relative date literal such as ``TODAY`` or ``LAST_N_DAYS:30`` (resolved at run time)."""

    name: str
    n: int | None = None


@dataclass(frozen=True)
class Literal:
    """A value in a condition.

    ``kind`` is one of ``string number boolean null date datetime date_literal``. For strings,
    ``value`` is the decoded text and ``raw`` the text between the quotes (LIKE needs the raw
    form to tell an escaped ``\\%`` from a wildcard). Datetimes are timezone-aware UTC.
    """

    kind: str
    value: Any
    pos: int
    raw: str | None = None


@dataclass(frozen=True)
class Comparison:
    field: FieldPath
    op: str  # = != < <= > >= LIKE
    value: Literal


@dataclass(frozen=True)
class InList:
    field: FieldPath
    values: tuple[Literal, ...]
    negated: bool


@dataclass(frozen=True)
class And:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    item: Any


@dataclass(frozen=True)
class OrderItem:
    field: FieldPath
    descending: bool = False
    nulls_last: bool | None = None  # None = SOQL default (NULLS FIRST for ASC, LAST for DESC)


@dataclass(frozen=True)
class Query:
    text: str
    sobject: str
    sobject_pos: int
    fields: tuple[FieldPath, ...]
    count_only: bool = False
    where: Any = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None


# ---------------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class _Tok:
    kind: str  # IDENT STRING NUMBER DATE DATETIME OP PUNCT EOF
    text: str
    pos: int
    value: Any = None


_DATETIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})"
)
_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?![\w:])")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?(?![\w.])")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS = ("<=", ">=", "!=", "<>", "=", "<", ">")


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "'":
            value, raw, end = _read_string(text, i)
            toks.append(_Tok("STRING", raw, i, value))
            i = end
            continue
        if ch.isdigit() or (ch == "-" and i + 1 < n and text[i + 1].isdigit()):
            m = _DATETIME_RE.match(text, i)
            if m:
                toks.append(_Tok("DATETIME", m.group(0), i, _to_datetime(m, i)))
                i = m.end()
                continue
            m = _DATE_RE.match(text, i)
            if m:
                toks.append(_Tok("DATE", m.group(0), i, _to_date(m, i)))
                i = m.end()
                continue
            m = _NUMBER_RE.match(text, i)
            if m:
                toks.append(_Tok("NUMBER", m.group(0), i))
                i = m.end()
                continue
            raise SoqlSyntaxError(f"unexpected token: '{_word_at(text, i)}'", i)
        m = _IDENT_RE.match(text, i)
        if m:
            toks.append(_Tok("IDENT", m.group(0), i))
            i = m.end()
            continue
        op = next((o for o in _OPS if text.startswith(o, i)), None)
        if op:
            toks.append(_Tok("OP", op, i))
            i += len(op)
            continue
        if ch in "(),.:":
            toks.append(_Tok("PUNCT", ch, i))
            i += 1
            continue
        raise SoqlSyntaxError(f"unexpected token: '{ch}'", i)
    toks.append(_Tok("EOF", "<EOF>", n))
    return toks


def _word_at(text: str, i: int) -> str:
    m = re.compile(r"\S+").match(text, i)
    return m.group(0) if m else text[i : i + 1]


def _read_string(text: str, start: int) -> tuple[str, str, int]:
    """Read a single-quoted literal at ``start``; return (decoded, raw, index after the quote)."""
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "'":
            return "".join(out), text[start + 1 : i], i + 1
        if ch == "\\":
            if i + 1 >= n:
                break
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt in "%_":
                # Only meaningful in LIKE patterns; outside them it is the plain character.
                out.append(nxt)
                i += 2
                continue
            if nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", text[i + 2 : i + 6] or ""):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            raise SoqlSyntaxError(
                f"Invalid string literal '{text[start : i + 2]}...'. Illegal character sequence "
                f"'\\{nxt}' in string literal.",
                i,
            )
        out.append(ch)
        i += 1
    raise SoqlSyntaxError("unterminated string literal", start)


def _to_date(m: re.Match[str], pos: int) -> dt.date:
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError as exc:
        raise SoqlSyntaxError(f"invalid date: {m.group(0)}", pos) from exc


def _to_datetime(m: re.Match[str], pos: int) -> dt.datetime:
    frac = m.group(7) or ""
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    tz_text = m.group(8)
    if tz_text == "Z":
        tz = dt.UTC
    else:
        sign = -1 if tz_text[0] == "-" else 1
        digits = tz_text[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 14 or minutes > 59:
            raise SoqlSyntaxError(f"invalid time zone offset: {tz_text}", pos)
        tz = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    try:
        value = dt.datetime(
            int(m.group(1)), int(m.group(2)), int(m.group(3)),
            int(m.group(4)), int(m.group(5)), int(m.group(6)), micro, tzinfo=tz,
        )  # fmt: skip
    except ValueError as exc:
        raise SoqlSyntaxError(f"invalid datetime: {m.group(0)}", pos) from exc
    return value.astimezone(dt.UTC)


# ------------------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    # -- token helpers
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def _advance(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "EOF":
            self.i += 1
        return tok

    def _is_kw(self, *words: str) -> bool:
        return self.tok.kind == "IDENT" and self.tok.text.upper() in words

    def _accept_kw(self, word: str) -> bool:
        if self._is_kw(word):
            self._advance()
            return True
        return False

    def _expect_kw(self, word: str) -> _Tok:
        if not self._is_kw(word):
            self._unexpected(f"expecting {word}")
        return self._advance()

    def _accept_punct(self, ch: str) -> bool:
        if self.tok.kind == "PUNCT" and self.tok.text == ch:
            self._advance()
            return True
        return False

    def _expect_punct(self, ch: str) -> None:
        if not self._accept_punct(ch):
            self._unexpected(f"expecting '{ch}'")

    def _unexpected(self, hint: str | None = None) -> None:
        tok = self.tok
        text = "<EOF>" if tok.kind == "EOF" else tok.text
        msg = f"unexpected token: '{text}'" if tok.kind != "EOF" else "unexpected token: <EOF>"
        if hint:
            msg += f" ({hint})"
        raise SoqlSyntaxError(msg, tok.pos)

    def _unsupported(self, what: str, pos: int) -> None:
        raise SoqlSyntaxError(f"{what} is not supported by the Salesforce sandbox", pos)

    def _name(self) -> _Tok:
        tok = self.tok
        if tok.kind != "IDENT" or tok.text.upper() in KEYWORDS:
            self._unexpected("expecting a field or object name")
        return self._advance()

    # -- grammar
    def parse(self) -> Query:
        self._expect_kw("SELECT")
        count_only = False
        fields: list[FieldPath] = []
        if (
            self._is_kw("COUNT")
            and self.toks[self.i + 1].kind == "PUNCT"
            and self.toks[self.i + 1].text == "("
        ):
            count_pos = self.tok.pos
            self._advance()
            self._advance()
            if not self._accept_punct(")"):
                self._unsupported("COUNT(field) and other aggregate functions", count_pos)
            count_only = True
        else:
            fields.append(self._select_item())
            while self._accept_punct(","):
                fields.append(self._select_item())
        self._expect_kw("FROM")
        obj = self._name()
        if self.tok.kind == "IDENT" and self.tok.text.upper() not in KEYWORDS:
            self._unsupported("an object alias", self.tok.pos)
        if self._is_kw("USING"):
            self._unsupported("USING SCOPE", self.tok.pos)
        where = None
        if self._accept_kw("WHERE"):
            where = self._condition()
        if self._is_kw("WITH", "GROUP", "HAVING"):
            self._unsupported(self.tok.text.upper(), self.tok.pos)
        order: list[OrderItem] = []
        if self._accept_kw("ORDER"):
            self._expect_kw("BY")
            order.append(self._order_item())
            while self._accept_punct(","):
                order.append(self._order_item())
        limit = offset = None
        if self._accept_kw("LIMIT"):
            limit = self._int()
        if self._accept_kw("OFFSET"):
            offset = self._int()
        if self._is_kw("FOR"):
            self._unsupported("FOR VIEW/REFERENCE/UPDATE", self.tok.pos)
        if self.tok.kind != "EOF":
            self._unexpected()
        if count_only and order:
            raise SoqlSyntaxError("ORDER BY is not allowed with COUNT()", order[0].field.pos)
        return Query(
            text=self.text,
            sobject=obj.text,
            sobject_pos=obj.pos,
            fields=tuple(fields),
            count_only=count_only,
            where=where,
            order_by=tuple(order),
            limit=limit,
            offset=offset,
        )

    def _select_item(self) -> FieldPath:
        if self.tok.kind == "PUNCT" and self.tok.text == "(":
            self._unsupported("a child relationship subquery", self.tok.pos)
        if self._is_kw("TYPEOF"):
            self._unsupported("TYPEOF", self.tok.pos)
        if (
            self.tok.kind == "IDENT"
            and self.toks[self.i + 1].kind == "PUNCT"
            and self.toks[self.i + 1].text == "("
        ):
            self._unsupported(f"the function {self.tok.text.upper()}()", self.tok.pos)
        return self._field()

    def _field(self) -> FieldPath:
        first = self._name()
        parts = [first.text]
        while self.tok.kind == "PUNCT" and self.tok.text == ".":
            self._advance()
            parts.append(self._name().text)
        return FieldPath(tuple(parts), first.pos)

    def _int(self) -> int:
        tok = self.tok
        if tok.kind != "NUMBER" or not tok.text.isdigit():
            self._unexpected("expecting a non-negative integer")
        self._advance()
        return int(tok.text)

    def _order_item(self) -> OrderItem:
        field = self._field()
        descending = False
        if self._accept_kw("DESC"):
            descending = True
        else:
            self._accept_kw("ASC")
        nulls_last = None
        if self._accept_kw("NULLS"):
            if self._accept_kw("FIRST"):
                nulls_last = False
            elif self._accept_kw("LAST"):
                nulls_last = True
            else:
                self._unexpected("expecting FIRST or LAST")
        return OrderItem(field, descending, nulls_last)

    def _condition(self) -> Any:
        first = self._unary()
        if self._is_kw("AND", "OR"):
            word = self.tok.text.upper()
            items = [first]
            while self._is_kw(word):
                self._advance()
                items.append(self._unary())
            if self._is_kw("AND", "OR"):
                # SOQL refuses `a AND b OR c`: the grouping must be explicit.
                self._unexpected("use parentheses when mixing AND and OR")
            return And(tuple(items)) if word == "AND" else Or(tuple(items))
        return first

    def _unary(self) -> Any:
        if self._accept_kw("NOT"):
            return Not(self._unary())
        if self._accept_punct("("):
            inner = self._condition()
            self._expect_punct(")")
            return inner
        return self._predicate()

    def _predicate(self) -> Any:
        field = self._field()
        tok = self.tok
        if tok.kind == "OP":
            self._advance()
            op = "!=" if tok.text == "<>" else tok.text
            return Comparison(field, op, self._value())
        if self._accept_kw("LIKE"):
            value = self._value()
            if value.kind != "string":
                raise SoqlSyntaxError("LIKE needs a string pattern", value.pos)
            return Comparison(field, "LIKE", value)
        negated = False
        if self._is_kw("NOT"):
            nxt = self.toks[self.i + 1]
            if nxt.kind == "IDENT" and nxt.text.upper() == "IN":
                self._advance()
                negated = True
            else:
                self._unexpected("expecting IN after NOT")
        if self._accept_kw("IN"):
            self._expect_punct("(")
            if self._is_kw("SELECT"):
                self._unsupported("a semi-join subquery", self.tok.pos)
            values = [self._value()]
            while self._accept_punct(","):
                values.append(self._value())
            self._expect_punct(")")
            return InList(field, tuple(values), negated)
        if self._is_kw("INCLUDES", "EXCLUDES"):
            self._unsupported(self.tok.text.upper(), self.tok.pos)
        self._unexpected("expecting a comparison operator")
        raise AssertionError("unreachable")  # pragma: no cover

    def _value(self) -> Literal:
        tok = self.tok
        if tok.kind == "STRING":
            self._advance()
            return Literal("string", tok.value, tok.pos, raw=tok.text)
        if tok.kind == "NUMBER":
            self._advance()
            number: int | float = float(tok.text) if "." in tok.text else int(tok.text)
            return Literal("number", number, tok.pos)
        if tok.kind == "DATE":
            self._advance()
            return Literal("date", tok.value, tok.pos)
        if tok.kind == "DATETIME":
            self._advance()
            return Literal("datetime", tok.value, tok.pos)
        if tok.kind == "IDENT":
            word = tok.text.upper()
            if word == "NULL":
                self._advance()
                return Literal("null", None, tok.pos)
            if word in ("TRUE", "FALSE"):
                self._advance()
                return Literal("boolean", word == "TRUE", tok.pos)
            if word in DATE_LITERALS:
                self._advance()
                return Literal("date_literal", DateLiteral(word), tok.pos)
            if word in DATE_LITERALS_N:
                self._advance()
                if not self._accept_punct(":"):
                    self._unexpected(f"expecting ':n' after {word}")
                n_tok = self.tok
                if n_tok.kind != "NUMBER" or not n_tok.text.isdigit():
                    self._unexpected("expecting a number of days")
                self._advance()
                return Literal("date_literal", DateLiteral(word, int(n_tok.text)), tok.pos)
        if tok.kind == "PUNCT" and tok.text == ":":
            self._unsupported("a bind variable", tok.pos)
        self._unexpected("expecting a value")
        raise AssertionError("unreachable")  # pragma: no cover


def parse(text: str) -> Query:
    """Parse ``text`` into a :class:`Query`, or raise :class:`SoqlSyntaxError`."""
    if not isinstance(text, str) or not text.strip():
        raise SoqlSyntaxError("empty query", 0)
    return _Parser(text).parse()

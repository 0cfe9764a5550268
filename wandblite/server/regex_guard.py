"""The ``$regex`` guard: a run filter's pattern is refused unless it matches in bounded time.

Layer 5 (server), but pure: the standard library and the server's error type, no SQL, no store.
``check_regex`` is called by the runs filter language (``runs_query``) on every ``$regex`` before
any database work; it raises a 400 ``ApiError`` (code ``bad_request`` for a pattern that is not a
string, too long or does not compile; ``unsafe_regex`` for one that may be slow) or returns None.

Why: filters come from whoever may read the server, and Python's ``re`` backtracks: ``(a+)+$``
against 30 a's and a "b", or ``a*a*a*b`` against 1,000 a's, keeps a worker busy for seconds to
hours, and a running match cannot be interrupted. So a pattern is checked on its parse tree
(``re``'s own parser, the one ``re.compile`` runs) before it is used, each value is matched on its
first ``REGEX_SUBJECT`` characters only, and one request spends at most
``runs_query.REGEX_SECONDS`` matching (that budget is kept by the filter loop, between runs).

What is refused
---------------
* backreferences and conditional groups (matching them is NP-hard in general);
* a group repeated more than once that contains a repeat, an optional part or alternatives that
  can start alike, unless each round ends on a fixed character ("nested quantifiers" such as
  ``(a+)+`` or ``(a|ab)*`` try exponentially many ways to split the text);
* a pattern whose work for one search, estimated from the parse tree, exceeds ``_REGEX_WORK``
  engine steps per start position (``REGEX_SUBJECT`` positions; one for a pattern anchored with
  ``^``). A repeat can scan ``REGEX_SUBJECT`` characters and, unless its end is fixed, give them
  back one by one, each time retrying everything after it: so what follows an open-ended repeat
  is counted ``REGEX_SUBJECT + 1`` times (``x?`` twice, ``x{1,3}`` three times). A repeat's end
  is fixed when what follows must start with a character the repeat cannot match (``\\d+-``,
  ``[^/]*/``, ``\\w+$``) or when the pattern ends there. In short: one open-ended repeat whose
  end is not fixed, followed by a few characters, is fine (``.*foo.*``, ``^run-\\d+$``);
  anything that scans again for each of its choices is not (``a*a*a*b``, ``.*a.*b``: polynomial
  blow-ups).

A construct the checker does not know is refused rather than trusted. The estimate is an upper
bound by design: it refuses some patterns that happen to run fast (``(-\\d+)+$``). Measured on the
development machine against 1,000-character values built to be worst cases: the slowest of about
10,000 accepted random patterns made of trap pieces (a fuzz like the one in
tests/query/test_regex_guard.py) took 56 ms; ``a*a*a*b`` took 48 s and ``(a+)+$`` never ends.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from wandblite.server.errors import bad_request

__all__ = ["REGEX_MAX_LEN", "REGEX_SUBJECT", "check_regex"]

REGEX_MAX_LEN = 500  # characters of a $regex pattern
REGEX_SUBJECT = 1_000  # characters of each value a $regex is matched against
_REGEX_WORK = 8 * (REGEX_SUBJECT + 1)  # estimated engine steps per start position (x REGEX_SUBJECT starts)
_SLOW_ROUND = 8  # a repeated group runs about 8x slower per round than a repeated character
_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
_ONE_CHAR = ("LITERAL", "NOT_LITERAL", "ANY", "IN")
_CATEGORY_RX = {"CATEGORY_DIGIT": r"\d", "CATEGORY_NOT_DIGIT": r"\D", "CATEGORY_SPACE": r"\s",
                "CATEGORY_NOT_SPACE": r"\S", "CATEGORY_WORD": r"\w", "CATEGORY_NOT_WORD": r"\W"}
_END = None  # in a follow list: the pattern ends here, so the match succeeds
_NESTED = ("repeats a group that itself contains a repeat, an optional part or alternatives that can start alike "
           "(like (a+)+, (a?b)* or (a|ab)*), which can take exponential time to match; repeat a single character "
           "or class instead (a+, [ab]*), or make each round end on a character its repeats cannot match")


class _UnsafeRegex(Exception):
    pass


def _sre_parser() -> Any:
    try:
        return importlib.import_module("re._parser")  # Python 3.11+
    except ImportError:  # pragma: no cover - Python 3.10
        return importlib.import_module("sre_parse")


def check_regex(key: str, pattern: Any, options: str = "") -> None:
    """Raise a 400 ``ApiError`` unless ``pattern`` is a valid ``$regex`` that matches in bounded time.

    ``key`` is the filter key the pattern is for; the message names it and says what to change.
    See the module docstring for what is refused and why.
    """
    if not isinstance(pattern, str) or len(pattern) > REGEX_MAX_LEN:
        raise bad_request(f"$regex for {key!r} must be a string of at most {REGEX_MAX_LEN} characters")
    flags = re.IGNORECASE if "i" in options else 0
    try:
        re.compile(pattern, flags)
        parsed = _sre_parser().parse(pattern, flags)
    except re.error as exc:
        raise bad_request(f"bad $regex for {key!r}: {exc}")
    except RecursionError:
        raise bad_request(f"$regex for {key!r} nests groups too deeply", code="unsafe_regex")
    where = f"$regex {pattern!r} for {key!r}"
    try:
        all_flags = int(parsed.state.flags) | flags
        _ways, work, _tail = _RegexCost(all_flags).seq(list(parsed), [_END])
        if not _anchored(list(parsed), all_flags):
            work *= REGEX_SUBJECT  # the search tries every start position
    except _UnsafeRegex as exc:
        raise bad_request(f"{where} {exc}", code="unsafe_regex")
    except (AttributeError, TypeError, ValueError, IndexError, RecursionError):  # another shape, or too deep: refuse
        raise bad_request(f"{where} could not be checked for slow matching by this server; simplify it",
                          code="unsafe_regex")
    if work > _REGEX_WORK * REGEX_SUBJECT:
        raise bad_request(
            f"{where} can take too long to match: after an open-ended repeat (.*, \\w+) whose end is not fixed by "
            "the next character, the rest of the pattern is retried at every place the repeat could stop. Keep one "
            "such repeat with a few characters after it; $regex searches anywhere in the value, so a leading or "
            "trailing .* is not needed; fix where a repeat ends ([^-]*- instead of .*-) or bound it ({1,20})",
            code="unsafe_regex")


class _RegexCost:
    """Estimates one match attempt of a parsed pattern (see ``check_regex``).

    Each piece gives ``(ways, work, tail)``: the ways it can match one stretch of text (how often
    what follows may be retried), the engine steps of one try, and the steps spent at most once
    per search (a repeat that ends the pattern runs to its end only on the way to success).
    ``follow`` lists what may come right after a piece: items of the parse tree, or ``_END``.
    """

    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.cap = 1 << 40

    def seq(self, items: list[Any], follow: list[Any]) -> tuple[int, int, int]:
        ways, work, tail = 1, 0, 0
        for i, item in enumerate(items):
            w, c, t = self.item(item, [items[i + 1]] if i + 1 < len(items) else follow)
            work = min(self.cap, work + ways * c)
            tail = min(self.cap, tail + t)
            ways = min(self.cap, ways * w)
        return ways, work, tail

    def item(self, item: Any, follow: list[Any]) -> tuple[int, int, int]:
        op, av = item
        name = _op_name(op)
        if name in _ONE_CHAR or name in ("AT", "CATEGORY"):
            return 1, 1, 0
        if name.startswith("GROUPREF"):
            raise _UnsafeRegex("refers back to a group (\\1, (?P=name) or (?(1)...)), which can take exponential "
                               "time to match and is not allowed here; match the text itself instead")
        if name == "SUBPATTERN":
            saved = self.flags
            self.flags |= av[1] or 0
            try:
                return self.seq(list(av[3]), follow)
            finally:
                self.flags = saved
        if name in ("ASSERT", "ASSERT_NOT", "ATOMIC_GROUP"):
            # Matched on its own (up to its first success), then never retried: one way.
            _w, c, t = self.seq(list(av if name == "ATOMIC_GROUP" else av[1]), [_END])
            return 1, min(self.cap, c + t), 0
        if name == "BRANCH":
            return self.branch([list(a) for a in av[1]], follow)
        if name in _REPEATS:
            return self.repeat(name, int(av[0]), int(av[1]), list(av[2]), follow)
        raise _UnsafeRegex(f"uses {name}, which this server cannot check for slow matching; simplify it")

    def branch(self, alts: list[list[Any]], follow: list[Any]) -> tuple[int, int, int]:
        """Alternatives: their work adds up; their ways add up unless only one can start anywhere."""
        costs = [self.seq(a, follow) for a in alts]
        work, tail = sum(c[1] for c in costs), sum(c[2] for c in costs)
        starts = [_start_chars(a) for a in alts]
        if all(s is not None for s in starts):
            seen = [c for s in starts for c in set(s or ())]
            if len(seen) == len(set(seen)):
                return max(c[0] for c in costs), work, tail  # only one alternative can start anywhere
        return min(self.cap, sum(c[0] for c in costs)), work, tail

    def repeat(self, name: str, lo: int, hi: int, body: list[Any], follow: list[Any]) -> tuple[int, int, int]:
        """A repeat ``body{lo,hi}`` (greedy, lazy or possessive, as ``name`` says)."""
        if hi <= 1:  # x? : with or without x
            w, c, t = self.seq(body, follow)
            return min(self.cap, w + 1), c + 1, t
        w, c, _t = self.seq(body, [body[0], *follow] if body else follow)  # after a round: another, or what follows
        if w > 1 and hi > lo:
            raise _UnsafeRegex(_NESTED)
        # Each round takes at least min_len of at most REGEX_SUBJECT characters. Rounds that cannot
        # backtrack inside cost the characters they take plus a (slow) overhead per round and piece;
        # a lookaround in the body may do its own work every round.
        min_len = max(1, _min_len(body))
        rounds = min(hi, REGEX_SUBJECT // min_len + 1)
        one_char = len(body) == 1 and _op_name(body[0][0]) in _ONE_CHAR
        if one_char:
            scan = rounds
        elif w == 1 and not _has_lookaround(body):
            scan = REGEX_SUBJECT + _SLOW_ROUND * rounds * _size(body)
        else:
            scan = _SLOW_ROUND * rounds * c
        if hi == lo:  # a fixed count: no choice of its own, but a body with choices multiplies
            ways = min(self.cap, w ** min(lo, 64))
            return ways, min(self.cap, scan * ways), 0
        if all(f is _END for f in follow):  # the pattern ends here: the scan runs once, on success
            return 1, (lo * c if one_char else _SLOW_ROUND * lo * c) + 1, scan
        fixed = name == "POSSESSIVE_REPEAT" or self._fixed_end(body, follow)
        return (1 if fixed else min(hi - lo, rounds) + 1), scan, 0

    def _fixed_end(self, body: list[Any], follow: list[Any]) -> bool:
        """Whether the repeat can only stop where it stops greedily: what follows is the end of the
        pattern or must start with a character the repeated body cannot start with, so giving
        characters back fails at once."""
        first = _first_char(body)
        if first is None:
            return False
        for f in follow:
            if f is _END:
                continue
            chars = _start_chars([f])
            if chars is None or any(self._may_match(first, c) for c in chars):
                return False
        return True

    def _may_match(self, item: Any, ch: str) -> bool:
        """Whether the single-character item can match ``ch`` (True when unsure)."""
        fold = bool(self.flags & re.IGNORECASE)
        cands = {ch, ch.lower(), ch.upper(), ch.casefold()} if fold else {ch}
        op, av = item
        name = _op_name(op)
        if name == "LITERAL":
            return chr(av) in cands or (fold and chr(av).casefold() == ch.casefold())
        if name == "NOT_LITERAL":
            return not (chr(av) == ch or (fold and chr(av).casefold() == ch.casefold()))
        if name == "ANY":
            return ch != "\n" or bool(self.flags & re.DOTALL)
        if name != "IN":
            return True
        negate = False
        hits = []
        for c in cands:
            hit = False
            for sub_op, sub_av in av:
                sub = _op_name(sub_op)
                if sub == "NEGATE":
                    negate = True
                elif sub == "LITERAL":
                    hit = hit or chr(sub_av) == c
                elif sub == "RANGE":
                    hit = hit or (len(c) == 1 and sub_av[0] <= ord(c) <= sub_av[1])
                elif sub == "CATEGORY" and _op_name(sub_av) in _CATEGORY_RX:
                    hit = hit or re.fullmatch(_CATEGORY_RX[_op_name(sub_av)], c, self.flags & re.ASCII) is not None
                else:
                    return True
            hits.append(hit)
        return not all(hits) if negate else any(hits)


def _op_name(op: Any) -> str:
    return str(getattr(op, "name", op))


def _children(op: Any, av: Any) -> list[list[Any]]:
    name = _op_name(op)
    if name == "SUBPATTERN":
        return [list(av[3])]
    if name in ("ASSERT", "ASSERT_NOT"):
        return [list(av[1])]
    if name == "ATOMIC_GROUP":
        return [list(av)]
    if name == "BRANCH":
        return [list(a) for a in av[1]]
    if name in _REPEATS:
        return [list(av[2])]
    return []


def _size(items: list[Any]) -> int:
    """The number of pieces in a parse tree (the per-round overhead of a repeated group)."""
    return sum(1 + sum(_size(c) for c in _children(op, av)) for op, av in items)


def _has_lookaround(items: list[Any]) -> bool:
    return any(_op_name(op) in ("ASSERT", "ASSERT_NOT") or any(_has_lookaround(c) for c in _children(op, av))
               for op, av in items)


def _min_len(items: list[Any]) -> int:
    """The fewest characters a match of ``items`` can take."""
    total = 0
    for op, av in items:
        name = _op_name(op)
        if name in _ONE_CHAR:
            total += 1
        elif name in ("SUBPATTERN", "ATOMIC_GROUP"):
            total += _min_len(_children(op, av)[0])
        elif name == "BRANCH":
            total += min(_min_len(a) for a in _children(op, av))
        elif name in _REPEATS:
            total += int(av[0]) * _min_len(list(av[2]))
    return total


def _anchored(items: list[Any], flags: int) -> bool:
    """Whether every match starts at the start of the text (``^`` without MULTILINE, or ``\\A``)."""
    if not items:
        return False
    op, av = items[0]
    name = _op_name(op)
    if name == "AT":
        return _op_name(av) == "AT_BEGINNING_STRING" or (
            _op_name(av) == "AT_BEGINNING" and not flags & re.MULTILINE)
    if name == "SUBPATTERN" and not av[1] & re.MULTILINE:
        return _anchored(list(av[3]), flags)
    return False


def _first_char(items: list[Any]) -> Any:
    """The single-character item every match of ``items`` starts with, or None."""
    for op, av in items:
        name = _op_name(op)
        if name in _ONE_CHAR:
            return (op, av)
        if name == "SUBPATTERN" and not av[1] and not av[2]:
            return _first_char(list(av[3]))
        if name in _REPEATS and av[0] >= 1:
            return _first_char(list(av[2]))
        return None  # an anchor, a lookaround, an optional part, a flag change: no one first character
    return None


def _start_chars(items: list[Any]) -> list[str] | None:
    """Every character a match of ``items`` can start with (in all its cases), or None when that
    is not a small known set. ``$`` counts as a newline and ``\\Z`` as nothing: before another
    character they can only succeed at a newline, or never."""
    if not items:
        return None
    op, av = items[0]
    name = _op_name(op)
    chars: list[str] = []
    if name == "LITERAL":
        chars = [chr(av)]
    elif name == "IN":
        for sub_op, sub_av in av:
            sub = _op_name(sub_op)
            if sub == "LITERAL":
                chars.append(chr(sub_av))
            elif sub == "RANGE" and sub_av[1] - sub_av[0] <= 256:
                chars.extend(chr(c) for c in range(sub_av[0], sub_av[1] + 1))
            else:
                return None
    elif name == "SUBPATTERN":
        return _start_chars(list(av[3]))
    elif name == "BRANCH":
        for alt in av[1]:
            s = _start_chars(list(alt))
            if s is None:
                return None
            chars.extend(s)
    elif name in _REPEATS and av[0] >= 1:
        return _start_chars(list(av[2]))
    elif name == "AT" and _op_name(av) == "AT_END":
        return ["\n"]
    elif name == "AT" and _op_name(av) == "AT_END_STRING":
        return []
    else:
        return None
    return sorted({v for c in chars for v in (c, c.lower(), c.upper(), c.casefold())})

"""A JavaScript object literal in a page -> data, read without evaluating anything (RedNote's
``window.__INITIAL_STATE__``).

Pages write their state as a JavaScript literal, not JSON: absent values are the bare token
``undefined``, strings may use either quote and JavaScript-only escapes (``\\x41``, ``\\v``), and newer
pages hold ``new Map(...)``/``new Set(...)``. The literal is tokenised: strings are copied (as JSON
strings), bare tokens outside strings are turned into JSON, and the result goes to `json.loads`.

Why not chompjs (the library made for JS objects in pages; 1.4.1 tried on our fixtures, issue 10):
- it reads a bare `undefined` as the string "undefined" (by design, Nykakin/chompjs#7), so
  note_zh.html's `global.pwaAddDesktopPrompt` and note_en_video.html's `shareInfo` come out as text, not
  None, and no pass after the parse can undo that: a real string "undefined" looks the same;
- it quotes `true`/`false`/`null` when one is the first item of an array and a comma follows it:
  profile.html's `"isFetchingNotes":[false,false,false]` comes out as ["false", False, False];
- `NaN`/`Infinity` and the escapes `\\x41`, `\\v` raise, `new Map(...)`/`new Set()` come out as strings,
  and `{"a":alert(1)}` is read as {"a": "alert(1)"} instead of being refused (the literal in
  test_js_literals_json_does_not_take_are_read_without_eval and test_a_cut_off_or_unreadable_state_...).
So murmur keeps this tokenizer.
"""

from __future__ import annotations

import json
import re
from typing import Any

from murmur.crawler.parsers import ParseError

__all__ = ["read_js_object"]

# Tokens of a JavaScript object literal, in the order they must be tried: strings (either quote),
# numbers (before identifiers, so the "e5" of 1e5 is never read as a name), names, brackets.
_TOKEN = re.compile(
    r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[A-Za-z_$][\w$]*|[{}\[\]()]""",
    re.DOTALL,
)
_NEW_CALL = re.compile(r"\s+(?:Map|Set)\s*\(")
# Inside a string: an escape sequence, or (in a single-quoted string) a bare double quote.
_STRING_PART = re.compile(r'\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)|"', re.DOTALL)
_BARE_TOKENS = {"undefined": "null", "NaN": "null", "Infinity": "null", "true": "true", "false": "false",
                "null": "null"}


def read_js_object(text: str, position: int, *, what: str) -> Any:
    """The object literal that starts at `position` in `text`, as data (a Set as a list, a Map as a list of
    [key, value] pairs, ``undefined``/``NaN``/``Infinity`` as None). `what` names it in errors.

    Raises ParseError when there is no object literal there, or it is cut off or not readable as data.
    """
    if not text.startswith("{", position):
        raise ParseError(f"{what} is not an object literal")
    out: list[str] = []
    depth = 0
    pos = position
    # Open `new Map(`/`new Set(` calls: the length of `out` where each began, to tell an empty one.
    calls: list[int | None] = []
    while True:
        token = _TOKEN.search(text, pos)
        if token is None:
            raise ParseError(f"{what} is cut off (the object never closes)")
        out.append(text[pos : token.start()])
        pos = token.end()
        value = token.group()
        first = value[0]
        if first in "\"'":
            out.append(_json_string(value))
        elif first in "{[":
            depth += 1
            out.append(value)
        elif first in "}]":
            depth -= 1
            out.append(value)
        elif first == "(":
            calls.append(None)  # a bare parenthesis: kept, and json.loads will say it is wrong
            out.append(value)
        elif first == ")":
            begun = calls.pop() if calls else None
            if begun is None:
                out.append(value)
            elif not "".join(out[begun:]).strip():
                out.append("[]")  # new Set() / new Map(): empty
        elif first.isdigit() or first in "-.":
            out.append(value)
        elif value == "new":
            constructor = _NEW_CALL.match(text, pos)
            if constructor is None:
                raise ParseError(f"{what} holds a `new` expression murmur cannot read")
            pos = constructor.end()
            calls.append(len(out))  # the entries inside stay: a Set as a list, a Map as [key, value] pairs
        else:
            out.append(_BARE_TOKENS.get(value, value))
        if depth == 0:
            break
    try:
        return json.loads("".join(out), strict=False)
    except ValueError as err:
        raise ParseError(f"{what} is not readable as data ({err})") from None


def _json_string(token: str) -> str:
    """A JavaScript string literal (either quote) as a JSON string literal."""
    if token[0] == '"' and "\\" not in token:
        return token  # the common case: already JSON
    return '"' + _STRING_PART.sub(_json_escape, token[1:-1]) + '"'


def _json_escape(match: re.Match[str]) -> str:
    """One escape sequence (or a bare double quote, only possible in a single-quoted string) for JSON."""
    if match.group(1) is None:
        return '\\"'
    escape = match.group(1)
    if (escape[0] == "u" and len(escape) == 5) or escape in '"\\/bfnrt':
        return match.group(0)  # JSON has it too (\u002F is how the page writes "/")
    if escape[0] == "x" and len(escape) == 3:
        return f"\\u00{escape[1:]}"
    # JavaScript-only escapes: \v, \0, a line continuation; anything else stands for itself (\' is ').
    named = {"v": "\\u000b", "0": "\\u0000", "\n": "", "\r": "", "\u2028": "", "\u2029": "", '"': '\\"'}
    return named.get(escape, escape)

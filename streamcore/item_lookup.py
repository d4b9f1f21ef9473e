"""Recognise a user function that only looks one constant up in its argument.

``lambda e: e["user"]`` is the most common key, timestamp and value function. Called per
record it costs a Python frame each time; the same lookup written into generated code
(``x["user"]``) or done by ``operator.itemgetter`` in C costs a fraction of that and
behaves the same: the same subscription of the same object by the same constant, raising
the same exception. A function is recognised only when its bytecode is exactly that of
such a lambda (no closure, no globals, one positional argument), so anything else keeps
being called as it is. A base module (standard library only), so that the time, state
and runtime layers can all use it.
Design: docs/performance.md, "The window loop (W2)"
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from typing import Any

__all__ = ["item_lookup"]

_PROBE_KEY = "\0streamcore-probe"
# Compiled here so that its bytecode is what the running Python makes of such a lambda
# (without this module's __future__ flags, which only the flags would show).
_PROBE: Any = eval(compile(f"lambda e: e[{_PROBE_KEY!r}]", "<probe>", "eval", dont_inherit=True))
_PROBE_CODE: types.CodeType = _PROBE.__code__
_PROBE_INDEX = _PROBE_CODE.co_consts.index(_PROBE_KEY)
_SPECIAL = (
    inspect.CO_GENERATOR
    | inspect.CO_COROUTINE
    | inspect.CO_ASYNC_GENERATOR
    | inspect.CO_ITERABLE_COROUTINE
    | inspect.CO_VARARGS
    | inspect.CO_VARKEYWORDS
)


def item_lookup(fn: Callable[..., Any] | None) -> tuple[Any] | None:
    """``(key,)`` when ``fn`` is ``lambda e: e[key]`` for a constant ``key``, else None."""
    if type(fn) is not types.FunctionType or fn.__closure__ is not None:
        return None
    code = fn.__code__
    if (
        code.co_code != _PROBE_CODE.co_code
        or code.co_flags & _SPECIAL
        or code.co_argcount != 1
        or code.co_posonlyargcount != 0
        or code.co_kwonlyargcount != 0
        or code.co_names != ()
        or len(code.co_consts) <= _PROBE_INDEX
    ):
        return None
    return (code.co_consts[_PROBE_INDEX],)

"""Does a node's call fit its function? Checked when a workflow is planned, before anything runs.

A function node calls ``func(*inputs, **config)``: one positional argument
per input the function declares, its config as keyword arguments. A config
key the function has no parameter for, an input count its signature cannot
take, or a parameter neither gives is a one-line :class:`WorkflowError`
naming the node (with the closest parameter name for a misspelt key), not
a ``TypeError`` from the middle of a run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection
from typing import Any

from .._errors import WorkflowError

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
# (function, inputs, keys) -> the problem. Keyed by the function itself, not its id(): a function redefined in a
# notebook may get the id of the one it replaced once that is gone, and must not inherit its verdict.
_CHECKED: dict[tuple[Callable[..., Any], int, frozenset[str]], str | None] = {}


def check_call(node_id: str, name: str, func: Callable[..., Any], inputs: int, config: Collection[str]) -> None:
    """Raise WorkflowError if ``func`` cannot be called with ``inputs`` positional arguments and ``config``."""
    key = (func, inputs, frozenset(config))
    if key not in _CHECKED:
        if len(_CHECKED) > 4096:
            _CHECKED.clear()
        _CHECKED[key] = _problem(name, func, inputs, config)
    problem = _CHECKED[key]
    if problem is not None:
        raise WorkflowError(f"node {node_id!r}: {problem}")


def _problem(name: str, func: Callable[..., Any], inputs: int, config: Collection[str]) -> str | None:
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):  # no signature to read (a builtin): the call itself will tell
        return None
    positional = [p for p in parameters if p.kind in _POSITIONAL]
    varargs = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    varkw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    if inputs > len(positional) and not varargs:
        return (f"{name}() takes {len(positional)} positional argument{'s' * (len(positional) != 1)} but is "
                f"declared with {inputs} input{'s' * (inputs != 1)}")  # fmt: skip
    by_input = {p.name for p in positional[:inputs]}
    keywords = [p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY
                and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
                and p.name not in by_input]  # fmt: skip
    for key in sorted(config):
        if key in by_input:
            return f"config key {key!r} is also {name}()'s input argument {key!r}"
        if key not in keywords and not varkw:
            import difflib  # for an error's suggestion only

            close = difflib.get_close_matches(key, keywords, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(keywords) or "none"
            return f"config key {key!r} is not a parameter of {name}() (parameters: {known}){hint}"
    for parameter in parameters[inputs:] if not varargs else parameters:
        if parameter.name in by_input or parameter.name in config:
            continue
        if parameter.default is inspect.Parameter.empty and parameter.kind not in (
            inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD
        ):
            if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
                return f"{name}() needs positional argument {parameter.name!r}, which no declared input gives"
            return f"{name}() needs {parameter.name!r}: give it in the node's config"
    return None

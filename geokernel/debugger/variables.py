"""The variable explorer that works without a stopped thread (inspectVariables, variables of
the global namespace), rich MIME bundles of variables, and the name filter shared with the
stopped case. Plain Python: no pydevd needed, so the panel works before debugging starts."""
from __future__ import annotations

import ast
import itertools
import re
import reprlib

from ..interrupts import call_user

HIDDEN = frozenset({
    "__name__", "__doc__", "__package__", "__loader__", "__spec__", "__annotations__",
    "__builtins__", "__builtin__", "__display__", "get_ipython", "debugpy", "exit", "quit",
    "In", "Out", "_oh", "_dh", "_", "__", "___",
})
_HISTORY = re.compile(r"^(_\d|_i)")  # _1, _i, _ii, _i3: IPython's input/output history
_MAX_CHILDREN = 300

_repr = reprlib.Repr()
_repr.maxstring, _repr.maxother, _repr.maxlist, _repr.maxdict = 200, 200, 20, 20


def accept_variable(name: str) -> bool:
    return name not in HIDDEN and not _HISTORY.match(name)


def short_repr(value) -> str:
    try:
        return call_user(_repr.repr, value)  # may run user code: see ExecutionTick.user_code
    except Exception as e:  # a broken __repr__ must not break the panel
        return f"<repr failed: {type(e).__name__}>"


class VariableExplorer:
    """DAP `variables` entries for the user namespace; containers get a reference that a later
    `variables` request expands. References are valid until the next inspect()."""

    def __init__(self, namespace: dict):
        self._ns = namespace
        self._refs: dict[int, object] = {}
        self._ids = itertools.count(1)

    def inspect(self) -> list[dict]:
        self._refs.clear()
        return [self._describe(name, value, name)
                for name, value in list(self._ns.items()) if accept_variable(name)]

    def children(self, ref: int) -> list[dict]:
        if ref not in self._refs:
            return self.inspect() if ref == 0 else []
        value, path = self._refs[ref]
        out = []
        for label, child, expr in itertools.islice(self._items(value, path), _MAX_CHILDREN):
            out.append(self._describe(label, child, expr))
        return out

    def _describe(self, name: str, value, evaluate_name: str) -> dict:
        ref = 0
        if self._has_children(value):
            ref = next(self._ids)
            self._refs[ref] = (value, evaluate_name)
        return {"name": name, "value": short_repr(value), "type": type(value).__name__,
                "evaluateName": evaluate_name, "variablesReference": ref}

    @staticmethod
    def _has_children(value) -> bool:
        if isinstance(value, (str, bytes, bytearray, int, float, complex, bool, type(None))):
            return False
        if isinstance(value, (dict, list, tuple, set, frozenset)):
            return len(value) > 0
        return bool(getattr(value, "__dict__", None))

    @staticmethod
    def _items(value, path: str):
        if isinstance(value, dict):
            for k, v in value.items():
                yield short_repr(k), v, f"{path}[{k!r}]"
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                yield str(i), v, f"{path}[{i}]"
        elif isinstance(value, (set, frozenset)):
            for i, v in enumerate(value):
                yield str(i), v, ""
        else:
            for k, v in vars(value).items():
                yield k, v, f"{path}.{k}"


def rich_bundle(shell, name: str) -> dict:
    """{"data", "metadata"} of a global variable, formatted by IPython's display formatter."""
    result = call_user(shell.user_expressions, {name: name})[name]
    if result.get("status") != "ok":
        return {"data": {}, "metadata": {}}
    data = result.get("data", {})
    return {"data": data, "metadata": {k: v for k, v in result.get("metadata", {}).items()
                                       if k in data}}


def rich_expression(name: str) -> str:
    """What to evaluate in a stopped frame to get a variable's (data, metadata)."""
    return f"get_ipython().display_formatter.format({name})"


def parse_rich_result(text: str) -> dict:
    """The repr of a (data, metadata) tuple, as pydevd's evaluate returns it."""
    try:
        data, metadata = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError):
        return {"data": {"text/plain": text}, "metadata": {}}
    return {"data": data, "metadata": {k: v for k, v in metadata.items() if k in data}}

"""The request context: which request the code running now works for.

The dispatcher makes one RequestContext per shell request and binds it in the greenlet that
handles it (a ContextVar of that greenlet's own contextvars context). Everything published while
the request runs (streams, displays, comms, input requests) takes it as parent by looking it up
here, so a subshell's cell and the main shell's cell, interleaved at the tick, each publish
under their own request. There is no process-wide "current parent" slot.

Lookup order for code that runs in no request's greenlet:
- asyncio callbacks run in the task's copied contextvars context: the request that made it;
- greenlets made with gevent.spawn start with an empty context: their spawner's request now
  (walking gevent's spawning_greenlet chain), as ipykernel routes a thread's output to the
  request being handled now;
- anything else (the hub's timers, the kernel's own greenlets, other OS threads without an
  explicit parent): the execute request started last on any shell, ipykernel's fallback
  "shell context" except that other requests (comm messages, completions) never take it: with
  JupyterLab sending widget messages on a subshell, a thread's progress output stays in the
  cell instead of going to a slider's comm message, which no cell shows.
"""
from __future__ import annotations

import contextvars
from contextlib import contextmanager

from greenlet import getcurrent

CURRENT: contextvars.ContextVar = contextvars.ContextVar("geokernel_request")


class RequestContext:
    """One request as the code handling it sees it. `header` is the parent header of all it
    publishes; `allow_stdin` is set by execute requests that may ask for input."""

    __slots__ = ("msg", "header", "idents", "channel", "subshell_id", "allow_stdin")

    def __init__(self, msg=None, channel: str = "shell", header: dict | None = None):
        self.msg = msg
        self.header = msg.header if header is None and msg is not None else (header or {})
        self.idents = list(msg.identities) if msg is not None else []
        self.channel = channel
        self.subshell_id = self.header.get("subshell_id")
        self.allow_stdin = False

    @property
    def msg_id(self):
        return self.header.get("msg_id")

    def __repr__(self) -> str:
        return (f"<RequestContext {self.header.get('msg_type')} {self.msg_id} "
                f"subshell={self.subshell_id}>")


NO_REQUEST = RequestContext()  # output that belongs to no request (start-up files)
_latest = [NO_REQUEST]  # the execute request started last (the fallback, see above)


def activate(ctx: RequestContext) -> None:
    """Bind `ctx` in the calling greenlet for good (the dispatcher, per request): what the
    greenlet publishes after its request ended still goes there, as on ipykernel."""
    CURRENT.set(ctx)
    if ctx.header.get("msg_type") == "execute_request":
        _latest[0] = ctx


@contextmanager
def bound(ctx: RequestContext):
    """Bind `ctx` in the calling greenlet for the duration of a block."""
    token = CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        CURRENT.reset(token)


def latest() -> RequestContext:
    return _latest[0]


def current() -> RequestContext:
    ctx = CURRENT.get(None)
    if ctx is not None:
        return ctx
    return _inherited()


def current_parent() -> dict:
    """The parent header for what the caller publishes now (the hot path of every write)."""
    ctx = CURRENT.get(None)
    if ctx is not None:
        return ctx.header
    return _inherited().header


def _inherited() -> RequestContext:
    g = getcurrent()
    for _ in range(64):  # spawn chains are short; a cycle would be a bug, not a hang
        ref = getattr(g, "spawning_greenlet", None)
        g = ref() if ref is not None else None
        if g is None:
            break
        try:
            ctx = g.gr_context.get(CURRENT) if g.gr_context is not None else None
        except (AttributeError, ValueError):
            ctx = None
        if ctx is not None:
            return ctx
    return _latest[0]


def set_current_header(header: dict) -> None:
    """Make `header` the parent of what the calling greenlet publishes from now on (ipykernel's
    shell.set_parent from a cell; the kernel's own start-up code)."""
    ctx = CURRENT.get(None)
    if ctx is not None and ctx.header is header:
        return
    replacement = RequestContext(ctx.msg if ctx is not None and ctx.header == header else None,
                                 ctx.channel if ctx is not None else None, header=header)
    if ctx is not None:
        replacement.allow_stdin = ctx.allow_stdin
        replacement.idents = ctx.idents
    CURRENT.set(replacement)

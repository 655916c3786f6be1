"""Which request the output of another OS thread belongs to: ipykernel 7's policy.

By default a thread's output follows the request being handled *now* (not the one that started
the thread): a long-lived thread (IPython's %%bash runner, a reused ThreadPoolExecutor worker)
prints into the current cell. An explicit parent supersedes that: `set_thread_parent(parent)`
(on the shell or on sys.stdout/sys.stderr) for the calling thread only, undone with
`reset_thread_parent(token)`. A thread that runs in a copied context (`asyncio.to_thread`,
`contextvars.copy_context().run`) keeps the request it was copied from, as on ipykernel where
the parent is a ContextVar of the request's context. "Now" is the execute request started last
(on any subshell), as ipykernel's shell context but never a comm message; see context.py.
"""
from __future__ import annotations

import contextvars
import threading

from . import context

# the explicit parent of the calling thread (set_thread_parent)
THREAD_PARENT: contextvars.ContextVar = contextvars.ContextVar("geokernel_thread_parent")

_main_ident = threading.get_ident()


def extract_header(parent) -> dict:
    """A header from a message or a header (jupyter_client's convention)."""
    if not parent:
        return {}
    header = parent["header"] if "header" in parent else parent
    if "msg_id" not in header:
        raise KeyError("msg_id")
    return dict(header) if not isinstance(header, dict) else header


class ThreadParents:
    """The `thread_parent` callable OutStream asks for the parent header of another thread's
    write, plus the set/reset API libraries call."""

    def __init__(self, publisher):
        self._publisher = publisher

    def __call__(self) -> dict:
        try:
            return THREAD_PARENT.get()
        except LookupError:
            pass
        ctx = context.CURRENT.get(None)  # a context copied from a request's
        return (ctx or context.latest()).header

    def set_thread_parent(self, parent):
        """Parent of the calling thread only; returns a token for reset_thread_parent."""
        return THREAD_PARENT.set(extract_header(parent))

    def reset_thread_parent(self, token) -> None:
        THREAD_PARENT.reset(token)

    def set_parent(self, parent) -> None:
        """The current request's parent for everyone (and the calling thread's, when it is
        not the kernel's thread), as ipykernel's shell.set_parent."""
        header = extract_header(parent)
        if threading.get_ident() != _main_ident:
            THREAD_PARENT.set(header)
        else:
            context.set_current_header(header)  # the calling greenlet's request

    def get_parent(self) -> dict:
        """What the calling thread's output goes to, as a message dict ({"header": ...})."""
        header = self() if threading.get_ident() != _main_ident else context.current_parent()
        return {"header": header, "msg_id": header.get("msg_id"),
                "msg_type": header.get("msg_type")} if header else {}

    def attach(self, stream) -> None:
        """Give a kernel stream ipykernel's OutStream parent API."""
        stream.set_thread_parent = self.set_thread_parent
        stream.reset_thread_parent = self.reset_thread_parent
        stream.set_parent = self.set_parent


_policy: ThreadParents | None = None


def install(publisher) -> ThreadParents:
    """The kernel's thread policy (cli.py passes it to OutStream as `thread_parent`)."""
    global _policy, _main_ident
    _main_ident = threading.get_ident()
    _policy = ThreadParents(publisher)
    publisher.thread_parent = _policy
    return _policy


def policy() -> ThreadParents | None:
    return _policy

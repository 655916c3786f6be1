"""Turning iopub messages into nbformat-style outputs (the way nbclient does)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..message import Message

OUTPUT_TYPES = ("stream", "display_data", "execute_result", "error")


@dataclass
class ExecuteError:
    ename: str
    evalue: str
    traceback: list = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.ename}: {self.evalue}"


@dataclass
class ExecuteResult:
    msg_id: str
    status: str = ""
    execution_count: int | None = None
    outputs: list = field(default_factory=list)
    error: ExecuteError | None = None
    reply: dict = field(default_factory=dict)

    def _stream(self, name: str) -> str:
        return "".join(o["text"] for o in self.outputs
                       if o["output_type"] == "stream" and o["name"] == name)

    @property
    def stdout(self) -> str:
        return self._stream("stdout")

    @property
    def stderr(self) -> str:
        return self._stream("stderr")

    @property
    def data(self) -> dict | None:
        """The execute_result's MIME bundle, if the cell produced one."""
        for o in self.outputs:
            if o["output_type"] == "execute_result":
                return o["data"]
        return None


def to_output(msg: Message) -> dict | None:
    """The nbformat output dict for an iopub message, or None if it is not an output."""
    t, c = msg.msg_type, msg.content
    if t == "stream":
        return {"output_type": "stream", "name": c.get("name", "stdout"), "text": c.get("text", "")}
    if t == "display_data":
        return {"output_type": "display_data", "data": c.get("data", {}),
                "metadata": c.get("metadata", {})}
    if t == "execute_result":
        return {"output_type": "execute_result", "execution_count": c.get("execution_count"),
                "data": c.get("data", {}), "metadata": c.get("metadata", {})}
    if t == "error":
        return {"output_type": "error", "ename": c.get("ename", ""), "evalue": c.get("evalue", ""),
                "traceback": c.get("traceback", [])}
    return None


class OutputCollector:
    """Accumulates one request's outputs.

    `displays` is shared by every request of a handle (display_id -> output dicts), so an
    update_display_data from a later cell updates the output of an earlier one in place.
    """

    def __init__(self, displays: dict[str, list[dict]]):
        self.outputs: list[dict] = []
        self.displays = displays
        self._clear_pending = False
        self._mine: list[tuple[str, dict]] = []
        self._parts: list[str] = []  # pending text of the last stream output (joined lazily)

    def handle(self, msg: Message) -> None:
        t, c = msg.msg_type, msg.content
        if t == "clear_output":
            # wait=True: clear only when the next output arrives (avoids flicker).
            if c.get("wait"):
                self._clear_pending = True
            else:
                self._clear()
            return
        if t == "update_display_data":
            display_id = (c.get("transient") or {}).get("display_id")
            for out in self.displays.get(display_id, ()):
                out["data"] = c.get("data", {})
                out["metadata"] = c.get("metadata", {})
            return
        out = to_output(msg)
        if out is None:
            return
        if self._clear_pending:
            self._clear()
        last = self.outputs[-1] if self.outputs else None
        if (out["output_type"] == "stream" and last is not None
                and last["output_type"] == "stream" and last["name"] == out["name"]):
            # Joining once at the end keeps 100k small stream messages linear, not quadratic.
            self._parts.append(out["text"])
            return
        self.finish()
        self.outputs.append(out)
        display_id = (c.get("transient") or {}).get("display_id")
        if display_id and t in ("display_data", "execute_result"):
            self.displays.setdefault(display_id, []).append(out)
            self._mine.append((display_id, out))

    def finish(self) -> list[dict]:
        """Fold pending stream text into the last output; returns the outputs."""
        if self._parts:
            last = self.outputs[-1]
            last["text"] = last["text"] + "".join(self._parts)
            self._parts = []
        return self.outputs

    def _clear(self) -> None:
        self._clear_pending = False
        self._parts = []
        self.outputs = []
        for display_id, out in self._mine:
            refs = self.displays.get(display_id, [])
            refs[:] = [o for o in refs if o is not out]
            if not refs:
                self.displays.pop(display_id, None)
        self._mine = []

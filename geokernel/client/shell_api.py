"""Convenience wrappers for the simple shell requests (reply content dicts)."""
from __future__ import annotations

DEFAULT = -1.0  # timeout sentinel: use the handle's request_timeout (None = wait forever)


class ShellRequestsMixin:
    """Needs KernelHandle.request(); each method returns the reply's content dict."""

    def kernel_info(self, timeout: float | None = DEFAULT) -> dict:
        return self.request("shell", "kernel_info_request", {}, timeout).content

    def complete(self, code: str, cursor_pos: int | None = None,
                 timeout: float | None = DEFAULT) -> dict:
        pos = len(code) if cursor_pos is None else cursor_pos
        return self.request("shell", "complete_request", {"code": code, "cursor_pos": pos},
                            timeout).content

    def inspect(self, code: str, cursor_pos: int | None = None, detail_level: int = 0,
                timeout: float | None = DEFAULT) -> dict:
        pos = len(code) if cursor_pos is None else cursor_pos
        return self.request("shell", "inspect_request", {
            "code": code, "cursor_pos": pos, "detail_level": detail_level}, timeout).content

    def is_complete(self, code: str, timeout: float | None = DEFAULT) -> dict:
        return self.request("shell", "is_complete_request", {"code": code}, timeout).content

    def history(self, raw: bool = True, output: bool = False, hist_access_type: str = "range",
                timeout: float | None = DEFAULT, **kw) -> dict:
        content = {"raw": raw, "output": output, "hist_access_type": hist_access_type, **kw}
        return self.request("shell", "history_request", content, timeout).content

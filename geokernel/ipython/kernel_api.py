"""What user code and libraries find as `get_ipython().kernel`: ipykernel 7's public kernel
attributes that mean something here (`shell`, `session`, `iopub_socket`, `send_response`,
`get_parent`/`set_parent` with the full parent message, `raw_input`, `getpass`,
`execution_count`, `language_info`...), in front of the dispatcher (geokernel.kernel.Kernel),
whose other attributes (`comm_manager`, ...) show through. Sockets, streams and io loops of
ipykernel (`shell_stream`, `io_loop`, `iopub_thread`) have no counterpart and are absent."""
from __future__ import annotations

import logging

from .. import context
from ..message import make_header

log = logging.getLogger("geokernel.kernel")


def message_dict(msg) -> dict:
    """A geokernel Message as jupyter_client's Session hands messages to ipykernel."""
    header = msg.header
    return {"header": header, "msg_id": header.get("msg_id"), "msg_type": header.get("msg_type"),
            "parent_header": msg.parent_header, "metadata": msg.metadata,
            "content": msg.content, "buffers": list(msg.buffers)}


def header_of(parent) -> dict:
    """jupyter_client's extract_header: a message dict's header, or the header itself."""
    if not parent:
        return {}
    if "header" in parent:
        return parent["header"] or {}
    return parent


class IOPubSocket:
    """Stands for the iopub channel in `session.send(kernel.iopub_socket, ...)`."""

    def __repr__(self) -> str:
        return "<geokernel iopub>"


class KernelSession:
    """The part of jupyter_client's Session that kernel-side code uses: the kernel's session
    id and username, message construction, and sending on iopub (signing is the transport's)."""

    def __init__(self, session_id: str, publisher, iopub_socket):
        self.session = session_id
        self.bsession = session_id.encode()
        self.username = make_header("", session_id)["username"]
        self._publisher = publisher
        self._iopub = iopub_socket

    def msg_header(self, msg_type: str) -> dict:
        return make_header(msg_type, self.session, self.username)

    def msg(self, msg_type: str, content=None, parent=None, header=None, metadata=None) -> dict:
        header = self.msg_header(msg_type) if header is None else header
        return {"header": header, "msg_id": header["msg_id"], "msg_type": header["msg_type"],
                "parent_header": header_of(parent), "content": {} if content is None else content,
                "metadata": {} if metadata is None else metadata}

    def send(self, stream, msg_or_type, content=None, parent=None, ident=None, buffers=None,
             track=False, header=None, metadata=None):
        """Publish on iopub (the only channel kernel code may send on by itself); returns the
        message dict as jupyter_client does. The header is always the kernel's own."""
        if stream is not self._iopub:
            raise ValueError("geokernel: kernel code can send only on kernel.iopub_socket")
        if isinstance(msg_or_type, dict):
            msg_type = msg_or_type["header"]["msg_type"]
            content = msg_or_type.get("content", {}) if content is None else content
            parent = msg_or_type.get("parent_header") if parent is None else parent
            metadata = msg_or_type.get("metadata") if metadata is None else metadata
        else:
            msg_type = msg_or_type
        content = {} if content is None else content
        parent_header = header_of(parent) if parent is not None else None
        self._publisher.publish(msg_type, content, parent_header=parent_header,
                                metadata=metadata or {}, buffers=list(buffers or []))
        return self.msg(msg_type, content, parent_header or self._publisher.parent_header,
                        metadata=metadata)


class KernelAPI:
    def __init__(self, kernel, shell):
        own = self.__dict__
        own["_kernel"] = kernel
        own["shell"] = shell
        own["iopub_socket"] = IOPubSocket()
        own["session"] = KernelSession(kernel.session, kernel.publisher, own["iopub_socket"])
        own["log"] = log
        own["_set_parent"] = None  # the last full parent message given to set_parent

    # attributes of the dispatcher show through, and setting them sets them there
    def __getattr__(self, name):
        return getattr(self.__dict__["_kernel"], name)

    def __setattr__(self, name, value):
        if name in self.__dict__:
            self.__dict__[name] = value
        else:
            setattr(self._kernel, name, value)

    def __repr__(self) -> str:
        return f"<geokernel kernel session={self.session.session}>"

    # ---- parents ---------------------------------------------------------------------------
    def parent_for(self, header: dict) -> dict:
        """The full message dict whose header is `header` (the request being handled, or what
        set_parent was given), else a dict built from the header alone."""
        if not header:
            return {}
        request = context.current().msg  # the request the calling greenlet handles
        if request is not None and request.header is header:
            return message_dict(request)
        latest = context.latest().msg  # another OS thread's: the execute request started last
        if latest is not None and latest.header is header:
            return message_dict(latest)
        given = self._set_parent
        if given is not None and header_of(given) is header:
            return given
        return {"header": header, "msg_id": header.get("msg_id"),
                "msg_type": header.get("msg_type"), "parent_header": {}, "metadata": {},
                "content": {}, "buffers": []}

    def get_parent(self, channel: str = "shell") -> dict:
        return self.parent_for(context.current_parent())

    def set_parent(self, ident, parent, channel: str = "shell") -> None:
        """ipykernel's signature (identities, parent message, channel)."""
        self.shell.set_parent(parent)

    def remember_parent(self, parent) -> None:
        # a full message given to set_parent is what get_parent returns while it is current
        full = isinstance(parent, dict) and isinstance(parent.get("header"), dict)
        self.__dict__["_set_parent"] = parent if full else None

    def send_response(self, stream, msg_or_type, content=None, ident=None, buffers=None,
                      track=False, header=None, metadata=None):
        return self.session.send(stream, msg_or_type, content, self.get_parent(), ident,
                                 buffers, track, header, metadata)

    # ---- what ipykernel's kernel also answers ----------------------------------------------
    @property
    def execution_count(self) -> int:
        return self.shell.execution_count

    @property
    def implementation(self) -> str:
        return "geokernel"

    @property
    def language_info(self) -> dict:
        from .info import LANGUAGE_INFO

        return LANGUAGE_INFO

    @property
    def banner(self) -> str:
        from .info import banner

        return banner()

    @property
    def help_links(self) -> list:
        from .info import HELP_LINKS

        return HELP_LINKS

    @property
    def profile_dir(self):
        return self.shell.profile_dir

    def raw_input(self, prompt: str = "") -> str:
        import builtins

        return builtins.input(prompt)  # the cell's input(): an input_request, as on ipykernel

    def getpass(self, prompt: str = "", stream=None) -> str:
        import getpass

        return getpass.getpass(prompt)

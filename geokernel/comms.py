"""Comms through the `comm` package: the kernel installs `comm.create_comm` and
`comm.get_comm_manager` (what ipywidgets 8 calls) and routes comm_open/comm_msg/comm_close
from shell to the package's CommManager, in order with the other requests of their shell.
JupyterLab >= 4.4 sends widget comm messages on a subshell: their handlers then run in that
subshell's greenlet at the running cell's next safe point (the tick, a print, a wait), and what
they publish goes to the comm message (its request context)."""
from __future__ import annotations

import logging

from comm.base_comm import BaseComm, CommManager

from .interrupts import call_user

log = logging.getLogger("geokernel.comms")


class KernelComm(BaseComm):
    """A comm whose messages go out on iopub with the current request as parent."""

    def __init__(self, *args, publisher=None, kernel=None, **kwargs):
        # set before BaseComm.__init__, which may open (publish) right away
        self._publisher = publisher
        self.kernel = kernel  # ipywidgets only sends when comm.kernel is not None
        super().__init__(*args, **kwargs)

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        content = {"data": {} if data is None else data, "comm_id": self.comm_id, **keys}
        self._publisher.publish(msg_type, content, metadata=metadata or {},
                                buffers=list(buffers or []))


class CommBridge:
    def __init__(self, publisher, kernel):
        self.publisher = publisher
        self.kernel = kernel
        self.manager = CommManager()

    def install(self) -> None:
        """Make the `comm` package (and so ipywidgets) create our comms."""
        import comm

        comm.create_comm = self.create_comm
        comm.get_comm_manager = lambda: self.manager

    def create_comm(self, *args, **kwargs) -> KernelComm:
        return KernelComm(*args, publisher=self.publisher, kernel=self.kernel, **kwargs)

    def handlers(self) -> dict:
        return {"comm_open": self._open, "comm_msg": self._msg, "comm_close": self._close,
                "comm_info_request": self._info}

    @staticmethod
    def _as_dict(msg) -> dict:
        # the comm package and widget libraries expect jupyter_client-style dicts
        return {"header": msg.header, "parent_header": msg.parent_header, "metadata": msg.metadata,
                "content": msg.content, "buffers": msg.buffers, "msg_id": msg.msg_id,
                "msg_type": msg.msg_type}

    def _open(self, msg, channel):
        if "comm_id" not in msg.content or "target_name" not in msg.content:
            log.warning("comm_open without comm_id/target_name dropped")
            return
        target = msg.content["target_name"]
        if target not in self.manager.targets:
            # as ipykernel: the comm is closed again (a comm_close on iopub tells the frontend),
            # but a frontend probing for targets (jupyter.widget.control) is no error to log
            log.debug("no comm target %r registered: comm closed", target)
            comm = self.create_comm(comm_id=msg.content["comm_id"], primary=False,
                                    target_name=target)
            self.manager.register_comm(comm)
            comm.close()
            return
        call_user(self.manager.comm_open, None, None, self._as_dict(msg))

    # handlers run user code (widget observers): through call_user, where the tick may switch
    # away from them while a cell runs, as from the cell (the kernel marks them tickable)
    def _msg(self, msg, channel):
        call_user(self.manager.comm_msg, None, None, self._as_dict(msg))

    def _close(self, msg, channel):
        call_user(self.manager.comm_close, None, None, self._as_dict(msg))

    def _info(self, msg, channel):
        target = msg.content.get("target_name")
        comms = {cid: {"target_name": c.target_name} for cid, c in self.manager.comms.items()
                 if target is None or c.target_name == target}
        self.kernel.reply(channel, msg, {"status": "ok", "comms": comms})

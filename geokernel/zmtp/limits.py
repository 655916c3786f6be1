"""The limits of one server socket and its connections, with defaults near libzmq's.

A plain class: build one with the values to change, pass it to a ServerSocket. Every limit
exists so that one peer (hostile or just slow) cannot freeze the kernel or grow its memory
without bound; what happens at each limit is said next to it."""
from __future__ import annotations

from . import framing


class Limits:
    def __init__(self,
                 # a frame / message declared bigger closes the connection at its header
                 # (libzmq: ZMQ_MAXMSGSIZE, unlimited by default)
                 max_frame_size: int = framing.MAX_FRAME_SIZE,
                 max_message_size: int = framing.MAX_MESSAGE_SIZE,
                 max_frames: int = framing.MAX_MESSAGE_FRAMES,
                 # greeting + handshake must finish within this many seconds, or the connection
                 # is closed (libzmq: ZMQ_HANDSHAKE_IVL, 30 s)
                 handshake_timeout: float = 10.0,
                 # received messages waiting for the kernel, per peer: at either bound we stop
                 # reading that peer (TCP backpressure) until the kernel takes some
                 # (libzmq: ZMQ_RCVHWM, 1000 messages)
                 inbox_messages: int = 1000,
                 inbox_bytes: int = 64 << 20,
                 # messages queued for sending, per peer: at either bound new messages for that
                 # peer are dropped, as zmq's ROUTER and PUB drop (libzmq: ZMQ_SNDHWM, 1000;
                 # ours counts more because a kernel answers bursts, e.g. 10,000 pipelined
                 # requests, and the byte bound is what bounds memory); one message bigger than
                 # the byte bound still goes out when the queue is empty
                 outbox_messages: int = 100_000,
                 outbox_bytes: int = 256 << 20,
                 # topics one XPUB peer may subscribe to; more are ignored (libzmq: no cap)
                 max_subscriptions: int = 1000,
                 # subscription events (iopub_welcome) per peer: the first `welcome_burst`
                 # topics, then one per `welcome_interval` seconds; each topic only once
                 welcome_burst: int = 8,
                 welcome_interval: float = 1.0,
                 # connections one socket holds at once (handshaking or not); at the cap the
                 # socket stops accepting until one closes (the rest wait in the listen backlog)
                 max_connections: int = 256,
                 # after a failed accept (EMFILE...): wait this long, doubling up to the max
                 accept_backoff: float = 0.05,
                 accept_backoff_max: float = 1.0):
        self.max_frame_size = max_frame_size
        self.max_message_size = max_message_size
        self.max_frames = max_frames
        self.handshake_timeout = handshake_timeout
        self.inbox_messages = inbox_messages
        self.inbox_bytes = inbox_bytes
        self.outbox_messages = outbox_messages
        self.outbox_bytes = outbox_bytes
        self.max_subscriptions = max_subscriptions
        self.welcome_burst = welcome_burst
        self.welcome_interval = welcome_interval
        self.max_connections = max_connections
        self.accept_backoff = accept_backoff
        self.accept_backoff_max = accept_backoff_max

    def replace(self, **changes) -> "Limits":
        new = Limits.__new__(Limits)
        new.__dict__.update(self.__dict__)
        for k, v in changes.items():
            if not hasattr(new, k):
                raise TypeError(f"unknown limit {k!r}")
            setattr(new, k, v)
        return new

"""OutStream batching in-process (no kernel): the flush timer fires one interval after each
write that arms it, every time (libev fires a re-started one-shot timer at once). Partial lines
are what waits for the timer (a complete line on a quiet stream is written through)."""
from __future__ import annotations

import time

import gevent

from geokernel.iostream import OutStream


class RecordingPublisher:
    def __init__(self):
        self.streams, self.last_stream, self.parent_header = [], None, {}
        self.sent: list = []  # (monotonic time, text)

    def drain_fds(self):
        pass

    def publish(self, msg_type, content, parent_header=None):
        self.sent.append((time.monotonic(), content["text"]))


def test_every_batch_waits_one_interval():
    pub = RecordingPublisher()
    out = OutStream("stdout", pub, interval=0.05)
    try:
        for text in ("first", "second", "third"):
            armed_at = time.monotonic()
            out.write(text)
            gevent.sleep(0.2)  # let the timer fire
            sent_at, sent = pub.sent[-1]
            assert sent == text
            # never earlier than the interval (a load spike can only make it later)
            assert sent_at - armed_at >= 0.045, f"{text!r} flushed after {sent_at - armed_at:.3f}s"
        assert [t for _, t in pub.sent] == ["first", "second", "third"]
    finally:
        out.close_watchers()


def test_quiet_stream_writes_a_line_through_then_batches():
    pub = RecordingPublisher()
    out = OutStream("stdout", pub, interval=0.05)
    try:
        out.write("starting")
        assert pub.sent == []  # a partial line waits
        out.write("\n")
        assert [t for _, t in pub.sent] == ["starting\n"]  # published before any hub turn
        for i in range(1000):
            out.write(f"{i}\n")
        assert len(pub.sent) == 1  # the following stream of writes is batched
        gevent.sleep(0.2)
        assert "".join(t for _, t in pub.sent) == "starting\n" + "".join(f"{i}\n" for i in range(1000))
        assert len(pub.sent) == 2
        gevent.sleep(0.1)  # a quiet interval: the next line goes through again
        out.write("again\n")
        assert pub.sent[-1][1] == "again\n"
    finally:
        out.close_watchers()

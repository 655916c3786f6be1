"""Errors shared by both transports, in a module that imports nothing (no zmq)."""


class TransportError(Exception):
    """A socket could not be bound (one-line message)."""

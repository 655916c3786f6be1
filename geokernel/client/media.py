"""MIME bundle helpers: pick the richest representation, decode images."""
from __future__ import annotations

import base64

# Richest first, roughly the order JupyterLab prefers.
DEFAULT_ORDER = (
    "application/vnd.jupyter.widget-view+json",
    "application/javascript",
    "text/html",
    "text/markdown",
    "text/latex",
    "image/svg+xml",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "application/json",
    "text/plain",
)

TEXT_IMAGES = {"image/svg+xml"}


def richest(bundle: dict, supported: tuple | list = DEFAULT_ORDER) -> str | None:
    """The first MIME type of `supported` (a preference order) present in `bundle`."""
    data = bundle.get("data", bundle) if isinstance(bundle.get("data"), dict) else bundle
    for mime in supported:
        if mime in data:
            return mime
    return None


def decode_image(bundle_or_b64, mime: str = "image/png") -> bytes:
    """Image bytes from a MIME bundle (or an output dict, or a raw base64 string).

    Binary images travel base64-encoded in JSON; SVG is text and passes through (encoded
    UTF-8). Raises KeyError if the bundle lacks `mime`.
    """
    value = bundle_or_b64
    if isinstance(value, dict):
        data = value["data"] if isinstance(value.get("data"), dict) else value
        value = data[mime]
    if isinstance(value, list):  # nbformat may split multi-line strings into lists
        value = "".join(value)
    if mime in TEXT_IMAGES or mime.endswith("+xml"):
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value)
        try:  # already-decoded bytes stay as they are
            return base64.b64decode(value, validate=True)
        except ValueError:
            return value
    return base64.b64decode("".join(value.split()))

"""Stream signatures shared by every core: vectors of ``lanes`` fixed-point elements."""

from amaranth.lib import data, stream

from .fixed import Q

__all__ = ["lanes_signature", "lanes_layout"]


def lanes_layout(fmt: Q, lanes: int):
    """Payload layout of a stream carrying ``lanes`` elements of format ``fmt`` (lane 0 in the low bits)."""
    if lanes < 1:
        raise ValueError(f"lanes must be at least 1, not {lanes}")
    return data.ArrayLayout(fmt.shape, lanes)


def lanes_signature(fmt: Q, lanes: int = 1):
    """``stream.Signature`` of ``lanes`` elements of format ``fmt`` per beat."""
    return stream.Signature(lanes_layout(fmt, lanes))

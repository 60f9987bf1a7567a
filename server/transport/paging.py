"""Pages of list RPCs, bounded by count and by encoded size.

page_size (AIP-158) is a maximum: a page may hold fewer. At the documented limits a full page
can be far bigger than the 4 MiB a message may carry (1,000 reservations of 100 lines, or four
groups of 10,000 members), and a reply over the limit fails the whole call. So a page ends
early once its elements pass MAX_PAGE_BYTES, and the token continues after the last one sent."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from google.protobuf.message import Message

from server.transport.validate.checker import page_token

Element = TypeVar("Element")
Encoded = TypeVar("Encoded", bound=Message)
MAX_PAGE_BYTES = 3 * 1024 * 1024
"""Room under the 4 MiB message limit for the envelope, the token and per-element framing."""
BIG_PAGE = 100
"""Page sizes above which a page is read and encoded on a worker thread, off the event loop."""


def fill(
    found: Sequence[Element],
    size: int,
    encode: Callable[[Element], Encoded],
    key: Callable[[Element], str],
) -> tuple[list[Encoded], str]:
    """Encodes the first of `found` (read with one extra element beyond `size`, whose presence
    says there is more) until `size` elements or MAX_PAGE_BYTES; returns them and the next page
    token, empty on the last page. A page always holds at least one element."""
    page: list[Encoded] = []
    total = 0
    for element in found[:size]:
        message = encode(element)
        total += message.ByteSize() + 8  # generous field tag and length prefix
        if page and total > MAX_PAGE_BYTES:
            break
        page.append(message)
    more = len(page) < len(found)
    return page, page_token(key(found[len(page) - 1])) if more else ""

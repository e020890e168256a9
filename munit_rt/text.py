"""Text that came from files (names, manifests) made safe to print on a terminal or in a log line."""
from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")  # C0, C1, line and bidi


def printable(text: str, control: bool = False) -> str:
    """`text` safe to print on any UTF-8 stream: undecodable file-name bytes (os.fsdecode's surrogates) as \\xNN.

    control=True also escapes control characters (a newline that would forge a line of a summary, an ESC that
    starts a terminal sequence, bidirectional overrides) as \\n, \\x1b, \\u202e: for one line of text from a
    file; a caller printing several lines escapes each line's values."""
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name decodes to
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if control:
        text = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    return text

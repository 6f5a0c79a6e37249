"""Terminal output as words: Rich's panel borders and line wrapping removed."""

from __future__ import annotations

import re

BORDERS = re.compile(r"[\u2500-\u257f]")


def flat(text: str) -> str:
    """`text` with box-drawing characters gone and all white space single spaces."""
    return " ".join(BORDERS.sub(" ", text).split())

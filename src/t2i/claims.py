"""Sentences about this book's own runs, checked by the run that made the page.

A chapter may say "the plain codebook collapses" or "the smallest beta is not
the best on the test digits" only if its run shows it, on every rerun. There
are two ways to keep such a sentence honest:

1. **Generate it** from the numbers, in a ``remove-input`` cell that returns
   ``Markdown(f"...")``: the sentence can never disagree with the run.
2. **Guard it**: type the sentence in the prose, then put a ``remove-cell``
   cell right after it that calls :func:`claim` with the *same words* and the
   condition that makes them true::

       claims.claim(
           "the plain run uses fewer codes than the run with restarts",
           used_plain < used_restarts,
           f"{used_plain} vs {used_restarts} codes",
       )

   If a rerun (another seed, another machine, another scale) breaks the
   sentence, :func:`claim` raises :class:`ClaimFailed`, which quotes it, and
   the book build stops. A test checks that each guarded sentence still
   appears in the chapter's text, so the guard and the prose cannot drift
   apart.

Every claim checked in a session is kept, and :func:`checked` lists them with
their evidence (the chapters' run-info footer shows that list to readers).
"""

from __future__ import annotations

from dataclasses import dataclass


class ClaimFailed(AssertionError):
    """A sentence of the book that this run contradicts."""


@dataclass(frozen=True)
class Claim:
    sentence: str
    evidence: str


_CHECKED: list[Claim] = []


def claim(sentence: str, holds: bool, evidence: str = "") -> None:
    """Stop with an error that quotes ``sentence`` unless ``holds`` is true.

    ``evidence`` is the measured numbers behind the sentence, shown with it.
    """
    if not holds:
        raise ClaimFailed(
            f'The page says: "{sentence}". This run contradicts it '
            f"({evidence or 'no evidence given'}). Rewrite the sentence, generate "
            f"it from the run's numbers, or find out what changed."
        )
    _CHECKED[:] = [c for c in _CHECKED if c.sentence != sentence]  # reruns replace
    _CHECKED.append(Claim(sentence, evidence))


def checked() -> list[Claim]:
    """The claims checked so far in this session, in order."""
    return list(_CHECKED)

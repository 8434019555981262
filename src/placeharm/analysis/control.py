"""Choosing a control area for a before/after evaluation: the candidate whose monthly series
in the before period moves most like the target's (issue 16)."""

from __future__ import annotations

import math
from dataclasses import dataclass

LEVEL_FACTOR = 2.0  # a control within this factor of the target's events is comparable


@dataclass(frozen=True, slots=True)
class Candidate:
    """A candidate control and how it compares with the target in the before period."""

    code: str
    correlation: float | None  # Pearson's r of the monthly counts; None if undefined
    before_total: int


def pearson(x: list[float], y: list[float]) -> float | None:
    """Pearson's correlation of two equally long series; None when either is constant or
    shorter than 3 (no trend to compare)."""
    n = len(x)
    if n != len(y) or n < 3:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def rank_controls(
    target: list[int], candidates: dict[str, list[int]], exclude: set[str]
) -> list[Candidate]:
    """Candidates ranked as controls for `target` (monthly counts over the same held months
    of the before period), best first.

    The rule: leave out the codes in `exclude` (the target's own area and any touching its
    buffer). The WDD compares changes in counts, so a control should have about as many
    events as the target: candidates whose before-period total is within a factor of
    `LEVEL_FACTOR` of the target's come first, ranked by Pearson's correlation of the monthly
    counts with the target's, highest first (a similar pre-period trend; none defined with
    fewer than 3 months: ranked last); then the others, closest level first. Ties: the
    closest level, then the code.
    """
    total = sum(target)
    ranked = []
    for code, series in candidates.items():
        if code in exclude:
            continue
        r = pearson([float(v) for v in target], [float(v) for v in series])
        ranked.append(Candidate(code, r, sum(series)))

    def level(c: Candidate) -> float:
        return abs(math.log((c.before_total + 1) / (total + 1)))

    ranked.sort(
        key=lambda c: (
            level(c) > math.log(LEVEL_FACTOR),
            c.correlation is None,
            -(c.correlation or 0.0),
            level(c),
            c.code,
        )
    )
    return ranked

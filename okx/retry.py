"""How long to wait between attempts at a request that may succeed next time."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter, and an overall deadline.

    With the defaults a persistent outage ends in an error after at most six attempts
    or 25 seconds, whichever comes first.
    """

    max_attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 4.0
    deadline: float = 25.0
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def backoff(self, attempt: int) -> float:
        """Delay before attempt number `attempt + 1` (attempt counts from 1)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling * self.rng.uniform(0.5, 1.0)

"""Progress display for long steps: a rich spinner and a tick per step, on a TTY only.

Off when stderr is not a terminal (CI logs) or with ``--quiet``; results (``info``,
``warn``) are still printed unless ``--quiet``. Everything goes to stderr, so ``--json``
output on stdout stays machine-readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console


class Progress:
    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.live = not quiet and self.console.is_terminal and sys.stderr.isatty()

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        t0 = time.perf_counter()
        if not self.live:
            yield
            return
        with self.console.status(f"{title} ..."):
            yield
        self.console.print(f"[green]✓[/green] {title} [dim]({time.perf_counter() - t0:.1f} s)[/dim]")

    def info(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)

    def warn(self, text: str) -> None:
        if not self.quiet:
            self.console.print(f"[yellow]![/yellow] {text}")

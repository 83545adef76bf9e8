"""Progress display for long steps: rich spinner on a TTY, plain lines otherwise.

Everything goes to stderr, so ``--json`` output on stdout stays machine-readable.
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
        self.live = self.console.is_terminal and sys.stderr.isatty()

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        t0 = time.perf_counter()
        if self.quiet:
            yield
            return
        if self.live:
            with self.console.status(f"{title} ..."):
                yield
        else:
            self.console.print(f"{title} ...")
            yield
        self.console.print(f"[green]✓[/green] {title} [dim]({time.perf_counter() - t0:.1f} s)[/dim]")

    def info(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)

    def warn(self, text: str) -> None:
        if not self.quiet:
            self.console.print(f"[yellow]![/yellow] {text}")

"""``liteship bench``: the benchmarks (cli: options and orchestration; measure: the
measurements; children: what runs in fresh processes; goals: keys and goals; output: table
and markdown; runner: measured child processes; manual/: the manual path's scripts)."""

from liteship.bench.cli import main

__all__ = ["main"]

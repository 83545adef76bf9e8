"""PT_LOAD alignment of an ELF shared object (pyelftools)."""

from __future__ import annotations

import io
from dataclasses import dataclass

#: Android 15+ devices may use 16 KB pages; Google Play requires 16 KB-aligned native libraries
#: for apps targeting Android 15 (API 35) since 2025-11-01
PAGE_16K = 16384


@dataclass(frozen=True)
class ElfFacts:
    machine: str  # e.g. EM_AARCH64, EM_X86_64
    elf_class: int  # 32 | 64
    load_alignments: tuple[int, ...]  # p_align of every PT_LOAD segment, in order

    @property
    def min_alignment(self) -> int | None:
        return min(self.load_alignments) if self.load_alignments else None


def read_elf(data: bytes) -> ElfFacts:
    """Raises ValueError when ``data`` is not an ELF file pyelftools can read."""
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(data))
        aligns = tuple(int(seg["p_align"]) for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD")
        return ElfFacts(str(elf["e_machine"]), int(elf.elfclass), aligns)
    except Exception as exc:  # noqa: BLE001 - any parser failure (ELFError, construct errors) = unreadable
        raise ValueError(f"not a readable ELF file: {exc}") from None

"""report.html: a self-contained page rendered from the report dict (and precomputed overlays)."""

from liteship.report.html.page import render_html, write_html, write_html_safely

__all__ = ["render_html", "write_html", "write_html_safely"]

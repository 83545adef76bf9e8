"""Reports of a run: the data (:mod:`.model`) and its renderers (JSON, :mod:`.junit`, :mod:`.html`)."""

from liteship.report.model import SCHEMA, SCHEMA_VERSION, Report, sha256, status_of, versions

__all__ = ["SCHEMA", "SCHEMA_VERSION", "Report", "sha256", "status_of", "versions"]

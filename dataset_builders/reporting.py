"""Counting and reporting rows that could not be used, so that no row is ever dropped silently."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tokenization import ScopeError

logger = logging.getLogger(__name__)


#: Reason code of a failure that is not a typed `ScopeError` (a `KeyError` of a malformed row, say).
GENERIC_REASON = "invalid_input"


@dataclass
class FailedRow:
    """One row that was left out, as the failure record every CLOUD output uses.

    Attributes:
        source (`str`): the row (and file) it came from.
        reason (`str`): machine code, `ScopeError.reason` (e.g. `"parse_error"`), or `"invalid_input"` for other errors.
        error_type (`str`): class name of the error (`"type"` in the record).
        message (`str`): the error's message, without the source.
    """

    source: str
    reason: str
    error_type: str
    message: str

    @classmethod
    def from_exception(cls, source: str, error: Exception) -> FailedRow:
        """`source` names the row; a `ScopeError` that names it more precisely (row and file) wins."""
        if isinstance(error, ScopeError):
            record = error.to_dict(error.source or source)
            return cls(record["source"], record["reason"], record["type"], record["message"])
        return cls(source, GENERIC_REASON, type(error).__name__, str(error))

    def to_dict(self) -> dict[str, str]:
        """`{"source", "reason", "type", "message"}`, the shape of `ScopeError.to_dict()`."""
        return {
            "source": self.source,
            "reason": self.reason,
            "type": self.error_type,
            "message": self.message,
        }


@dataclass
class FailureReport:
    """Collects the rows a loader or encoder left out.

    Pass one to a loader (``report=``) to keep going past bad rows; without one, the first bad row raises. Each
    failure is also appended to ``errors_path`` (JSONL, one object per failed row) when given, which works across
    worker processes.

    Example:
        >>> report = FailureReport()
        >>> _ = report.add("row 3", ValueError("not a crystal"))
        >>> report.summary()
        '1 row failed: invalid_input 1'
    """

    errors_path: str | Path | None = None
    failures: list[FailedRow] = field(default_factory=list)
    rows_seen: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, source: str, error: Exception) -> FailedRow:
        failure = FailedRow.from_exception(source, error)
        with self._lock:
            self.failures.append(failure)
            if self.errors_path is not None:
                with open(self.errors_path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(failure.to_dict()) + "\n")
        logger.warning("left out %s: %s", failure.source, failure.message)
        return failure

    def extend(self, failures: list[FailedRow]) -> None:
        with self._lock:
            self.failures.extend(failures)
            if self.errors_path is not None and failures:
                with open(self.errors_path, "a", encoding="utf-8") as handle:
                    for failure in failures:
                        handle.write(json.dumps(failure.to_dict()) + "\n")
        for failure in failures:
            logger.warning("left out %s: %s", failure.source, failure.message)

    @property
    def num_failed(self) -> int:
        return len(self.failures)

    def counts(self) -> Counter:
        """Failures per reason code (``parse_error``, ``disordered_structure``, ``missing_label``, ...)."""
        return Counter(failure.reason for failure in self.failures)

    def summary(self) -> str:
        if not self.failures:
            return "no failed rows"
        parts = ", ".join(f"{reason} {count}" for reason, count in sorted(self.counts().items()))
        noun = "row" if self.num_failed == 1 else "rows"
        return f"{self.num_failed} {noun} failed: {parts}"

    def write_jsonl(self, path: str | Path) -> Path:
        path = Path(path)
        with open(path, "w", encoding="utf-8") as handle:
            for failure in self.failures:
                handle.write(json.dumps(failure.to_dict()) + "\n")
        return path


class MissingLabelError(ScopeError):
    """A row has no value for a label column that training needs."""

    reason = "missing_label"


class RowEncodingError(ScopeError):
    """A row of a dataset could not be encoded; names the row (index or id) and wraps the original error."""

    reason = "row_encoding_failed"


def handle_failure(report: FailureReport | None, source: str, error: Exception) -> None:
    """Record ``error`` in ``report``; without a report, raise it (naming ``source``) instead."""
    if report is None:
        if isinstance(error, ScopeError) and error.source:
            raise error
        raise RowEncodingError(f"{type(error).__name__}: {error}", source) from error
    report.add(source, error)

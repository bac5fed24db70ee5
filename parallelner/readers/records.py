"""The one reader of files of ParallelRecords: ``.parquet`` (the dataset's Arrow schema)
or ``.jsonl`` (one record a line), as the ``quality`` and ``review`` commands take them.

Bad input raises ``InputError`` naming the file and line (``file:line: fault``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from parallelner.errors import InputError
from parallelner.readers.base import check_not_utf16
from parallelner.reasons import Reason
from parallelner.records import ParallelRecord

__all__ = ["read_records"]


def _validation_detail(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "record"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"not a ParallelRecord: {loc}: {err['msg']}{more}"


def read_records(path: Path) -> Iterator[ParallelRecord]:
    """ParallelRecords from .parquet or .jsonl (or a stream such as a pipe, read as JSONL);
    bad input -> InputError(file:line)."""
    if path.is_dir():
        raise InputError(str(path), None, Reason.UNREADABLE_FILE, "is a directory, not a file")
    if not path.exists():
        raise InputError(str(path), None, Reason.UNREADABLE_FILE, "no such file")
    if path.suffix == ".parquet":
        return iter(_read_parquet(path))
    if path.suffix == ".jsonl" or not path.is_file():  # a pipe or /dev/null: a stream of lines
        return _iter_jsonl(path)
    raise InputError(str(path), None, Reason.MALFORMED_LINE, "expected a .parquet or .jsonl file")


def _read_parquet(path: Path) -> list[ParallelRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from parallelner.records import table_to_records

    try:
        table = pq.read_table(path)
        return table_to_records(table)  # type: ignore[return-value]
    except (OSError, pa.ArrowException) as exc:
        raise InputError(str(path), None, Reason.MALFORMED_LINE, f"not Parquet: {exc}") from None
    except (KeyError, ValidationError) as exc:
        detail = (
            _validation_detail(exc) if isinstance(exc, ValidationError) else f"missing column {exc}"
        )
        raise InputError(str(path), None, Reason.MALFORMED_LINE, detail) from None


def _iter_jsonl(path: Path) -> Iterator[ParallelRecord]:
    # binary lines, decoded one by one: a bad byte is reported at its own line (a text
    # file object decodes 8 KiB at a time and would name an earlier line)
    with open(path, "rb") as fh:
        check_not_utf16(path, fh.peek(4)[:4])
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    str(path),
                    number,
                    Reason.INVALID_UTF8,
                    f"not UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line)",
                ) from None
            if not line.strip():
                continue
            try:
                yield ParallelRecord.model_validate_json(line)
            except ValidationError as exc:
                reason = (
                    Reason.INVALID_JSON
                    if exc.errors()[0]["type"] == "json_invalid"
                    else Reason.MALFORMED_LINE
                )
                raise InputError(str(path), number, reason, _validation_detail(exc)) from None

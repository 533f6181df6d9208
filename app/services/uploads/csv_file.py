"""CSV uploads, parsed in blocks by pyarrow's streaming reader (pandas' speed, bounded
memory). Anything the fast path refuses is read again by the standard library's csv
module, only to say exactly which line and column is wrong.

The first line is a header unless every field on it is a number. The label column is
``target`` (a header name, or a 0-based index), else the last column. Labels are typed
as a whole: all integers -> int64, all numbers -> float64, else strings.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from app.engine.labels import MAX_LABEL_CHARS, fits_int64, text_label_problem
from app.services.errors import Invalid, Loc
from app.services.uploads.limits import UploadLimits
from app.services.uploads.npy_writer import NonFinite, NpyWriter
from app.services.uploads.parsed import FILE_LOC, ParsedUpload

BLOCK_BYTES = 1 << 22  # pyarrow's read block: bounds memory; a row must fit in one
WIDE_COLUMNS = 2048  # more columns than this: the NumPy reader (see _wide_blocks)
MAX_HEADER_FIELDS_SHOWN = 20
# The C library's malloc, not pyarrow's default mimalloc: uploads are parsed in whichever
# thread of the API's pool is free, and mimalloc keeps the freed pages of every thread's
# own heap, so the API grew by ~1 MiB per CSV upload until each pool thread had parsed a
# few (+105 MiB after 120 parses spread over 20 threads; +7 MiB with this pool; the
# soak's "API RSS creep", BENCHMARKS.md section 11).
POOL = pa.system_memory_pool()


def parse_csv(
    source: BinaryIO, *, target: str | None, limits: UploadLimits, x_path: Path
) -> ParsedUpload:
    """Parse ``source`` (a seekable binary file) into x at ``x_path`` and labels."""
    first_line = _first_line(source)
    header = _header_fields(first_line)
    has_header = not all(_is_number(field) for field in header)
    names = [h.strip() for h in header] if has_header else [str(i) for i in range(len(header))]
    label_col = _label_column(names, target, has_header)
    feature_names = [n for i, n in enumerate(names) if i != label_col]
    if has_header and not _has_data_after_header(source):
        raise Invalid("the CSV has a header but no data rows", FILE_LOC)
    source.seek(0)
    try:
        labels, writer = _parse_blocks(source, names, label_col, has_header, limits, x_path)
    except (
        pa.ArrowInvalid,
        pa.ArrowNotImplementedError,
        UnicodeDecodeError,
        ValueError,
        csv.Error,
    ) as exc:
        source.seek(0)
        raise _precise_error(source, names, label_col, has_header, limits) or Invalid(
            f"malformed CSV: {exc}", FILE_LOC
        ) from None
    if writer.rows == 0:
        raise Invalid("the CSV has a header but no data rows", FILE_LOC)
    return ParsedUpload(
        x_path=x_path,
        n_samples=writer.rows,
        n_features=writer.width,
        y=_typed_labels(labels),
        feature_names=feature_names if has_header else None,
        stats=writer.stats(),
    )


def _first_line(source: BinaryIO) -> str:
    raw = source.readline(BLOCK_BYTES)
    if not raw.strip():
        raise Invalid("the CSV is empty: it needs at least one row", FILE_LOC)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid(
            f"the CSV is not UTF-8 text: {exc.reason} at byte {exc.start}", FILE_LOC
        ) from None


def _has_data_after_header(source: BinaryIO) -> bool:
    """Whether a non-blank line follows the header (read just before): refused early, a
    header-only file never reaches the block parser, whose buffers grow with the columns."""
    while line := source.readline(BLOCK_BYTES):
        if line.strip():
            return True
    return False


def _header_fields(line: str) -> list[str]:
    try:
        return next(csv.reader([line], strict=True))
    except (csv.Error, StopIteration) as exc:
        raise Invalid(f"malformed CSV at line 1: {exc}", (*FILE_LOC, "line", 1)) from None


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _label_column(names: list[str], target: str | None, has_header: bool) -> int:
    """The label column's index; every check linear in the number of columns."""
    if len(names) < 2:
        raise Invalid("the CSV needs at least two columns: features and a label", FILE_LOC)
    if has_header:
        duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
        if duplicates:
            raise Invalid(
                f"duplicate column names: {duplicates[:MAX_HEADER_FIELDS_SHOWN]}", FILE_LOC
            )
    if target is None or target == "":
        return len(names) - 1
    if has_header and target in names:
        return names.index(target)
    if re.fullmatch(r"-?[0-9]+", target) and -len(names) <= int(target) < len(names):
        return int(target) % len(names)
    shown = names[:MAX_HEADER_FIELDS_SHOWN] + (
        ["..."] if len(names) > MAX_HEADER_FIELDS_SHOWN else []
    )
    what = "no column" if has_header else "no column index (the CSV has no header)"
    raise Invalid(f"{what} {target!r}; the columns are {shown}", ("body", "target"))


def _parse_blocks(
    source: BinaryIO,
    names: list[str],
    label_col: int,
    has_header: bool,
    limits: UploadLimits,
    x_path: Path,
) -> tuple[list[pa.Array], NpyWriter]:
    feature_columns = [i for i in range(len(names)) if i != label_col]
    read = _arrow_blocks if len(names) <= WIDE_COLUMNS else _wide_blocks
    labels: list[pa.Array] = []
    with NpyWriter(x_path, len(feature_columns)) as writer:
        for block, block_labels in read(source, len(names), label_col, has_header):
            limits.check_cells(writer.rows + len(block), len(feature_columns), FILE_LOC)
            try:
                writer.write(block)
            except NonFinite as bad:
                raise Invalid(
                    "features must be finite float32 numbers (no NaN, inf or overflow)",
                    (*FILE_LOC, "x", bad.row, bad.col),
                ) from None
            labels.append(pc.utf8_trim_whitespace(block_labels, memory_pool=POOL))
    return labels, writer


Blocks = Iterator[tuple[np.ndarray, pa.Array]]


def _arrow_blocks(source: BinaryIO, width: int, label_col: int, has_header: bool) -> Blocks:
    """(features (k, width - 1) float32, labels) per block of pyarrow's streaming reader."""
    column_names = [f"c{i}" for i in range(width)]  # header names may repeat case etc.
    # float32 straight from the text: correctly rounded, and no float64 copy to convert.
    types = {name: pa.float32() for name in column_names}
    types[column_names[label_col]] = pa.string()
    reader = pacsv.open_csv(
        source,
        read_options=pacsv.ReadOptions(
            column_names=column_names, skip_rows=1 if has_header else 0, block_size=BLOCK_BYTES
        ),
        parse_options=pacsv.ParseOptions(newlines_in_values=False),
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
        memory_pool=POOL,
    )
    features = [i for i in range(width) if i != label_col]
    for batch in reader:
        columns = [batch.column(i).to_numpy(zero_copy_only=False) for i in features]
        yield np.column_stack(columns), batch.column(label_col)


def _wide_blocks(source: BinaryIO, width: int, label_col: int, has_header: bool) -> Blocks:
    """The same blocks for files of more than WIDE_COLUMNS columns, where pyarrow's
    per-column buffers would cost hundreds of MiB: rows of about BLOCK_BYTES of text are
    split by the standard library's csv module and converted by NumPy."""
    text = io.TextIOWrapper(source, encoding="utf-8-sig", newline="")
    try:
        if has_header:
            text.readline()
        while lines := text.readlines(BLOCK_BYTES):
            rows = [row for row in csv.reader(lines, strict=True) if "".join(row).strip()]
            if not rows:
                continue
            if any(len(row) != width for row in rows):
                raise ValueError("a row has another number of fields than the header")
            cells = np.array(rows)
            yield (
                np.delete(cells, label_col, axis=1).astype(np.float32),
                pa.array(cells[:, label_col].tolist(), type=pa.string(), memory_pool=POOL),
            )
    finally:
        text.detach()


def _typed_labels(chunks: list[pa.Array]) -> np.ndarray:
    """CSV labels are text: all integers -> int64, all numbers -> float64, else strings."""
    text = pa.chunked_array(chunks, type=pa.string())
    for kind in (pa.int64(), pa.float64()):
        try:
            cast = pc.cast(text, kind, memory_pool=POOL)
            return np.asarray(cast.to_numpy(), dtype=kind.to_pandas_dtype())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            if kind == pa.int64():
                _check_integer_range(text)
            continue
    _check_label_column(text)
    _check_label_text(text)
    return np.asarray(text.to_pylist(), dtype=np.str_)


def _check_integer_range(text: pa.ChunkedArray) -> None:
    """422 at the first label beyond 64-bit integers in a column of integers only (as a
    JSON body's are refused): read as floats, they would make the dataset a regression
    whose targets lost their last digits."""
    whole = pc.match_substring_regex(text, r"^\s*[+-]?[0-9]+\s*$")
    if not pc.all(whole).as_py():
        return
    for row, label in enumerate(text.to_pylist()):
        digits = label.strip().lstrip("+-").lstrip("0")
        # int() refuses over 4,300 digits (a ValueError); past 19 none fits anyway.
        if len(digits) > 19 or not fits_int64(int(label)):
            raise Invalid(
                f"the label of data row {row} ({label.strip()[:40]}) is beyond 64-bit integers",
                (*FILE_LOC, "y", row),
                error_type="label_int_range",
            )


def _check_label_column(text: pa.ChunkedArray) -> None:
    """422 when every label is empty: the label column is blank, as when each line ends in
    a comma (a, b, label, -> an unnamed empty last column), which would otherwise train
    one class "" with the real labels as a feature."""
    if pc.all(pc.equal(pc.utf8_length(text), 0)).as_py():
        raise Invalid(
            "the label column is empty on every line (does each line end in a comma?); "
            "remove the empty column",
            (*FILE_LOC, "y"),
        )


def _check_label_text(text: pa.ChunkedArray) -> None:
    """422 at the first text label a dataset cannot hold: one over MAX_LABEL_CHARS
    characters (the longest label the API reads back), or one with a NUL character
    (NumPy's strings drop a trailing one, merging "a\x00" into "a"; PostgreSQL's text
    refuses any)."""
    bad = pc.or_(
        pc.greater(pc.utf8_length(text), MAX_LABEL_CHARS), pc.match_substring(text, "\x00")
    )
    rows = np.flatnonzero(np.asarray(bad.to_numpy(zero_copy_only=False), dtype=bool))
    if rows.size:
        row = int(rows[0])
        why = text_label_problem(text[row].as_py())
        raise Invalid(f"the label of data row {row} {why}", (*FILE_LOC, "y", row))


def _precise_error(
    source: BinaryIO, names: list[str], label_col: int, has_header: bool, limits: UploadLimits
) -> Invalid | None:
    """The first problem of the file as the standard library sees it (line and column), or
    None if it finds none. Linear in the file's size; only runs for files that failed."""
    text = io.TextIOWrapper(source, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, strict=True)
    loc: Loc = FILE_LOC
    try:
        for row in _data_rows(reader, has_header):
            line = reader.line_num
            loc = (*FILE_LOC, "line", line)
            if len(row) != len(names):
                return Invalid(
                    f"line {line} has {len(row)} fields, the header has {len(names)}", loc
                )
            for i, cell in enumerate(row):
                if i != label_col and not _is_number(cell):
                    return Invalid(
                        f"line {line}, column {names[i]!r}: {cell[:50]!r} is not a number",
                        (*loc, names[i]),
                    )
    except UnicodeDecodeError as exc:
        return Invalid(f"the CSV is not UTF-8 text: {exc.reason}", FILE_LOC)
    except csv.Error as exc:
        line = reader.line_num
        return Invalid(f"malformed CSV at line {line}: {exc}", (*FILE_LOC, "line", line))
    finally:
        text.detach()
    return None


def _data_rows(reader: Iterator[list[str]], has_header: bool) -> Iterator[list[str]]:
    if has_header:
        next(reader, None)
    for row in reader:
        if row and not (len(row) == 1 and not row[0].strip()):
            yield row

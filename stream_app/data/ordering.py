"""Replaying a dataset file in time order with bounded memory: an external merge sort.

:func:`stream_app.data.sources.read_events` reads a whole file into a list and sorts it, which a
file of 100M rows does not fit. :func:`time_ordered` yields the same sequence (sorted by ``ts``,
ties in file order, a :class:`~stream_app.data.sources.Rejected` row with the ts of the valid
event before it) while holding about ``chunk_rows`` rows at a time, at most twice that:

1. The file is read once, in file order (:func:`~stream_app.data.sources.iter_events`). While it
   stays in time order nothing beyond its first ``chunk_rows`` rows is kept: that ordered prefix
   can be read again from the file itself.
2. From the first row out of order on, rows are gathered in chunks of ``chunk_rows``. Each chunk
   is sorted in memory and written ("spilled") to a run file in a temporary folder, as pickled
   blocks of keys, row numbers and rows, so a ``Rejected`` row keeps its raw bytes, reason, path
   and line; a sorted chunk that carries on where the last run file ended is appended to it. The
   last chunk stays in memory.
3. The output is the k-way merge (:func:`heapq.merge`) of the ordered prefix (read again), the run
   files and the last chunk, by ``(ts, row number)``, so it is stable. With more than ``fan_in``
   run files, groups of ``fan_in`` are first merged into longer ones, which bounds both the open
   files and the read buffers.

So a file already in time order is read twice and nothing is written (the first pass only checks
the order); a file of at most ``chunk_rows`` rows is sorted in memory and never touches the disk;
any other file costs one write and one read of its rows out of order (more when ``fan_in`` runs
are not enough). The pickles are only read back by the process that wrote them.

The temporary folder (under ``spill_dir``, by default the system's) is removed when the
iteration ends, when :meth:`TimeOrdered.close` is called or its ``with`` block is left, on an
error or Ctrl-C while the file is read, and at the latest when the object is garbage collected.
The whole file is read before the first row comes out (a sort cannot place its first row before
it has seen the last one); ``len()`` runs that pass without taking a row and gives the number of
rows the iteration yields, e.g. for a progress bar. The file must not change meanwhile: reading
a prefix again from a file whose size or modification time changed raises :class:`FileChanged`.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "UserBehavior.csv"
>>> _ = p.write_text("1,20,7,pv,30\\n1,21,7,buy,10\\n2,22,7,cart,20\\n2,23,7,pv,10\\n")
>>> with time_ordered(p, "taobao", chunk_rows=2) as events:
...     print(len(events), [(e["event_id"], e["ts"]) for e in events])
4 [('taobao-2', 10.0), ('taobao-4', 10.0), ('taobao-3', 20.0), ('taobao-1', 30.0)]
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import os
import pickle
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, Generic, Literal, TypeVar, overload

from stream_app.data.sources import Errors, Rejected, SourceError, iter_events

__all__ = ["DEFAULT_CHUNK_ROWS", "DEFAULT_FAN_IN", "FileChanged", "TimeOrdered", "time_ordered"]

DEFAULT_CHUNK_ROWS = 200_000
"""Rows sorted in memory at a time: about 100 MB of Taobao events (see ``docs/BENCHMARKS.md``)."""

DEFAULT_FAN_IN = 64
"""Run files merged at once (each holds one open file and one block of rows during the merge)."""

_MAX_BLOCK = 1024  # rows per pickled block of a run file

T = TypeVar("T")
Record = tuple[Any, int, Any]  # (sort key: the row's ts or the last valid one, row number, row)
_row = itemgetter(2)


class FileChanged(SourceError):
    """The file changed between the pass that sorted it and reading a part of it again."""

    def __init__(self, path: Path):
        ValueError.__init__(self, f"{path}: the file changed while it was being replayed; replay it again")
        self.path = path
        self.line_no = 0
        self.reason = "the file changed while it was being replayed"


def _close(rows: Iterator[Any]) -> None:
    """Close a reader generator (and so its file) that may be part-way through."""
    close = getattr(rows, "close", None)
    if close is not None:
        close()


def _keyed(rows: Iterable[Any]) -> Iterator[Record]:
    """``(key, row number, row)`` for each row; a ``Rejected`` row takes the key of the row before it."""
    last = -math.inf
    for seq, row in enumerate(rows):
        if not isinstance(row, Rejected):
            last = row["ts"]
        yield last, seq, row


def _dump(fh: IO[bytes], block: tuple[Sequence[Any], Sequence[int], Sequence[Any]]) -> None:
    """Write one block of a run file: its keys, row numbers and rows, as three columns."""
    pickle.dump(block, fh, protocol=pickle.HIGHEST_PROTOCOL)


def _read_blocks(fh: IO[bytes]) -> Iterator[Record]:
    """The records of a run file, one block in memory at a time."""
    while True:
        try:
            keys, seqs, rows = pickle.load(fh)
        except EOFError:
            return
        yield from zip(keys, seqs, rows)


class _Chunk:
    """Rows in file order with their keys, kept as two lists (no object per row: the garbage
    collector's passes over a big chunk stay cheap); ``base`` is the first row's number."""

    def __init__(self, base: int):
        self.base = base
        self.keys: list[Any] = []
        self.rows: list[Any] = []

    def order(self) -> list[int]:
        """Positions of the rows sorted by key, stable (ties keep file order)."""
        return sorted(range(len(self.keys)), key=self.keys.__getitem__)

    def records(self, order: list[int]) -> Iterator[Record]:
        keys, rows, base = self.keys, self.rows, self.base
        return ((keys[i], base + i, rows[i]) for i in order)


class TimeOrdered(Generic[T]):
    """The rows of a dataset file in time order, streamed; made by :func:`time_ordered`.

    An iterator (once through), a context manager (leaving it removes the temporary files) and
    sized: ``len()`` is the number of rows the whole iteration yields (see the module doc).
    """

    def __init__(self, path: Path | str, fmt: str, *, errors: Errors, chunk_rows: int,
                 spill_dir: Path | str | None, fan_in: int):
        for name, value, least in (("chunk_rows", chunk_rows, 1), ("fan_in", fan_in, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be a whole number >= {least}, got {value!r}")
        self._rows = iter_events(path, fmt, errors=errors)  # checks the format and the file now
        self._path, self._fmt, self._errors = Path(path), fmt, errors
        self._stamp = self._stat()
        self._chunk_rows, self._fan_in = chunk_rows, fan_in
        self._block = max(1, min(_MAX_BLOCK, chunk_rows // fan_in))
        self._spill_dir = spill_dir
        self._stack = contextlib.ExitStack()  # the temporary folder and every file opened on it
        self._dir: Path | None = None
        self._runs: list[Path] = []
        self._made = 0  # run files made so far (their names)
        self._run_last: Any = None  # the last key of the newest run file
        self._out: Iterator[Any] | None = None
        self._total = 0

    def __enter__(self) -> TimeOrdered[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> TimeOrdered[T]:
        return self

    def __next__(self) -> T:
        out = self._start()
        try:
            row: T = next(out)
        except BaseException:  # the end, an error or Ctrl-C: nothing more will be read
            self.close()
            raise
        return row

    def __len__(self) -> int:
        self._start()
        return self._total

    def close(self) -> None:
        """Stop: close the files and remove the temporary folder (the iteration then yields nothing)."""
        self._out = iter(())
        _close(self._rows)
        self._stack.close()

    @property
    def spilled(self) -> bool:
        """Whether any row was written to a temporary file (False for an ordered or a small file)."""
        return self._dir is not None

    def _stat(self) -> tuple[int, int]:
        st = os.stat(self._path)
        return st.st_size, st.st_mtime_ns

    def _start(self) -> Iterator[Any]:
        if self._out is None:
            try:
                self._out = self._sort()
            except BaseException:
                self.close()
                raise
        return self._out

    def _sort(self) -> Iterator[Any]:
        """Read the file through, spilling sorted chunks; return the iterator of the output."""
        n = self._chunk_rows
        chunk = _Chunk(0)  # the ordered prefix while it fits in a chunk, then the current chunk
        held, prefix, last = True, 0, -math.inf
        rows = self._rows
        for row in rows:
            key = last if isinstance(row, Rejected) else row["ts"]
            if key < last:
                break
            last = key
            prefix += 1
            if held:
                if prefix <= n:
                    chunk.keys.append(key)
                    chunk.rows.append(row)
                else:
                    held, chunk = False, _Chunk(0)
        else:  # the whole file is in time order
            self._total = prefix
            return iter(chunk.rows) if held else map(_row, self._again(prefix))
        sources: list[Iterator[Record]] = []
        if not held:
            sources.append(self._again(prefix))
            chunk = _Chunk(prefix)
        chunk.keys.append(key)
        chunk.rows.append(row)
        last = key
        for row in rows:
            if not isinstance(row, Rejected):
                last = row["ts"]
            chunk.keys.append(last)
            chunk.rows.append(row)
            if len(chunk.rows) >= n:
                self._spill(chunk)
                chunk = _Chunk(chunk.base + len(chunk.rows))
        self._total = chunk.base + len(chunk.rows)
        order = chunk.order()
        if not sources and not self._runs:  # one chunk: sorted in memory
            return map(chunk.rows.__getitem__, order)
        while len(self._runs) > self._fan_in:
            self._merge_runs()
        sources.extend(_read_blocks(self._open(run)) for run in self._runs)
        sources.append(chunk.records(order))
        return map(_row, heapq.merge(*sources))

    def _again(self, rows: int) -> Iterator[Record]:
        """The first ``rows`` records of the file, read again when first asked for (they were in order)."""
        if self._stat() != self._stamp:
            raise FileChanged(self._path)
        again = iter_events(self._path, self._fmt, errors=self._errors)
        self._stack.callback(_close, again)
        yield from itertools.islice(_keyed(again), rows)

    def _open(self, run: Path) -> IO[bytes]:
        return self._stack.enter_context(open(run, "rb"))

    def _new_run(self) -> Path:
        if self._dir is None:
            self._dir = Path(self._stack.enter_context(
                tempfile.TemporaryDirectory(prefix="streamrec-replay-", dir=self._spill_dir)))
        self._made += 1
        run = self._dir / f"run-{self._made:06d}.pickle"
        self._runs.append(run)
        return run

    def _spill(self, chunk: _Chunk) -> None:
        """Sort ``chunk`` and write it to a new run file, or append it to the last one it carries on."""
        order, keys, rows, base = chunk.order(), chunk.keys, chunk.rows, chunk.base
        if self._runs and keys[order[0]] >= self._run_last:
            run, mode = self._runs[-1], "ab"
        else:
            run, mode = self._new_run(), "wb"
        with open(run, mode) as fh:
            for start in range(0, len(order), self._block):
                part = order[start:start + self._block]
                _dump(fh, ([keys[i] for i in part], [base + i for i in part], [rows[i] for i in part]))
        self._run_last = keys[order[-1]]

    def _merge_runs(self) -> None:
        """Merge the oldest ``fan_in`` run files into one new run file."""
        group, self._runs = self._runs[:self._fan_in], self._runs[self._fan_in:]
        merged = self._new_run()
        with contextlib.ExitStack() as files:
            parts = [_read_blocks(files.enter_context(open(run, "rb"))) for run in group]
            records = heapq.merge(*parts)
            with open(merged, "wb") as fh:
                while block := list(itertools.islice(records, self._block)):
                    keys, seqs, rows = zip(*block, strict=True)
                    _dump(fh, (keys, seqs, rows))
                    self._run_last = block[-1][0]
        for run in group:
            run.unlink()


@overload
def time_ordered(path: Path | str, fmt: str, *, errors: Literal["raise"] = "raise",
                 chunk_rows: int = DEFAULT_CHUNK_ROWS, spill_dir: Path | str | None = None,
                 fan_in: int = DEFAULT_FAN_IN) -> TimeOrdered[dict[str, Any]]: ...
@overload
def time_ordered(path: Path | str, fmt: str, *, errors: Errors, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 spill_dir: Path | str | None = None,
                 fan_in: int = DEFAULT_FAN_IN) -> TimeOrdered[dict[str, Any] | Rejected]: ...


def time_ordered(path: Path | str, fmt: str, *, errors: Errors = "raise", chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 spill_dir: Path | str | None = None, fan_in: int = DEFAULT_FAN_IN) -> TimeOrdered[Any]:
    """The rows :func:`~stream_app.data.sources.read_events` returns, in its order, streamed.

    ``errors`` as for ``read_events``; ``chunk_rows`` rows are sorted in memory at a time;
    ``spill_dir`` is where the temporary folder goes; ``fan_in`` run files are merged at once.
    Raises ``ValueError`` for a bad ``chunk_rows`` or ``fan_in``, and what
    :func:`~stream_app.data.sources.iter_events` raises for an unknown format or a missing file,
    all at call time; a malformed row (``errors="raise"``) raises :class:`SourceError` at the
    first ``next()`` or ``len()``, before any row comes out, as ``read_events`` raises it.
    """
    return TimeOrdered(path, fmt, errors=errors, chunk_rows=chunk_rows, spill_dir=spill_dir, fan_in=fan_in)

"""Which files of the refund message archive a run must read: the archive against the manifest.

The manifest (``state.refund_ledger_files``) has, per file whose yield the warehouse holds, its
relative path, size, mtime (ns) and the sha256 of its bytes. ``plan(found, manifest)`` sorts the
files of the archive (``RefundLedgerResource.scan``) into:

- **unchanged**: same size and mtime as in the manifest; not opened at all;
- **touched**: size or mtime differ but the sha256 is the manifest's (a ``touch``, a copy that
  kept the content): nothing is parsed, the manifest takes the new size and mtime;
- **to read**: new files, and files whose content hash differs: parsed again, their old yield
  replaced;
- **removed**: in the manifest, no longer in the archive: their yield is forgotten.

Known limit (as for any size + mtime test): a file rewritten with the same size within the same
mtime tick is taken as unchanged; ``mtime_ns`` makes that tick as small as the file system allows.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from pipelines.errors import SourceUnavailable

_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileState:
    """A file as the manifest knows it (or as it is on disk now)."""

    path: str                        # relative to the archive, '/' separated
    size: int
    mtime_ns: int
    sha256: str


@dataclass
class Plan:
    unchanged: list[FileState] = field(default_factory=list)
    touched: list[FileState] = field(default_factory=list)               # the new size / mtime
    to_read: list[tuple[FileState, Path]] = field(default_factory=list)  # in relative path order
    removed: list[str] = field(default_factory=list)
    new: int = 0                                                         # of to_read, not in the manifest


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise SourceUnavailable(f"refund ledger file not readable: {path}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def plan(found: Iterable[tuple[str, Path]], manifest: Mapping[str, FileState]) -> Plan:
    """Compare the archive (``(relative path, path)`` pairs) with the manifest."""
    out = Plan()
    seen: set[str] = set()
    for name, path in found:
        seen.add(name)
        try:
            st = path.stat()
        except OSError as exc:
            raise SourceUnavailable(f"refund ledger file not readable: {path}: {exc.strerror or exc}") from None
        known = manifest.get(name)
        if known is not None and (known.size, known.mtime_ns) == (st.st_size, st.st_mtime_ns):
            out.unchanged.append(known)
            continue
        state = FileState(name, st.st_size, st.st_mtime_ns, sha256_of(path))
        if known is not None and known.sha256 == state.sha256 and known.size == state.size:
            out.touched.append(state)
        else:
            out.to_read.append((state, path))
            out.new += known is None
    out.removed = sorted(set(manifest) - seen)
    return out

"""Fetch the official CIFAR-10 archive with its checksum checked, and unpack archives safely."""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tarfile
import tempfile
import urllib.request
import zlib
from pathlib import Path

from ..atomic import atomic_write
from .formats import DataError

# The python-batches archive and the md5 its authors publish (https://www.cs.toronto.edu/~kriz/cifar.html).
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"


class ChecksumError(DataError):
    pass


def download(url: str, dest: Path, md5: str, timeout: float = 60) -> Path:
    """Download ``url`` to ``dest``; the file appears (atomically) only if its md5 matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.md5(usedforsecurity=False)
    with atomic_write(dest) as out, urllib.request.urlopen(url, timeout=timeout) as response:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
        if digest.hexdigest() != md5:
            raise ChecksumError(f"{url}: md5 {digest.hexdigest()} does not match the published {md5}; nothing was kept")
    return dest


def _inside(path: str) -> bool:
    """Whether a relative archive path stays inside the folder it is extracted into."""
    return not posixpath.isabs(path) and not posixpath.normpath(path).startswith("..") and "\\" not in path


def check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    if not _inside(name) or ".." in name.split("/"):
        raise DataError(f"unsafe archive member {name!r}: it would be written outside the folder")
    if member.issym() and not _inside(posixpath.join(posixpath.dirname(name), member.linkname)):
        raise DataError(f"unsafe archive member {name!r}: a link to {member.linkname!r}, outside the folder")
    if member.islnk() and not _inside(member.linkname):
        raise DataError(f"unsafe archive member {name!r}: a hard link to {member.linkname!r}, outside the folder")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise DataError(f"unsafe archive member {name!r}: a device or fifo")


def safe_extract(archive: Path, dest: Path) -> list[Path]:
    """Unpack ``archive`` into ``dest``: every member is checked before anything is written,
    extraction goes to a scratch folder inside ``dest`` (tarfile's "data" filter on top of our
    checks), and the top-level entries move into place only once all of it unpacked.
    Returns the new top-level paths.  A corrupt, truncated or unsafe archive writes nothing."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()  # reads to the end: a truncated archive fails here
            for member in members:
                check_member(member)
            scratch = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
            try:
                tar.extractall(scratch, members=members, filter="data")
                moved = []
                for entry in sorted(scratch.iterdir()):
                    target = dest / entry.name
                    if target.exists() or target.is_symlink():
                        raise DataError(f"extracting {archive}: {target} already exists; move it away first")
                    os.replace(entry, target)
                    moved.append(target)
                return moved
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        if isinstance(e, tarfile.FilterError):
            raise DataError(f"unsafe archive {archive}: {e}") from e
        raise DataError(f"{archive} is corrupt or truncated ({type(e).__name__}: {e}); delete it and fetch it again") from e

"""A file that carries the SHA-256 of its content, checked before the content is used.

``torch.load`` does not check the CRCs of its zip container: 4 KiB of garbage in the middle
of a checkpoint loads "fine" and puts NaN into the optimizer state. The layout here is

    MAGIC (8 bytes) | payload | SHA-256 of the payload (32 bytes) | payload length (8 bytes,
    little-endian) | MAGIC

so a file that is cut short, overwritten in part or not of this kind at all is refused.
Writing streams the payload through the hash (no second copy in memory) into
:func:`~imbal_estimators.io.atomic.atomic_write`.
"""

import hashlib
import struct

from .atomic import atomic_write
from .reader import UnreadableFileError, read_bytes

MAGIC = b"IMBALCK2"
#: the largest checksummed file read (a checkpoint: weights plus optimizer state)
MAX_BYTES = 32 << 30
_TRAILER = struct.Struct("<32sQ8s")


class ChecksumError(ValueError):
    """The file is not a checksummed file, or its content does not match its checksum."""


class _HashingWriter:
    """A write-only file that hashes what passes through and keeps the first OSError
    (torch.save turns it into an opaque RuntimeError)."""

    def __init__(self, file):
        self.file = file
        self.sha = hashlib.sha256()
        self.length = 0
        self.error = None

    def write(self, data):
        data = bytes(data)
        try:
            self.file.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise
        self.sha.update(data)
        self.length += len(data)
        return len(data)

    def flush(self):
        self.file.flush()


def write_checksummed(path, write_payload):
    """Write ``path`` atomically: ``write_payload(file)`` writes the payload.

    Raises
    ------
    OSError
        The write failed (a full disk, a missing directory); the first ``OSError`` the
        file raised is re-raised even when ``write_payload`` wrapped it.
    """

    def write(file):
        file.write(MAGIC)
        writer = _HashingWriter(file)
        try:
            write_payload(writer)
        except Exception:
            if writer.error is not None:
                raise writer.error from None
            raise
        file.write(_TRAILER.pack(writer.sha.digest(), writer.length, MAGIC))

    atomic_write(path, write)


def read_checksummed(path):
    """The payload of ``path`` after checking its length and SHA-256.

    Raises
    ------
    ChecksumError
        With the reason (also for a FIFO, a device or a file over ``MAX_BYTES``, refused
        before reading); ``OSError`` when the file cannot be read.
    """
    try:
        data = read_bytes(path, MAX_BYTES, what="checksummed file")
    except UnreadableFileError as exc:
        raise ChecksumError(str(exc)) from None
    if len(data) < len(MAGIC) + _TRAILER.size or not data.startswith(MAGIC):
        raise ChecksumError("it does not start like a checksummed file of imbal_estimators")
    digest, length, end = _TRAILER.unpack(data[-_TRAILER.size :])
    payload = data[len(MAGIC) : -_TRAILER.size]
    if end != MAGIC or length != len(payload):
        raise ChecksumError(
            f"it is cut short or overwritten ({len(payload)} bytes of payload where its end "
            f"says {length})"
        )
    if hashlib.sha256(payload).digest() != digest:
        raise ChecksumError("its content does not match its SHA-256 (the file is damaged)")
    return payload

"""What an image can do beyond the core, declared by the interfaces it implements.

Every image serves the core (`docker_image.StreamingImage`): manifest,
config and blob streams. Some can do more, cheaply: hand out the local
file a blob lies in, a layer's tar without inflating it, or the placeholder
of a foreign layer. A source declares that by subclassing the interface
here; a sink asks with `image.capability(Interface)`, which gives the
object serving it or None, so views (`docker_image.Delegate`) pass on what
their image declares. Nothing is guessed from which methods a class
happens to define.
"""
import abc
import io
from typing import BinaryIO, NamedTuple, Optional


class FileRange(NamedTuple):
    """SIZE bytes at OFFSET of the local file PATH.

    DIFF_ID, when the image knows it, is the sha256 of the tar those bytes
    inflate to, as the image measured it while hashing them. PRIVATE means
    PATH is the image's own temporary file, which sinks may hard-link
    rather than copy (a user's file is never linked into an output).
    CHECKED means the image hashed these bytes against the blob's digest;
    an unchecked range (a layer file a user named) may be sent to a
    registry, which checks it, but never placed in an output as it is.
    """
    path: str
    offset: int
    size: int
    diff_id: Optional[str] = None
    private: bool = False
    checked: bool = True

    def open(self) -> io.BufferedReader:
        """A reader over just these bytes (EOFError if the file is shorter).

        Its buffer is small: large reads go straight into the caller's buffer.
        """
        return io.BufferedReader(_RangeReader(self))


class _RangeReader(io.RawIOBase):
    """Reads a FileRange through a handle of its own."""

    def __init__(self, where: FileRange):
        super().__init__()
        self._where = where
        self._file = open(where.path, 'rb')  # pylint: disable=consider-using-with
        self._file.seek(where.offset)
        self._left = where.size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[:min(len(buffer), self._left)]
        n = self._file.readinto(view)
        if not n:
            raise EOFError('%s ends %d bytes before the %d bytes at %d'
                           % (self._where.path, self._left, self._where.size,
                              self._where.offset))
        self._left -= n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


class BlobFiles(abc.ABC):
    """Blobs that lie in local files, which sinks copy inside the kernel
    (save.py), link, or hand to sendfile (docker_session.py)."""

    @abc.abstractmethod
    def blob_range(self, digest: str) -> Optional[FileRange]:
        """Where blob DIGEST lies in a local file, or None (read the stream).

        A range the image hashed (`checked`) may carry the diff_id it
        measured in the same pass.
        """


class TarFiles(abc.ABC):
    """Layer tars that lie in local files, already hashed: sinks that write
    tars (save.uncompressed) link or copy them instead of inflating."""

    @abc.abstractmethod
    def uncompressed_range(self, digest: str) -> Optional[FileRange]:
        """Where the tar of blob DIGEST lies, hashed to the range's diff_id;
        None means: inflate the blob."""


class UncompressedLayers(abc.ABC):
    """Layer tars served by diff_id, straight from where the source holds
    them: also layers given only as tars (flatten's input), which no blob
    of the manifest names."""

    @abc.abstractmethod
    def uncompressed_layer_stream(self, diff_id: str) -> BinaryIO:
        """A reader over the layer tar of DIFF_ID; close it when done."""


class StandIns(abc.ABC):
    """Placeholders held in place of foreign layers the image lacks."""

    @abc.abstractmethod
    def stand_in(self, digest: str, compressed: bool) -> Optional[BinaryIO]:
        """What the image holds in place of foreign layer DIGEST, if it lacks it.

        A reader (to close) over the placeholder, as a gzip blob when
        COMPRESSED, else as a tar: what the fast layout writes for such a
        layer, as upstream wrote it. None for every blob the image holds.
        """


ALL = (BlobFiles, TarFiles, UncompressedLayers, StandIns)

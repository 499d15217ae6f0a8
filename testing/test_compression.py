"""compression: codec detection, streaming inflate of gzip and zstd, digests.

zstd data is made by the `zstd` command (Debian's zstd package). Both ways
of inflating it are exercised: a module with the `compression.zstd` API
(the standard library on Python 3.14+, else the backports.zstd package)
and the `zstd` command, which is what a .par uses before Python 3.14.
gzip is read with both inflaters: zlib-ng (requirements.txt) and the
standard library's zlib.
"""
import gzip
import hashlib
import io
import json
import random
import re
import subprocess
import time
import zlib

import pytest

from containerregistry.client.v2_2 import compression
from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import docker_http
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import inflater
from containerregistry.testing import images


def sha256(data: bytes) -> str:
    return 'sha256:' + hashlib.sha256(data).hexdigest()


def zstd(data: bytes, *args: str) -> bytes:
    return subprocess.run(['zstd', '-q', '-c'] + list(args), input=data,
                          check=True, capture_output=True).stdout


TAR = images.make_layer(7, 400_000, 'text')
BIG = b''.join(random.Random(i).randbytes(1 << 20) for i in range(24))


class Tracked(io.BytesIO):
    """BytesIO that remembers being closed (closed BytesIO can't say why)."""

    was_closed = False

    def close(self) -> None:
        self.was_closed = True
        super().close()


class Dribble:
    """A reader returning at most N bytes per read."""

    def __init__(self, data: bytes, n: int):
        self._f = io.BytesIO(data)
        self._n = n
        self.closed = False

    def read(self, amt: int = -1) -> bytes:
        return self._f.read(self._n if amt is None or amt < 0
                            else min(amt, self._n))

    def close(self) -> None:
        self.closed = True


@pytest.fixture(params=['module', 'command'])
def backend(request, monkeypatch):
    """Forces one way of inflating zstd."""
    if request.param == 'module':
        module = compression._zstd_module()
        assert module is not None, (
            'no zstd module: needs Python 3.14+ or the backports.zstd '
            'package (requirements-test.txt)')
        assert compression.zstd_support() == module.__name__
    else:
        monkeypatch.setattr(compression, '_zstd_module', lambda: None)
        assert compression.zstd_support().endswith('/zstd')
    return request.param


@pytest.fixture(params=['zlib-ng', 'zlib'])
def gzip_backend(request, monkeypatch):
    """Forces one inflater for gzip."""
    if request.param == 'zlib':
        monkeypatch.setenv(inflater.ENV, 'zlib')
    else:
        monkeypatch.delenv(inflater.ENV, raising=False)
    inflater.reset()
    assert inflater.name(inflater.module()) == request.param
    yield request.param
    inflater.reset()


def read_all(reader, size: int = 1 << 16) -> bytes:
    out = []
    with reader:
        while True:
            chunk = reader.read(size)
            if not chunk:
                return b''.join(out)
            out.append(chunk)


def test_codec_of():
    assert compression.codec_of(gzip.compress(b'x')) == compression.GZIP
    assert compression.codec_of(zstd(b'x')) == compression.ZSTD
    assert compression.codec_of(TAR) is None
    assert compression.codec_of(b'') is None
    assert compression.codec_of(b'\x28\xb5\x2f') is None
    assert compression.is_compressed(gzip.compress(b'x'))
    assert not compression.is_compressed(zstd(b'x'))


@pytest.mark.parametrize('codec', [None, 'gzip', 'zstd'])
def test_decompress_stream(backend, gzip_backend, codec):
    blob = {None: TAR, 'gzip': gzip.compress(TAR),
            'zstd': zstd(TAR)}[codec]
    reader, found = compression.decompress_stream(io.BytesIO(blob))
    assert found == codec
    assert read_all(reader) == TAR
    # Tiny reads from the source, tiny reads from the result.
    reader, found = compression.decompress_stream(Dribble(blob, 3))
    assert found == codec
    assert read_all(reader, 1000) == TAR
    reader, was = compression.gunzip_if_compressed(io.BytesIO(blob))
    assert was is (codec is not None)
    assert read_all(reader) == TAR


def test_zstd_frames_checksums_and_levels(backend):
    halves = [TAR[:100_000], TAR[100_000:]]
    multi = zstd(halves[0]) + zstd(halves[1], '-19', '--no-check')
    reader, _ = compression.decompress_stream(io.BytesIO(multi))
    assert read_all(reader) == TAR
    reader, _ = compression.decompress_stream(io.BytesIO(zstd(b'')))
    assert read_all(reader) == b''


def test_zstd_large_stream(backend):
    blob = zstd(BIG, '-1')
    reader, _ = compression.decompress_stream(io.BytesIO(blob))
    h = hashlib.sha256()
    n = 0
    with reader:
        for chunk in iter(lambda: reader.read(1 << 20), b''):
            h.update(chunk)
            n += len(chunk)
    assert (n, 'sha256:' + h.hexdigest()) == (len(BIG), sha256(BIG))


@pytest.mark.parametrize('damage', ['truncated', 'corrupt', 'bad-checksum'])
def test_bad_zstd_raises_compression_error(backend, damage):
    blob = bytearray(zstd(TAR))
    if damage == 'truncated':
        blob = blob[:len(blob) // 2]
    elif damage == 'corrupt':
        blob[20:60] = b'\xff' * 40
    else:
        blob[-1] ^= 0xff  # the frame's content checksum
    reader, codec = compression.decompress_stream(io.BytesIO(bytes(blob)))
    assert codec == compression.ZSTD
    with pytest.raises(compression.CompressionError) as exc:
        read_all(reader)
    assert str(exc.value).startswith('bad zstd data: ')
    assert '\n' not in str(exc.value)


def test_source_errors_surface_through_zstd(backend):
    blob = zstd(TAR)
    checked = docker_digest.VerifyingReader(io.BytesIO(blob),
                                            'sha256:' + '0' * 64, 'the blob')
    reader, _ = compression.decompress_stream(checked)
    with pytest.raises(docker_digest.DigestMismatchedError,
                       match='digest mismatch for the blob'):
        read_all(reader)


def test_closing_early_stops_and_closes_the_source(backend):
    source = Tracked(zstd(BIG, '-1'))
    reader, _ = compression.decompress_stream(source)
    assert len(reader.read(1 << 20)) > 0
    start = time.monotonic()
    reader.close()
    assert time.monotonic() - start < 5
    assert source.was_closed


def test_no_zstd_support_is_a_clear_error(monkeypatch):
    source = Tracked(zstd(TAR))
    monkeypatch.setattr(compression, '_zstd_module', lambda: None)
    monkeypatch.setenv('PATH', '/nonexistent')
    assert compression.zstd_support() is None
    with pytest.raises(compression.ZstdUnavailableError) as exc:
        compression.decompress_stream(source)
    assert str(exc.value) == (
        'the layer is zstd-compressed; reading it needs Python 3.14 or later, '
        'the backports.zstd package, or the zstd command on PATH')
    assert source.was_closed
    # Other codecs need nothing.
    reader, _ = compression.decompress_stream(io.BytesIO(gzip.compress(TAR)))
    assert read_all(reader) == TAR


@pytest.mark.parametrize('codec', [None, 'gzip', 'zstd'])
def test_digest_layer(backend, codec):
    blob = {None: TAR, 'gzip': gzip.compress(TAR, mtime=0),
            'zstd': zstd(TAR)}[codec]
    source = Tracked(blob)
    found = compression.digest_layer(source)
    assert found == compression.LayerDigests(sha256(blob), len(blob),
                                             sha256(TAR), codec)
    assert source.was_closed
    # TAR_OUT receives the very tar that was hashed.
    tar_out = io.BytesIO()
    assert compression.digest_layer(Tracked(blob), tar_out) == found
    assert tar_out.getvalue() == TAR


def test_digest_layer_checks_gzip_crc_and_length(gzip_backend):
    blob = bytearray(gzip.compress(TAR))
    blob[-8] ^= 1
    with pytest.raises(gzip.BadGzipFile, match='CRC check failed'):
        compression.digest_layer(io.BytesIO(bytes(blob)))
    blob = gzip.compress(TAR)
    with pytest.raises(EOFError):
        compression.digest_layer(io.BytesIO(blob[:-20]))


@pytest.mark.parametrize('case', ['members', 'padding', 'garbage', 'truncated-second',
                                  'bad-block', 'big'])
def test_digest_layer_reads_gzip_as_gzipfile_does(gzip_backend, case):
    """The one-loop gzip path accepts and refuses what gzip.GzipFile does."""
    big = TAR * 12  # ~5 MB: output in several bounded pieces
    one, two = gzip.compress(TAR[:3000], mtime=0), gzip.compress(TAR[3000:], mtime=0)
    blob = {'members': one + two,
            'padding': one + bytes(1000) + two + bytes(3),
            'garbage': one + b'not gzip',
            'truncated-second': one + two[:len(two) // 2],
            # Block type 3 does not exist: zlib.error, from either inflater.
            'bad-block': one[:10] + b'\xff' * 20,
            'big': gzip.compress(big, compresslevel=1, mtime=0)}[case]
    try:
        expected = gzip.decompress(blob)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        # The same words (GzipFile adds the bytes it found in parentheses).
        with pytest.raises(type(e), match=re.escape(str(e).split(' (')[0])):
            compression.digest_layer(io.BytesIO(blob))
        return
    assert expected == (big if case == 'big' else TAR)
    want = compression.LayerDigests(sha256(blob), len(blob), sha256(expected), 'gzip')
    assert compression.digest_layer(io.BytesIO(blob)) == want
    # A reader without readinto, in small pieces.
    assert compression.digest_layer(Dribble(blob, 1000)) == want


def test_gzip_stream_hashes_its_input():
    out = io.BytesIO()
    tar_hash = hashlib.sha256()
    digest, size = compression.gzip_stream(Dribble(TAR, 5000), out, 9,
                                           tar_hash)
    expected = gzip.compress(TAR, compresslevel=9, mtime=compression.GZIP_MTIME)
    assert out.getvalue() == expected
    assert (digest, size) == (sha256(expected), len(expected))
    assert 'sha256:' + tar_hash.hexdigest() == sha256(TAR)


class _MemoryImage(docker_image.DockerImage):
    """An image held in memory: one layer blob, as given."""

    def __init__(self, blob: bytes, media_type: str):
        self._blob = blob
        self._config = json.dumps({'rootfs': {'diff_ids': [sha256(TAR)]}})
        self._manifest = json.dumps({
            'schemaVersion': 2, 'mediaType': docker_http.OCI_MANIFEST_MIME,
            'config': {'digest': sha256(self._config.encode()), 'size': 1,
                       'mediaType': docker_http.OCI_CONFIG_JSON_MIME},
            'layers': [{'digest': sha256(blob), 'size': len(blob),
                        'mediaType': media_type}]})

    def manifest(self) -> str:
        return self._manifest

    def config_file(self) -> str:
        return self._config

    def blob(self, digest: str) -> bytes:
        assert digest == sha256(self._blob)
        return self._blob

    def __enter__(self):
        return self

    def __exit__(self, *unused):
        pass


def test_zstd_layer_through_the_image_interface(backend):
    blob = zstd(TAR)
    image = _MemoryImage(blob, docker_http.OCI_ZSTD_LAYER_MIME)
    [digest] = image.fs_layers()
    assert read_all(image.uncompressed_blob_stream(digest)) == TAR
    assert image.digest_to_diff_id(digest) == sha256(TAR)


def test_zstd_member_of_a_tarball(backend, tmp_path):
    import tarfile
    blob = zstd(TAR)
    config = json.dumps({'rootfs': {'type': 'layers',
                                    'diff_ids': [sha256(TAR)]}}).encode()
    path = str(tmp_path / 'z.tar')
    with tarfile.open(path, 'w') as tar:
        for name, data in (('c.json', config), ('l/layer.tar', blob),
                           ('manifest.json', json.dumps([{
                               'Config': 'c.json',
                               'Layers': ['l/layer.tar']}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with docker_image.FromTarball(path) as img:
        [digest] = img.fs_layers()
        gz = img.blob(digest)
        assert gz == gzip.compress(TAR, compresslevel=9,
                                   mtime=compression.GZIP_MTIME)
        assert img.uncompressed_blob_size(digest) is None
        assert read_all(img.uncompressed_blob_stream(digest)) == TAR
        assert img.uncompressed_layer(sha256(TAR)) == TAR


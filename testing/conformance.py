"""The conformance check every image source's tests run: `check_image`.

It reads an image only through the public contract (`docker_image`, the
interfaces of `capabilities`) and checks what any sink relies on: digests
and sizes against the manifest, diff_ids against the uncompressed bytes,
streams agreeing with bytes, declared capabilities agreeing with both,
the image usable again after its context manager was re-entered, and,
given CORRUPT, a damaged blob refused.
"""
import contextlib
import hashlib
import json
from typing import Callable, Dict, List, Optional

import pytest

from containerregistry.client.v2_2 import capabilities
from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import docker_http
from containerregistry.client.v2_2 import docker_image

_CHUNK = 1 << 16


def _sha256(data: bytes) -> str:
    return 'sha256:' + hashlib.sha256(data).hexdigest()


def _drain(reader) -> bytes:
    """What READER gives in small reads (as sinks read), then closes it."""
    parts = []
    with contextlib.closing(reader):
        for chunk in iter(lambda: reader.read(_CHUNK), b''):
            parts.append(chunk)
    return b''.join(parts)


def _layers(manifest: dict) -> List[dict]:
    return [layer for layer in manifest['layers']
            if layer.get('mediaType')
            not in docker_http.NON_DISTRIBUTABLE_LAYER_MIMES]


def _check_config(image: docker_image.DockerImage, manifest: dict) -> None:
    config = image.config_file().encode('utf8')
    descriptor = manifest['config']
    assert _sha256(config) == descriptor['digest'] == image.config_blob()
    assert len(config) == descriptor['size']
    assert image.blob(descriptor['digest']) == config
    assert image.blob_size(descriptor['digest']) == len(config)


def _check_ranges(image: docker_image.DockerImage, digest: str, blob: bytes,
                  tar: bytes, diff_id: str) -> None:
    """Declared capabilities give the very bytes the streams give."""
    files = image.capability(capabilities.BlobFiles)
    found = files.blob_range(digest) if files else None
    if found is not None:
        with found.open() as f:
            assert f.read() == blob, digest
        assert found.size == len(blob)
        assert found.diff_id in (None, diff_id)
    tars = image.capability(capabilities.TarFiles)
    kept = tars.uncompressed_range(digest) if tars else None
    if kept is not None:
        with kept.open() as f:
            assert f.read() == tar, digest
        assert kept.diff_id == diff_id
    layers = image.capability(capabilities.UncompressedLayers)
    if layers is not None:
        assert _drain(layers.uncompressed_layer_stream(diff_id)) == tar
    assert image.uncompressed_blob_size(digest) in (None, len(tar))


def _check_layers(image: docker_image.DockerImage, manifest: dict) -> None:
    diff_ids = list(reversed(image.diff_ids()))
    digests = [layer['digest'] for layer in manifest['layers']]
    assert list(reversed(image.fs_layers())) == digests
    assert len(diff_ids) == len(digests)
    sizes: Dict[str, int] = image.descriptor_sizes()
    for layer in _layers(manifest):
        digest, size = layer['digest'], layer['size']
        diff_id = diff_ids[digests.index(digest)]
        blob = image.blob(digest)
        assert _sha256(blob) == digest
        assert len(blob) == size == sizes[digest] == image.blob_size(digest)
        assert _drain(image.blob_stream(digest)) == blob
        tar = image.uncompressed_blob(digest)
        assert _sha256(tar) == diff_id, digest
        assert _drain(image.uncompressed_blob_stream(digest)) == tar
        assert image.digest_to_diff_id(digest) == diff_id
        assert image.layer(diff_id) == blob
        assert image.uncompressed_layer(diff_id) == tar
        _check_ranges(image, digest, blob, tar, diff_id)


def _check_refused(image: docker_image.DockerImage, digest: str) -> None:
    """Reading DIGEST, now damaged, fails: as bytes and as a stream."""
    with pytest.raises(docker_digest.DigestMismatchedError):
        image.blob(digest)
    with pytest.raises(docker_digest.DigestMismatchedError):
        _drain(image.blob_stream(digest))


def check_image(image: docker_image.DockerImage,
                corrupt: Optional[Callable[[str], None]] = None) -> None:
    """Checks IMAGE (not yet entered) against the image contract.

    CORRUPT, when given, damages the stored bytes of the layer blob whose
    digest it is passed (same length, other bytes); it is called last,
    once, and reading that blob must then fail.
    """
    with image as entered:
        assert entered is image
        text = image.manifest()
        manifest = json.loads(text)
        assert image.digest() == _sha256(text.encode('utf8'))
        assert image.media_type() == manifest.get(
            'mediaType', image.media_type())
        _check_config(image, manifest)
        _check_layers(image, manifest)
        assert image.blob_set() == set(
            [manifest['config']['digest']]
            + [layer['digest'] for layer in manifest['layers']])
    # Entered again, it serves the same image.
    with image:
        assert image.manifest() == text
        _check_config(image, manifest)
        layers = _layers(manifest)
        if layers:
            first = layers[0]['digest']
            assert _sha256(image.blob(first)) == first
            if corrupt is not None:
                corrupt(first)
                _check_refused(image, first)

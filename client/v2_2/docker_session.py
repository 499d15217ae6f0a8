"""Pushing images to (and deleting them from) a registry.

Blobs the registry already has are skipped (HEAD), once their size is
seen to be the one the manifest gives them; blobs in another
repository of the same registry are mounted; the rest stream from the image
in one PUT after the POST, falling back to chunked PATCHes where a registry
refuses that. The manifest goes last, once every blob is in place, so a
failed push never leaves a tag pointing at missing blobs. An upload or a
manifest PUT cut off, throttled (429) or failed by the server (5xx) is
started again after a pause (Retry-After when given), as `retry_policy`
says.
"""
import functools
import io
import logging
import urllib.parse
from typing import (BinaryIO, Callable, Optional, Sequence, Tuple, TypeVar,
                    Union, cast)

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v2_2 import capabilities
from containerregistry.client.v2_2 import docker_http
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import docker_image_list
from containerregistry.client.v2_2 import parallel
from containerregistry.client.v2_2 import progress
from containerregistry.transport import retry_policy

# Chunk size of PATCH uploads, unless the registry asks for more.
DEFAULT_CHUNK_SIZE = 16 << 20
# Errors a chunked upload would meet again: report them, do not fall back.
_FINAL_ERRORS = frozenset(['DIGEST_INVALID', 'SIZE_INVALID', 'UNAUTHORIZED',
                           'DENIED', 'NAME_UNKNOWN', 'NAME_INVALID'])

_EMPTY_BLOB = ('sha256:e3b0c44298fc1c149afbf4c8996fb924'
               '27ae41e4649b934ca495991b7852b855')

_Image = Union[docker_image.DockerImage, docker_image_list.DockerImageList]
_T = TypeVar('_T')


def _retrying(what: str, action: Callable[[], _T]) -> _T:
    """ACTION's result; it runs again from its start after a transient
    failure (a dropped connection, 408, 429, 5xx), as `retry_policy` says."""
    return retry_policy.retried(what, action)


class _Chunk(io.RawIOBase):
    """At most SIZE bytes of READER, as a file-like body for one PATCH."""

    def __init__(self, reader, size: int):
        super().__init__()
        self._reader = reader
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[:min(len(buffer), self._left)]
        data = self._reader.read(len(view))
        view[:len(data)] = data
        self._left -= len(data)
        return len(data)


class _Counted:
    """A blob body that counts what is read from it in a Transfer.

    A file body the transport sends by sendfile is counted by the seeks
    that follow each slice sent; a seek back (a request sent again) counts
    from there.
    """

    def __init__(self, body, transfer: progress.Transfer):
        self._body = body
        self._transfer = transfer
        self._start = body.tell() if _seekable(body) else 0
        transfer.restart()

    def read(self, size: int = -1) -> bytes:
        data = self._body.read(size)
        self._transfer.add(len(data))
        return data

    def readinto(self, buffer) -> int:
        n = self._body.readinto(buffer)
        self._transfer.add(n or 0)
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._body.seek(offset, whence)
        self._transfer.moved = position - self._start
        return position

    def __getattr__(self, name: str):
        return getattr(self._body, name)

    def __enter__(self) -> '_Counted':
        return self

    def __exit__(self, *unused) -> None:
        self._body.close()


def _seekable(body) -> bool:
    return bool(getattr(body, 'seekable', lambda: False)())


class BlobSizeError(ValueError):
    """The registry's blob under a digest is not as long as the manifest says.

    Skipping it would publish a manifest that no pull can satisfy: the
    image's content for that digest is not the blob the digest names (a
    layer file that does not match its digest file, say).
    """

    def __init__(self, digest: str, listed: int, found: int):
        super().__init__('the registry already has %s as %d bytes, but the '
                         'image gives it %d bytes' % (digest, found, listed))
        self.digest = digest
        self.listed = listed
        self.found = found


def _extract_digest(location: str, digest: str) -> str:
    """LOCATION with `digest=DIGEST` merged into its query."""
    parts = urllib.parse.urlsplit(location)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, v) for k, v in query if k != 'digest'] + [('digest', digest)]
    return urllib.parse.urlunsplit(
        parts._replace(query=urllib.parse.urlencode(query)))


class Push:
    """A push session to one repository: `with Push(...) as s: s.upload(img)`."""

    def __init__(self, name: Union[docker_name.Tag, docker_name.Digest],
                 creds: docker_creds.Provider, transport,
                 mount: Optional[Sequence[docker_name.Repository]] = None,
                 threads: int = 1,
                 reporter: Optional[progress.Reporter] = None):
        self._name = name
        # Mounting needs pull access to the source; other registries'
        # repositories cannot be mounted from, so they are left out.
        self._mount = [m for m in (mount or [])
                       if m.registry == name.registry
                       and m.repository != name.repository]
        self._transport = docker_http.Transport(
            name, creds, transport, docker_http.PUSH,
            extra_scopes=[m.scope(docker_http.PULL) for m in self._mount])
        self._threads = threads
        self._reporter = reporter or progress.Reporter()

    def name(self) -> docker_name.Registry:
        return self._name

    def _base_url(self) -> str:
        return self._transport.base_url()

    def _get_absolute_url(self, location: str) -> str:
        return urllib.parse.urljoin(self._base_url(), location)

    def _url(self, suffix: str) -> str:
        return '{base}/v2/{repository}/{suffix}'.format(
            base=self._base_url(), repository=self._name.repository,
            suffix=suffix)

    def blob_exists(self, digest: str) -> bool:
        return self._stat_blob(digest)[0]

    def _stat_blob(self, digest: str) -> Tuple[bool, Optional[int]]:
        """Whether the repository has DIGEST, and its size if the HEAD says.

        A zero Content-Length for a digest that is not the empty blob's is
        taken as the registry not saying.
        """
        resp, unused_content = self._transport.Request(
            self._url('blobs/' + digest), method='HEAD',
            accepted_codes=[200, 404])
        if resp.status != 200:
            return False, None
        try:
            size = int(resp.get('content-length', ''))
        except ValueError:
            return True, None
        if size == 0 and digest != _EMPTY_BLOB:
            return True, None
        return True, size

    def manifest_exists(self, image: _Image) -> bool:
        resp, unused_content = self._transport.Request(
            self._url('manifests/' + image.digest()),
            accepted_codes=[200, 404], accepted_mimes=[image.media_type()])
        return resp.status == 200

    def _remote_tag_digest(self, tag: docker_name.Tag,
                           image: _Image) -> Optional[str]:
        resp, unused_content = self._transport.Request(
            self._url('manifests/' + tag.tag),
            accepted_codes=[200, 404], accepted_mimes=[image.media_type()])
        if resp.status != 200:
            return None
        return resp.get('docker-content-digest')

    def _blob_body(self, image: docker_image.DockerImage, digest: str,
                   transfer: progress.Transfer
                   ) -> Tuple[Union[io.BytesIO, _Counted], int]:
        """A reader over the blob, counted in TRANSFER, and its size; the
        config comes as text.

        A blob the image holds in a local file (`capabilities.BlobFiles`)
        is read from there directly, so the transport can hand the file to
        the kernel; the registry checks its digest.
        """
        if digest == image.config_blob():
            data = image.config_file().encode('utf8')
            return io.BytesIO(data), len(data)
        files = image.capability(capabilities.BlobFiles)
        found = files.blob_range(digest) if files else None
        if found is not None:
            f = open(found.path, 'rb')  # pylint: disable=consider-using-with
            f.seek(found.offset)
            return _Counted(f, transfer), found.size
        return (_Counted(image.blob_stream(digest), transfer),
                image.blob_size(digest))

    def _start_upload(self, digest: str) -> Tuple[Optional[str], int]:
        """POSTs an upload (mounting when possible).

        Returns (upload location, minimum chunk size), or (None, 0) when the
        blob was mounted and nothing is left to send.
        """
        url = self._url('blobs/uploads/')
        if self._mount:
            params = [('mount', digest)] + [
                ('from', m.repository) for m in self._mount]
            url += '?' + urllib.parse.urlencode(params)
        resp, unused_content = self._transport.Request(
            url, method='POST', body=None, accepted_codes=[201, 202])
        if resp.status == 201:
            return None, 0
        try:
            min_chunk = int(resp.get('oci-chunk-min-length', '0'))
        except ValueError:
            min_chunk = 0
        if not resp.get('location'):
            raise docker_http.BadStateException(
                'POST %s: %d without a Location for the upload'
                % (url.split('?', 1)[0], resp.status))
        return self._get_absolute_url(resp['location']), min_chunk

    def _put_whole(self, location: str, digest: str, body,
                   size: int) -> bool:
        """Sends the blob in the PUT that closes the upload; False if refused."""
        resp, content = self._transport.Request(
            _extract_digest(location, digest), method='PUT', body=body,
            content_type='application/octet-stream',
            headers={'content-length': str(size)})
        if resp.status in (201, 204):
            return True
        codes = set(d.code for d in docker_http.V2DiagnosticException(
            resp, content).diagnostics)
        if (resp.status in (400, 404, 405, 411, 413, 416, 501)
                and not codes & _FINAL_ERRORS):
            logging.info('Registry refused a single PUT of %s (%d); '
                         'sending chunks', digest, resp.status)
            return False
        raise docker_http.V2DiagnosticException(resp, content, location, 'PUT')

    def _patch_chunks(self, location: str, digest: str, body, size: int,
                      min_chunk: int) -> None:
        chunk_size = max(DEFAULT_CHUNK_SIZE, min_chunk)
        offset = 0
        while offset < size or size == 0:
            length = min(chunk_size, size - offset)
            headers = {'content-length': str(length)}
            if length:
                headers['content-range'] = '%d-%d' % (offset,
                                                      offset + length - 1)
            resp, unused_content = self._transport.Request(
                location, method='PATCH',
                # A raw reader, which the transport reads as it does files.
                body=cast(BinaryIO, _Chunk(body, length)),
                content_type='application/octet-stream', headers=headers,
                accepted_codes=[202, 204])
            offset += length
            location = self._get_absolute_url(resp.get('location', location))
            if size == 0:
                break
        self._transport.Request(
            _extract_digest(location, digest), method='PUT', body=None,
            accepted_codes=[201, 204])

    def _upload_one(self, image: docker_image.DockerImage, digest: str,
                    listed: Optional[int] = None,
                    transfer: Optional[progress.Transfer] = None) -> None:
        """Uploads DIGEST unless the registry has it at the LISTED size.

        A size check is all a skip can afford (the blob is not read): a
        blob whose size differs from the manifest's raises BlobSizeError.
        TRANSFER counts the bytes and is told the outcome, in one line.
        """
        transfer = transfer or progress.uncounted(digest)
        exists, size = self._stat_blob(digest)
        if exists:
            if listed is not None and size is not None and size != listed:
                raise BlobSizeError(digest, listed, size)
            transfer.done('Skipped', ': the registry has it')
            return
        mounted = _retrying('Upload of ' + digest,
                            lambda: self._upload_attempt(image, digest,
                                                         transfer))
        if mounted:
            transfer.done('Mounted', ' from another repository')
        else:
            transfer.done('Pushed')

    def _upload_attempt(self, image: docker_image.DockerImage, digest: str,
                        transfer: progress.Transfer) -> bool:
        """One upload of DIGEST from a new POST: a single PUT, else chunks.
        True if the registry mounted it instead."""
        location, min_chunk = self._start_upload(digest)
        if location is None:
            return True
        body, size = self._blob_body(image, digest, transfer)
        with body:
            if self._put_whole(location, digest, body, size):
                return False
        location, min_chunk = self._start_upload(digest)
        if location is None:
            return True
        body, size = self._blob_body(image, digest, transfer)
        with body:
            self._patch_chunks(location, digest, body, size, min_chunk)
        return False

    def _put_manifest(self, image: _Image, use_digest: bool = False) -> None:
        if use_digest or isinstance(self._name, docker_name.Digest):
            ref = image.digest()
        else:
            ref = self._name.tag
        body = image.manifest().encode('utf8')
        _retrying('PUT of manifest ' + ref, lambda: self._transport.Request(
            self._url('manifests/' + ref), method='PUT', body=body,
            content_type=image.media_type(), accepted_codes=[200, 201, 202]))

    def _upload_blobs(self, image: docker_image.DockerImage) -> None:
        digests = sorted(image.distributable_blob_set())
        sizes = image.descriptor_sizes()
        layers = [d for d in digests if d != image.config_blob()]
        self._reporter.expect(sizes.get(d) for d in layers)
        transfers = {d: self._reporter.transfer(d, sizes.get(d))
                     for d in layers}

        def upload(digest: str) -> None:
            self._upload_one(image, digest, sizes.get(digest),
                             transfers.get(digest))

        parallel.run_all([functools.partial(upload, d) for d in digests],
                         self._threads, name='push')

    def upload(self, image: _Image, use_digest: bool = False) -> None:
        """Pushes IMAGE (an image or a list) under this session's name.

        A list's children go first, by digest, then the list itself.
        """
        if self.manifest_exists(image):
            if isinstance(self._name, docker_name.Tag):
                if self._remote_tag_digest(self._name,
                                           image) == image.digest():
                    logging.info('Tag points to the right manifest, '
                                 'skipping push.')
                    return
                logging.info('Manifest exists, skipping blob uploads and '
                             'pushing manifest.')
            else:
                logging.info('Manifest exists, skipping upload.')
                return
        elif isinstance(image, docker_image_list.DockerImageList):
            for _, child in image:
                with child:
                    self.upload(child, use_digest=True)
        else:
            self._upload_blobs(image)
        self._put_manifest(image, use_digest=use_digest)

    def __enter__(self) -> 'Push':
        return self

    def __exit__(self, exception_type, unused_value, unused_traceback):
        if exception_type:
            logging.error('Error during upload of: %s', self._name)
            return
        logging.info('Finished upload of: %s', self._name)


def Delete(name: Union[docker_name.Tag, docker_name.Digest],
           creds: docker_creds.Provider, transport) -> None:
    """Deletes the manifest NAME refers to."""
    # Upstream asked for push,pull only; registries that check the OCI
    # `delete` action (distribution does) refuse a DELETE without it.
    docker_transport = docker_http.Transport(
        name, creds, transport, docker_http.DELETE,
        extra_scopes=[name.scope('delete')])
    ref = name.tag if isinstance(name, docker_name.Tag) else name.digest
    docker_transport.Request(
        '{base}/v2/{repository}/manifests/{ref}'.format(
            base=docker_transport.base_url(), repository=name.repository,
            ref=ref),
        method='DELETE', accepted_codes=[200, 202])

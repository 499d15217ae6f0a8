"""Pushing a v1 image over the v1 registry protocol.

A push is a session: entering `Push` asks the index (the registry) for a
write token and an endpoint, `upload()` sends each layer the endpoint lacks
(JSON, then layer, then checksum, base layer first), and leaving it moves
the tag and closes the session at the index. On an error nothing is tagged.
"""
import hashlib
import json
import logging
from typing import List, Optional

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v1 import docker_http
from containerregistry.client.v1 import docker_image


def checksum_payload(json_bytes: bytes, layer: bytes) -> str:
    """The `X-Docker-Checksum-Payload` of a layer: `sha256:` + the hex
    sha256 of its JSON, a newline and its layer bytes, as Docker sent it."""
    h = hashlib.sha256(json_bytes)
    h.update(b'\n')
    h.update(layer)
    return 'sha256:' + h.hexdigest()


class Push:
    """A v1 push session to the tag NAME, used as a context manager."""

    def __init__(self, name: docker_name.Tag, creds: docker_creds.Provider,
                 transport):
        """NAME is the tag to push; CREDS go to its registry only.

        Raises TypeError when NAME is not a Tag.
        """
        if not isinstance(name, docker_name.Tag):
            raise TypeError('a v1 push needs a tag, not %r' % (name,))
        self._name = name
        self._basic_creds = creds
        self._transport = transport
        self._top: Optional[str] = None
        self._pushed: List[str] = []
        self._endpoint = ''
        self._token_creds: docker_creds.Provider = docker_creds.Anonymous()

    def _index_url(self, suffix: str) -> str:
        registry = self._name.registry
        return '%s://%s/v1/repositories/%s/%s' % (
            docker_http.Scheme(registry), registry, self._name.repository,
            suffix)

    def __enter__(self) -> 'Push':
        resp, _ = docker_http.Request(
            self._transport, self._index_url(''), self._basic_creds,
            accepted_codes=[200, 201], body=b'[]',
            max_bytes=docker_http.MAX_DOCUMENT_BYTES)
        self._endpoint, self._token_creds = docker_http.EndpointAccess(
            resp, self._name.registry, self._basic_creds)
        logging.info('Initiated upload of: %s', self._name)
        return self

    def _request(self, url: str, accepted_codes: List[int], body=None,
                 content_type: Optional[str] = None, headers=None) -> int:
        resp, _ = docker_http.Request(
            self._transport, url, self._token_creds, accepted_codes, body,
            content_type, headers=headers,
            max_bytes=docker_http.MAX_DOCUMENT_BYTES)
        return resp.status

    def _exists(self, layer_id: str) -> bool:
        url = docker_http.ImageUrl(self._endpoint, layer_id, 'json')
        return self._request(url, [200, 404]) == 200

    def _upload_one(self, image: docker_image.DockerImage,
                    layer_id: str) -> None:
        """Sends LAYER_ID unless the endpoint has it already."""
        if self._exists(layer_id):
            logging.info('Layer %s exists, skipping', layer_id)
            return
        metadata = image.json(layer_id).encode('utf8')
        layer = image.layer(layer_id)
        self._request(docker_http.ImageUrl(self._endpoint, layer_id, 'json'),
                      [200], metadata)
        self._request(docker_http.ImageUrl(self._endpoint, layer_id, 'layer'),
                      [200], layer, 'application/octet-stream')
        self._request(
            docker_http.ImageUrl(self._endpoint, layer_id, 'checksum'), [200],
            b'', headers={'X-Docker-Checksum-Payload':
                          checksum_payload(metadata, layer)})
        logging.info('Layer %s pushed.', layer_id)

    def upload(self, image: docker_image.DockerImage) -> None:
        """Sends IMAGE's layers, base first; its top becomes the tag's."""
        top = image.top()
        chain = image.ancestry(top)
        for layer_id in reversed(chain):
            self._upload_one(image, layer_id)
        self._top = top
        self._pushed = chain

    def __exit__(self, exception_type, unused_value, unused_traceback) -> None:
        if exception_type:
            logging.error('Error during upload of: %s', self._name)
            return
        if self._top is None:
            logging.info('Nothing uploaded: %s is left as it was', self._name)
        else:
            self._request('%s/v1/repositories/%s/tags/%s' % (
                self._endpoint, self._name.repository, self._name.tag),
                [200], json.dumps(self._top))
        # The index records the repository's images and ends the session.
        docker_http.Request(
            self._transport, self._index_url('images'), self._basic_creds,
            accepted_codes=[200, 204],
            body=json.dumps([{'id': i} for i in self._pushed]),
            max_bytes=docker_http.MAX_DOCUMENT_BYTES)
        logging.info('Finished upload of: %s', self._name)

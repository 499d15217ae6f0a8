"""The registry v1 HTTP protocol: requests, errors and the token handshake.

A v1 session starts at the registry (the index) with the caller's
credentials and `X-Docker-Token: true`; the index answers with a token
(`X-Docker-Token`) and the hosts that serve the images
(`X-Docker-Endpoints`). Image and tag requests then go to the first
endpoint, with the token instead of the credentials.
"""
import json
import re
from typing import Mapping, Optional, Sequence, Tuple, Union

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v1 import docker_creds as v1_creds
from containerregistry.client.v2_2 import docker_http as v2_2_http
from containerregistry.transport import streaming

# Shared with v2.2, so that one `except` catches both protocols' errors.
BadStateException = v2_2_http.BadStateException
MAX_DOCUMENT_BYTES = v2_2_http.MAX_DOCUMENT_BYTES

# Plain http for `localhost:PORT`, `*.local` and `*.localhost` only.
Scheme = v2_2_http.Scheme

_MAX_ERROR_BODY = 300
_ERROR_READ = 64 << 10

# An endpoint is a host, optionally with a port: nothing that could carry
# a path, credentials or another scheme.
_ENDPOINT = re.compile(r'(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?'
                       r'|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?')
# A token must be a header value: printable ASCII, no line breaks.
_TOKEN_VALUE = re.compile(r'[\x20-\x7e]+')
# v1 image ids are 64 hex digits; anything that stays one path segment is
# let through.
_IMAGE_ID = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')


def _error_text(content: bytes) -> str:
    """What a v1 registry said in an error body: `{"error": ...}` or text."""
    try:
        value = json.loads(content)
    except ValueError:
        value = None
    if isinstance(value, dict) and isinstance(value.get('error'), str):
        text = value['error']
    else:
        text = content.decode('utf-8', 'replace')
    text = ' '.join(text.split())
    if len(text) > _MAX_ERROR_BODY:
        text = text[:_MAX_ERROR_BODY] + '...'
    return text


class BadStatusException(Exception):
    """The registry answered with a status the request did not accept.

    The message is one line: the request, the status and the registry's
    error text, so that a tool can print it as it is.
    """

    def __init__(self, resp, content: bytes, url: Optional[str] = None,
                 method: Optional[str] = None):
        self._resp = resp
        self._content = content
        status = ('%d %s' % (resp.status, getattr(resp, 'reason', '') or '')
                  ).strip()
        where = ('%s %s: ' % (method or 'GET', url.split('?', 1)[0])
                 if url else '')
        detail = _error_text(content or b'')
        super().__init__(where + status + (': ' + detail if detail else ''))

    @property
    def resp(self):
        return self._resp

    @property
    def status(self) -> int:
        return self._resp.status

    @property
    def content(self) -> bytes:
        return self._content


def Request(transport, url: str, credentials: docker_creds.Provider,
            accepted_codes: Optional[Sequence[int]] = None,
            body: Optional[Union[bytes, str]] = None,
            content_type: Optional[str] = None,
            *, headers: Optional[Mapping[str, str]] = None,
            max_bytes: Optional[int] = None
            ) -> Tuple[streaming.Response, bytes]:
    """GETs URL, or PUTs BODY there; returns the response and its body.

    CREDENTIALS go in the Authorization header (none when anonymous);
    the caller picks those that belong to URL's host. A status outside
    ACCEPTED_CODES (when given) raises BadStatusException. With MAX_BYTES,
    a longer body raises BadStateException instead of filling memory.
    HEADERS are sent besides the protocol's own.
    """
    method = 'GET' if body is None else 'PUT'
    if isinstance(body, str):
        body = body.encode('utf8')
    sent = {'content-type': content_type or 'application/json',
            'x-docker-token': 'true',
            'user-agent': docker_name.USER_AGENT}
    auth = credentials.Get()
    if auth:
        sent['authorization'] = auth
    sent.update(headers or {})
    resp, reader = streaming.streaming(transport).stream(url, method, body,
                                                         sent)
    try:
        if accepted_codes is not None and resp.status not in accepted_codes:
            raise BadStatusException(resp, reader.read(_ERROR_READ), url,
                                     method)
        if max_bytes is None:
            return resp, reader.read()
        return resp, v2_2_http.read_document(
            resp, reader, '%s %s' % (method, url), max_bytes)
    finally:
        reader.close()


def EndpointAccess(resp, registry: str, creds: docker_creds.Provider
                   ) -> Tuple[str, docker_creds.Provider]:
    """Where a session's image requests go, and with which credentials.

    RESP is the index's answer to a request made with `X-Docker-Token:
    true`; REGISTRY (`host[:port]`) is the index and CREDS what it was
    given. Returns the first endpoint's base URL and the session token for
    it. The endpoint is reached over https unless it and the registry are
    both local, so a token from an https index never travels in clear.
    Without a token, CREDS go to the endpoint only if it is the registry
    itself; another host gets no credentials.
    """
    listed = (resp.get('x-docker-endpoints') or '').split(',')
    endpoint = listed[0].strip() or registry
    if not _ENDPOINT.fullmatch(endpoint):
        raise BadStateException('%s named an invalid endpoint: %r'
                                % (registry, endpoint[:100]))
    scheme = Scheme(endpoint) if Scheme(registry) == 'http' else 'https'
    base = '%s://%s' % (scheme, endpoint)
    token = (resp.get('x-docker-token') or '').strip()
    if token:
        if not _TOKEN_VALUE.fullmatch(token):
            # Not quoted: it would be a secret in an error line.
            raise BadStateException('%s issued a token that is not a valid '
                                    'header value' % registry)
        return base, v1_creds.Token(token)
    if endpoint.lower() == registry.lower():
        return base, creds
    return base, docker_creds.Anonymous()


def ImageUrl(base: str, image_id: str, what: str) -> str:
    """The URL of WHAT (`json`, `layer`, ...) of IMAGE_ID on endpoint BASE.

    Raises ValueError for an id that is not one path segment.
    """
    if not isinstance(image_id, str) or not _IMAGE_ID.fullmatch(image_id):
        raise ValueError('not a v1 image id: %r' % (image_id,))
    return '%s/v1/images/%s/%s' % (base, image_id, what)

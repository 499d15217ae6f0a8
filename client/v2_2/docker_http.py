"""The registry v2 HTTP protocol: ping, Basic and Bearer auth, requests.

A `Transport` is bound to one repository and one action (pull, push, ...):
it pings the registry once, learns how it wants to be authenticated and,
for Bearer, fetches a token scoped to that repository and action.

GET and HEAD requests, the ping and token fetches are tried again as
`retry_policy` says, whatever the transport: a transient status, a dropped
connection, also while the body of a ping, token, manifest or tag list is
read (a blob's is resumed by its reader instead).
"""
import json
import logging
import re
import threading
import urllib.parse
from typing import (Any, Callable, Dict, Iterator, List, Mapping, Optional,
                    Sequence, Tuple, Type, TypeVar, Union)

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v2_2 import docker_creds as v2_2_creds
from containerregistry.client.v2_2 import json_docs
from containerregistry.client.v2_2.media_types import (  # noqa: F401 - upstream's names
    MANIFEST_SCHEMA1_MIME, MANIFEST_SCHEMA1_SIGNED_MIME, MANIFEST_SCHEMA2_MIME,
    MANIFEST_LIST_MIME, LAYER_MIME, FOREIGN_LAYER_MIME, CONFIG_JSON_MIME,
    OCI_MANIFEST_MIME, OCI_IMAGE_INDEX_MIME, OCI_LAYER_MIME,
    OCI_GZIP_LAYER_MIME, OCI_ZSTD_LAYER_MIME, OCI_NONDISTRIBUTABLE_LAYER_MIME,
    OCI_NONDISTRIBUTABLE_GZIP_LAYER_MIME, OCI_CONFIG_JSON_MIME,
    MANIFEST_SCHEMA1_MIMES, MANIFEST_SCHEMA2_MIMES, OCI_MANIFEST_MIMES,
    SUPPORTED_MANIFEST_MIMES, MANIFEST_LIST_MIMES,
    NON_DISTRIBUTABLE_LAYER_MIMES)
from containerregistry.transport import insecure
from containerregistry.transport import proxy_env
from containerregistry.transport import retry_policy
from containerregistry.transport import streaming

PULL = 'pull'
PUSH = 'push,pull'
# For now DELETE is PUSH, which is the read/write ACL.
DELETE = PUSH
CATALOG = 'catalog'
ACTIONS = [PULL, PUSH, DELETE, CATALOG]

_MAX_ERROR_BODY = 300
_T = TypeVar('_T')


class Diagnostic(dict):
    """One entry of a registry's `{"errors": [...]}` body, as a dict.

    Built from the decoded entry, `Diagnostic(error)` or
    `Diagnostic(error=...)` as upstream's was, or from its fields,
    `Diagnostic(code=..., message=..., detail=...)`. Two diagnostics are
    equal when their code, message and detail are, as upstream's were.
    """

    def __init__(self, error: Optional[Mapping[str, Any]] = None,
                 **fields: Any) -> None:
        super().__init__(error or {}, **fields)

    def _key(self) -> Tuple[Any, Any, Any]:
        return self.code, self.message, self.detail

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Diagnostic):
            return self._key() == other._key()
        return super().__eq__(other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None

    @property
    def code(self) -> Optional[str]:
        return self.get('code')

    @property
    def message(self) -> Optional[str]:
        return self.get('message')

    @property
    def detail(self) -> Any:
        return self.get('detail')


def _diagnostics(content: bytes) -> List[Diagnostic]:
    try:
        errors = json.loads(content)['errors']
        return [Diagnostic(e) for e in errors if isinstance(e, dict)]
    except (ValueError, KeyError, TypeError):
        text = content.decode('utf-8', 'replace').strip()
        if len(text) > _MAX_ERROR_BODY:
            text = text[:_MAX_ERROR_BODY] + '...'
        return [Diagnostic(code='UNKNOWN', message=text)]


class V2DiagnosticException(Exception):
    """The registry answered with a status the operation did not accept.

    The message is one line: what was asked, the status, and the registry's
    error codes and messages, so that a tool can print it as it is.
    """

    def __init__(self, resp, content: bytes, url: Optional[str] = None,
                 method: Optional[str] = None):
        self._resp = resp
        self._diagnostics = _diagnostics(content or b'')
        status = '%d %s' % (resp.status, getattr(resp, 'reason', '') or '')
        where = ('%s %s: ' % (method or 'GET', url.split('?', 1)[0])
                 if url else '')
        details = '; '.join(
            ': '.join(str(x) for x in (d.code, d.message) if x)
            for d in self._diagnostics if d.code or d.message)
        details = ' '.join(details.split())
        super().__init__('%s%s%s' % (where, status.strip(),
                                     (': ' + details) if details else ''))

    @property
    def diagnostics(self) -> List[Diagnostic]:
        return self._diagnostics

    @property
    def response(self):
        return self._resp

    @property
    def status(self) -> int:
        return self._resp.status


class BadStateException(Exception):
    """The registry did something the protocol does not allow."""


MAX_DOCUMENT_BYTES = json_docs.MAX_DOCUMENT_BYTES


def parse_object(content: Union[str, bytes], what: str,
                 error: Type[Exception] = BadStateException) -> Dict[str, Any]:
    """CONTENT parsed as a JSON object, else ERROR naming WHAT."""
    return json_docs.parse_object(content, what, error)


def read_capped(reader, what: str, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """All of READER, or BadStateException once it passes LIMIT bytes."""
    return json_docs.read_capped(reader, what, BadStateException, limit)


def read_document(resp: Mapping[str, str], reader, what: str,
                  limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The body of RESP, read whole from READER; BadStateException as soon
    as its Content-Length announces, or its bytes pass, more than LIMIT."""
    length = resp.get('content-length', '')
    if length.isdigit() and int(length) > limit:
        raise BadStateException(
            '%s: %s bytes announced, more than %d MiB, too large to be a '
            'manifest or config' % (what, length, limit >> 20))
    return read_capped(reader, what, limit)


class TokenRefreshException(BadStateException):
    """The token server refused to issue a token."""


def Scheme(endpoint: str) -> str:
    """Plain http for local registries only; https everywhere else."""
    if endpoint.startswith('localhost:'):
        return 'http'
    if re.match(r'.*\.local(?:host)?(?::\d{1,5})?$', endpoint):
        return 'http'
    return 'https'


_TOKEN = r'[!#$%&\'*+\-.^_`|~0-9A-Za-z]+'
_PARAM = re.compile(r'\s*(%s)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|(%s))\s*(?:,|$)'
                    % (_TOKEN, r'[^,\s]*'))


def ParseChallenge(header: str) -> Tuple[str, Dict[str, str]]:
    """Parses a WWW-Authenticate challenge into (Scheme, {param: value}).

    Quoted values may contain commas (e.g. `scope="repository:a:pull,push"`).
    """
    scheme, _, rest = header.strip().partition(' ')
    params = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if not m:
            break
        value = m.group(2)
        if value is None:
            value = m.group(3)
        else:
            value = re.sub(r'\\(.)', r'\1', value)
        params[m.group(1).lower()] = value
        pos = m.end()
    return scheme.capitalize(), params


# What a bearer token may hold: visible ASCII, so it cannot end a header.
_TOKEN_VALUE = re.compile(r'[\x21-\x7e]+')


def _origin(url: str) -> Tuple[str, str, int]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return (scheme, (parts.hostname or '').lower(),
            parts.port or (443 if scheme == 'https' else 80))


def _with_query(url: str, params: Sequence[Tuple[str, str]]) -> str:
    joiner = '&' if '?' in url else '?'
    return url + joiner + urllib.parse.urlencode(params)


def clear_text_refusal(realm: str, registry: str,
                       registry_scheme: Optional[str] = None) -> Optional[str]:
    """Why credentials for REGISTRY must not go to the token REALM, or None.

    Credentials never cross a network in clear: a plain-http realm may
    have them only for a plain-http registry, when the realm is loopback or
    the registry's own host (which the user already reaches in clear), and
    is reached directly (through an http proxy they would cross a network).
    REGISTRY_SCHEME is how the registry is reached (default: `Scheme`).
    """
    parts = urllib.parse.urlsplit(realm)
    if parts.scheme.lower() == 'https':
        return None
    host = (parts.hostname or '').lower()
    own = (urllib.parse.urlsplit('//' + registry).hostname or '').lower()
    if (registry_scheme or Scheme(registry)) == 'https':
        return 'the registry is https'
    if host != own and not proxy_env.is_loopback(host):
        return 'another host, and not loopback'
    proxy = proxy_env.for_url('http', host)
    if proxy is not None:
        return 'it would be reached through the %s' % str(proxy)
    return None


class Transport:
    """HTTP access to one repository, authenticated for one action."""

    def __init__(self, name: docker_name.Registry,
                 creds: docker_creds.Provider, transport, action: str,
                 extra_scopes: Sequence[str] = ()):
        if action not in ACTIONS:
            raise ValueError('Invalid action supplied to docker_http.Transport: '
                             + action)
        self._name = name
        self._basic_creds = creds
        self._transport = streaming.streaming(transport)
        self._action = action
        self._lock = threading.Lock()
        self._creds: docker_creds.Provider = docker_creds.Anonymous()
        self._bearer = False
        # Extra scopes, e.g. pull on the source repository of a mount.
        self._scopes = [name.scope(action)] + [
            scope for scope in extra_scopes if scope != name.scope(action)]
        self._scheme = Scheme(name.registry)
        # Insecure (named so to the transport): https unverified, else http.
        self._may_fall_back = (self._scheme == 'https' and
                               insecure.of_registry(transport, name.registry))
        self._origin = _origin(self.base_url())
        self._Ping()
        if self._bearer:
            self._Refresh()

    @property
    def name(self) -> docker_name.Registry:
        return self._name

    @property
    def transport(self) -> streaming.StreamingTransport:
        """The underlying (streaming) HTTP transport."""
        return self._transport

    def base_url(self) -> str:
        return '{scheme}://{registry}'.format(
            scheme=self._scheme, registry=self._name.registry)

    def _Ping(self) -> None:
        url = self.base_url() + '/v2/'
        headers = {'content-type': 'application/json',
                   'user-agent': docker_name.USER_AGENT}
        try:
            resp, content = self._whole(url, 'GET', None, headers)
        except OSError as e:
            if not self._may_fall_back:
                raise
            # As docker does for an insecure registry: it may not speak TLS.
            logging.info('%s: https failed (%s); trying plain http, as it is '
                         'an insecure registry', self._name.registry, e)
            self._may_fall_back = False
            self._scheme = 'http'
            self._origin = _origin(self.base_url())
            self._Ping()
            return
        if resp.status == 200:
            logging.debug('%s: no authentication needed', self._name.registry)
            return
        if resp.status != 401:
            raise BadStateException(
                'GET %s: unexpected status %d (is this a v2 registry?)'
                % (url, resp.status))
        self._Adopt(resp.get('www-authenticate'), 'GET ' + url)
        del content

    def _Adopt(self, challenge: Optional[str], request: str) -> None:
        """Takes up the authentication scheme a 401 to REQUEST asked for."""
        if not challenge:
            raise BadStateException('%s: 401 without a WWW-Authenticate '
                                    'challenge' % request)
        scheme, params = ParseChallenge(challenge)
        if scheme == 'Basic':
            with self._lock:
                self._creds = self._basic_creds
        elif scheme == 'Bearer':
            if 'realm' not in params:
                raise BadStateException('%s: Bearer challenge without a '
                                        'realm: %s' % (request, challenge))
            self._realm = params['realm']
            self._service = params.get('service', self._name.registry)
            self._bearer = True
        else:
            raise BadStateException('%s: unexpected challenge scheme: %s'
                                    % (request, scheme))

    def _Refresh(self) -> None:
        """Fetches a Bearer token for the current scopes.

        An identity token (OAuth2 refresh token, as `az acr login` writes)
        is exchanged with a POST; other credentials go as Basic to a GET.
        """
        headers = {'user-agent': docker_name.USER_AGENT}
        identity_token = getattr(self._basic_creds, 'identity_token', None)
        auth = '' if identity_token else self._basic_creds.Get()
        refusal = (identity_token or auth) and clear_text_refusal(
            self._realm, self._name.registry, self._scheme)
        if refusal:
            raise TokenRefreshException(
                'Refusing to send credentials for %s to the plain-http token '
                'realm %s: %s' % (self._name.registry, self._realm, refusal))
        if identity_token:
            body = urllib.parse.urlencode([
                ('grant_type', 'refresh_token'),
                ('refresh_token', identity_token),
                ('service', self._service),
                ('scope', ' '.join(self._scopes)),
                ('client_id', 'containerregistry'),
            ]).encode('ascii')
            headers['content-type'] = 'application/x-www-form-urlencoded'
            resp, content = self._whole(self._realm, 'POST', body, headers)
        else:
            params = [('scope', s) for s in self._scopes]
            params.append(('service', self._service))
            if auth:
                headers['authorization'] = auth
            resp, content = self._whole(_with_query(self._realm, params),
                                        'GET', None, headers)
        if resp.status != 200:
            details = _diagnostics(content)[0]
            raise TokenRefreshException(
                'Bad status during token exchange: %d %s%s' % (
                    resp.status, getattr(resp, 'reason', '') or '',
                    (': ' + str(details.message or details.code))
                    if details.message or details.code else ''))
        try:
            wrapper = json.loads(content)
            token = wrapper.get('token') or wrapper['access_token']
        except (ValueError, KeyError, AttributeError) as e:
            raise TokenRefreshException(
                'The token server answered without a token') from e
        if not isinstance(token, str) or not _TOKEN_VALUE.fullmatch(token):
            # Not quoted: it would be a secret in an error line.
            raise TokenRefreshException(
                'The token server answered with a token that is not a valid '
                'header value')
        with self._lock:
            self._creds = v2_2_creds.Bearer(token)

    def _whole(self, url: str, method: str, body: Optional[bytes],
               headers: Mapping[str, str]) -> Tuple[streaming.Response, bytes]:
        """A ping or token exchange, tried again while it fails transiently
        (a token POST too: exchanging a refresh token changes nothing).
        The last transient answer is returned for the caller to report."""
        what = '%s %s' % (method, url.split('?', 1)[0])

        def once() -> Tuple[streaming.Response, bytes]:
            resp, content = self._transport.request(url, method, body,
                                                    headers)
            if retry_policy.transient_status(resp.status):
                raise _TransientAnswer(resp, content, url, method)
            return resp, content
        try:
            return retry_policy.retried(what, once)
        except _TransientAnswer as answer:
            return answer.response, answer.content

    def _Owns(self, url: str) -> bool:
        """Whether URL is on this registry (same scheme, host and port).

        Credentials go there only: an upload Location or a next-page Link
        naming another host (a blob store, a plain-http rewrite by a proxy)
        gets none.
        """
        return _origin(url) == self._origin

    def _MayRetry(self, resp: streaming.Response, request: str) -> bool:
        """After a 401 from this registry: whether new credentials may help.

        A registry that let the ping through anonymously can still ask for
        credentials on a repository; its challenge is taken up then.
        """
        if self._bearer:
            return True
        with self._lock:
            anonymous = not self._creds.Get()
        if not anonymous or not resp.get('www-authenticate'):
            return False
        self._Adopt(resp.get('www-authenticate'), request)
        return self._bearer or bool(self._basic_creds.Get())

    def _headers(self, url: str, method: str, body: streaming.Body,
                 content_type: Optional[str],
                 accepted_mimes: Optional[Sequence[str]],
                 extra: Optional[Mapping[str, str]]) -> Dict[str, str]:
        headers = {'user-agent': docker_name.USER_AGENT}
        with self._lock:
            auth = self._creds.Get()
        if auth and self._Owns(url):
            headers['authorization'] = auth
        elif auth:
            logging.debug('Not sending credentials to %s',
                          urllib.parse.urlsplit(url).netloc)
        if body is not None:
            headers['content-type'] = content_type or 'application/json'
        elif method in ('POST', 'PUT'):
            headers['content-length'] = '0'
        if accepted_mimes is not None:
            headers['accept'] = ','.join(accepted_mimes)
        if extra:
            headers.update(extra)
        return headers

    def Stream(self, url: str, accepted_codes: Optional[Sequence[int]] = None,
               method: Optional[str] = None, body: streaming.Body = None,
               content_type: Optional[str] = None,
               accepted_mimes: Optional[Sequence[str]] = None,
               headers: Optional[Mapping[str, str]] = None
               ) -> Tuple[streaming.Response, streaming.Reader]:
        """Sends a request; returns the response and an open body reader.

        Raises V2DiagnosticException (after reading the error body) when the
        status is not in ACCEPTED_CODES. In Bearer mode a 401 refreshes the
        token once and resends; so does a 401 that asks for credentials
        after an anonymous ping. GET and HEAD are tried again after a
        transient failure or status (see `retry_policy`).
        """
        if not method:
            method = 'GET' if body is None else 'PUT'
        return _retried_if_safe(method, url, body, lambda: self._stream_once(
            url, accepted_codes, method, body, content_type, accepted_mimes,
            headers))

    def _stream_once(self, url: str, accepted_codes: Optional[Sequence[int]],
                     method: str, body: streaming.Body,
                     content_type: Optional[str],
                     accepted_mimes: Optional[Sequence[str]],
                     headers: Optional[Mapping[str, str]]
                     ) -> Tuple[streaming.Response, streaming.Reader]:
        file = streaming.seekable_file(body)
        rewindable = (body is None or isinstance(body, (bytes, bytearray))
                      or file is not None)
        start = file.tell() if file is not None else None
        for attempt in range(retry_policy.AUTH_ATTEMPTS):
            resp, reader = self._transport.stream(
                url, method, body,
                self._headers(url, method, body, content_type,
                              accepted_mimes, headers))
            if (resp.status == 401 and attempt + 1 < retry_policy.AUTH_ATTEMPTS
                    and rewindable
                    and self._Owns(url)
                    and self._MayRetry(resp, '%s %s' % (method, url))):
                reader.close()
                logging.info('Authenticating for %s', self._name)
                if self._bearer:
                    self._Refresh()
                if file is not None and start is not None:
                    file.seek(start)
                continue
            break
        _check_same_manifest_path(url, method, resp, reader)
        if accepted_codes is not None and resp.status not in accepted_codes:
            try:
                content = reader.read()
            finally:
                reader.close()
            raise V2DiagnosticException(resp, content, url, method)
        return resp, reader

    def Request(self, url: str, accepted_codes: Optional[Sequence[int]] = None,
                method: Optional[str] = None, body: streaming.Body = None,
                content_type: Optional[str] = None,
                accepted_mimes: Optional[Sequence[str]] = None,
                headers: Optional[Mapping[str, str]] = None,
                *, max_bytes: Optional[int] = None
                ) -> Tuple[streaming.Response, bytes]:
        """Like Stream, but returns the whole body as bytes.

        With MAX_BYTES, a longer body (announced or sent) raises
        BadStateException instead of filling memory. For GET and HEAD, a
        body cut off or stalled is asked for again.
        """
        if not method:
            method = 'GET' if body is None else 'PUT'
        return _retried_if_safe(method, url, body, lambda: self._request_once(
            url, accepted_codes, method, body, content_type, accepted_mimes,
            headers, max_bytes))

    def _request_once(self, url: str,
                      accepted_codes: Optional[Sequence[int]], method: str,
                      body: streaming.Body, content_type: Optional[str],
                      accepted_mimes: Optional[Sequence[str]],
                      headers: Optional[Mapping[str, str]],
                      max_bytes: Optional[int]
                      ) -> Tuple[streaming.Response, bytes]:
        resp, reader = self.Stream(url, accepted_codes, method, body,
                                   content_type, accepted_mimes, headers)
        try:
            if max_bytes is None:
                return resp, reader.read()
            return resp, read_document(
                resp, reader, '%s %s' % (method, url.split('?', 1)[0]),
                max_bytes)
        finally:
            reader.close()

    def PaginatedRequest(self, url: str,
                         accepted_codes: Optional[Sequence[int]] = None,
                         method: Optional[str] = None,
                         body: streaming.Body = None,
                         content_type: Optional[str] = None
                         ) -> Iterator[Tuple[streaming.Response, bytes]]:
        """Yields each page, following `Link: <...>; rel="next"`."""
        next_page: Optional[str] = url
        while next_page:
            resp, content = self.Request(next_page, accepted_codes, method,
                                         body, content_type)
            yield resp, content
            link = ParseNextLinkHeader(resp)
            next_page = urllib.parse.urljoin(next_page, link) if link else None


def _check_same_manifest_path(url: str, method: str,
                              resp: streaming.Response, reader) -> None:
    """Refuses a manifest answered from another path than URL's.

    The transport follows redirects; a manifest is named by its repository
    path, so one redirected to another path (`a/../b` resolved to `b`, or a
    registry pointing elsewhere) is not the image asked for.
    """
    path = urllib.parse.urlsplit(url).path
    final = getattr(resp, 'url', None)
    if not final or '/manifests/' not in path:
        return
    moved = urllib.parse.urlsplit(final).path
    if moved != path:
        reader.close()
        raise BadStateException(
            '%s %s: redirected to another repository path (%s), refused'
            % (method, url, moved))


def _retried_if_safe(method: str, url: str, body: streaming.Body,
                     action: Callable[[], _T]) -> _T:
    """ACTION, tried again as `retry_policy` says if it is a GET or HEAD;
    other requests are the caller's to repeat (a push starts anew)."""
    if method not in ('GET', 'HEAD') or body is not None:
        return action()
    return retry_policy.retried('%s %s' % (method, url.split('?', 1)[0]),
                                action)


class _TransientAnswer(V2DiagnosticException):
    """A transient status of a ping or token exchange, to try again."""

    def __init__(self, resp, content: bytes, url: str, method: str):
        super().__init__(resp, content, url, method)
        self.content = content


def ParseNextLinkHeader(resp: Mapping[str, str]) -> Optional[str]:
    """The target of a `Link: <url>; rel="next"` header, if any."""
    link = resp.get('link')
    if not link:
        return None
    m = re.match(r'.*<(.+)>;\s*rel="next".*', link)
    return m.group(1) if m else None

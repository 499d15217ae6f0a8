"""Pure-logic parts of the registry protocol: challenges, schemes, errors."""
import io

import pytest

from containerregistry.client import docker_creds
from containerregistry.client import docker_name
from containerregistry.client.v2_2 import docker_digest
from containerregistry.client.v2_2 import docker_http
from containerregistry.transport import streaming


@pytest.mark.parametrize('header, scheme, params', [
    ('Basic realm="Registry Realm"', 'Basic', {'realm': 'Registry Realm'}),
    ('Bearer realm="https://auth.example/token",service="registry.example",'
     'scope="repository:a/b:pull,push"', 'Bearer',
     {'realm': 'https://auth.example/token', 'service': 'registry.example',
      'scope': 'repository:a/b:pull,push'}),
    ('bearer realm="https://a/t", service=reg', 'Bearer',
     {'realm': 'https://a/t', 'service': 'reg'}),
    ('Bearer realm="https://a/t?x=1",error="insufficient_scope"', 'Bearer',
     {'realm': 'https://a/t?x=1', 'error': 'insufficient_scope'}),
    ('Bearer realm="quoted \\"inner\\""', 'Bearer',
     {'realm': 'quoted "inner"'}),
])
def test_parse_challenge(header, scheme, params):
    assert docker_http.ParseChallenge(header) == (scheme, params)


@pytest.mark.parametrize('host, scheme', [
    ('localhost:5000', 'http'),
    ('registry.local', 'http'),
    ('registry.localhost:8080', 'http'),
    ('localhost', 'https'),
    ('127.0.0.1:5000', 'https'),
    ('gcr.io', 'https'),
    ('local.example.com', 'https'),
])
def test_scheme(host, scheme):
    assert docker_http.Scheme(host) == scheme


def test_diagnostic_exception_is_one_line_with_codes():
    resp = streaming.Response(404, {'content-type': 'application/json'},
                              'Not Found')
    body = (b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest '
            b'unknown","detail":{"Tag":"x"}}]}')
    err = docker_http.V2DiagnosticException(
        resp, body, 'http://localhost:5000/v2/a/manifests/x?secret=1')
    assert str(err) == ('GET http://localhost:5000/v2/a/manifests/x: '
                        '404 Not Found: MANIFEST_UNKNOWN: manifest unknown')
    assert err.status == 404
    assert err.diagnostics[0].code == 'MANIFEST_UNKNOWN'
    assert err.diagnostics[0].detail == {'Tag': 'x'}


def test_diagnostic_exception_with_unparseable_body():
    resp = streaming.Response(502, {}, 'Bad Gateway')
    err = docker_http.V2DiagnosticException(resp, b'<html>\nproxy\n</html>')
    assert err.diagnostics[0].code == 'UNKNOWN'
    assert str(err) == '502 Bad Gateway: UNKNOWN: <html> proxy </html>'


def test_diagnostic_constructor_forms():
    entry = {'code': 'DENIED', 'message': 'no', 'detail': [1]}
    for d in (docker_http.Diagnostic(entry),
              docker_http.Diagnostic(error=entry),
              docker_http.Diagnostic(code='DENIED', message='no',
                                     detail=[1])):
        assert (d.code, d.message, d.detail) == ('DENIED', 'no', [1])
        assert d == entry and d['code'] == 'DENIED'
    empty = docker_http.Diagnostic()
    assert (empty.code, empty.message, empty.detail) == (None, None, None)


def test_diagnostics_equal_on_code_message_and_detail():
    a = docker_http.Diagnostic({'code': 'X', 'message': 'm', 'extra': 1})
    assert a == docker_http.Diagnostic(code='X', message='m')
    assert not a != docker_http.Diagnostic(code='X', message='m')
    assert a != docker_http.Diagnostic(code='X', message='other')
    assert a != {'code': 'X', 'message': 'm'}


def test_next_link_header():
    resp = streaming.Response(200, {
        'link': '</v2/_catalog?last=b&n=2>; rel="next"'})
    assert docker_http.ParseNextLinkHeader(resp) == '/v2/_catalog?last=b&n=2'
    assert docker_http.ParseNextLinkHeader(streaming.Response(200, {})) is None


def test_verifying_reader_accepts_matching_data():
    data = b'x' * 3000
    reader = docker_digest.VerifyingReader(
        io.BytesIO(data), docker_digest.SHA256(data), size=3000)
    buf = bytearray(1024)
    got = b''
    while True:
        n = reader.readinto(buf)
        if not n:
            break
        got += bytes(buf[:n])
    assert got == data


def test_verifying_reader_rejects_tampered_data():
    data = b'hello world'
    reader = docker_digest.VerifyingReader(
        io.BytesIO(b'hello w0rld'), docker_digest.SHA256(data), 'blob b')
    with pytest.raises(docker_digest.DigestMismatchedError,
                       match='digest mismatch for blob b: expected '
                       + docker_digest.SHA256(data)):
        while reader.read(4):
            pass


def test_verifying_reader_rejects_short_data():
    data = b'hello world'
    reader = docker_digest.VerifyingReader(
        io.BytesIO(data[:5]), docker_digest.SHA256(data), size=len(data))
    with pytest.raises(docker_digest.DigestMismatchedError,
                       match='expected 11 bytes, got 5'):
        reader.read()


def test_buffered_streams_adapts_httplib2_shaped_transports():
    calls = []

    class Httplib2Like:
        def request(self, uri, method='GET', body=None, headers=None):
            calls.append((uri, method, body, headers))
            resp = {'content-type': 'text/plain'}
            return type('R', (dict,), {'status': 200})(resp), b'payload'

    transport = streaming.streaming(Httplib2Like())
    resp, reader = transport.stream('http://h/x', 'PUT', io.BytesIO(b'up'),
                                    {'A': 'b'})
    assert resp.status == 200 and resp['content-type'] == 'text/plain'
    assert reader.read() == b'payload'
    assert calls == [('http://h/x', 'PUT', b'up', {'A': 'b'})]


def test_credentials_stay_on_the_registry_origin():
    """Scheme, host and port decide where Authorization may go."""
    origin = docker_http._origin
    assert origin('https://Reg.Example:443/v2/') == origin('https://reg.example/v2/x')
    assert origin('http://reg.example:80/a') == origin('http://reg.example/b')
    assert origin('http://reg.example/v2/') != origin('https://reg.example/v2/')
    assert origin('https://reg.example:5000/') != origin('https://reg.example/')
    assert origin('https://blobs.example/') != origin('https://reg.example/')


class _TokenRegistry:
    """An httplib2-shaped transport: a registry asking for a Bearer token
    from a realm that answers TOKEN_JSON. The real token server cannot be
    made to answer a malformed token."""

    def __init__(self, token_json: bytes):
        self.token_json = token_json

    def request(self, uri, method='GET', body=None, headers=None):
        response = type('R', (dict,), {})
        if uri.startswith('https://auth.example/'):
            resp = response({'content-type': 'application/json'})
            resp.status = 200
            return resp, self.token_json
        resp = response({'www-authenticate':
                         'Bearer realm="https://auth.example/token"'})
        resp.status = 401
        return resp, b''


@pytest.mark.parametrize('token_json', [
    b'{"token": "s3cret\\r\\nX-Evil: 1"}',
    b'{"token": "s3cret token"}',
    b'{"token": 12345}',
], ids=['crlf', 'space', 'number'])
def test_token_that_is_not_a_header_value_is_refused(token_json):
    name = docker_name.Registry('reg.example')
    with pytest.raises(docker_http.TokenRefreshException) as e:
        docker_http.Transport(name, docker_creds.Anonymous(),
                              _TokenRegistry(token_json), docker_http.PULL)
    assert str(e.value) == ('The token server answered with a token that is '
                            'not a valid header value')
    assert 's3cret' not in str(e.value)


@pytest.mark.parametrize('realm,registry,refused', [
    ('https://auth.example.com/token', 'localhost:5000', None),
    ('https://auth.example.com/token', 'gcr.io', None),
    ('http://127.0.0.1:5001/token', 'localhost:5000', None),
    ('http://localhost:5001/token', 'box.local:5000', None),
    ('http://box.local:5001/token', 'box.local:5000', None),
    ('http://auth.example.com/token', 'localhost:5000', 'another host'),
    ('http://other.local/token', 'box.local:5000', 'another host'),
    ('http://127.0.0.1:5001/token', 'gcr.io', 'the registry is https'),
    ('http://gcr.io/token', 'gcr.io', 'the registry is https'),
])
def test_where_credentials_may_go_in_clear(realm, registry, refused,
                                            monkeypatch):
    for key in ('http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY'):
        monkeypatch.delenv(key, raising=False)
    found = docker_http.clear_text_refusal(realm, registry)
    assert (found is None) if refused is None else (refused in found), found


def test_a_realm_behind_an_http_proxy_is_out_on_the_network(monkeypatch):
    monkeypatch.setenv('http_proxy', 'http://proxy.example:3128')
    monkeypatch.delenv('no_proxy', raising=False)
    monkeypatch.delenv('NO_PROXY', raising=False)
    assert 'through the proxy proxy.example:3128' in (
        docker_http.clear_text_refusal('http://box.local:5001/t', 'box.local:5000'))
    # Loopback is always reached directly.
    assert docker_http.clear_text_refusal('http://127.0.0.1:1/t',
                                          'localhost:5000') is None

"""Request bodies of the pooled transport: file bodies go by sendfile.

A small HTTP server records what arrives on the wire; the registry tests
cover the protocol, these the exact bytes a body puts on the socket.
"""
import http.server
import io
import threading

import pytest

from containerregistry.transport import pooled_http


class _Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    received: list = []

    def do_PUT(self):  # pylint: disable=invalid-name
        length = int(self.headers['Content-Length'])
        data = self.rfile.read(length)
        self.received.append((self.path, self.headers['Content-Length'], data))
        if len(data) < length:
            self.close_connection = True
            return
        self.send_response(201)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass


@pytest.fixture
def server():
    _Recorder.received = []
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d' % httpd.server_address[1], _Recorder.received
    httpd.shutdown()
    httpd.server_close()


def test_file_body_from_its_current_offset(server, tmp_path):
    url, received = server
    data = bytes(range(256)) * 5000
    path = tmp_path / 'blob'
    path.write_bytes(data)
    http = pooled_http.Http()
    with open(path, 'rb') as f:
        f.read(1000)
        resp, _ = http.request(url + '/a', 'PUT', body=f,
                               headers={'Content-Length': str(len(data) - 1000)})
        assert f.tell() == len(data)
    assert resp.status == 201
    assert received == [('/a', str(len(data) - 1000), data[1000:])]
    # The connection is reused for a second file body.
    with open(path, 'rb') as f:
        resp, _ = http.request(url + '/b', 'PUT', body=f,
                               headers={'content-length': str(len(data))})
    assert resp.status == 201
    assert received[1] == ('/b', str(len(data)), data)


def test_file_shorter_than_its_length_fails(server, tmp_path):
    url, received = server
    path = tmp_path / 'blob'
    path.write_bytes(b'x' * 100)
    with open(path, 'rb') as f:
        with pytest.raises(pooled_http.TransportError, match=(
                r'^PUT http://127.0.0.1:\d+/short: '
                r'file body ended after 100 of 150 bytes$')):
            pooled_http.Http().request(url + '/short', 'PUT', body=f,
                                       headers={'Content-Length': '150'})


def test_memory_and_empty_bodies(server, tmp_path):
    url, received = server
    http = pooled_http.Http()
    resp, _ = http.request(url + '/m', 'PUT', body=io.BytesIO(b'in memory'),
                           headers={'Content-Length': '9'})
    assert resp.status == 201
    empty = tmp_path / 'empty'
    empty.write_bytes(b'')
    with open(empty, 'rb') as f:
        resp, _ = http.request(url + '/e', 'PUT', body=f,
                               headers={'Content-Length': '0'})
    assert resp.status == 201
    assert received == [('/m', '9', b'in memory'), ('/e', '0', b'')]

"""The upstream-compatible transport wrappers: nested, retry, pool.

These wrappers are plumbing around any httplib2-shaped object, so most
tests drive them with a scripted transport object; one test runs the full
stack over real httplib2 against a loopback HTTP server.
"""
import http.client
import http.server
import io
import logging
import pickle
import socket
import threading
import time

import httplib2
import pytest

from containerregistry.transport import nested
from containerregistry.transport import retry
from containerregistry.transport import transport_pool


class Scripted:
    """A transport whose calls raise or return the scripted outcomes."""

    def __init__(self, *outcomes, streams=False):
        self.outcomes = list(outcomes)
        self.calls = []
        self.bodies = []
        if streams:
            self.stream = self._stream

    def _next(self, args, kwargs):
        self.calls.append((args, kwargs))
        body = kwargs.get('body', args[2] if len(args) > 2 else None)
        if hasattr(body, 'read'):
            body = body.read()
        self.bodies.append(body)
        outcome = self.outcomes.pop(0) if self.outcomes else ('resp', b'ok')
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def request(self, *args, **kwargs):
        return self._next(args, kwargs)

    def _stream(self, *args, **kwargs):
        resp, content = self._next(args, kwargs)
        return resp, io.BytesIO(content)

    def add_credentials(self, *args, **kwargs):
        self.calls.append(('add_credentials', args, kwargs))
        return 'c'

    def add_certificate(self, *args, **kwargs):
        self.calls.append(('add_certificate', args, kwargs))
        return 'k'

    def clear_credentials(self, *args, **kwargs):
        self.calls.append(('clear_credentials', args, kwargs))
        return 'x'


@pytest.fixture
def sleeps(monkeypatch):
    slept = []
    monkeypatch.setattr(retry, '_sleep', slept.append)
    return slept


# --- nested ---------------------------------------------------------------

def test_nested_forwards_everything():
    source = Scripted(('r', b'body'))
    t = nested.NestedTransport(source)
    assert t.request('http://h/x', 'PUT', body=b'b', headers={'a': 'b'}) == (
        'r', b'body')
    assert source.calls[0] == (('http://h/x', 'PUT'),
                               {'body': b'b', 'headers': {'a': 'b'}})
    assert t.add_credentials('u', 'p', domain='h') == 'c'
    assert t.add_certificate('key', 'cert', 'h') == 'k'
    assert t.clear_credentials() == 'x'
    assert source.calls[1:] == [
        ('add_credentials', ('u', 'p'), {'domain': 'h'}),
        ('add_certificate', ('key', 'cert', 'h'), {}),
        ('clear_credentials', (), {}),
    ]


def test_nested_cannot_be_pickled():
    with pytest.raises(NotImplementedError,
                       match='NestedTransport cannot be pickled'):
        pickle.dumps(nested.NestedTransport(Scripted()))
    with pytest.raises(NotImplementedError,
                       match='RetryTransport cannot be pickled'):
        pickle.dumps(retry.RetryTransport(Scripted()))


def test_nested_streams_only_if_source_does():
    assert not hasattr(nested.NestedTransport(Scripted()), 'stream')
    t = nested.NestedTransport(Scripted(('r', b'data'), streams=True))
    resp, reader = t.stream('http://h/blob', 'GET')
    assert (resp, reader.read()) == ('r', b'data')
    with pytest.raises(AttributeError):
        _ = nested.NestedTransport(Scripted()).no_such_thing


# --- retry ----------------------------------------------------------------

def test_retry_defaults():
    assert retry.DEFAULT_MAX_RETRIES == 2
    assert retry.DEFAULT_BACKOFF_FACTOR == 0.5
    assert retry.RETRYABLE_EXCEPTION_TYPES[:2] == [
        http.client.IncompleteRead, http.client.ResponseNotReady]
    assert retry.ShouldRetry(http.client.IncompleteRead(b''))
    assert retry.ShouldRetry(http.client.ResponseNotReady())
    assert retry.ShouldRetry(ConnectionResetError(104, 'reset'))
    assert retry.ShouldRetry(http.client.RemoteDisconnected('closed'))
    assert retry.ShouldRetry(BrokenPipeError())
    assert retry.ShouldRetry(socket.timeout('timed out'))
    assert not retry.ShouldRetry(ValueError())
    assert not retry.ShouldRetry(http.client.BadStatusLine('x'))
    assert not retry.ShouldRetry(OSError(2, 'no such file'))


def test_retry_list_is_consulted_at_call_time(monkeypatch):
    monkeypatch.setattr(retry, 'RETRYABLE_EXCEPTION_TYPES',
                        retry.RETRYABLE_EXCEPTION_TYPES + [KeyError])
    assert retry.ShouldRetry(KeyError('k'))


def test_retry_succeeds_after_two_failures(sleeps, caplog):
    source = Scripted(http.client.IncompleteRead(b'par'),
                      ConnectionResetError(104, 'Connection reset by peer'),
                      ('resp', b'content'))
    t = retry.Factory().WithSourceTransportCallable(lambda: source).Build()
    assert isinstance(t, retry.RetryTransport)
    assert t.request('http://h/v2/', 'GET') == ('resp', b'content')
    assert len(source.calls) == 3
    assert sleeps == [1.0, 2.0]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        'Retrying after exception IncompleteRead: IncompleteRead(3 bytes '
        'read) (retry 1 of 2 in 1s).',
        'Retrying after exception ConnectionResetError: [Errno 104] '
        'Connection reset by peer (retry 2 of 2 in 2s).',
    ]


def test_retry_gives_up_after_max_retries(sleeps):
    failures = [socket.timeout('timed out') for _ in range(3)]
    source = Scripted(*failures)
    t = retry.RetryTransport(source)
    with pytest.raises(socket.timeout) as err:
        t.request('http://h/v2/')
    assert err.value is failures[2]
    assert len(source.calls) == 3
    assert sleeps == [1.0, 2.0]


def test_retry_does_not_retry_other_errors(sleeps):
    source = Scripted(ValueError('bad'))
    with pytest.raises(ValueError):
        retry.RetryTransport(source).request('http://h/v2/')
    assert len(source.calls) == 1 and sleeps == []


def test_retry_does_not_retry_http_statuses(sleeps):
    source = Scripted(({'status': '503'}, b'busy'))
    assert retry.RetryTransport(source).request('u') == (
        {'status': '503'}, b'busy')
    assert len(source.calls) == 1 and sleeps == []


def test_factory_settings(sleeps):
    source = Scripted(*[KeyError('k') for _ in range(4)])
    t = (retry.Factory()
         .WithSourceTransportCallable(lambda: source)
         .WithMaxRetries(4)
         .WithBackoffFactor(0.25)
         .WithShouldRetryFunction(lambda e: isinstance(e, KeyError))
         .Build())
    assert t.request('u') == ('resp', b'ok')
    assert len(source.calls) == 5
    assert sleeps == [0.5, 1.0, 2.0, 4.0]


def test_zero_retries(sleeps):
    source = Scripted(ConnectionResetError())
    t = retry.Factory().WithSourceTransportCallable(
        lambda: source).WithMaxRetries(0).Build()
    with pytest.raises(ConnectionResetError):
        t.request('u')
    assert sleeps == []


def test_real_backoff_sleeps():
    source = Scripted(ConnectionResetError(), ConnectionResetError())
    t = retry.Factory().WithSourceTransportCallable(
        lambda: source).WithBackoffFactor(0.05).Build()
    start = time.monotonic()
    t.request('u')
    assert time.monotonic() - start >= 0.3 - 0.01


def test_seekable_body_is_rewound(sleeps):
    source = Scripted(ConnectionResetError(), ConnectionResetError())
    body = io.BytesIO(b'skip:payload')
    body.seek(5)
    retry.RetryTransport(source).request('u', 'PATCH', body)
    assert source.bodies == [b'payload'] * 3


def test_unseekable_body_is_not_retried(sleeps):
    def chunks():
        yield b'a'

    source = Scripted(ConnectionResetError())
    with pytest.raises(ConnectionResetError):
        retry.RetryTransport(source).request('u', 'PATCH', body=chunks())
    assert len(source.calls) == 1 and sleeps == []


def test_retry_stream(sleeps):
    source = Scripted(ConnectionResetError(), ('r', b'blob'), streams=True)
    t = retry.RetryTransport(source)
    resp, reader = t.stream('http://h/blob', 'GET')
    assert (resp, reader.read()) == ('r', b'blob')
    assert sleeps == [1.0]
    assert not hasattr(retry.RetryTransport(Scripted()), 'stream')


def test_wrappers_are_httplib2_http():
    """Upstream's callers may check isinstance(t, httplib2.Http)."""
    source = Scripted()
    assert retry.DEFAULT_SOURCE_TRANSPORT_CALLABLE is httplib2.Http
    assert retry.Factory().source_transport_callable is httplib2.Http
    built = retry.Factory().Build()
    assert isinstance(built, httplib2.Http)
    assert type(built.source_transport) is httplib2.Http
    for t in (nested.NestedTransport(source), retry.RetryTransport(source),
              transport_pool.Http(lambda: source)):
        assert isinstance(t, httplib2.Http)
    assert nested.NestedTransport(source).source_transport is source
    assert retry.RetryTransport(source).source_transport is source


def test_close_reaches_the_source():
    closed = []
    source = Scripted()
    source.close = lambda: closed.append(source)
    nested.NestedTransport(source).close()
    retry.RetryTransport(source).close()
    transport_pool.Http(lambda: source, size=2).close()
    assert closed == [source] * 4
    nested.NestedTransport(object()).close()


# --- transport_pool -------------------------------------------------------

class Exclusive:
    """Records any overlapping use of one instance and the peak in use."""

    lock = threading.Lock()
    in_use = 0
    peak = 0
    made = 0

    def __init__(self, streams=False):
        with Exclusive.lock:
            Exclusive.made += 1
        self.busy = False
        self.overlaps = 0
        self.served = 0
        if streams:
            self.stream = self._stream

    def _enter(self):
        with Exclusive.lock:
            if self.busy:
                self.overlaps += 1
            self.busy = True
            Exclusive.in_use += 1
            Exclusive.peak = max(Exclusive.peak, Exclusive.in_use)

    def _leave(self):
        with Exclusive.lock:
            self.busy = False
            Exclusive.in_use -= 1
            self.served += 1

    def request(self, uri, method='GET', body=None, headers=None):
        self._enter()
        try:
            time.sleep(0.001)
            return {'status': 200}, uri.encode()
        finally:
            self._leave()

    def _stream(self, uri, method='GET', body=None, headers=None):
        self._enter()
        transport = self

        class Reader(io.BytesIO):
            def close(self):
                if not self.closed:
                    transport._leave()
                super().close()

        return {'status': 200}, Reader(uri.encode())


@pytest.fixture
def exclusive():
    Exclusive.in_use = Exclusive.peak = Exclusive.made = 0
    return Exclusive


def hammer(pool, threads=16, each=25, call=None, base='http://h'):
    results = []
    errors = []

    def work(n):
        try:
            for i in range(each):
                uri = '%s/%d/%d' % (base, n, i)
                results.append((uri, call(pool, uri)))
        except BaseException as e:
            errors.append(e)

    workers = [threading.Thread(target=work, args=(n,))
               for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert not errors, errors
    assert len(results) == threads * each
    for uri, content in results:
        assert content == uri.encode()


def test_pool_is_thread_safe(exclusive):
    made = []
    pool = transport_pool.Http(lambda: made.append(Exclusive()) or made[-1],
                               size=3)
    assert len(made) == 3 and exclusive.made == 3
    hammer(pool, call=lambda p, uri: p.request(uri)[1])
    assert exclusive.made == 3
    assert sum(t.overlaps for t in made) == 0
    assert sum(t.served for t in made) == 16 * 25
    assert exclusive.peak == 3
    assert all(t.served for t in made)


def test_pool_default_size(exclusive):
    transport_pool.Http(Exclusive)
    assert exclusive.made == 2


def test_pool_rejects_size_zero():
    with pytest.raises(ValueError):
        transport_pool.Http(Exclusive, size=0)


def test_pool_returns_transport_after_errors():
    source = Scripted(ConnectionResetError(), ('r', b'ok'))
    pool = transport_pool.Http(lambda: source, size=1)
    with pytest.raises(ConnectionResetError):
        pool.request('u')
    assert pool.request('u') == ('r', b'ok')


def test_pool_streams_only_if_transports_do():
    assert not hasattr(transport_pool.Http(Scripted), 'stream')
    assert hasattr(transport_pool.Http(lambda: Scripted(streams=True)),
                   'stream')


def test_pool_stream_holds_transport_until_closed(exclusive):
    pool = transport_pool.Http(lambda: Exclusive(streams=True), size=1)
    resp, reader = pool.stream('http://h/blob')
    done = threading.Event()
    worker = threading.Thread(
        target=lambda: (pool.request('http://h/other'), done.set()))
    worker.start()
    assert not done.wait(0.2)
    assert reader.read(4) == b'http'
    assert reader.read() == b'://h/blob'
    reader.close()
    assert done.wait(5)
    worker.join()
    reader.close()
    with pool.stream('http://h/again')[1] as second:
        assert second.read() == b'http://h/again'
    assert pool.request('http://h/last')[1] == b'http://h/last'


def test_pool_stream_is_thread_safe(exclusive):
    made = []
    pool = transport_pool.Http(
        lambda: made.append(Exclusive(streams=True)) or made[-1], size=4)

    def call(p, uri):
        with p.stream(uri)[1] as reader:
            return reader.read()

    hammer(pool, threads=12, each=20, call=call)
    assert sum(t.overlaps for t in made) == 0
    assert exclusive.peak <= 4


def test_pool_stream_failure_returns_transport():
    source = Scripted(ConnectionResetError(), ('r', b'ok'), streams=True)
    pool = transport_pool.Http(lambda: source, size=1)
    with pytest.raises(ConnectionResetError):
        pool.stream('u')
    assert pool.request('u') == ('r', b'ok')


def test_pool_dropped_reader_returns_transport():
    pool = transport_pool.Http(lambda: Scripted(streams=True), size=1)
    pool.stream('u')
    done = threading.Event()
    threading.Thread(target=lambda: (pool.request('u'), done.set())).start()
    assert done.wait(5)


# --- the whole stack over httplib2 ------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def do_GET(self):
        body = ('http://%s%s' % (self.headers['Host'], self.path)).encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Docker-Content-Digest', 'sha256:abc')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_stack_over_httplib2():
    """The tools' composition: a pool of retrying httplib2.Http objects."""
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        pool = transport_pool.Http(
            retry.Factory().WithSourceTransportCallable(httplib2.Http).Build,
            size=8)

        def call(p, uri):
            resp, content = p.request(uri, 'GET')
            assert resp.status == 200
            assert resp['docker-content-digest'] == 'sha256:abc'
            return content

        hammer(pool, threads=8, each=10, call=call,
               base='http://127.0.0.1:%d' % server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()

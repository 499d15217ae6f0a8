"""The retry policy's decisions, without a server: what is transient, the
backoff, Retry-After, the shared attempt budget and the deadline. The
faults themselves are made for real in test_deadlines.py."""
import email.utils
import http.client
import logging
import socket
import ssl
import time

import pytest

from containerregistry.client.v2_2 import docker_http
from containerregistry.transport import pooled_http
from containerregistry.transport import retry_policy
from containerregistry.transport import streaming


@pytest.fixture(autouse=True)
def no_deadline():
    yield
    retry_policy.set_deadline(None)


@pytest.mark.parametrize('status, transient', [
    (408, True), (429, True), (500, True), (502, True), (503, True),
    (504, True), (599, True), (501, False), (400, False), (401, False),
    (404, False), (200, False)])
def test_transient_statuses(status, transient):
    assert retry_policy.transient_status(status) is transient
    error = docker_http.V2DiagnosticException(streaming.Response(status), b'')
    assert retry_policy.transient_error(error) is transient


@pytest.mark.parametrize('err, transient', [
    (ConnectionResetError(104, 'reset'), True),
    (ConnectionRefusedError(111, 'refused'), True),
    (http.client.RemoteDisconnected('closed'), True),
    (http.client.IncompleteRead(b'x', 10), True),
    (socket.timeout('timed out'), True),
    (retry_policy.Stalled('slow'), True),
    (OSError(113, 'No route to host'), True),
    (socket.gaierror(socket.EAI_AGAIN, 'try again'), True),
    (socket.gaierror(socket.EAI_NONAME, 'unknown host'), False),
    (ssl.SSLCertVerificationError('bad certificate'), False),
    (ssl.SSLEOFError('EOF in violation of protocol'), True),
    (pooled_http.TransportError('proxy refused', transient=False), False),
    (pooled_http.TransportError('dropped'), True),
    (retry_policy.DeadlineExceeded('late'), False),
    (http.client.BadStatusLine('x'), False),
    (OSError(2, 'No such file'), False),
    (ValueError('bad'), False),
    (docker_http.BadStateException('odd'), False)])
def test_transient_errors(err, transient):
    assert retry_policy.transient_error(err) is transient


def test_retry_after_takes_seconds_or_an_http_date():
    assert retry_policy.retry_after({'retry-after': '3'}) == 3.0
    assert retry_policy.retry_after({'retry-after': '1e9'}) == 60.0
    assert retry_policy.retry_after({'retry-after': '-5'}) == 0.0
    assert retry_policy.retry_after({'retry-after': 'nan'}) == 0.0
    assert retry_policy.retry_after({'retry-after': 'soon'}) == 0.0
    assert retry_policy.retry_after({}) == 0.0
    later = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8.0 <= retry_policy.retry_after({'retry-after': later}) <= 10.0
    past = email.utils.formatdate(time.time() - 100, usegmt=True)
    assert retry_policy.retry_after({'retry-after': past}) == 0.0


def test_backoff_doubles_with_jitter_and_a_cap():
    for failures, middle in [(1, 0.5), (2, 1.0), (3, 2.0), (10, 10.0)]:
        delays = [retry_policy.backoff(failures) for _ in range(200)]
        assert all(0.5 * middle <= d < 1.5 * middle for d in delays)
        assert len(set(delays)) > 100  # jittered, not in step


def test_nested_layers_share_one_budget(monkeypatch, caplog):
    monkeypatch.setattr(time, 'sleep', lambda seconds: None)
    calls = []

    def inner():
        calls.append('inner')
        raise ConnectionResetError(104, 'reset')

    def outer():
        return retry_policy.retried('GET inner', inner)
    with caplog.at_level(logging.WARNING):
        with pytest.raises(ConnectionResetError):
            retry_policy.retried('GET outer', outer)
    assert len(calls) == retry_policy.ATTEMPTS
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == retry_policy.ATTEMPTS - 1
    assert warnings[0].startswith('GET inner: [Errno 104] reset; trying again in')
    assert warnings[-1].endswith('(attempt 4 of 4)')


def test_not_transient_is_not_retried():
    calls = []

    def action():
        calls.append(1)
        raise ValueError('no')
    with pytest.raises(ValueError):
        retry_policy.retried('x', action)
    assert calls == [1]


def test_retry_after_of_an_answer_is_the_delay(monkeypatch):
    slept = []
    monkeypatch.setattr(time, 'sleep', slept.append)
    answers = [streaming.Response(429, {'Retry-After': '7'}), None]

    def action():
        resp = answers.pop(0)
        if resp is not None:
            raise docker_http.V2DiagnosticException(resp, b'')
        return 'done'
    assert retry_policy.retried('GET x', action) == 'done'
    assert slept == [7.0]


def test_deadline_bounds_waits_and_backoffs():
    retry_policy.set_deadline(0.5, 'CONTAINERREGISTRY_TIMEOUT')
    assert retry_policy.wait_limit(60, 'x') <= 0.5
    attempts = retry_policy.Attempts('GET http://h/v2/')
    with pytest.raises(retry_policy.DeadlineExceeded) as err:
        attempts.again('503 Service Unavailable', delay=5)
    assert str(err.value) == ('GET http://h/v2/: 503 Service Unavailable: '
                              'gave up after 0.5s (CONTAINERREGISTRY_TIMEOUT '
                              '0.5)')
    time.sleep(0.5)
    with pytest.raises(retry_policy.DeadlineExceeded, match='^reading: gave up'):
        retry_policy.wait_limit(60, 'reading')


@pytest.mark.parametrize('value', ['0', '-2', 'x', 'nan', 'inf'])
def test_bad_settings_name_their_variable(monkeypatch, value):
    monkeypatch.setenv('CONTAINERREGISTRY_IDLE_TIMEOUT', value)
    with pytest.raises(ValueError, match='^CONTAINERREGISTRY_IDLE_TIMEOUT must '
                       'be a positive number of seconds'):
        retry_policy.check_environment()

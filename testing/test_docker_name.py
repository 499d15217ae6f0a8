"""Name parsing and validation, following containerregistry's exact rules."""
import pytest

from containerregistry.client import docker_name

DIGEST = 'sha256:' + 'a' * 64


def test_constants():
    assert docker_name.DEFAULT_DOMAIN == 'index.docker.io'
    assert docker_name.DEFAULT_TAG == 'latest'
    assert docker_name.USER_AGENT.startswith('//containerregistry/client:')
    assert docker_name.USER_AGENT != '//containerregistry/client:'


def test_registry():
    r = docker_name.Registry('gcr.io')
    assert r.registry == 'gcr.io'
    assert str(r) == 'gcr.io'
    assert r.scope('pull') == 'registry:catalog:*'
    assert docker_name.Registry('localhost:5000').registry == 'localhost:5000'


def test_registry_empty():
    with pytest.raises(docker_name.BadNameException,
                       match=r'^A Docker registry domain must be specified\.$'):
        docker_name.Registry('')
    r = docker_name.Registry('', strict=False)
    assert r.registry == 'index.docker.io'
    assert str(r) == ''


@pytest.mark.parametrize('bad', ['gcr.io/foo', 'gcr.io?x', 'gcr.io#x',
                                 '[::1'])
def test_registry_invalid(bad):
    with pytest.raises(docker_name.BadNameException) as e:
        docker_name.Registry(bad)
    assert str(e.value) == 'Invalid registry: %s' % bad


def test_repository_with_registry():
    r = docker_name.Repository('gcr.io/google-containers/pause')
    assert r.registry == 'gcr.io'
    assert r.repository == 'google-containers/pause'
    assert str(r) == 'gcr.io/google-containers/pause'
    assert r.scope('push,pull') == 'repository:google-containers/pause:push,pull'


def test_repository_head_is_registry_only_with_dot_or_colon():
    r = docker_name.Repository('localhost/xy', strict=False)
    assert r.registry == 'index.docker.io'
    assert r.repository == 'localhost/xy'
    assert str(r) == 'localhost/xy'
    r = docker_name.Repository('localhost:5000/xy')
    assert (r.registry, r.repository) == ('localhost:5000', 'xy')
    with pytest.raises(docker_name.BadNameException,
                       match='registry domain must be specified'):
        docker_name.Repository('localhost/xy')


def test_repository_no_hub_normalization():
    r = docker_name.Repository('docker.io/busybox')
    assert r.registry == 'docker.io'
    assert r.repository == 'busybox'
    r = docker_name.Repository('busybox', strict=False)
    assert r.repository == 'busybox'
    assert str(r) == 'busybox'


def test_repository_errors():
    with pytest.raises(docker_name.BadNameException) as e:
        docker_name.Repository('')
    assert str(e.value) == 'A Docker image name must be specified'
    with pytest.raises(docker_name.BadNameException) as e:
        docker_name.Repository('gcr.io/a')
    assert str(e.value) == 'Invalid repository: a, must be at least 2 characters'
    long = 'a' * 256
    with pytest.raises(docker_name.BadNameException) as e:
        docker_name.Repository('gcr.io/' + long)
    assert str(e.value) == (
        'Invalid repository: %s, must be at most 255 characters' % long)
    docker_name.Repository('gcr.io/' + 'a' * 255)
    with pytest.raises(docker_name.BadNameException) as e:
        docker_name.Repository('gcr.io/Foo')
    assert str(e.value) == (
        'Invalid repository: Foo, acceptable characters include: '
        'abcdefghijklmnopqrstuvwxyz0123456789_-./')


def test_tag():
    t = docker_name.Tag('gcr.io/foo/bar:baz')
    assert (t.registry, t.repository, t.tag) == ('gcr.io', 'foo/bar', 'baz')
    assert str(t) == 'gcr.io/foo/bar:baz'
    assert t.scope('pull') == 'repository:foo/bar:pull'
    repo = t.as_repository()
    assert type(repo) is docker_name.Repository
    assert str(repo) == 'gcr.io/foo/bar'


def test_tag_with_port():
    t = docker_name.Tag('localhost:5000/foo:v1.2_3-A')
    assert (t.registry, t.repository, t.tag) == ('localhost:5000', 'foo',
                                                 'v1.2_3-A')


def test_tag_strict_requires_explicit_tag():
    with pytest.raises(docker_name.BadNameException) as e:
        docker_name.Tag('gcr.io/foo/bar')
    assert str(e.value) == 'Invalid tag: , must be at least 1 characters'
    t = docker_name.Tag('gcr.io/foo/bar', strict=False)
    assert t.tag == 'latest'
    assert str(t) == 'gcr.io/foo/bar'


def test_tag_quirk_port_without_tag_fails_even_non_strict():
    with pytest.raises(docker_name.BadNameException) as e:
        docker_name.Tag('host:5000/repo', strict=False)
    assert str(e.value).startswith('Invalid tag: 5000/repo, acceptable '
                                   'characters include: ')


def test_tag_length_and_chars():
    docker_name.Tag('gcr.io/foo:' + 'a' * 127)
    with pytest.raises(docker_name.BadNameException) as e:
        docker_name.Tag('gcr.io/foo:' + 'a' * 128)
    assert str(e.value).endswith(', must be at most 127 characters')
    with pytest.raises(docker_name.BadNameException) as e:
        docker_name.Tag('gcr.io/foo:a+b')
    assert str(e.value) == (
        'Invalid tag: a+b, acceptable characters include: '
        'abcdefghijklmnopqrstuvwxyz0123456789_-.'
        'ABCDEFGHIJKLMNOPQRSTUVWXYZ')


def test_digest():
    d = docker_name.Digest('gcr.io/foo/bar@' + DIGEST)
    assert (d.registry, d.repository, d.digest) == ('gcr.io', 'foo/bar',
                                                    DIGEST)
    assert str(d) == 'gcr.io/foo/bar@' + DIGEST
    assert str(d.as_repository()) == 'gcr.io/foo/bar'
    assert type(d.as_repository()) is docker_name.Repository


def test_digest_errors():
    with pytest.raises(docker_name.BadNameException) as e:
        docker_name.Digest('gcr.io/foo/bar')
    assert str(e.value) == (
        'Docker image name must be fully qualified (e.g. '
        'registry/repository@digest) saw: gcr.io/foo/bar')
    with pytest.raises(docker_name.BadNameException) as e:
        docker_name.Digest('gcr.io/foo/bar@sha256:abc')
    assert str(e.value) == (
        'Invalid digest: sha256:abc, must be at least 71 characters')
    with pytest.raises(docker_name.BadNameException) as e:
        docker_name.Digest('gcr.io/foo/bar@sha256:' + 'A' * 64)
    assert 'acceptable characters include: sh:0123456789abcdef' in str(e.value)
    # Only the character set is checked, not the literal prefix.
    d = docker_name.Digest('gcr.io/foo/bar@hhhhhh:' + 'a' * 64)
    assert d.digest == 'hhhhhh:' + 'a' * 64


def test_equality_and_hash():
    a = docker_name.Tag('gcr.io/foo:bar')
    assert a == docker_name.Tag('gcr.io/foo:bar')
    assert hash(a) == hash(docker_name.Tag('gcr.io/foo:bar'))
    assert a != docker_name.Tag('gcr.io/foo:baz')
    assert a != docker_name.Repository('gcr.io/foo')
    assert a != 'gcr.io/foo:bar'
    # Implicit and explicit 'latest' compare equal (uses .tag).
    assert (docker_name.Tag('gcr.io/foo', strict=False) ==
            docker_name.Tag('gcr.io/foo:latest'))
    # Implicit registry equals explicit index.docker.io (uses .registry).
    assert (docker_name.Repository('foo/bar', strict=False) ==
            docker_name.Repository('index.docker.io/foo/bar'))
    assert len({docker_name.Registry('gcr.io'),
                docker_name.Registry('gcr.io')}) == 1
    assert (docker_name.Digest('gcr.io/foo@' + DIGEST) !=
            docker_name.Digest('gcr.io/foo@sha256:' + 'b' * 64))


def test_from_string():
    d = docker_name.from_string('gcr.io/foo@' + DIGEST)
    assert type(d) is docker_name.Digest
    t = docker_name.from_string('gcr.io/foo:bar')
    assert type(t) is docker_name.Tag
    r = docker_name.from_string('gcr.io/foo')
    assert type(r) is docker_name.Repository
    g = docker_name.from_string('gcr.io')
    assert type(g) is docker_name.Registry
    # 'localhost:5000' fails as Tag ('5000' is fine but the repo is too
    # short) and Repository (no registry), so it is a Registry.
    assert type(docker_name.from_string('localhost:5000')) is (
        docker_name.Registry)
    with pytest.raises(docker_name.BadNameException) as e:
        docker_name.from_string('gcr.io/UPPER')
    assert str(e.value) == (
        "'gcr.io/UPPER' is not a valid Tag, Digest, Repository or Registry")


@pytest.mark.parametrize('registry', ['localhost:99999', 'localhost:-1',
                                      'localhost:0', 'localhost:', 'h.io:x1'])
def test_registry_with_a_bad_port(registry):
    with pytest.raises(docker_name.BadNameException) as e:
        docker_name.Tag(registry + '/some/repo:tag')
    assert str(e.value) in ('Invalid registry: %s (bad port)' % registry,
                            'Invalid registry: %s' % registry)


@pytest.mark.parametrize('registry', ['localhost:1', 'localhost:65535',
                                      '[::1]:5000', 'gcr.io'])
def test_registry_ports_that_are_fine(registry):
    assert docker_name.Tag(registry + '/some/repo:tag').registry == registry


@pytest.mark.parametrize('name', [
    'localhost:5000/trusted/../evil/app:1', 'localhost:5000/./app:1',
    'localhost:5000/a//b:1', 'localhost:5000/app/:1', 'localhost:5000//app:1',
    'localhost:5000/..:1', 'gcr.io/a/b/.@sha256:' + 'a' * 64])
def test_a_name_means_one_repository(name):
    """Names the registry would resolve to another path are refused."""
    for strict in (True, False):
        with pytest.raises(docker_name.BadNameException,
                           match='path components must not be empty'):
            (docker_name.Digest if '@' in name else docker_name.Tag)(
                name, strict=strict)
    with pytest.raises(docker_name.BadNameException):
        docker_name.from_string(name)


def test_dots_inside_components_are_fine():
    assert docker_name.Tag('gcr.io/a.b/c..d/.e:1').repository == 'a.b/c..d/.e'

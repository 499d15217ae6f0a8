"""puller --cache: a content-addressed layer cache shared across pulls."""
import os
import subprocess

from containerregistry.client.v2_2 import leftovers
from containerregistry.testing import images
from containerregistry.testing import pars
from containerregistry.testing import proxy as proxy_mod


def _cache_entries(cache: str) -> dict:
    """{file name: bytes} of every regular file under CACHE."""
    out = {}
    for root, _, files in os.walk(cache):
        for name in files:
            path = os.path.join(root, name)
            if os.path.isfile(path):
                with open(path, 'rb') as f:
                    out[name] = f.read()
    return out


def _layer_gets(registry, mark, pushed):
    digests = {l.digest for l in pushed.layers}
    return [p for p in registry.blob_gets(mark) if p.rsplit('/', 1)[1] in digests]


def test_miss_then_hit(registry, repo_name, pull, tmp_path):
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(500 + i, 3000) for i in range(3)])
    cache = str(tmp_path / 'cache')
    mark = registry.mark()
    first = pull(pushed.by_tag, '--cache', cache)
    pull.assert_pulled(first, pushed)
    assert len(_layer_gets(registry, mark, pushed)) == 3
    entries = _cache_entries(cache)
    for layer in pushed.layers:
        assert entries.get(layer.hex) == layer.blob, sorted(entries)

    mark = registry.mark()
    second = pull(pushed.by_tag, '--cache', cache)
    pull.assert_pulled(second, pushed)
    assert _layer_gets(registry, mark, pushed) == []
    # A hit is a file of its own (a hard link or a copy), not a symlink into
    # the cache as upstream made it: the output outlives the cache.
    for i in range(3):
        layer = os.path.join(second.directory, '%03d.tar.gz' % i)
        assert os.path.isfile(layer) and not os.path.islink(layer)


def test_cache_shared_between_images(registry, repo_name, pull, tmp_path):
    base = images.make_layer(510, 2000)
    one = images.push_image(registry, repo_name + ':one', [base, images.make_layer(511)])
    two = images.push_image(registry, repo_name + ':two', [base, images.make_layer(512)])
    cache = str(tmp_path / 'cache')
    pull.assert_pulled(pull(one.by_tag, '--cache', cache), one)
    mark = registry.mark()
    pull.assert_pulled(pull(two.by_tag, '--cache', cache), two)
    gets = registry.blob_gets(mark)
    assert not any(two.layers[0].digest in p for p in gets)
    assert any(two.layers[1].digest in p for p in gets)


def test_bad_cache_entry_is_not_used(registry, repo_name, pull, tmp_path):
    pushed = images.push_image(registry, repo_name + ':t', [images.make_layer(520, 3000)])
    cache = str(tmp_path / 'cache')
    pull.assert_pulled(pull(pushed.by_tag, '--cache', cache), pushed)
    hexname = pushed.layers[0].hex
    paths = [os.path.join(root, hexname) for root, _, files in os.walk(cache)
             if hexname in files]
    assert len(paths) == 1
    os.unlink(paths[0])
    with open(paths[0], 'wb') as f:
        f.write(b'not the layer')
    mark = registry.mark()
    pull.assert_pulled(pull(pushed.by_tag, '--cache', cache), pushed)
    assert len(_layer_gets(registry, mark, pushed)) == 1


def test_cache_not_filled_by_corrupt_download(registry, repo_name, pull, tmp_path):
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(530), images.make_layer(531)])
    p = proxy_mod.start_proxy(registry)
    try:
        p.corrupt_blob(pushed.layers[1].digest)
        cache = str(tmp_path / 'cache')
        name = '%s/%s:t' % (p.host, pushed.repo)
        line = pull.assert_failed(pull(name, '--cache', cache))
        assert 'digest mismatch' in line.lower()
        entries = _cache_entries(cache) if os.path.isdir(cache) else {}
        assert pushed.layers[1].hex not in entries
        for content in entries.values():
            assert content != b'' and images.sha256(content) in {
                l.digest for l in pushed.layers}
    finally:
        p.stop()


def test_two_pullers_share_cache_concurrently(registry, repo_name, pull, tmp_path):
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(540 + i, 40_000) for i in range(6)])
    cache = str(tmp_path / 'cache')
    dirs = [str(tmp_path / 'out-a'), str(tmp_path / 'out-b'), str(tmp_path / 'out-c')]
    cmd = pars.tool_command('puller')
    procs = [subprocess.Popen(cmd + ['--name', pushed.by_tag, '--directory', d,
                                     '--cache', cache],
                              env=pull.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for d in dirs]
    for proc, d in zip(procs, dirs):
        out, err = proc.communicate(timeout=120)
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        done.directory = d
        pull.assert_pulled(done, pushed)
    entries = _cache_entries(cache)
    for layer in pushed.layers:
        assert entries.get(layer.hex) == layer.blob
    allowed = {l.hex for l in pushed.layers} | {pushed.config_digest.split(':')[1]}
    leftovers = set(entries) - allowed
    assert not leftovers, leftovers


def test_what_a_killed_pull_left_is_removed(registry, repo_name, pull,
                                            tmp_path):
    """Temporary files of pulls killed outright (SIGKILL) go at the next
    pull into the same directory or cache; another host's files stay."""
    pushed = images.push_image(registry, repo_name + ':t',
                               [images.make_layer(560, 3000)])
    dead = subprocess.Popen(['true'])
    dead.wait()
    host = leftovers.host()
    out = tmp_path / 'out'
    cache = tmp_path / 'cache'
    left = {}
    for where in (out, cache):
        where.mkdir()
        left[where] = where / ('.000.tar.gz.%d@%s.77.tmp' % (dead.pid, host))
        left[where].write_bytes(b'half a layer')
    other_host = cache / ('.%s.%d@%s-elsewhere.77.tmp'
                          % (pushed.layers[0].hex, dead.pid, host))
    other_host.write_bytes(b'being written on another machine')
    proc = pull(pushed.by_tag, '--cache', str(cache), directory=str(out))
    pull.assert_pulled(proc, pushed)
    assert not left[cache].exists()
    assert other_host.exists()

"""pusher.par, digester.par and flatten.par with `--oci-layout`.

The pusher publishes the layout's manifest bytes unchanged, so the
registry's digest is the one index.json names (as `skopeo copy oci:...`
does); the digester prints that digest; flatten gives what it gives for the
same image in the fast layout.
"""
import os

import pytest

from containerregistry.testing import images
from containerregistry.testing import oci_layouts as ol
from containerregistry.testing import pars
from containerregistry.testing import push_helpers as ph
from containerregistry.testing.push_helpers import tools  # noqa: F401 (fixture)


def _tars(*seeds):
    return [images.make_layer(s, 1300 + 17 * s) for s in seeds]


def _name(registry, repo, tag='latest'):
    return '%s/%s:%s' % (registry.host, repo, tag)


def _assert_published_as_is(registry, repo, name, proc, layout, entry):
    """The push of ENTRY of LAYOUT published its manifest byte for byte."""
    assert ph.published_digest(proc, name) == entry['digest']
    assert ph.tag_digest(registry, repo, name.rsplit(':', 1)[1]) == entry['digest']
    assert images.skopeo_inspect_raw(registry, name) == ol.read_blob(
        layout, entry['digest'])


def test_skopeo_layout_is_pushed_unchanged(registry, repo_name, tools, tmp_path):
    source = images.push_image(registry, repo_name + ':src', _tars(1, 2))
    layout = ol.skopeo_layout(registry, source.by_tag, str(tmp_path / 'l'), 'v1')
    entry, = ol.index_entries(layout)
    assert entry['mediaType'] == images.OCI_MANIFEST
    name = _name(registry, repo_name, 'pushed')
    proc = tools.pusher(name, '--oci-layout', layout)
    _assert_published_as_is(registry, repo_name, name, proc, layout, entry)
    blobs = images.skopeo_dir(registry, name, str(tmp_path / 'back'))
    assert blobs == {d: ol.read_blob(layout, d) for d in blobs}
    assert {l.digest for l in source.layers} < set(blobs)
    assert tools.digest('--oci-layout', layout) == entry['digest']


def test_umoci_layout_is_pushed_unchanged(registry, repo_name, tools, tmp_path):
    layout = ol.umoci_layout(str(tmp_path / 'l'), 'u', {'a.txt': b'a\n'},
                             str(tmp_path))
    entry, = ol.index_entries(layout)
    name = _name(registry, repo_name, 'u')
    proc = tools.pusher(name, '--oci-layout', layout, '--oci-ref', 'u')
    _assert_published_as_is(registry, repo_name, name, proc, layout, entry)
    assert tools.digest('--oci-layout', layout, '--oci-ref', 'u') == entry['digest']
    # To a digest reference, as the digester computed it.
    by_digest = '%s/%s@%s' % (registry.host, repo_name, entry['digest'])
    assert ph.published_digest(tools.pusher(by_digest, '--oci-layout', layout),
                               by_digest) == entry['digest']


def test_puller_layout_with_two_images(registry, repo_name, tools, pull):
    one = images.push_image(registry, repo_name + ':one', _tars(3), fmt='oci')
    two = images.push_image(registry, repo_name + ':two', _tars(4), fmt='oci')
    layout = pull.new_dir()
    for pushed in (one, two):
        proc = pull(pushed.by_tag, '--format', 'oci', directory=layout)
        assert proc.returncode == 0, proc.stderr
    name = _name(registry, repo_name, 'copy')

    proc = tools.pusher(name, '--oci-layout', layout)
    ph.one_line_failure(proc, 'holds 2 images', 'refs: one, two')
    assert ph.tag_digest(registry, repo_name, 'copy') is None
    proc = tools.digester('--oci-layout', layout, '--oci-ref', 'three')
    ph.one_line_failure(proc, "no image named 'three'", 'refs: one, two')
    assert proc.digest_text is None

    proc = tools.pusher(name, '--oci-layout', layout, '--oci-ref', 'two')
    assert ph.published_digest(proc, name) == two.digest
    assert images.skopeo_inspect_raw(registry, name) == two.manifest
    assert tools.digest('--oci-layout', layout, '--oci-ref', 'one') == one.digest


def test_corrupted_layer_is_not_published(registry, repo_name, tools, tmp_path):
    built = images.build_image(_tars(5), fmt='oci')
    layout = ol.write_layout(str(tmp_path / 'l'), [('x', built)])
    layer = built.layers[0]
    data = bytearray(layer.blob)
    data[-10] ^= 0x55
    with open(ol.blob_path(layout, layer.digest), 'wb') as f:
        f.write(data)
    name = _name(registry, repo_name)
    proc = tools.pusher(name, '--oci-layout', layout)
    ph.one_line_failure(proc, 'digest mismatch', layer.digest)
    assert ph.tag_digest(registry, repo_name, 'latest') is None
    assert not ph.blob_exists(registry, repo_name, layer.digest)


def test_missing_layout(registry, repo_name, tools, tmp_path):
    missing = str(tmp_path / 'nope')
    proc = tools.pusher(_name(registry, repo_name), '--oci-layout', missing)
    ph.one_line_failure(proc, 'OCI layout %s does not exist' % missing)
    proc = tools.digester('--oci-layout', str(tmp_path))
    ph.one_line_failure(proc, 'it has no oci-layout')


@pytest.mark.parametrize('tool', ['pusher', 'digester', 'flatten'])
def test_layout_flags_exclude_the_file_flags(tool, tmp_path):
    layout = ol.write_layout(str(tmp_path / 'l'),
                             [(None, images.build_image(_tars(6), fmt='oci'))])
    config = str(tmp_path / 'config.json')
    out = str(tmp_path / 'out')
    head = {'pusher': ['--name', 'localhost:1/repo:t'],
            'digester': ['--output-digest', out],
            'flatten': ['--filesystem', out]}[tool]
    proc = pars.run_tool(tool, *head, '--oci-layout', layout, '--config',
                         config, timeout=60)
    ph.one_line_failure(proc, '--oci-layout cannot be combined with '
                               '--config')
    proc = pars.run_tool(tool, *head, '--config', config, '--oci-ref', 'x',
                         timeout=60)
    ph.one_line_failure(proc, '--oci-ref requires --oci-layout')
    assert not os.path.exists(out)


def test_pusher_refuses_oci_with_a_layout(tmp_path):
    layout = ol.write_layout(str(tmp_path / 'l'),
                             [(None, images.build_image(_tars(7)))])
    proc = pars.run_tool('pusher', '--name', 'localhost:1/repo:t', '--oci',
                         '--oci-layout', layout, timeout=60)
    ph.one_line_failure(proc, 'cannot be combined with --oci')


def _flatten(tmp_path, label, *flags):
    fs = str(tmp_path / (label + '.tar'))
    meta = str(tmp_path / (label + '.json'))
    proc = pars.run_tool('flatten', *flags, '--filesystem', fs,
                         '--metadata', meta, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with open(fs, 'rb') as f, open(meta, 'rb') as g:
        return f.read(), g.read()


def test_flatten_layout_equals_flatten_of_fast_pull(registry, repo_name, pull,
                                                    tmp_path):
    pushed = images.push_image(registry, repo_name + ':f',
                               [images.make_layer(s, 3000) for s in (8, 9, 10)])
    fast = pull(pushed.by_tag)
    assert fast.returncode == 0, fast.stderr
    flags = ['--config', os.path.join(fast.directory, 'config.json')]
    for i in range(len(pushed.layers)):
        flags += ['--digest', os.path.join(fast.directory, '%03d.sha256' % i),
                  '--layer', os.path.join(fast.directory, '%03d.tar.gz' % i)]
    expected = _flatten(tmp_path, 'fast', *flags)

    layout = pull(pushed.by_tag, '--format', 'oci')
    assert layout.returncode == 0, layout.stderr
    got = _flatten(tmp_path, 'oci', '--oci-layout', layout.directory,
                   '--oci-ref', 'f')
    assert got == expected
    assert got[1] == pushed.config


def test_flatten_names_a_missing_ref(tmp_path):
    layout = ol.write_layout(str(tmp_path / 'l'),
                             [('a', images.build_image(_tars(11), fmt='oci'))])
    out = str(tmp_path / 'fs.tar')
    proc = pars.run_tool('flatten', '--oci-layout', layout, '--oci-ref', 'b',
                         '--filesystem', out, timeout=60)
    ph.one_line_failure(proc, 'Error flattening image', "no image named 'b'",
                        'refs: a')
    assert not os.path.exists(out)

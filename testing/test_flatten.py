"""flatten.par and `extract` against `umoci unpack` on a corpus of layer cases.

umoci (the OCI reference unpacker) applies each image of
testing/flatten_corpus.py to a directory; flatten.par's tar must describe
the same tree: paths, types, permission bits, owners, mtimes, xattrs, link
targets, file contents and which paths share an inode. The image is given
to flatten.par in every form rules_docker uses: fast-layout layers,
uncompressed layers, both, a docker-save tarball (written by skopeo) and a
tarball base with layers on top.
"""
import dataclasses
import functools
import gzip
import hashlib
import io
import json
import os
import random
import stat
import subprocess
import tarfile
import threading
import time
import tracemalloc
from typing import Dict, List, Optional, Tuple

import pytest

from containerregistry.client.v2_2 import compression
from containerregistry.client.v2_2 import disk_image
from containerregistry.client.v2_2 import docker_image
from containerregistry.client.v2_2 import flatten
from containerregistry.client.v2_2 import leftovers
from containerregistry.client.v2_2 import tarball_image
from containerregistry.testing import flatten_corpus as corpus
from containerregistry.testing import foreign
from containerregistry.testing import images
from containerregistry.testing import pars

ROOTLESS_XATTR = 'user.rootlesscontainers'
XATTR_PAX = 'SCHILY.xattr.'
EMPTY = hashlib.sha256(b'').hexdigest()
# Directories no layer has an entry for: umoci gives them the clock's time.
IMPLICIT_DIRS = {'opaque': {'f'}}
# Cases whose layers carry an entry for the root directory itself.
ROOT_ENTRY = {'names'}


@dataclasses.dataclass(frozen=True)
class Node:
    """What the comparison looks at for one path."""
    kind: str  # dir, reg, sym, fifo
    mode: Optional[int]  # permission bits; None for symlinks
    owner: Tuple[int, int]
    data: Optional[str]  # sha256 of contents, or a symlink's target
    mtime: float
    xattrs: Tuple[Tuple[str, bytes], ...]


@dataclasses.dataclass
class Tree:
    nodes: Dict[str, Node]
    links: List[List[str]]  # groups of paths sharing an inode, sorted


def _varints(data: bytes) -> Dict[int, int]:
    """Field number -> value of a protobuf message made of varints."""
    fields, i = {}, 0
    while i < len(data):
        key, i = _varint(data, i)
        value, i = _varint(data, i)
        fields[key >> 3] = value
    return fields


def _varint(data: bytes, i: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7f) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _file_hash(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def umoci_tree(rootfs: str, implicit_after: float) -> Tuple[Tree, set]:
    """The tree umoci unpacked, and the directories it dated itself.

    A directory dated after IMPLICIT_AFTER got the clock's time, i.e. no
    layer had an entry for it; its mtime is left out (set to None).
    """
    nodes, inodes, implicit = {}, {}, set()
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, rootfs)
            st = os.lstat(path)
            xattrs = {}
            for key in os.listxattr(path, follow_symlinks=False):
                xattrs[key] = os.getxattr(path, key, follow_symlinks=False)
            ids = _varints(xattrs.pop(ROOTLESS_XATTR, b''))
            owner = (ids.get(1, 0), ids.get(2, 0))
            mode = stat.S_IMODE(st.st_mode)
            mtime = st.st_mtime_ns / 1e9
            if stat.S_ISDIR(st.st_mode):
                kind, data = 'dir', None
                if mtime > implicit_after:
                    implicit.add(rel)
                    mtime = None
            elif stat.S_ISLNK(st.st_mode):
                kind, data, mode = 'sym', os.readlink(path), None
            elif stat.S_ISFIFO(st.st_mode):
                kind, data = 'fifo', None
            elif stat.S_ISREG(st.st_mode):
                kind, data = 'reg', _file_hash(path)
            else:
                raise AssertionError('unexpected file type at %s' % rel)
            nodes[rel] = Node(kind, mode, owner, data, mtime,
                              tuple(sorted(xattrs.items())))
            if kind != 'dir':
                inodes.setdefault(st.st_ino, []).append(rel)
    links = sorted(sorted(g) for g in inodes.values() if len(g) > 1)
    return Tree(nodes, links), implicit


def tar_tree(path: str) -> Tuple[Tree, Dict[str, tarfile.TarInfo]]:
    """The tree a flattened tar describes, and its headers by path.

    Devices count as empty regular files, which is what rootless umoci
    makes of them. A hardlink to a path the tar lacks is kind `dangling`.
    """
    nodes, groups, headers = {}, {}, {}
    with tarfile.open(path, encoding='utf-8') as tar:
        for m in tar:
            rel = m.name.rstrip('/') or '.'
            if rel.startswith('./') and rel != '.':
                rel = rel[2:]
            assert rel not in nodes, 'duplicate entry %s' % rel
            headers[rel] = m
            if m.islnk():
                target = m.linkname
                if target not in nodes:
                    nodes[rel] = Node('dangling', None, (0, 0), target, 0, ())
                    continue
                nodes[rel] = nodes[target]
                root = next((k for k, v in groups.items() if target in v),
                            target)
                groups.setdefault(root, [root]).append(rel)
                continue
            mode = m.mode & 0o7777
            data = None
            if m.isdir():
                kind = 'dir'
            elif m.issym():
                kind, mode, data = 'sym', None, m.linkname
            elif m.isfifo():
                kind = 'fifo'
            elif m.ischr() or m.isblk():
                kind, data = 'reg', EMPTY
            elif m.isreg():
                kind = 'reg'
                digest = hashlib.sha256()
                reader = tar.extractfile(m)
                for chunk in iter(functools.partial(reader.read, 1 << 20), b''):
                    digest.update(chunk)
                data = digest.hexdigest()
            else:
                raise AssertionError('unexpected member type %r' % m.type)
            xattrs = tuple(sorted(
                (k[len(XATTR_PAX):], v.encode('utf-8', 'surrogateescape'))
                for k, v in m.pax_headers.items() if k.startswith(XATTR_PAX)))
            nodes[rel] = Node(kind, mode, (m.uid, m.gid), data, m.mtime,
                              xattrs)
    return Tree(nodes, sorted(sorted(g) for g in groups.values())), headers


def differences(expected: Tree, actual: Tree) -> List[str]:
    """How ACTUAL differs from EXPECTED, one line per path; [] if alike.

    An mtime of None in EXPECTED matches any.
    """
    out = []
    for path in sorted(set(expected.nodes) | set(actual.nodes)):
        want, got = expected.nodes.get(path), actual.nodes.get(path)
        if want is not None and got is not None and want.mtime is None:
            got = dataclasses.replace(got, mtime=None)
        if want is not None and got is not None and want.mtime is not None:
            if abs(want.mtime - got.mtime) < 1e-6:
                got = dataclasses.replace(got, mtime=want.mtime)
        if want != got:
            out.append('%s: expected %s, got %s' % (path, want, got))
    if expected.links != actual.links:
        out.append('inodes: expected %s, got %s' % (expected.links,
                                                     actual.links))
    return out


@dataclasses.dataclass
class Case:
    name: str
    tars: List[bytes]
    built: images.Built
    fast: corpus.FastLayout
    oci: str
    tarball: str
    expected: Tree


def _umoci(oci: str, bundle: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ['umoci', 'unpack', '--rootless', '--image',
         '%s:%s' % (oci, corpus.TAG), bundle],
        capture_output=True, text=True, timeout=120)


@pytest.fixture(scope='module')
def cases(tmp_path_factory) -> Dict[str, Case]:
    root = tmp_path_factory.mktemp('flatten-corpus')
    out = {}
    for name in corpus.CASES:
        base = root / name
        tars = corpus.case_tars(name)
        built = corpus.build(tars)
        oci = corpus.write_oci(str(base / 'oci'), built)
        started = time.time() - 1
        proc = _umoci(oci, str(base / 'bundle'))
        assert proc.returncode == 0, proc.stderr
        expected, implicit = umoci_tree(str(base / 'bundle' / 'rootfs'),
                                        started)
        assert implicit == IMPLICIT_DIRS.get(name, set()), implicit
        rootfs = os.lstat(str(base / 'bundle' / 'rootfs'))
        if name in ROOT_ENTRY:
            expected.nodes['.'] = Node(
                'dir', stat.S_IMODE(rootfs.st_mode), (0, 0), None,
                rootfs.st_mtime_ns / 1e9, ())
        out[name] = Case(
            name=name, tars=tars, built=built,
            fast=corpus.write_fast(str(base / 'fast'), built), oci=oci,
            tarball=corpus.write_tarball(str(base / 'image.tar'), oci),
            expected=expected)
    return out


def _layer_flags(fast: corpus.FastLayout, start: int = 0) -> List[str]:
    flags = []
    for digest, layer in zip(fast.digests[start:], fast.layers[start:]):
        flags += ['--digest', digest, '--layer', layer]
    return flags


def _uncompressed_flags(fast: corpus.FastLayout) -> List[str]:
    flags = []
    for diff_id, layer in zip(fast.diff_ids, fast.uncompressed):
        flags += ['--diff_id', diff_id, '--uncompressed_layer', layer]
    return flags


def _variant_flags(case: Case, variant: str, tmp_path) -> List[str]:
    fast = case.fast
    if variant == 'layers':
        return ['--config', fast.config] + _layer_flags(fast)
    if variant == 'uncompressed':
        return ['--config', fast.config] + _uncompressed_flags(fast)
    if variant == 'both':
        return (['--config', fast.config] + _layer_flags(fast)
                + _uncompressed_flags(fast))
    if variant == 'tarball':
        return ['--tarball', case.tarball]
    if variant == 'tarball_base':
        # The lower layers as a legacy base tarball, the top one on disk.
        base = corpus.build(case.tars[:-1])
        oci = corpus.write_oci(str(tmp_path / 'base-oci'), base)
        tarball = corpus.write_tarball(str(tmp_path / 'base.tar'), oci)
        return (['--tarball', tarball, '--config', fast.config]
                + _layer_flags(fast, start=len(case.tars) - 1))
    raise ValueError(variant)


def run_flatten(tmp_path, *flags: str, out: str = 'out', **kwargs):
    """Runs flatten.par writing into TMP_PATH/OUT; returns (proc, fs, meta)."""
    directory = tmp_path / out
    directory.mkdir(exist_ok=True)
    fs, meta = str(directory / 'fs.tar'), str(directory / 'meta.json')
    proc = pars.run_tool('flatten', *flags, '--filesystem', fs,
                         '--metadata', meta, timeout=300, **kwargs)
    return proc, fs, meta


VARIANTS = ['layers', 'uncompressed', 'both', 'tarball', 'tarball_base']


@pytest.mark.parametrize('variant', VARIANTS)
@pytest.mark.parametrize('name', sorted(corpus.CASES))
def test_flatten_matches_umoci(cases, name, variant, tmp_path):
    case = cases[name]
    proc, fs, meta = run_flatten(tmp_path,
                                 *_variant_flags(case, variant, tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert 'Traceback' not in proc.stderr
    actual, _ = tar_tree(fs)
    assert differences(case.expected, actual) == []
    with open(meta, 'rb') as f:
        assert f.read() == case.built.config
    assert sorted(os.listdir(os.path.dirname(fs))) == ['fs.tar', 'meta.json']


def test_every_variant_writes_the_same_bytes(cases, tmp_path):
    for name in ['hardlinks', 'basic']:
        outputs = set()
        for variant in VARIANTS:
            work = tmp_path / name / variant
            work.mkdir(parents=True)
            proc, fs, _ = run_flatten(tmp_path, *_variant_flags(
                cases[name], variant, work), out=name + '-' + variant)
            assert proc.returncode == 0, proc.stderr
            with open(fs, 'rb') as f:
                outputs.add(f.read())
        assert len(outputs) == 1, name


def _extract_bytes(image: docker_image.DockerImage) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT,
                      encoding='utf-8') as tar:
        flatten.extract(image, tar)
    return buf.getvalue()


def _from_disk(case: Case) -> disk_image.FromDisk:
    with open(case.fast.config, encoding='utf-8') as f:
        config = f.read()
    return disk_image.FromDisk(config, list(zip(case.fast.digests,
                                                case.fast.layers)))


class _BlobsOnly(docker_image.Delegate):
    """An image with no uncompressed_layer_stream (like a registry's)."""

    def __enter__(self):
        return self

    def __exit__(self, *unused):
        pass


def test_extract_sources_agree(cases, tmp_path):
    """FromDisk, FromTarball and a blob-only image flatten identically."""
    for name in sorted(corpus.CASES):
        case = cases[name]
        with _from_disk(case) as image:
            disk = _extract_bytes(image)
            assert not hasattr(_BlobsOnly(image), 'uncompressed_layer_stream')
            assert _extract_bytes(_BlobsOnly(image)) == disk, name
        with tarball_image.FromTarball(case.tarball) as image:
            assert _extract_bytes(image) == disk, name
        path = tmp_path / (name + '.tar')
        path.write_bytes(disk)
        assert differences(case.expected, tar_tree(str(path))[0]) == [], name


def test_output_format_is_pax_with_normalized_names(cases, tmp_path):
    proc, fs, _ = run_flatten(tmp_path, *_variant_flags(
        cases['long_names'], 'layers', tmp_path))
    assert proc.returncode == 0, proc.stderr
    with open(fs, 'rb') as f:
        data = f.read()
    assert b'././@LongLink' not in data  # no GNU extensions
    _, headers = tar_tree(fs)
    long_file = 'gnu/' + corpus.LONG_FILE
    assert len(long_file) > 255 and long_file in headers
    assert headers['gnu/%s/sym' % corpus.LONG_DIR].linkname == (
        corpus.LONG_TARGET)
    hard = headers['gnu/%s/hard-%s' % (corpus.LONG_DIR, 'x' * 90)]
    assert hard.islnk() and hard.linkname == long_file

    proc, fs, _ = run_flatten(tmp_path, *_variant_flags(
        cases['basic'], 'layers', tmp_path), out='basic')
    assert proc.returncode == 0, proc.stderr
    with open(fs, 'rb') as f:
        data = f.read()
    assert b'%suser.flavour=vanilla\n' % XATTR_PAX.encode() in data
    _, headers = tar_tree(fs)
    assert not any(name.startswith(('./', '/')) for name in headers)
    null, sda = headers['dev/null'], headers['dev/sda']
    assert null.ischr() and (null.devmajor, null.devminor) == (1, 3)
    assert sda.isblk() and (sda.devmajor, sda.devminor) == (8, 0)
    assert headers['usr/share/fraction'].mtime == corpus.MTIME + 0.5
    assert headers['usr/share/owned'].uid == 1000
    # Directories, links and devices first in path order, then contents.
    names = [n for n in headers if not headers[n].islnk()]
    first_file = next(i for i, n in enumerate(names)
                      if headers[n].isreg() and headers[n].size)
    assert names[:first_file] == sorted(names[:first_file],
                                        key=lambda n: n.split('/'))
    assert all(headers[n].isreg() for n in names[first_file:])


def test_output_is_deterministic(cases, tmp_path):
    flags = _variant_flags(cases['hardlinks'], 'layers', tmp_path)
    outputs = set()
    for out in ('one', 'two'):
        proc, fs, _ = run_flatten(tmp_path, *flags, out=out)
        assert proc.returncode == 0, proc.stderr
        with open(fs, 'rb') as f:
            outputs.add(f.read())
    assert len(outputs) == 1


def _sparse_tar(src, fmt: str) -> bytes:
    proc = subprocess.run(
        ['tar', '--sparse', '--format=' + fmt, '--owner=0', '--group=0',
         '--numeric-owner', '-C', str(src), '-cf', '-', 's'],
        capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        assert tar.getmember('s/sparse.bin').sparse
    return proc.stdout


def test_sparse_files(tmp_path):
    """GNU tar's sparse files come out whole, as plain files.

    PAX 1.0 sparse files are compared with umoci; umoci refuses old GNU
    sparse members (type `S`), which flatten accepts.
    """
    src = tmp_path / 'src'
    (src / 's').mkdir(parents=True)
    with open(src / 's' / 'sparse.bin', 'wb') as f:
        f.seek(1 << 20)
        f.write(b'middle')
        f.seek(3 << 20)
        f.write(b'end')
    os.utime(src / 's' / 'sparse.bin', (corpus.MTIME, corpus.MTIME))
    os.utime(src / 's', (corpus.MTIME, corpus.MTIME))
    want = _file_hash(str(src / 's' / 'sparse.bin'))
    posix = corpus.build([_sparse_tar(src, 'posix'), corpus.layer_tar(
        [corpus.reg('s/other', b'other\n')])])
    oci = corpus.write_oci(str(tmp_path / 'oci'), posix)
    started = time.time() - 1
    proc = _umoci(oci, str(tmp_path / 'bundle'))
    assert proc.returncode == 0, proc.stderr
    expected, implicit = umoci_tree(str(tmp_path / 'bundle' / 'rootfs'),
                                    started)
    assert implicit == set()
    for fmt, built in [('posix', posix),
                       ('gnu', corpus.build([_sparse_tar(src, 'gnu')]))]:
        fast = corpus.write_fast(str(tmp_path / fmt), built)
        proc, fs, _ = run_flatten(tmp_path, '--config', fast.config,
                                  *_layer_flags(fast), out=fmt)
        assert proc.returncode == 0, proc.stderr
        actual, headers = tar_tree(fs)
        if fmt == 'posix':
            assert differences(expected, actual) == []
        assert actual.nodes['s/sparse.bin'].data == want
        assert headers['s/sparse.bin'].type == tarfile.REGTYPE
        assert not any(k.startswith('GNU.sparse')
                       for k in headers['s/sparse.bin'].pax_headers)


# Upstream's merge (SPEC §2.4), to show the comparison catches a wrong one.
def upstream_merge(tars: List[bytes]) -> bytes:
    buf = io.BytesIO()
    seen: Dict[str, bool] = {}
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as out:
        for layer in reversed(tars):
            with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
                for member in tar:
                    head, base = os.path.split(member.name)
                    whiteout = base.startswith('.wh.')
                    if whiteout:
                        base = base[len('.wh.'):]
                    key = os.path.normpath('./' + head + '/' + base)
                    parts = key.split('/')
                    if key in seen or any(
                            seen.get('/'.join(parts[:i]))
                            for i in range(1, len(parts))):
                        continue
                    seen[key] = whiteout or not member.isdir()
                    if not whiteout:
                        out.addfile(member, tar.extractfile(member)
                                    if member.isreg() else None)
    return buf.getvalue()


@pytest.mark.parametrize('name', ['opaque', 'hardlinks', 'replace',
                                  'symlink_parents'])
def test_comparison_catches_upstream_merge(cases, name, tmp_path):
    path = tmp_path / 'upstream.tar'
    path.write_bytes(upstream_merge(cases[name].tars))
    assert differences(cases[name].expected, tar_tree(str(path))[0]) != []


def test_comparison_catches_a_wrong_mode_or_content(cases, tmp_path):
    expected = cases['basic'].expected
    good = tmp_path / 'good.tar'
    with _from_disk(cases['basic']) as image:
        good.write_bytes(_extract_bytes(image))
    tree = tar_tree(str(good))[0]
    assert differences(expected, tree) == []
    for path, change in [('etc/secret', {'mode': 0o644}),
                         ('etc/hosts', {'data': EMPTY}),
                         ('usr/share/owned', {'owner': (0, 0)}),
                         ('usr/share/flavoured', {'xattrs': ()}),
                         ('etc', {'mtime': corpus.MTIME})]:
        wrong = Tree(dict(tree.nodes), tree.links)
        wrong.nodes[path] = dataclasses.replace(tree.nodes[path], **change)
        assert differences(expected, wrong) != [], path
    wrong = Tree(dict(tree.nodes), tree.links + [['etc/empty', 'etc/hosts']])
    assert differences(expected, wrong) != []


# Failures: one line on stderr, exit 1, no output files.
def assert_failed(proc, tmp_path, *needles: str, out: str = 'out') -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert 'Traceback' not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert 'Error flattening image: ' in lines[0], lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert os.listdir(tmp_path / out) == []
    return lines[0]


@pytest.mark.parametrize('name', sorted(corpus.BROKEN))
def test_unusable_layers_fail_like_umoci(name, tmp_path):
    tars = corpus.case_tars(name)
    built = corpus.build(tars)
    oci = corpus.write_oci(str(tmp_path / 'oci'), built)
    proc = _umoci(oci, str(tmp_path / 'bundle'))
    assert proc.returncode != 0
    fast = corpus.write_fast(str(tmp_path / 'fast'), built)
    proc, _, _ = run_flatten(tmp_path, '--config', fast.config,
                             *_layer_flags(fast))
    needle = {'link_to_missing': 'does not exist',
              'link_to_deleted': 'does not exist',
              'link_to_directory': 'a directory',
              'parent_is_file': 'is not a directory',
              'symlink_loop': 'too many levels of symbolic links',
              'root_replaced': 'replaces the root directory'}[name]
    assert_failed(proc, tmp_path, 'layer 1 (%s)' % built.layers[1].diff_id,
                  needle)


@pytest.fixture
def small(tmp_path) -> Tuple[images.Built, corpus.FastLayout]:
    built = corpus.build(corpus.case_tars('whiteouts'))
    return built, corpus.write_fast(str(tmp_path / 'fast'), built)


def _flipped(tar_bytes: bytes) -> bytes:
    """TAR_BYTES with the first byte of its first file's contents flipped
    (same size, headers intact: only the diff_id can tell)."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        offset = next(m.offset_data for m in tar if m.isfile() and m.size)
    return (tar_bytes[:offset] + bytes([tar_bytes[offset] ^ 0xff])
            + tar_bytes[offset + 1:])


@pytest.mark.parametrize('variant', ['uncompressed', 'tarball'])
def test_layer_that_does_not_match_its_diff_id(small, tmp_path, variant):
    """A plain layer has no CRC: a damaged one is caught by its diff_id."""
    built, fast = small
    bad = _flipped(built.layers[0].tar)
    if variant == 'uncompressed':
        with open(fast.uncompressed[0], 'wb') as f:
            f.write(bad)
        flags = ['--config', fast.config] + _uncompressed_flags(fast)
    else:
        tarball = str(tmp_path / 'plain.tar')
        members = {'config.json': built.config, 'l0.tar': bad}
        members.update(('l%d.tar' % i, layer.tar)
                       for i, layer in enumerate(built.layers) if i)
        entry = {'Config': 'config.json', 'RepoTags': ['flatten/plain:latest'],
                 'Layers': ['l%d.tar' % i for i in range(len(built.layers))]}
        members['manifest.json'] = json.dumps([entry]).encode()
        with tarfile.open(tarball, 'w') as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        flags = ['--tarball', tarball]
    proc, _, _ = run_flatten(tmp_path, *flags)
    line = assert_failed(proc, tmp_path, 'does not match its diff_id')
    assert 'layer 0 (%s)' % built.layers[0].diff_id in line, line


def test_missing_layer_file(small, tmp_path):
    built, fast = small
    os.unlink(fast.layers[1])
    proc, _, _ = run_flatten(tmp_path, '--config', fast.config,
                             *_layer_flags(fast))
    assert_failed(proc, tmp_path,
                  'No such file or directory: --layer ' + fast.layers[1])


def test_missing_uncompressed_layer_file(small, tmp_path):
    _, fast = small
    os.unlink(fast.uncompressed[2])
    proc, _, _ = run_flatten(tmp_path, '--config', fast.config,
                             *_uncompressed_flags(fast))
    assert_failed(proc, tmp_path, 'No such file or directory: '
                  '--uncompressed_layer ' + fast.uncompressed[2])


def test_missing_digest_file(small, tmp_path):
    _, fast = small
    os.unlink(fast.digests[0])
    proc, _, _ = run_flatten(tmp_path, '--config', fast.config,
                             *_layer_flags(fast))
    assert_failed(proc, tmp_path, fast.digests[0])


def test_missing_config(small, tmp_path):
    _, fast = small
    proc, _, _ = run_flatten(tmp_path, '--config', fast.config + '.nope',
                             *_layer_flags(fast))
    assert_failed(proc, tmp_path, 'No such file or directory',
                  fast.config + '.nope')


@pytest.mark.parametrize('damage', ['middle', 'truncated', 'trailer'])
def test_corrupt_gzip(small, tmp_path, damage):
    built, fast = small
    with open(fast.layers[2], 'rb') as f:
        blob = bytearray(f.read())
    if damage == 'middle':
        blob[len(blob) // 2:len(blob) // 2 + 8] = b'\xff' * 8
    elif damage == 'truncated':
        del blob[len(blob) * 2 // 3:]
    else:
        blob[-8] ^= 0xff  # the CRC
    with open(fast.layers[2], 'wb') as f:
        f.write(bytes(blob))
    proc, _, _ = run_flatten(tmp_path, '--config', fast.config,
                             *_layer_flags(fast))
    assert_failed(proc, tmp_path, 'layer 2 (%s)' % built.layers[2].diff_id)


def test_not_a_tar(small, tmp_path):
    built, fast = small
    with open(fast.layers[0], 'wb') as f:
        f.write(gzip.compress(b'this is not a tar archive\n' * 40))
    proc, _, _ = run_flatten(tmp_path, '--config', fast.config,
                             *_layer_flags(fast))
    assert_failed(proc, tmp_path, 'layer 0 (%s) is not a valid tar'
                  % built.layers[0].diff_id)


def _chain_tars(count: int) -> List[bytes]:
    """COUNT layers, each adding f<i> and whiting out its predecessor's."""
    tars = []
    for i in range(count):
        files = {'d/f%d' % i: b'layer %d\n' % i}
        if i:
            files['d/.wh.f%d' % (i - 1)] = b''
        tars.append(images.make_layer(0, files=files))
    return tars


def test_many_layers_apply_in_order(tmp_path):
    """More layers than are read at once still apply base first."""
    built = corpus.build(_chain_tars(9))
    fast = corpus.write_fast(str(tmp_path / 'fast'), built)
    proc, fs, _ = run_flatten(tmp_path, '--config', fast.config,
                              *_layer_flags(fast))
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(fs) as tar:
        files = {m.name: tar.extractfile(m).read()
                 for m in tar if m.isreg()}
    assert files == {'d/f8': b'layer 8\n'}


def _changing_after_the_index(monkeypatch, path: str, data: bytes) -> None:
    """Makes PATH hold DATA once flatten's first pass is done."""
    real = flatten._index

    def index_then_change(layers):
        tree = real(layers)
        with open(path, 'wb') as f:
            f.write(data)
        return tree
    monkeypatch.setattr(flatten, '_index', index_then_change)


CHANGES = {
    # Other members before the file: its contents are elsewhere now.
    'moved': lambda tar: images.gzip_bytes(images.make_layer(0, files={
        'a/first': b'x' * 3000, 'd/f1': b'layer 1\n'})),
    'cut': lambda tar: images.gzip_bytes(tar[:600]),
    # The file's header is intact; its contents end early.
    'cut-in-contents': lambda tar: images.gzip_bytes(
        tar[:tar.index(b'layer 1\n') + 4]),
    'corrupt': lambda tar: images.gzip_bytes(tar)[:40] + b'\xff' * 64,
}


@pytest.mark.parametrize('change', sorted(CHANGES))
def test_a_layer_changed_between_the_passes(tmp_path, monkeypatch, change):
    """The copy pass reads contents where the first pass found them; a layer
    changed in between is an error, never wrong contents."""
    tars = _chain_tars(2)
    built = corpus.build(tars)
    fast = corpus.write_fast(str(tmp_path / 'fast'), built)
    _changing_after_the_index(monkeypatch, fast.layers[1],
                              CHANGES[change](tars[1]))
    with open(fast.config, encoding='utf-8') as f:
        config = f.read()
    image = disk_image.FromDisk(config, list(zip(fast.digests, fast.layers)))
    with pytest.raises(flatten.FlattenError) as exc:
        _extract_bytes(image)
    where = 'layer 1 (%s)' % built.layers[1].diff_id
    if change == 'corrupt':
        assert str(exc.value).startswith(where + ' cannot be read: ')
    else:
        assert str(exc.value) == where + ' changed while it was read'


def test_the_lowest_broken_layer_is_named(tmp_path):
    """Layers are read several at once; the error is the base-most one's."""
    built = corpus.build(_chain_tars(6))
    fast = corpus.write_fast(str(tmp_path / 'fast'), built)
    for index in (1, 2, 5):
        with open(fast.layers[index], 'wb') as f:
            f.write(gzip.compress(b'not a tar, layer %d\n' % index * 40))
    for _ in range(3):
        proc, _, _ = run_flatten(tmp_path, '--config', fast.config,
                                 *_layer_flags(fast))
        assert_failed(proc, tmp_path, 'layer 1 (%s) is not a valid tar'
                      % built.layers[1].diff_id)


@pytest.mark.parametrize('flags,needle', [
    (['--digest', 'D', '--digest', 'E', '--layer', 'L'],
     'got 2 --digest and 1 --layer flags'),
    (['--diff_id', 'D', '--uncompressed_layer', 'L',
      '--uncompressed_layer', 'M'],
     'got 1 --diff_id and 2 --uncompressed_layer flags'),
])
def test_count_mismatch(small, tmp_path, flags, needle):
    _, fast = small
    proc, _, _ = run_flatten(tmp_path, '--config', fast.config, *flags)
    assert_failed(proc, tmp_path, needle)


def test_config_or_tarball_required(tmp_path):
    proc, _, _ = run_flatten(tmp_path)
    assert_failed(proc, tmp_path, 'either --config or --tarball')


def test_missing_tarball(small, tmp_path):
    proc, _, _ = run_flatten(tmp_path, '--tarball',
                             str(tmp_path / 'missing.tar'))
    assert_failed(proc, tmp_path, 'missing.tar')


def test_layer_count_must_match_the_config(small, tmp_path):
    """Layers pair with diff_ids by position, so the counts must agree."""
    built, fast = small
    flags = ['--config', fast.config]
    for i in (0, 1):
        flags += ['--digest', fast.digests[i], '--layer', fast.layers[i]]
    proc, _, _ = run_flatten(tmp_path, *flags)
    assert_failed(proc, tmp_path,
                  'the config lists 3 layers (rootfs.diff_ids) but 2 were given')
    tarball = corpus.write_tarball(str(tmp_path / 'base.tar'), corpus.write_oci(
        str(tmp_path / 'base-oci'), corpus.build(corpus.case_tars('basic'))))
    proc, _, _ = run_flatten(tmp_path, '--tarball', tarball, *flags)
    assert_failed(proc, tmp_path,
                  'the config lists 3 layers (rootfs.diff_ids) but 4 were given')


def test_missing_output_directory(small, tmp_path):
    _, fast = small
    (tmp_path / 'out').mkdir()
    target = str(tmp_path / 'nowhere' / 'fs.tar')
    proc = pars.run_tool('flatten', '--config', fast.config,
                         *_layer_flags(fast), '--filesystem', target,
                         '--metadata', str(tmp_path / 'out' / 'meta.json'))
    assert_failed(proc, tmp_path,
                  'cannot write %s: No such file or directory' % target)


def _one_line(proc) -> str:
    assert 'Traceback' not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize('which', ['filesystem', 'metadata'])
def test_an_output_that_is_a_directory_leaves_neither(small, tmp_path, which):
    _, fast = small
    out = tmp_path / 'out'
    out.mkdir()
    paths = {'filesystem': str(out / 'fs.tar'), 'metadata': str(out / 'pin')}
    os.mkdir(paths[which])
    proc = pars.run_tool('flatten', '--config', fast.config,
                         *_layer_flags(fast), '--filesystem', paths['filesystem'],
                         '--metadata', paths['metadata'])
    assert proc.returncode == 1, proc.stderr
    line = _one_line(proc)
    assert line.endswith('Error flattening image: cannot write %s: '
                         'Is a directory' % paths[which]), line
    assert '.tmp' not in line
    assert os.listdir(out) == [os.path.basename(paths[which])]
    assert os.listdir(paths[which]) == []


@pytest.mark.parametrize('flag', ['--filesystem', '--metadata'])
def test_an_empty_output_path_is_refused(small, tmp_path, flag):
    _, fast = small
    out = tmp_path / 'out'
    out.mkdir()
    other = {'--filesystem': '--metadata', '--metadata': '--filesystem'}[flag]
    proc = pars.run_tool('flatten', '--config', fast.config,
                         *_layer_flags(fast), flag, '', other,
                         str(out / 'other'))
    assert proc.returncode == 1, proc.stderr
    assert _one_line(proc).endswith(
        'Error flattening image: %s is empty; it must name a file' % flag)
    assert os.listdir(out) == []


def _read_fifo(path: str, into: dict) -> threading.Thread:
    def read():
        with open(path, 'rb') as f:
            into[path] = f.read()
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _release(fifo: str) -> None:
    """Ends a reader still waiting for FIFO's writer (the tool failed)."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # no reader left


def test_outputs_may_be_fifos(small, tmp_path):
    """A FIFO (or a device: /dev/null, /dev/stdout) is written in place,
    not replaced by a regular file; a tar streams into it."""
    built, fast = small
    out = tmp_path / 'out'
    out.mkdir()
    fs, meta = str(out / 'fs.fifo'), str(out / 'meta.fifo')
    got = {}
    for path in (fs, meta):
        os.mkfifo(path)
    readers = [_read_fifo(path, got) for path in (fs, meta)]
    try:
        proc = pars.run_tool('flatten', '--config', fast.config,
                             *_layer_flags(fast), '--filesystem', fs,
                             '--metadata', meta, timeout=120)
    finally:
        for path in (fs, meta):
            _release(path)
    for reader in readers:
        reader.join(30)
    assert proc.returncode == 0, proc.stderr
    assert got[meta] == built.config
    regular, regular_fs, _ = run_flatten(tmp_path, '--config', fast.config,
                                         *_layer_flags(fast), out='regular')
    assert regular.returncode == 0, regular.stderr
    with open(regular_fs, 'rb') as f:
        assert got[fs] == f.read()
    for path in (fs, meta):
        assert stat.S_ISFIFO(os.lstat(path).st_mode)
    assert sorted(os.listdir(out)) == ['fs.fifo', 'meta.fifo']


def test_symlinked_outputs_are_written_through(small, tmp_path):
    """A symlink stays; its target is replaced, beside itself."""
    built, fast = small
    real, out = tmp_path / 'real', tmp_path / 'out'
    real.mkdir()
    out.mkdir()
    (real / 'meta.json').write_bytes(b'old')
    os.symlink(str(real / 'meta.json'), out / 'meta.json')
    os.symlink('../real/fs.tar', out / 'fs.tar')  # dangling until written
    proc, fs, meta = run_flatten(tmp_path, '--config', fast.config,
                                 *_layer_flags(fast))
    assert proc.returncode == 0, proc.stderr
    assert os.readlink(meta) == str(real / 'meta.json')
    assert os.readlink(fs) == '../real/fs.tar'
    assert (real / 'meta.json').read_bytes() == built.config
    assert stat.S_ISREG(os.lstat(real / 'fs.tar').st_mode)
    with tarfile.open(real / 'fs.tar') as tar:
        assert tar.getmembers()
    assert sorted(os.listdir(real)) == ['fs.tar', 'meta.json']
    assert sorted(os.listdir(out)) == ['fs.tar', 'meta.json']


def test_what_a_killed_run_left_is_removed(small, tmp_path):
    """Temporary files a flatten killed outright (SIGKILL) left beside its
    outputs go at the next run."""
    _, fast = small
    out = tmp_path / 'out'
    out.mkdir()
    dead = subprocess.Popen(['true'])
    dead.wait()
    left = ['.%s.%d@%s.k1lled.tmp' % (base, dead.pid, leftovers.host())
            for base in ('fs.tar', 'meta.json')]
    for name in left:
        (out / name).write_bytes(b'half an output')
    proc, _, _ = run_flatten(tmp_path, '--config', fast.config,
                             *_layer_flags(fast))
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(out)) == ['fs.tar', 'meta.json']


def test_failure_keeps_existing_outputs(small, tmp_path):
    _, fast = small
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'fs.tar').write_bytes(b'old tar')
    (out / 'meta.json').write_bytes(b'old meta')
    os.unlink(fast.layers[1])
    proc, _, _ = run_flatten(tmp_path, '--config', fast.config,
                             *_layer_flags(fast))
    assert proc.returncode == 1
    assert sorted(os.listdir(out)) == ['fs.tar', 'meta.json']
    assert (out / 'fs.tar').read_bytes() == b'old tar'
    assert (out / 'meta.json').read_bytes() == b'old meta'


def test_metadata_is_the_config_verbatim(tmp_path):
    """No layers: an empty filesystem; the config's bytes are kept as is."""
    config = ('{"architecture": "amd64", "os": "linux",\r\n'
              ' "config": {"Labels": {"note": "caf\u00e9 \u2603"}},\r\n'
              ' "rootfs": {"type": "layers", "diff_ids": []}}\r\n').encode()
    path = tmp_path / 'config.json'
    path.write_bytes(config)
    proc, fs, meta = run_flatten(tmp_path, '--config', str(path))
    assert proc.returncode == 0, proc.stderr
    with open(meta, 'rb') as f:
        assert f.read() == config
    with tarfile.open(fs) as tar:
        assert tar.getmembers() == []
    assert os.stat(fs).st_mode & 0o777 == 0o644


def test_metadata_only(small, tmp_path):
    built, fast = small
    out = tmp_path / 'out'
    out.mkdir()
    proc = pars.run_tool('flatten', '--config', fast.config,
                         '--metadata', str(out / 'meta.json'))
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(out) == ['meta.json']
    assert (out / 'meta.json').read_bytes() == built.config


def test_metadata_from_the_tarball(cases, tmp_path):
    case = cases['whiteouts']
    proc, _, meta = run_flatten(tmp_path, '--tarball', case.tarball)
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(case.tarball) as tar:
        manifest = json.load(tar.extractfile('manifest.json'))
        config = tar.extractfile(manifest[0]['Config']).read()
    with open(meta, 'rb') as f:
        assert f.read() == config


# Memory: a 64 MiB file flattens in a few MiB.
BIG = 64 << 20


class _Pseudorandom(io.RawIOBase):
    """SIZE bytes of incompressible data, generated as they are read."""

    def __init__(self, size: int, seed: int = 7):
        super().__init__()
        self._left = size
        self._rng = random.Random(seed)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._left, 1 << 16)
        buffer[:n] = self._rng.randbytes(n)
        self._left -= n
        return n


def _big_layer(tmp_path) -> Tuple[str, str, str, str]:
    """(tar path, gz path, diff_id, blob digest) of a layer with one BIG file."""
    tar_path = str(tmp_path / 'big.tar')
    with tarfile.open(tar_path, 'w', format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(corpus.dir_('data/').info)
        info = corpus.reg('data/big.bin').info
        info.size = BIG
        tar.addfile(info, io.BufferedReader(_Pseudorandom(BIG)))
        tar.addfile(corpus.link('data/alias', 'data/big.bin').info)
    diff_id = 'sha256:' + _file_hash(tar_path)
    gz_path = str(tmp_path / 'big.tar.gz')
    with open(tar_path, 'rb') as src, open(gz_path, 'wb') as dst:
        digest, _ = compression.gzip_stream(src, dst, compresslevel=1)
    return tar_path, gz_path, diff_id, digest


@pytest.mark.parametrize('compressed', [True, False])
def test_memory_stays_flat(tmp_path, compressed):
    tar_path, gz_path, diff_id, digest = _big_layer(tmp_path)
    small = corpus.layer_tar([corpus.dir_('data/'),
                              corpus.reg('data/small', b'small\n')])
    small_path = tmp_path / 'small.tar'
    small_path.write_bytes(small)
    small_gz = tmp_path / 'small.tar.gz'
    small_gz.write_bytes(images.gzip_bytes(small))
    config = json.dumps({'rootfs': {'type': 'layers', 'diff_ids': [
        diff_id, images.sha256(small)]}})
    hexes = []
    for i, value in enumerate([digest, images.sha256(small_gz.read_bytes()),
                               diff_id, images.sha256(small)]):
        path = tmp_path / ('%d.hex' % i)
        path.write_text(value.split(':')[1])
        hexes.append(str(path))
    if compressed:
        image = disk_image.FromDisk(config, [(hexes[0], gz_path),
                                             (hexes[1], str(small_gz))])
    else:
        image = disk_image.FromDisk(
            config, [], uncompressed_layers=[(hexes[2], tar_path),
                                             (hexes[3], str(small_path))])
    out = str(tmp_path / 'flat.tar')
    tracemalloc.start()
    try:
        with image, tarfile.open(out, 'w', format=tarfile.PAX_FORMAT) as tar:
            flatten.extract(image, tar)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak
    with tarfile.open(out) as tar:
        members = {m.name: m for m in tar}
        assert members['data/big.bin'].size == BIG
        assert members['data/alias'].linkname == 'data/big.bin'
        digest = hashlib.sha256()
        reader = tar.extractfile(members['data/big.bin'])
        for chunk in iter(lambda: reader.read(1 << 20), b''):
            digest.update(chunk)
    expected = hashlib.sha256()
    source = _Pseudorandom(BIG)
    for chunk in iter(lambda: source.read(1 << 20), b''):
        expected.update(chunk)
    assert digest.hexdigest() == expected.hexdigest()


# Foreign layers: a tarball built on a Windows base (rules_docker's
# join_layers) holds only an empty placeholder for the base layer.

def _blob_flags(tmp_path, img: foreign.ForeignImage) -> List[str]:
    """--config and --digest/--layer flags giving both layers' real blobs."""
    flags = ['--config', str(tmp_path / 'config.json')]
    (tmp_path / 'config.json').write_bytes(img.config)
    for i, layer in enumerate([img.foreign, img.own]):
        (tmp_path / ('%d.sha256' % i)).write_text(layer.hex)
        (tmp_path / ('%d.tar.gz' % i)).write_bytes(layer.blob)
        flags += ['--digest', str(tmp_path / ('%d.sha256' % i)),
                  '--layer', str(tmp_path / ('%d.tar.gz' % i))]
    return flags


def test_foreign_layer_not_at_hand_is_an_error(tmp_path):
    urls = ['https://example.invalid/a.tgz', 'http://example.invalid/b.tgz']
    img = foreign.join_layers_tarball(str(tmp_path / 'win.tar'), urls)
    proc, _, _ = run_flatten(tmp_path, '--tarball', img.path)
    line = assert_failed(proc, tmp_path, img.foreign.digest, *urls)
    assert line.endswith(
        'Error flattening image: layer 0 (%s) cannot be read: foreign layer '
        '%s is not in the input, which holds an empty placeholder for it; '
        'its URLs: %s (--fetch-foreign-layers fetches it from them)' % (
            img.foreign.diff_id, img.foreign.digest, ', '.join(urls))), line


def test_fetch_foreign_layers_from_their_urls(tmp_path):
    """Fetched from the first URL that serves it, without credentials."""
    img = foreign.join_layers_tarball(str(tmp_path / 'win.tar'), [])
    with foreign.serve({'/base.tgz': img.foreign.blob}) as server:
        urls = [server.url('/missing.tgz'), server.url('/base.tgz')]
        img = foreign.join_layers_tarball(str(tmp_path / 'win.tar'), urls)
        temp = tmp_path / 'temp'
        temp.mkdir()
        proc, fs, meta = run_flatten(
            tmp_path, '--tarball', img.path, '--fetch-foreign-layers',
            env=dict(pars.tool_env(), TMPDIR=str(temp)))
        assert proc.returncode == 0, proc.stderr
        assert os.listdir(temp) == []  # the fetched layer is gone
        assert [r['path'] for r in server.seen] == ['/missing.tgz',
                                                    '/base.tgz']
        assert not any('Authorization' in r['headers'] for r in server.seen)
    with open(meta, 'rb') as f:
        assert f.read() == img.config
    # The same bytes as flattening the real blobs given as layers.
    expected, want_fs, _ = run_flatten(tmp_path, *_blob_flags(tmp_path, img),
                                       out='expected')
    assert expected.returncode == 0, expected.stderr
    with open(fs, 'rb') as got, open(want_fs, 'rb') as want:
        assert got.read() == want.read()
    with tarfile.open(fs) as tar:
        assert 'layer-900/data.bin' in tar.getnames()


@pytest.mark.parametrize('served', ['wrong', 'longer'])
def test_fetched_foreign_layer_must_match_its_digest(tmp_path, served):
    img = foreign.join_layers_tarball(str(tmp_path / 'win.tar'), [])
    body = {'wrong': images.layer_from_tar(images.make_layer(5)).blob,
            'longer': img.foreign.blob + b'x'}[served]
    with foreign.serve({'/base.tgz': body}) as server:
        img = foreign.join_layers_tarball(str(tmp_path / 'win.tar'),
                                          [server.url('/base.tgz')])
        proc, _, _ = run_flatten(tmp_path, '--tarball', img.path,
                                 '--fetch-foreign-layers')
    assert_failed(proc, tmp_path, img.foreign.digest, 'could not be fetched',
                  server.url('/base.tgz'), 'mismatch')


def test_empty_layer_with_a_diff_id_of_content(tmp_path):
    """An empty file is no layer unless its diff_id is that of no bytes."""
    tar = images.make_layer(31)
    config = tmp_path / 'config.json'
    config.write_bytes(json.dumps({'rootfs': {
        'type': 'layers', 'diff_ids': [images.sha256(tar)]}}).encode())
    (tmp_path / 'l.tar').write_bytes(b'')
    (tmp_path / 'l.diff').write_text(images.sha256(tar).split(':')[1])
    proc, _, _ = run_flatten(tmp_path, '--config', str(config),
                             '--diff_id', str(tmp_path / 'l.diff'),
                             '--uncompressed_layer', str(tmp_path / 'l.tar'))
    line = assert_failed(proc, tmp_path)
    assert line.endswith('Error flattening image: layer 0 (%s) is empty, but '
                         'its diff_id names content' % images.sha256(tar)), line


def test_foreign_layer_whose_tar_is_saved_is_not_fetched(tmp_path):
    """`docker save` keeps the foreign layer's tar: nothing to fetch."""
    with foreign.serve({}) as server:
        img = foreign.join_layers_tarball(str(tmp_path / 'win.tar'),
                                          [server.url('/base.tgz')],
                                          foreign_member=True)
        proc, fs, _ = run_flatten(tmp_path, '--tarball', img.path,
                                  '--fetch-foreign-layers')
        assert proc.returncode == 0, proc.stderr
        assert server.seen == []
    expected, want_fs, _ = run_flatten(tmp_path, *_blob_flags(tmp_path, img),
                                       out='expected')
    assert expected.returncode == 0, expected.stderr
    with open(fs, 'rb') as got, open(want_fs, 'rb') as want:
        assert got.read() == want.read()

"""Deterministic images whose layers exercise every way layers combine.

Each case is a list of layers (base first); each layer a list of entries
made with the helpers below, written with Python's tarfile at fixed
mtimes, owners and modes. The same case always gives the same bytes and
digests. Writers produce the three forms flatten.par reads (the fast
layout, compressed and uncompressed, and a docker-save tarball via skopeo)
and an OCI layout for `umoci unpack`, the reference for the merged result.
"""
import dataclasses
import io
import json
import os
import tarfile
from typing import Dict, List, Optional, Sequence

from containerregistry.testing import images

MTIME = images.LAYER_MTIME
TAG = 'flat'


@dataclasses.dataclass
class Entry:
    """One tar member: its header and, for regular files, its data."""
    info: tarfile.TarInfo
    data: bytes = b''


def _info(name: str, kind: bytes, mode: int, mtime: float,
          uid: int = 0, gid: int = 0,
          pax: Optional[Dict[str, str]] = None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.uid = uid
    info.gid = gid
    info.uname = info.gname = ''
    if pax:
        info.pax_headers = dict(pax)
    return info


def reg(name: str, data: bytes = b'', mode: int = 0o644,
        mtime: float = MTIME, **kw) -> Entry:
    info = _info(name, tarfile.REGTYPE, mode, mtime, **kw)
    info.size = len(data)
    return Entry(info, data)


def dir_(name: str, mode: int = 0o755, mtime: float = MTIME, **kw) -> Entry:
    return Entry(_info(name, tarfile.DIRTYPE, mode, mtime, **kw))


def sym(name: str, target: str, mtime: float = MTIME, **kw) -> Entry:
    info = _info(name, tarfile.SYMTYPE, 0o777, mtime, **kw)
    info.linkname = target
    return Entry(info)


def link(name: str, target: str, mode: int = 0o644, mtime: float = MTIME,
         **kw) -> Entry:
    info = _info(name, tarfile.LNKTYPE, mode, mtime, **kw)
    info.linkname = target
    return Entry(info)


def fifo(name: str, mode: int = 0o644, mtime: float = MTIME) -> Entry:
    return Entry(_info(name, tarfile.FIFOTYPE, mode, mtime))


def chr_(name: str, major: int, minor: int, mode: int = 0o666,
         mtime: float = MTIME) -> Entry:
    info = _info(name, tarfile.CHRTYPE, mode, mtime)
    info.devmajor, info.devminor = major, minor
    return Entry(info)


def blk(name: str, major: int, minor: int, mode: int = 0o660,
        mtime: float = MTIME) -> Entry:
    info = _info(name, tarfile.BLKTYPE, mode, mtime)
    info.devmajor, info.devminor = major, minor
    return Entry(info)


def whiteout(path: str) -> Entry:
    """Deletes PATH (from lower layers)."""
    head, _, base = path.rpartition('/')
    return reg((head + '/' if head else '') + '.wh.' + base, mode=0o600)


def opaque(directory: str) -> Entry:
    """Hides what lower layers hold under DIRECTORY."""
    return reg(directory.rstrip('/') + '/.wh..wh..opq', mode=0o600)


def layer_tar(entries: Sequence[Entry], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """The layer's tar bytes, members in the order given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=fmt,
                      encoding='utf-8') as tar:
        for entry in entries:
            tar.addfile(entry.info, io.BytesIO(entry.data)
                        if entry.info.isreg() else None)
    return buf.getvalue()


def _text(seed: str, size: int) -> bytes:
    line = ('%s ' % seed).encode() * 8 + b'\n'
    return (line * (size // len(line) + 1))[:size]


LONG_DIR = 'long/' + '/'.join('directory-level-%02d' % i for i in range(8))
LONG_FILE = LONG_DIR + '/' + 'a-file-name-that-is-quite-long-' * 3 + 'end.txt'
LONG_TARGET = '../' * 6 + 'target-' * 20 + 'end'
XATTR = 'SCHILY.xattr.user.flavour'
NOT_UTF8 = b'caf\xe9-latin1'.decode('utf-8', 'surrogateescape')


def _basic() -> List[List[Entry]]:
    base = [
        dir_('etc/'), reg('etc/hosts', b'127.0.0.1 localhost\n'),
        reg('etc/secret', b'hush\n', mode=0o600),
        reg('etc/empty'),
        dir_('usr/'), dir_('usr/bin/'), dir_('usr/lib/', mode=0o750),
        reg('usr/bin/tool', _text('tool', 5000), mode=0o755),
        reg('usr/bin/suid', b'#!/bin/sh\n', mode=0o4755),
        reg('usr/bin/sgid', b'#!/bin/sh\n', mode=0o2711),
        dir_('tmp/', mode=0o1777),
        sym('usr/bin/rel', 'tool'), sym('etc/abs', '/etc/hosts'),
        sym('etc/dangling', '../nowhere/at/all'),
        dir_('run/'), fifo('run/pipe', mode=0o620),
        dir_('dev/'), chr_('dev/null', 1, 3), blk('dev/sda', 8, 0),
        dir_('usr/share/'), reg('usr/share/ünïcødé name.txt', 'ü\n'.encode()),
        reg('usr/share/owned', b'owned\n', uid=1000, gid=1000),
        reg('usr/share/flavoured', b'x\n', pax={XATTR: 'vanilla'}),
        reg('usr/share/fraction', b'y\n', mtime=MTIME + 0.5),
    ]
    top = [
        dir_('etc/', mode=0o700, mtime=MTIME + 100),
        reg('etc/hosts', b'127.0.0.1 localhost\n::1 localhost\n',
            mtime=MTIME + 100),
        dir_('usr/lib/', mode=0o755, mtime=MTIME + 200),
        reg('usr/lib/libz.so.1', _text('libz', 70000), mode=0o755),
        sym('usr/lib/libz.so', 'libz.so.1'),
        dir_('tmp/', mode=0o1777, mtime=MTIME + 300),
    ]
    return [base, top]


def _long_names() -> List[List[Entry]]:
    def tree(fmt_name: str) -> List[Entry]:
        entries = []
        parts = ('%s/%s' % (fmt_name, LONG_DIR)).split('/')
        for i in range(1, len(parts) + 1):
            entries.append(dir_('/'.join(parts[:i]) + '/'))
        entries.append(reg('%s/%s' % (fmt_name, LONG_FILE), b'long\n'))
        entries.append(sym('%s/%s/sym' % (fmt_name, LONG_DIR), LONG_TARGET))
        entries.append(link('%s/%s/hard-%s' % (fmt_name, LONG_DIR, 'x' * 90),
                            '%s/%s' % (fmt_name, LONG_FILE)))
        return entries
    return [tree('gnu'), tree('pax')]


def _whiteouts() -> List[List[Entry]]:
    base = [
        dir_('a/'), reg('a/x', b'x0\n'), reg('a/y', b'y0\n'),
        dir_('a/sub/'), reg('a/sub/z', b'z0\n'),
        reg('b', b'b0\n'), dir_('c/'), reg('c/d', b'd0\n'),
        dir_('c/deep/'), reg('c/deep/e', b'e0\n'),
        reg('f', b'f0\n'), reg('g', b'g0\n'),
    ]
    middle = [
        whiteout('a/x'), whiteout('c'), whiteout('a/sub/z'),
        reg('a/w', b'w1\n'), whiteout('ghost'), whiteout('a/sub/ghost'),
        # Same layer: an entry and a whiteout of it in either order.
        reg('new', b'new1\n'), whiteout('new'),
        whiteout('f'), reg('f', b'f1\n'),
        # Whiteout of a path below a file: nothing to remove.
        whiteout('g/inner'),
    ]
    top = [
        dir_('c/', mode=0o700), reg('c/fresh', b'fresh2\n'),
        reg('a/x', b'x2\n'), whiteout('b'),
    ]
    return [base, middle, top]


def _opaque() -> List[List[Entry]]:
    base = [
        dir_('d/'), reg('d/a', b'a0\n'), dir_('d/sub/'), reg('d/sub/b', b'b0\n'),
        dir_('e/'), reg('e/old', b'old0\n'), dir_('keep/'), reg('keep/k', b'k0\n'),
        dir_('h/'), reg('h/one', b'one0\n'),
    ]
    middle = [
        dir_('d/', mode=0o750, mtime=MTIME + 10), opaque('d'),
        reg('d/c', b'c1\n'),
        # Entries before the opaque marker in the same layer stay.
        reg('e/new', b'new1\n'), opaque('e'),
        # Opaque marker in a directory no lower layer has.
        opaque('f'), reg('f/g', b'g1\n'),
        # Opaque marker without the directory's own entry.
        opaque('h'),
    ]
    top = [dir_('d/sub/'), reg('d/sub/n', b'n2\n')]
    return [base, middle, top]


def _replace() -> List[List[Entry]]:
    base = [
        dir_('p/'), reg('p/child', b'child0\n'), reg('q', b'q0\n'),
        sym('r', 'somewhere'), dir_('s/'), reg('s/x', b'x0\n'),
        reg('t', b't0\n'), dir_('u/'), reg('u/v', b'v0\n'),
        fifo('w'), reg('x', b'x0\n', mode=0o600),
    ]
    middle = [
        reg('p', b'p-is-a-file\n'), dir_('q/'), reg('q/inner', b'inner1\n'),
        dir_('r/'), reg('r/y', b'y1\n'), sym('s', 'elsewhere'),
        sym('t', 'q/inner'), dir_('u/', mode=0o700), reg('w', b'w1\n'),
        reg('x', b'x1\n', mode=0o755),
    ]
    top = [dir_('p/'), reg('p/again', b'again2\n')]
    return [base, middle, top]


def _hardlinks() -> List[List[Entry]]:
    base = [
        dir_('h/'), reg('h/target', b'target0\n', mode=0o640),
        link('h/same', 'h/target'), reg('h/victim', b'victim0\n'),
        reg('h/keep', b'keep0\n'), sym('h/sym', 'target'),
        fifo('h/fifo'), reg('h/chain', b'chain0\n'),
        link('./h/dot', './h/target'),
    ]
    middle = [
        link('h/lower', 'h/target'), link('h/v1', 'h/victim'),
        link('h/v2', 'h/victim'), link('h/k1', 'h/keep'),
        link('h/s1', 'h/sym'), link('h/f1', 'h/fifo'),
        link('h/c1', 'h/chain'), link('h/c2', 'h/c1'),
    ]
    top = [
        whiteout('h/victim'), reg('h/keep', b'keep2\n'), whiteout('h/same'),
        whiteout('h/chain'), whiteout('h/c1'),
    ]
    return [base, middle, top]


def _symlink_parents() -> List[List[Entry]]:
    base = [
        dir_('usr/'), dir_('usr/lib/'), reg('usr/lib/base', b'base0\n'),
        reg('usr/lib/gone', b'gone0\n'),
        sym('lib', 'usr/lib'), sym('lib64', '/usr/lib'),
        sym('up', '../../../usr'),
    ]
    top = [
        reg('lib/foo', b'foo1\n'), reg('lib64/bar', b'bar1\n'),
        reg('up/lib/baz', b'baz1\n'), whiteout('lib/gone'),
    ]
    return [base, top]


def _names() -> List[List[Entry]]:
    base = [
        dir_('./', mode=0o755), dir_('./dot/'), reg('./dot/file', b'dot0\n'),
        reg('/abs-file', b'abs0\n'), dir_('plain/'),
        reg('plain/../clamped', b'clamped0\n'), reg('../escape', b'escape0\n'),
        # Not UTF-8: kept byte for byte (a PAX `hdrcharset=BINARY` record).
        reg(NOT_UTF8, b'latin1\n'),
    ]
    top = [
        dir_('./', mode=0o750, mtime=MTIME + 5), reg('dot/file', b'dot1\n'),
        reg('./abs-file', b'abs1\n'), whiteout('./escape'),
    ]
    return [base, top]


def _xattrs() -> List[List[Entry]]:
    base = [
        dir_('x/', pax={XATTR: 'dir0'}), reg('x/file', b'f0\n',
                                            pax={XATTR: 'file0'}),
        reg('x/kept', b'k0\n', pax={XATTR: 'kept0'}),
    ]
    top = [dir_('x/'), reg('x/file', b'f1\n', pax={XATTR: 'file1'})]
    return [base, top]


def _repeated() -> List[List[Entry]]:
    """The same layer twice (one diff_id at two positions)."""
    base = [dir_('r/'), reg('r/file', b'r0\n'), link('r/link', 'r/file')]
    return [base, [whiteout('r/file'), reg('r/new', b'new1\n')], base]


# Cases umoci and flatten must agree on: name -> (layers, tar formats).
CASES = {
    'basic': (_basic(), [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]),
    'long_names': (_long_names(), [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
    'whiteouts': (_whiteouts(), None),
    'opaque': (_opaque(), None),
    'replace': (_replace(), None),
    'hardlinks': (_hardlinks(), None),
    'symlink_parents': (_symlink_parents(), None),
    'names': (_names(), None),
    'xattrs': (_xattrs(), None),
    'repeated': (_repeated(), None),
}

# Layers that no unpacker can apply: name -> layers.
BROKEN = {
    'link_to_missing': [[reg('a', b'a\n')], [link('b', 'missing')]],
    'link_to_deleted': [[reg('a', b'a\n')], [whiteout('a'), link('b', 'a')]],
    'link_to_directory': [[dir_('d/')], [link('l', 'd')]],
    'parent_is_file': [[reg('a', b'a\n')], [reg('a/b', b'b\n')]],
    'symlink_loop': [[sym('a', 'b'), sym('b', 'a')], [reg('a/x', b'x\n')]],
    'root_replaced': [[reg('a', b'a\n')], [reg('.', b'root\n')]],
}


def case_tars(name: str) -> List[bytes]:
    """The layer tars of case NAME, base first."""
    if name in BROKEN:
        return [layer_tar(layer) for layer in BROKEN[name]]
    layers, formats = CASES[name]
    formats = formats or [tarfile.PAX_FORMAT] * len(layers)
    return [layer_tar(layer, fmt) for layer, fmt in zip(layers, formats)]


def write_oci(directory: str, built: images.Built, tag: str = TAG) -> str:
    """An OCI image layout holding BUILT under TAG; returns DIRECTORY."""
    blobs = os.path.join(directory, 'blobs', 'sha256')
    os.makedirs(blobs, exist_ok=True)
    for digest, data in list(built.blobs().items()) + [
            (built.digest, built.manifest)]:
        with open(os.path.join(blobs, digest.split(':')[1]), 'wb') as f:
            f.write(data)
    with open(os.path.join(directory, 'oci-layout'), 'w') as f:
        json.dump({'imageLayoutVersion': '1.0.0'}, f)
    with open(os.path.join(directory, 'index.json'), 'w') as f:
        json.dump({'schemaVersion': 2, 'manifests': [{
            'mediaType': built.media_type, 'size': len(built.manifest),
            'digest': built.digest,
            'annotations': {'org.opencontainers.image.ref.name': tag}}]}, f)
    return directory


@dataclasses.dataclass
class FastLayout:
    """The fast-layout files of an image, as flatten.par's flags name them."""
    config: str
    digests: List[str]
    layers: List[str]
    diff_ids: List[str]
    uncompressed: List[str]


def write_fast(directory: str, built: images.Built) -> FastLayout:
    """config.json, NNN.sha256 + NNN.tar.gz, NNN.diff_id + NNN.tar."""
    os.makedirs(directory, exist_ok=True)

    def put(name: str, data: bytes) -> str:
        path = os.path.join(directory, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    fast = FastLayout(put('config.json', built.config), [], [], [], [])
    for i, layer in enumerate(built.layers):
        fast.digests.append(put('%03d.sha256' % i, layer.hex.encode()))
        fast.layers.append(put('%03d.tar.gz' % i, layer.blob))
        fast.diff_ids.append(put('%03d.diff_id' % i,
                                 layer.diff_id.split(':')[1].encode()))
        fast.uncompressed.append(put('%03d.tar' % i, layer.tar))
    return fast


def write_tarball(path: str, oci_dir: str, tag: str = TAG) -> str:
    """A docker-save tarball of the OCI layout's TAG, written by skopeo."""
    images.skopeo('copy', 'oci:%s:%s' % (oci_dir, tag),
                  'docker-archive:%s:flatten/%s:latest' % (path, tag))
    return path


def build(tars: Sequence[bytes]) -> images.Built:
    """An OCI image over TARS (gzipped, base first)."""
    return images.build_image(list(tars), fmt='oci')

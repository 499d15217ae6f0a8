"""A minimal import of a docker-save tarball whose layers are gzipped, as a floor.

Not an importer: no `./` or outer-gzip handling, no name selection, no
atomic output, no messages worth reading. It does only what an import
that refuses a bad gzip CRC and a wrong diff_id cannot skip, each layer
on a thread of its own (zlib and hashlib release the GIL): read the member
once, hash it (its digest), inflate it (zlib checks the CRC) and hash the
tar (its diff_id, compared with the config), then copy the member into
DIRECTORY/NNN.tar.gz inside the kernel (`copy_file_range`) and write
`config.json` and the `NNN.sha256` files (no manifest or `digest`).
With `--no-inflate` it skips the inflate and the diff_id, to show what the
checks cost. With `--zlib-ng PAR` it inflates with the zlib-ng that PAR
(a tool's .par) carries, loaded the way the tools load it.

Usage: floor_import.py TARBALL DIRECTORY [--no-inflate | --zlib-ng PAR]
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import sys
import tarfile
import zlib

CHUNK = 1 << 20


def check_layer(path: str, offset: int, size: int, diff_id: str, inflate: bool,
                zlib=zlib) -> str:
    blob_hash = hashlib.sha256()
    tar_hash = hashlib.sha256()
    inflater = zlib.decompressobj(31)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, 'rb', buffering=0) as f:
        f.seek(offset)
        left = size
        while left:
            n = f.readinto(view[:min(left, CHUNK)])
            if not n:
                raise SystemExit('%s: truncated' % path)
            left -= n
            blob_hash.update(view[:n])
            data = view[:n]
            while inflate and data:
                tar_hash.update(inflater.decompress(data, CHUNK))
                data = inflater.unconsumed_tail
                if inflater.eof:  # a multi-member gzip
                    data, inflater = inflater.unused_data, zlib.decompressobj(31)
    if inflate and 'sha256:' + tar_hash.hexdigest() != diff_id:
        raise SystemExit('diff_id mismatch')
    return blob_hash.hexdigest()


def copy_range(path: str, offset: int, size: int, dest: str) -> None:
    with open(path, 'rb') as src, open(dest, 'wb') as out:
        while size:
            n = os.copy_file_range(src.fileno(), out.fileno(), size, offset)
            size -= n
            offset += n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('tarball')
    p.add_argument('directory')
    p.add_argument('--no-inflate', action='store_true')
    p.add_argument('--zlib-ng', metavar='PAR')
    args = p.parse_args()
    module = zlib
    if args.zlib_ng:
        sys.path.insert(0, args.zlib_ng)
        from containerregistry.client.v2_2 import inflater
        module = inflater.module()
        if inflater.name(module) != 'zlib-ng':
            raise SystemExit('%s: no zlib-ng for this interpreter' % args.zlib_ng)
    with tarfile.open(args.tarball) as tar:
        members = {m.name: m for m in tar}
        entry = json.load(tar.extractfile(members['manifest.json']))[0]
        config = tar.extractfile(members[entry['Config']]).read()
    diff_ids = json.loads(config)['rootfs']['diff_ids']
    layers = [members[name] for name in entry['Layers']]
    os.makedirs(args.directory, exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        digests = list(pool.map(
            lambda i: check_layer(args.tarball, layers[i].offset_data, layers[i].size,
                                  diff_ids[i], not args.no_inflate, module),
            range(len(layers))))
        list(pool.map(lambda i: copy_range(
            args.tarball, layers[i].offset_data, layers[i].size,
            os.path.join(args.directory, '%03d.tar.gz' % i)), range(len(layers))))
    for i, digest in enumerate(digests):
        with open(os.path.join(args.directory, '%03d.sha256' % i), 'w') as f:
            f.write(digest)
    with open(os.path.join(args.directory, 'config.json'), 'wb') as f:
        f.write(config)


if __name__ == '__main__':
    main()

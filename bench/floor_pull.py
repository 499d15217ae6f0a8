"""A minimal streaming pull, as a floor for what Python can do on this machine.

Not a puller: plain http only, no auth, no manifest lists, Docker schema 2
or OCI manifests only. It does the work a pull cannot skip (fetch the
manifest, stream config and layers on 8 threads, hash and write every
chunk) with the standard library alone (`--http stdlib`) or with urllib3
(`--http urllib3`, imported from PYTHONPATH or a .par given with --par), so
the benchmark can show how far the puller is from the floor and what the
HTTP library costs.

Usage: floor_pull.py REGISTRY/REPO:TAG DIRECTORY [--http stdlib|urllib3]
"""
import argparse
import concurrent.futures
import hashlib
import http.client
import json
import os
import sys
import threading

ACCEPT = ','.join([
    'application/vnd.docker.distribution.manifest.v2+json',
    'application/vnd.oci.image.manifest.v1+json',
])
CHUNK = 1 << 20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('ref')
    p.add_argument('directory')
    p.add_argument('--http', choices=('stdlib', 'urllib3'), default='stdlib')
    p.add_argument('--par', help='import urllib3 from this .par')
    p.add_argument('--threads', type=int, default=8)
    args = p.parse_args()
    host, _, rest = args.ref.partition('/')
    repo, _, tag = rest.rpartition(':')

    if args.http == 'urllib3':
        if args.par:
            sys.path.insert(0, args.par)
        import urllib3
        pool = urllib3.PoolManager(maxsize=args.threads)

        def get(path: str, headers=None):
            return pool.urlopen('GET', 'http://%s%s' % (host, path),
                                headers=headers or {}, preload_content=False,
                                redirect=False, retries=False)
    else:
        local = threading.local()

        def get(path: str, headers=None):
            if not hasattr(local, 'conn'):
                local.conn = http.client.HTTPConnection(host)
            local.conn.request('GET', path, headers=headers or {})
            return local.conn.getresponse()

    resp = get('/v2/%s/manifests/%s' % (repo, tag), {'Accept': ACCEPT})
    manifest = resp.read()
    if resp.status != 200:
        sys.exit('manifest: HTTP %d' % resp.status)
    parsed = json.loads(manifest)
    os.makedirs(args.directory)

    def fetch(digest: str, name: str) -> None:
        r = get('/v2/%s/blobs/%s' % (repo, digest))
        if r.status != 200:
            raise RuntimeError('%s: HTTP %d' % (digest, r.status))
        h = hashlib.sha256()
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        with open(os.path.join(args.directory, name), 'wb') as f:
            while True:
                n = r.readinto(buf)
                if not n:
                    break
                h.update(view[:n])
                f.write(view[:n])
        if 'sha256:' + h.hexdigest() != digest:
            raise RuntimeError('digest mismatch for ' + digest)

    jobs = [(parsed['config']['digest'], 'config.json')]
    jobs += [(layer['digest'], '%03d.tar.gz' % i)
             for i, layer in enumerate(parsed['layers'])]
    with concurrent.futures.ThreadPoolExecutor(args.threads) as workers:
        for future in [workers.submit(fetch, d, n) for d, n in jobs]:
            future.result()
    with open(os.path.join(args.directory, 'manifest.json'), 'wb') as f:
        f.write(manifest)


if __name__ == '__main__':
    main()

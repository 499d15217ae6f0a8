"""A minimal push, as a floor for what any client costs the push here.

Not a pusher: plain http only, no auth, no retries, no checks of its input.
It reads the fast layout (`config.json`, `NNN.sha256`, `NNN.tar.gz`) and
does what a push cannot skip: per blob on 8 threads a HEAD, a POST and one
PUT whose body goes from the file to the socket with `sendfile` (no copy
through Python), then the manifest. Its own CPU use is close to nothing, so
its wall time is what the registry needs to take the blobs.

Usage: floor_push.py REGISTRY/REPO:TAG DIRECTORY
"""
import argparse
import concurrent.futures
import hashlib
import http.client
import json
import os
import sys
import threading
import urllib.parse

MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json'
CONFIG = 'application/vnd.docker.container.image.v1+json'
LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip'


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('ref')
    p.add_argument('directory')
    p.add_argument('--threads', type=int, default=8)
    args = p.parse_args()
    host, _, rest = args.ref.partition('/')
    repo, _, tag = rest.rpartition(':')
    local = threading.local()

    def conn() -> http.client.HTTPConnection:
        if not hasattr(local, 'conn'):
            local.conn = http.client.HTTPConnection(host)
        return local.conn

    def call(method: str, path: str, headers=None):
        c = conn()
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        r.read()
        return r

    def push(digest: str, path: str) -> None:
        if call('HEAD', '/v2/%s/blobs/%s' % (repo, digest)).status == 200:
            return
        r = call('POST', '/v2/%s/blobs/uploads/' % repo)
        if r.status != 202:
            raise RuntimeError('POST upload: HTTP %d' % r.status)
        loc = urllib.parse.urlsplit(r.getheader('Location'))
        query = (loc.query + '&' if loc.query else '') + 'digest=' + digest
        c = conn()
        c.putrequest('PUT', loc.path + '?' + query)
        c.putheader('Content-Type', 'application/octet-stream')
        c.putheader('Content-Length', str(os.path.getsize(path)))
        c.endheaders()
        with open(path, 'rb') as f:
            c.sock.sendfile(f)
        r = c.getresponse()
        r.read()
        if r.status != 201:
            raise RuntimeError('PUT %s: HTTP %d' % (digest, r.status))

    d = args.directory
    with open(os.path.join(d, 'config.json'), 'rb') as f:
        config = f.read()
    config_digest = 'sha256:' + hashlib.sha256(config).hexdigest()
    layers = []
    i = 0
    while os.path.exists(os.path.join(d, '%03d.sha256' % i)):
        with open(os.path.join(d, '%03d.sha256' % i)) as f:
            digest = 'sha256:' + f.read().strip()
        path = os.path.join(d, '%03d.tar.gz' % i)
        layers.append((digest, path, os.path.getsize(path)))
        i += 1
    jobs = [(config_digest, os.path.join(d, 'config.json'))]
    jobs += [(digest, path) for digest, path, _ in layers]
    with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
        for future in [pool.submit(push, digest, path) for digest, path in jobs]:
            future.result()
    manifest = json.dumps({
        'schemaVersion': 2, 'mediaType': MANIFEST,
        'config': {'mediaType': CONFIG, 'size': len(config), 'digest': config_digest},
        'layers': [{'mediaType': LAYER, 'size': size, 'digest': digest}
                   for digest, _, size in layers],
    }, sort_keys=True).encode()
    c = conn()
    c.request('PUT', '/v2/%s/manifests/%s' % (repo, tag), body=manifest,
              headers={'Content-Type': MANIFEST})
    r = c.getresponse()
    r.read()
    if r.status != 201:
        sys.exit('PUT manifest: HTTP %d' % r.status)


if __name__ == '__main__':
    main()

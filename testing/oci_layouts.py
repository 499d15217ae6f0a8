"""OCI image layouts for tests, written by hand, by skopeo and by umoci."""
import json
import os
import subprocess
from typing import Dict, Optional, Sequence, Tuple

from containerregistry.testing import images

REF_NAME = 'org.opencontainers.image.ref.name'


def put_blob(directory: str, data: bytes) -> str:
    """Stores DATA under blobs/sha256 of DIRECTORY; returns its digest."""
    digest = images.sha256(data)
    blobs = os.path.join(directory, 'blobs', 'sha256')
    os.makedirs(blobs, exist_ok=True)
    with open(os.path.join(blobs, digest.split(':')[1]), 'wb') as f:
        f.write(data)
    return digest


def blob_path(directory: str, digest: str) -> str:
    return os.path.join(directory, 'blobs', 'sha256', digest.split(':')[1])


def write_layout(directory: str,
                 entries: Sequence[Tuple[Optional[str], images.Built]]) -> str:
    """An OCI layout of (ref name or None, image) ENTRIES, bytes as built."""
    manifests = []
    for ref, built in entries:
        for data in [built.manifest, *built.blobs().values()]:
            put_blob(directory, data)
        entry = {'mediaType': built.media_type, 'size': len(built.manifest),
                 'digest': built.digest}
        if ref is not None:
            entry['annotations'] = {REF_NAME: ref}
        manifests.append(entry)
    write_index(directory, manifests)
    return directory


def write_index(directory: str, manifests: Sequence[Dict]) -> None:
    with open(os.path.join(directory, 'oci-layout'), 'w') as f:
        json.dump({'imageLayoutVersion': '1.0.0'}, f)
    with open(os.path.join(directory, 'index.json'), 'w') as f:
        json.dump({'schemaVersion': 2, 'manifests': list(manifests)}, f)


def index_entries(directory: str) -> list:
    with open(os.path.join(directory, 'index.json')) as f:
        return json.load(f)['manifests']


def read_blob(directory: str, digest: str) -> bytes:
    with open(blob_path(directory, digest), 'rb') as f:
        return f.read()


def skopeo_layout(registry, name: str, directory: str, tag: str,
                  *extra: str) -> str:
    """`skopeo copy docker://NAME oci:DIRECTORY:TAG`; returns DIRECTORY."""
    images.skopeo('copy', '--src-tls-verify=false',
                  *images.cred_args(registry, 'src'), *extra,
                  'docker://' + name, 'oci:%s:%s' % (directory, tag))
    return directory


def umoci_layout(directory: str, tag: str, files: Dict[str, bytes],
                 work: str) -> str:
    """An image umoci builds: `new`, then one `insert` per file in FILES."""
    def umoci(*args: str) -> None:
        subprocess.run(['umoci', *args], check=True, capture_output=True,
                       timeout=60)

    if not os.path.exists(os.path.join(directory, 'index.json')):
        umoci('init', '--layout', directory)
    umoci('new', '--image', '%s:%s' % (directory, tag))
    for i, (name, data) in enumerate(sorted(files.items())):
        source = os.path.join(work, 'insert%d' % i)
        with open(source, 'wb') as f:
            f.write(data)
        umoci('insert', '--rootless', '--image', '%s:%s' % (directory, tag),
              source, '/' + name)
    return directory

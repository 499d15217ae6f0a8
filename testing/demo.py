"""The README's main job: pull a sample image from a local registry.

Starts the real registry on 127.0.0.1, pushes a seeded multi-platform
sample image to it with skopeo, pulls it with the given puller.par and
shows what was written, then stops the registry.
"""
import os
import subprocess
import sys

from containerregistry.testing import images
from containerregistry.testing import registry


def main(par: str, directory: str) -> int:
    reg = registry.start_registry()
    try:
        index = images.push_index(
            reg, 'demo/sample:latest', seed=7, layers_per_child=3,
            platforms=[{'os': 'linux', 'architecture': 'amd64'},
                       {'os': 'linux', 'architecture': 'arm64',
                        'variant': 'v8'}])
        name = index.by_tag
        print('Local registry at %s holds %s (a manifest list)' % (
            reg.host, name))
        cmd = [sys.executable, par, '--name', name, '--directory', directory,
               '--stderrthreshold', 'INFO']
        print('$ ' + ' '.join(['python3', os.path.basename(par)] + cmd[2:]),
              flush=True)
        result = subprocess.run(cmd, check=False)
        if result.returncode:
            return result.returncode
        print('\nWrote %s:' % directory)
        for entry in sorted(os.listdir(directory)):
            path = os.path.join(directory, entry)
            print('  %-14s %9d bytes' % (entry, os.path.getsize(path)))
        with open(os.path.join(directory, 'digest')) as f:
            digest = f.read()
        want = index.child(os='linux', architecture='amd64').digest
        print('digest: %s (%s linux/amd64 child of the list)' % (
            digest, 'matches the' if digest == want else 'DIFFERS from the'))
        return 0 if digest == want else 1
    finally:
        reg.stop()


if __name__ == '__main__':
    sys.exit(main(sys.argv[1], sys.argv[2]))

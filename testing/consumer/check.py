"""Imports containerregistry and its dependencies as a consumer's binary does.

Prints one line per dependency: `NAME VERSION FILE`, so the caller can check
that they come from the pinned wheels, not from the host's site-packages.
"""
import importlib.metadata
import sys

import httplib2
import oauth2client

from containerregistry.client import docker_name


def main() -> int:
    docker_name.Tag('localhost:5000/consumer/check:latest')
    for module, dist in ((httplib2, 'httplib2'), (oauth2client, 'oauth2client')):
        print(dist, importlib.metadata.version(dist), module.__file__)
    return 0


if __name__ == '__main__':
    sys.exit(main())

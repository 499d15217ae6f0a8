"""Credentials of the v2 (schema 1) protocol: the same Bearer token as v2.2."""
from containerregistry.client.v2_2.docker_creds import Bearer

__all__ = ['Bearer']

"""Credentials specific to the v2.2 protocol: the Bearer token."""
from containerregistry.client import docker_creds


class Bearer(docker_creds.SchemeProvider):
    """A transaction's Bearer token, as obtained from the token realm."""

    def __init__(self, bearer_token: str):
        super().__init__('Bearer')
        self._bearer_token = bearer_token

    @property
    def suffix(self) -> str:
        return self._bearer_token

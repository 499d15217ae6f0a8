"""Credentials specific to the v1 protocol: the session's X-Docker-Token.

A v1 registry (the index) takes the caller's credentials once and answers
with a token for the session; the image endpoints it names accept that
token (`Authorization: Token ...`) and nothing else.
"""
from containerregistry.client import docker_creds


class Token(docker_creds.SchemeProvider):
    """A session's X-Docker-Token, as the index issued it."""

    def __init__(self, token: str):
        super().__init__('Token')
        self._token = token

    @property
    def suffix(self) -> str:
        return self._token

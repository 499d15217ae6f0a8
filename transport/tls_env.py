"""The trust store settings OpenSSL reads from the environment, checked.

`SSL_CERT_FILE` (a PEM bundle) and `SSL_CERT_DIR` (directories of hashed
certificates, separated by `:`) replace OpenSSL's default CA file and CA
directory. OpenSSL ignores a setting that names nothing, which only shows
later as "certificate verify failed" (or, worse, as trust still coming from
the other default); a user who set one meant it, so it must exist.
"""
import os


class TrustConfigError(Exception):
    """SSL_CERT_FILE or SSL_CERT_DIR names nothing usable."""


def check_environment() -> None:
    """Raises TrustConfigError if SSL_CERT_FILE or SSL_CERT_DIR is set to
    something that is not a readable file, or not directories."""
    cafile = os.environ.get('SSL_CERT_FILE')
    if cafile and not (os.path.isfile(cafile) and os.access(cafile, os.R_OK)):
        raise TrustConfigError(
            'SSL_CERT_FILE names %s, which is not a readable file (it should '
            'be a PEM bundle of trusted CA certificates)' % cafile)
    capath = os.environ.get('SSL_CERT_DIR')
    if capath:
        for entry in capath.split(os.pathsep):
            if entry and not os.path.isdir(entry):
                raise TrustConfigError(
                    'SSL_CERT_DIR names %s, which is not a directory (it '
                    'should hold hashed CA certificates, see `openssl '
                    'rehash`)' % entry)

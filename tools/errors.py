"""One-line descriptions of the errors a tool reports to its user."""


def describe(err: BaseException) -> str:
    """A single line saying what went wrong, without a traceback.

    Errors the library raises on purpose carry a message written for
    users; anything else is prefixed with its type, which is what makes
    an unexpected error recognisable in a bug report.
    """
    from containerregistry.client import docker_name
    from containerregistry.client.v2_2 import docker_digest
    from containerregistry.client.v2_2 import docker_http
    from containerregistry.client.v2_2 import docker_image_list

    expected = (docker_http.V2DiagnosticException,
                docker_http.BadStateException,
                docker_digest.DigestMismatchedError,
                docker_name.BadNameException,
                docker_image_list.InvalidMediaTypeError,
                docker_image_list.PlatformNotFoundError, OSError)
    if isinstance(err, OSError) and err.filename and err.strerror:
        text = '%s: %s' % (err.strerror, err.filename)
    elif isinstance(err, expected):
        text = str(err) or type(err).__name__
    else:
        text = '%s: %s' % (type(err).__name__, err)
    return ' '.join(text.split())

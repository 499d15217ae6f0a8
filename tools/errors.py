"""One-line descriptions of the errors a tool reports to its user."""

_PROJECT = 'containerregistry.'


def describe(err: BaseException) -> str:
    """A single line saying what went wrong, without a traceback.

    Exceptions the project raises on purpose (its own classes, including
    those of the running tool) and OS errors carry messages written for
    users; anything else is prefixed
    with its type, which makes an unexpected error recognisable in a bug
    report.
    """
    if isinstance(err, OSError) and err.filename and err.strerror:
        text = '%s: %s' % (err.strerror, err.filename)
    elif (isinstance(err, OSError) or type(err).__module__ == '__main__'
          or type(err).__module__.startswith(_PROJECT)):
        text = str(err) or type(err).__name__
    else:
        text = '%s: %s' % (type(err).__name__, err)
    return ' '.join(text.split())

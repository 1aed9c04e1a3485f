"""One exception type for user errors: the CLI prints its message on one line and exits with code 2."""


class NasError(Exception):
    """A problem with the user's input (file, option, dataset, database), never a bug in nas.

    The message must name what is wrong, where (file, layer, point, URL) and how to fix it.
    """

    exit_code = 2

"""Errors raised while building a corpus; the CLI turns them into one-line messages."""


class CorpusError(Exception):
    """Something stopped the corpus from being built."""


class FetchError(CorpusError):
    """A request to a remote API failed after its retries, or answered something unusable."""


class ApiError(FetchError):
    """The MediaWiki API answered with an error object (bad title, bad parameter, ...)."""


class SourceError(CorpusError):
    """A local file, folder or dataset could not be read as documents."""

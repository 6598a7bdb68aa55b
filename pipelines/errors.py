"""Errors that fail a run with a one-line reason (``recon run`` prints ``str(exc)``)."""


class SourceUnavailable(RuntimeError):
    """A source system cannot be read (unreachable, refused, retries exhausted)."""

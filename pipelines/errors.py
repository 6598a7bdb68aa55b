"""Errors that fail a run with a one-line reason (``recon run`` prints ``str(exc)``)."""


class SourceUnavailable(RuntimeError):
    """A source system cannot be read (unreachable, refused, retries exhausted)."""


class InputMissing(RuntimeError):
    """A step's input for the business date was never read (its source step has not run for it)."""

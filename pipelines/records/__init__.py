"""Typed record models, one set per source: the only place a source's records are validated.

``values`` holds the value types every source shares (text, integers, exact decimals, instants),
``base`` the ``Record`` base class, the one-line reject reason built from a model's
``ValidationError`` and the allow-listed reject payload built from a model's fields. Each source
has its module (``wms``, ``storefront``, ``refund_ledger``): its models and nothing else.
"""

"""Secrets in Dagster resources, whatever their origin.

A resource's config is shown in the Dagster UI and kept in run storage, so a secret must never be
a config value. ``secret_config(name, value)`` gives what goes into the config instead:

- ``dg.EnvVar(name)`` when the value is the process environment's ``name`` (the UI shows the
  variable's name, Dagster resolves it when the run starts);
- otherwise (a demo default, settings built from another mapping, a value from a file) an opaque
  handle ``<name> (secret held by the process)``, while the value stays in this module's memory.

``reveal(value)`` is what a resource calls at run time: a handle gives the value it stands for;
anything else is already the value (an ``EnvVar`` Dagster resolved).
"""
from __future__ import annotations

import os
from typing import Any

_HELD: dict[str, str] = {}


def secret_config(name: str, value: str) -> Any:
    import dagster as dg

    if value and os.environ.get(name) == value:
        return dg.EnvVar(name)
    handle = f"{name} (secret held by the process)"
    if _HELD.get(handle, value) != value:
        # two different values for one variable in one process: number them apart
        handle = f"{name} #{sum(1 for h in _HELD if h.startswith(name))} (secret held by the process)"
    _HELD[handle] = value
    return handle


def reveal(value: str) -> str:
    return _HELD.get(value, value)

"""Find each feature package's conventional modules, so packages plug in without a central list.

A feature package ``attendwise.<name>`` may have ``models``, ``views``/``api`` (each with
``register(app)``), ``cli`` (``COMMANDS``), ``jobs`` (``PERIODIC``) and ``demo``
(``seed(session, demo)``). They are loaded in :data:`PACKAGES` order.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

PACKAGES = (
    "platform",
    "tenants",
    "attendance",
    "integrations",
    "policies",
    "casework",
    "letters",
    "referrals",
    "insights",
)


def modules(suffix: str) -> list[ModuleType]:
    found = []
    for package in PACKAGES:
        name = f"attendwise.{package}.{suffix}"
        if importlib.util.find_spec(name) is not None:
            found.append(importlib.import_module(name))
    return found

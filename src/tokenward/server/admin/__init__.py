"""The one admin layer: typed inputs (``schemas``), operations (``operations.Admin``) and the
views every surface renders (``views``). The CLI, the admin REST API and the console call
nothing else to read or change the registry and keys."""

from tokenward.server.admin.errors import AdminError, Conflict, Invalid, NotFound
from tokenward.server.admin.operations import Admin

__all__ = ["Admin", "AdminError", "Conflict", "Invalid", "NotFound"]

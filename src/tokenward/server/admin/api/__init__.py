"""The admin REST API: every administrative operation over HTTP, authenticated with this
server's own access tokens (``auth``), answering in one error shape (``errors``)."""

from tokenward.server.admin.api.app import admin_api

__all__ = ["admin_api"]

"""The three POST endpoints as named steps over the server's components.

Each endpoint is a callable ``(Exchange) -> response body``; the HTTP layer
(``server/http/post.py``) does the transport checks before, and the one error wrapper after.
"""

"""tokenward: OAuth 2.0 Client Credentials for machine-to-machine APIs."""

__version__ = "0.1.0"
__all__ = ["__version__"]

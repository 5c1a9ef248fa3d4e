"""The web dashboard, served with the REST API by ``hvpatch serve`` (:func:`create_server`)."""

from hvpatch.web.app import create_server

__all__ = ["create_server"]

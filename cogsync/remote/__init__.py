"""Remote backends: how the client talks to a server (AppSync or `cogsync serve`)."""

from cogsync.remote.base import RemoteBackend

__all__ = ["RemoteBackend"]

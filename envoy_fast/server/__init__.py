"""The main process: sockets, workers, admin, signals."""
from .server import Server, ServerOptions

__all__ = ["Server", "ServerOptions"]

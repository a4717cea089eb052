"""stampsim: a small fabric controller simulator with an HTTP API.

Run ``python -m stampsim --help``.  The API is documented in
``server.py``; the model in ``state.py`` and ``handlers.py``.  Nothing here
needs more than the standard library.
"""

from .cli import main
from .errors import ApiError, ErrorCode
from .fabric import Fabric
from .faults import Faults
from .handlers import OpKind
from .peers import PeerClient, PeerUnreachable
from .server import CRASH_EXIT_CODE, Api, StampServer, make_server, serve

__all__ = [
    "CRASH_EXIT_CODE",
    "Api",
    "ApiError",
    "ErrorCode",
    "Fabric",
    "Faults",
    "OpKind",
    "PeerClient",
    "PeerUnreachable",
    "StampServer",
    "main",
    "make_server",
    "serve",
]

"""The insurer's gateway service and the claimant's client for it.

`create_app` builds the FastAPI app (`claims insurer serve` runs it under
uvicorn); `GatewayClient` is what `claims submit` and `claims track` use.
"""

from claims.gateway._auth import LOGIN_TAG, login_message
from claims.gateway.app import BODY_LIMIT, create_app
from claims.gateway.client import GatewayClient
from claims.gateway.errors import GatewayError

__all__ = [
    "BODY_LIMIT",
    "LOGIN_TAG",
    "GatewayClient",
    "GatewayError",
    "create_app",
    "login_message",
]

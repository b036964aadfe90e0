"""GoTrue's HTTP API under `/auth/v1`: `jwks` (always served), `router` (`GOTRUE_API_ENABLED`),
their keys, bodies and errors."""

from .errors import install_gotrue_error_handlers, request_limit_refusal
from .jwks import router as jwks_router
from .router import router

__all__ = ["install_gotrue_error_handlers", "jwks_router", "request_limit_refusal", "router"]

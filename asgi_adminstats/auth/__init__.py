"""Authentication: where a token comes from and how it is verified."""

from .errors import AuthError
from .identity import Identity, is_admin, scopes_of
from .jwt import allowed_algorithms
from .sources import TokenOffer, bearer_token, offered_token
from .verifier import TokenVerifier

__all__ = [
    "AuthError",
    "Identity",
    "TokenOffer",
    "TokenVerifier",
    "allowed_algorithms",
    "bearer_token",
    "is_admin",
    "offered_token",
    "scopes_of",
]

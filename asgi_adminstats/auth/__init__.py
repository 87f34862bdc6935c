"""Authentication: where a token comes from and how it is verified."""

from .errors import AuthError
from .identity import Identity, is_admin, scopes_of
from .sources import TokenOffer, bearer_token, offered_token
from .verifier import TokenVerifier

__all__ = [
    "AuthError",
    "Identity",
    "TokenOffer",
    "TokenVerifier",
    "bearer_token",
    "is_admin",
    "offered_token",
    "scopes_of",
]

"""Authentication: where a token comes from and how it is verified."""

from .errors import AuthError
from .identity import Identity, is_admin, scopes_of
from .sources import TokenOffer, offered_token
from .verifier import TokenVerifier

__all__ = [
    "AuthError",
    "Identity",
    "TokenOffer",
    "TokenVerifier",
    "is_admin",
    "offered_token",
    "scopes_of",
]

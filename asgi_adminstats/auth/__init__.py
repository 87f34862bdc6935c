"""Authentication: where a token comes from and how it is verified."""

from .errors import AuthError
from .jwt import Identity, JWTVerifier, is_admin
from .sources import TokenOffer, offered_token

__all__ = ["AuthError", "Identity", "JWTVerifier", "TokenOffer", "is_admin", "offered_token"]

"""Who may use the share: with a party key, HTTP Basic (any user name) or the link token.

Owns the token derivation and the constant-time checks. Never logs or echoes a key or token,
and without a party key lets every request through (the daemon warns about that at startup).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from aiohttp import BasicAuth

_TOKEN_LABEL = b"lanpeer http share link"


class PartyKeyCheck:
    def __init__(self, party_key: str | None) -> None:
        self._key = party_key.encode() if party_key else None
        #: Carried by share links instead of a password: derived from the key, so it survives
        #: restarts and changes with the key. 128 bits: not guessable across a LAN party.
        self.token = (
            hmac.new(self._key, _TOKEN_LABEL, hashlib.sha256).hexdigest()[:32]
            if self._key
            else None
        )

    @property
    def required(self) -> bool:
        return self._key is not None

    def allows(self, query: Mapping[str, str], headers: Mapping[str, str]) -> bool:
        if self._key is None or self.token is None:
            return True
        token = query.get("token")
        if token is not None and hmac.compare_digest(token.encode(), self.token.encode()):
            return True
        header = headers.get("Authorization")
        if header is None:
            return False
        try:
            auth = BasicAuth.decode(header)
        except ValueError:
            return False
        return hmac.compare_digest(auth.password.encode(), self._key)

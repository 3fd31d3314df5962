"""Exchange keys encrypted at rest beyond Kubernetes: Fernet tokens under keys kept in a separate Secret.

A credentials Secret annotated `traiding.io/encryption: fernet` holds Fernet tokens instead of the key pair
itself, so reading that Secret (a backup of etcd, a too-wide RBAC grant, `kubectl get -o yaml`) yields nothing
usable without the encryption keys, which live in another Secret only the operator reads. Rotation uses
MultiFernet: the keys are listed newest first; every key decrypts, the first encrypts, and
`traiding keys rotate` re-encrypts a Secret's tokens under the first (see docs/operator.md#credentials).
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

ENCRYPTION_ANNOTATION = "traiding.io/encryption"
FERNET = "fernet"
KEYS_DATA_KEY = "keys"  # the data key of the keys Secret: Fernet keys, one per line, newest first


class KeyRingError(Exception):
    """Keys that cannot be used, or a token none of them decrypts; the message never holds a key or a value."""


class KeyRing:
    """Fernet keys, newest first: the first encrypts, every one decrypts (MultiFernet)."""

    def __init__(self, keys: Iterable[str]) -> None:
        fernets = []
        for number, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip().encode()))
            except ValueError:
                raise KeyRingError(
                    f"key {number} is not a Fernet key (32 url-safe base64-encoded bytes; `traiding keys generate`)"
                ) from None
        if not fernets:
            raise KeyRingError("no keys: give at least one Fernet key (`traiding keys generate`)")
        self._fernet = MultiFernet(fernets)
        self.size = len(fernets)

    @classmethod
    def from_text(cls, text: str) -> KeyRing:
        """Keys one per line, newest first; blank lines and lines starting with # are skipped."""
        return cls(line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))

    def __repr__(self) -> str:
        return f"KeyRing({self.size} keys)"

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.strip().encode()).decode()
        except (InvalidToken, UnicodeDecodeError):
            raise KeyRingError("it does not decrypt with any of the keys (encrypted under another key?)") from None

    def rotate(self, token: str) -> str:
        """The token re-encrypted under the first key (it must decrypt with one of them)."""
        try:
            return self._fernet.rotate(token.strip().encode()).decode()
        except InvalidToken:
            raise KeyRingError("it does not decrypt with any of the keys (encrypted under another key?)") from None


def generate_key() -> str:
    return Fernet.generate_key().decode()

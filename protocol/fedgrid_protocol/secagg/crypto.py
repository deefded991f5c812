"""The primitives, specified to the byte so that every SDK derives the same masks.

- Key agreement: X25519 (RFC 7748). Keys travel as their 32 raw bytes.
- Key derivation: HKDF-SHA256 (RFC 5869), no salt, 32 bytes out, over the X25519 shared secret,
  with info `MASK_INFO` for the pairwise mask seed and `SHARE_KEY_INFO` for the share box key.
- Share boxes (device to device, through the Node): AES-256-GCM; the box is
  nonce (12 random bytes) || ciphertext || tag (16 bytes); the associated data is
  `SHARE_AAD || sender index (4 bytes big-endian) || recipient index (4 bytes big-endian)`, so
  the Node cannot pass one device's box off as another's.
- Mask PRG: AES-256-CTR keyed by the 32-byte seed, the initial counter block 16 zero bytes
  (incremented as one 128-bit big-endian number, as WebCrypto's AES-CTR with length 128 does),
  encrypting 4 L zero bytes; the keystream read as L little-endian uint32 words, each reduced
  mod the modulus (a power of two: the low bits). Uniform in Z_modulus, and cheap.
"""

from __future__ import annotations

import os
import struct

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

MASK_INFO = b"fedgrid/secagg/v1/mask"
SHARE_KEY_INFO = b"fedgrid/secagg/v1/share-key"
SHARE_AAD = b"fedgrid/secagg/v1/share"
KEY_BYTES = 32
NONCE_BYTES = 12


class KeyPair:
    """An X25519 key pair; `private` is the 32 raw bytes that may be Shamir-shared."""

    def __init__(self, private: bytes | None = None) -> None:
        self._key = (X25519PrivateKey.from_private_bytes(private) if private is not None
                     else X25519PrivateKey.generate())
        self.public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def private(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def agree(self, public: bytes, info: bytes) -> bytes:
        """HKDF-SHA256 over X25519(self, public): a 32-byte key both ends derive alike."""
        if len(public) != KEY_BYTES:
            raise ValueError("an X25519 public key is 32 bytes")
        shared = self._key.exchange(X25519PublicKey.from_public_bytes(public))
        return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(shared)


def _aad(sender: int, recipient: int) -> bytes:
    return SHARE_AAD + struct.pack(">II", sender, recipient)


def seal(key: bytes, sender: int, recipient: int, plaintext: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, _aad(sender, recipient))


def open_box(key: bytes, sender: int, recipient: int, box: bytes) -> bytes:
    """The plaintext, or ValueError when the box was altered or is not for this pair."""
    from cryptography.exceptions import InvalidTag

    try:
        return AESGCM(key).decrypt(box[:NONCE_BYTES], box[NONCE_BYTES:], _aad(sender, recipient))
    except (InvalidTag, ValueError):
        raise ValueError(f"the share box from {sender} to {recipient} does not open") from None


def mask(seed: bytes, length: int, modulus: int) -> np.ndarray:
    """`length` words of the PRG keyed by `seed`, in Z_modulus, as uint32."""
    if len(seed) != KEY_BYTES:
        raise ValueError("a mask seed is 32 bytes")
    encryptor = Cipher(algorithms.AES(seed), modes.CTR(bytes(16))).encryptor()
    stream = encryptor.update(bytes(4 * length)) + encryptor.finalize()
    words = np.frombuffer(stream, dtype="<u4").astype(np.uint32)
    if modulus != 2**32:
        words &= np.uint32(modulus - 1)
    return words

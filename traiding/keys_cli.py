"""`traiding keys generate | encrypt | rotate`: exchange keys encrypted at rest with Fernet (see key_encryption).

    traiding keys generate > keys.txt                      # a new Fernet key (keep it in the operator's keys Secret)
    traiding keys encrypt binance-keys.yaml --keys-file keys.txt | kubectl apply -f -
    kubectl get secret binance-keys -o yaml | traiding keys rotate - --keys-file keys.txt | kubectl apply -f -

`encrypt` and `rotate` read a Secret manifest (a file, or - for stdin) whose `data` or `stringData` holds
apiKey, secret and optionally passphrase, and print it with those values as Fernet tokens (in `data`) and the
annotation traiding.io/encryption: fernet. `rotate` re-encrypts a Secret's tokens under the first key of the key
file (keys newest first, one per line), which must still hold the key they were encrypted with. The keys come
from --keys-file or $TRAIDING_ENCRYPTION_KEYS; nothing is ever printed but tokens and the Secret's other fields.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from traiding.errors import UserError
from traiding.key_encryption import ENCRYPTION_ANNOTATION, FERNET, KeyRing, KeyRingError, generate_key
from traiding.resource import PASSPHRASE_KEY, SECRET_KEYS

KEYS_ENV = "TRAIDING_ENCRYPTION_KEYS"
CREDENTIAL_KEYS = (*SECRET_KEYS, PASSPHRASE_KEY)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("generate", help="print a new Fernet key")
    for name, help_text in (
        ("encrypt", "encrypt a credentials Secret manifest's apiKey, secret and passphrase"),
        ("rotate", "re-encrypt an encrypted credentials Secret under the newest key"),
    ):
        action = actions.add_parser(name, help=help_text, description=help_text)
        action.add_argument("secret", help="Secret manifest (YAML), or - for stdin")
        action.add_argument(
            "--keys-file", type=Path, help=f"Fernet keys, newest first, one per line (default: ${KEYS_ENV})"
        )


def keyring(keys_file: Path | None) -> KeyRing:
    if keys_file is not None:
        try:
            text = keys_file.read_text()
        except OSError as error:
            raise UserError(f"--keys-file: cannot read {keys_file}: {error.strerror or error}") from None
    else:
        text = os.environ.get(KEYS_ENV, "").replace(",", "\n")
        if not text.strip():
            raise UserError(f"give the encryption keys: --keys-file FILE or ${KEYS_ENV}")
    try:
        return KeyRing.from_text(text)
    except KeyRingError as error:
        raise UserError(f"the encryption keys: {error}") from None


STDIN = "-"  # the Secret manifest is read from standard input


def read_secret(source: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if source == STDIN else Path(source).read_text()
        document = yaml.safe_load(text)
    except OSError as error:
        raise UserError(f"cannot read {source}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise UserError(f"{source}: not valid YAML: {error}") from None
    if not isinstance(document, dict) or document.get("kind") != "Secret":
        raise UserError(f"{source}: expected one Secret manifest (kind: Secret)")
    return document


def credential_values(document: dict[str, Any], source: str) -> dict[str, str]:
    """The Secret's apiKey, secret and passphrase as text, from `data` (base64) and `stringData`."""
    values: dict[str, str] = {}
    for key, encoded in (document.get("data") or {}).items():
        if key in CREDENTIAL_KEYS:
            try:
                values[key] = base64.b64decode(str(encoded), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise UserError(f"{source}: data.{key} is not base64-encoded UTF-8") from None
    values.update({k: str(v) for k, v in (document.get("stringData") or {}).items() if k in CREDENTIAL_KEYS})
    missing = [key for key in SECRET_KEYS if not values.get(key, "").strip()]
    if missing:
        holds = ", ".join(CREDENTIAL_KEYS)
        raise UserError(f"{source}: no {' or '.join(missing)} (a credentials Secret holds {holds})")
    return values


def with_tokens(document: dict[str, Any], tokens: dict[str, str]) -> dict[str, Any]:
    metadata = {k: v for k, v in (document.get("metadata") or {}).items() if k != "managedFields"}
    metadata["annotations"] = {**(metadata.get("annotations") or {}), ENCRYPTION_ANNOTATION: FERNET}
    data = {k: v for k, v in (document.get("data") or {}).items() if k not in tokens}
    data.update({key: base64.b64encode(token.encode()).decode() for key, token in tokens.items()})
    string_data = {k: v for k, v in (document.get("stringData") or {}).items() if k not in tokens}
    out = {**document, "metadata": metadata, "data": data}
    out.pop("stringData", None)
    if string_data:
        out["stringData"] = string_data
    return out


def encrypt(document: dict[str, Any], keys: KeyRing, source: str) -> dict[str, Any]:
    annotations = (document.get("metadata") or {}).get("annotations") or {}
    if annotations.get(ENCRYPTION_ANNOTATION):
        raise UserError(f"{source} is encrypted already ({ENCRYPTION_ANNOTATION}); rotate it instead")
    values = credential_values(document, source)
    return with_tokens(document, {key: keys.encrypt(value.strip()) for key, value in values.items()})


def rotate(document: dict[str, Any], keys: KeyRing, source: str) -> dict[str, Any]:
    annotations = (document.get("metadata") or {}).get("annotations") or {}
    if annotations.get(ENCRYPTION_ANNOTATION) != FERNET:
        raise UserError(f"{source} is not encrypted ({ENCRYPTION_ANNOTATION}: {FERNET}); encrypt it first")
    tokens: dict[str, str] = {}
    for key, token in credential_values(document, source).items():
        try:
            tokens[key] = keys.rotate(token)
        except KeyRingError as error:
            raise UserError(f"{source}: {key}: {error}") from None
    return with_tokens(document, tokens)


def run(args: argparse.Namespace) -> int:
    if args.action == "generate":
        print(generate_key())
        return 0
    keys = keyring(args.keys_file)
    manifest: str = args.secret
    document = read_secret(manifest)
    source = "stdin" if manifest == STDIN else manifest
    result = encrypt(document, keys, source) if args.action == "encrypt" else rotate(document, keys, source)
    sys.stdout.write(yaml.safe_dump(result, sort_keys=False))
    return 0

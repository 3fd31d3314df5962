"""`traiding keys`: Secrets encrypted with Fernet, rotated with MultiFernet, as the documented commands do it."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from traiding.cli import main
from traiding.key_encryption import ENCRYPTION_ANNOTATION, KeyRing, KeyRingError, generate_key

KEY, SECRET = "plain-api-key-7Yq", "plain-secret-Zx81"


def secret_manifest(path: Path, **extra: Any) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "binance-keys", "namespace": "trading", "managedFields": [{"manager": "kubectl"}]},
        "data": {"apiKey": base64.b64encode(KEY.encode()).decode()},
        "stringData": {"secret": SECRET},
        **extra,
    }
    path.write_text(yaml.safe_dump(document))
    return path


def keys_file(path: Path, *keys: str) -> Path:
    path.write_text("# newest first\n" + "\n".join(keys) + "\n")
    return path


def run_keys(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["keys", *args])
    out, err = capsys.readouterr()
    return code, out, err


def token(document: dict[str, Any], key: str) -> str:
    return base64.b64decode(document["data"][key]).decode()


def test_generate_prints_a_usable_fernet_key(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_keys(capsys, "generate")
    assert code == 0
    assert KeyRing([out.strip()]).decrypt(KeyRing([out.strip()]).encrypt("x")) == "x"


def test_encrypt_replaces_the_values_with_tokens_only_the_keys_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = generate_key()
    code, out, _ = run_keys(
        capsys, "encrypt", str(secret_manifest(tmp_path / "s.yaml")), "--keys-file", str(keys_file(tmp_path / "k", key))
    )
    assert code == 0
    assert KEY not in out and SECRET not in out and key not in out
    document = yaml.safe_load(out)
    assert document["metadata"]["annotations"] == {ENCRYPTION_ANNOTATION: "fernet"}
    assert "stringData" not in document and "managedFields" not in document["metadata"]
    ring = KeyRing([key])
    assert (ring.decrypt(token(document, "apiKey")), ring.decrypt(token(document, "secret"))) == (KEY, SECRET)
    with pytest.raises(KeyRingError):
        KeyRing([generate_key()]).decrypt(token(document, "apiKey"))


def test_rotate_re_encrypts_under_the_newest_key_so_the_old_one_can_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = generate_key(), generate_key()
    monkeypatch.setenv("TRAIDING_ENCRYPTION_KEYS", old)
    _, encrypted, _ = run_keys(capsys, "encrypt", str(secret_manifest(tmp_path / "s.yaml")))
    (tmp_path / "encrypted.yaml").write_text(encrypted)
    both = keys_file(tmp_path / "both", new, old)
    code, rotated, _ = run_keys(capsys, "rotate", str(tmp_path / "encrypted.yaml"), "--keys-file", str(both))
    assert code == 0
    document = yaml.safe_load(rotated)
    only_new = KeyRing([new])
    assert (only_new.decrypt(token(document, "apiKey")), only_new.decrypt(token(document, "secret"))) == (KEY, SECRET)


def test_rotating_without_the_old_key_fails_saying_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = keys_file(tmp_path / "k1", generate_key())
    _, encrypted, _ = run_keys(capsys, "encrypt", str(secret_manifest(tmp_path / "s.yaml")), "--keys-file", str(first))
    (tmp_path / "e.yaml").write_text(encrypted)
    code, out, err = run_keys(
        capsys, "rotate", str(tmp_path / "e.yaml"), "--keys-file", str(keys_file(tmp_path / "k2", generate_key()))
    )
    assert (code, out) == (2, "")
    assert "apiKey: it does not decrypt with any of the keys" in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["encrypt", "s.yaml"], "give the encryption keys: --keys-file FILE or $TRAIDING_ENCRYPTION_KEYS"),
        (["encrypt", "s.yaml", "--keys-file", "bad-keys"], "key 1 is not a Fernet key"),
        (["rotate", "s.yaml", "--keys-file", "keys"], "is not encrypted (traiding.io/encryption: fernet)"),
        (["encrypt", "nosecret.yaml", "--keys-file", "keys"], "no secret (a credentials Secret holds apiKey"),
    ],
)
def test_bad_input_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str], words: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRAIDING_ENCRYPTION_KEYS", raising=False)
    secret_manifest(tmp_path / "s.yaml")
    secret_manifest(tmp_path / "nosecret.yaml", stringData={})
    keys_file(tmp_path / "keys", generate_key())
    (tmp_path / "bad-keys").write_text("not-a-key\n")
    code, _, err = run_keys(capsys, *args)
    assert code == 2 and words in err

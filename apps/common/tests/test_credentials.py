"""Bearer parsing, constant-time comparison on bytes, and atomically written secret files."""

from __future__ import annotations

import logging

import pytest

from fedgrid_server.credentials import (
    SecretFileError,
    bearer_token,
    load_or_create_secret,
    tokens_equal,
    write_secret_file,
)


@pytest.mark.parametrize(("value", "token"), [
    ("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Bearer \u00e9", "\u00e9"),
    (None, None), (5, None), (["Bearer abc"], None), (b"Bearer abc", None), ("", None),
    ("Bearer", None), ("Bearer   ", None), ("Basic abc", None), ("Bearer " + "a" * 5000, None),
])
def test_bearer_token_takes_any_value(value, token):
    assert bearer_token(value) == token


def test_tokens_compare_on_bytes_and_empty_never_matches():
    assert tokens_equal("abc", "abc") and not tokens_equal("abd", "abc")
    assert not tokens_equal("\u00e9\ud800", "abc")  # no TypeError for non-ASCII
    assert tokens_equal("\u00e9", "\u00e9")
    assert not tokens_equal("", "") and not tokens_equal(" ", " ")
    assert not tokens_equal(None, "abc") and not tokens_equal("abc", None)


def test_a_secret_file_is_written_atomically_and_private(tmp_path):
    path = tmp_path / "dir" / "admin-token"
    write_secret_file(path, "first")
    write_secret_file(path, "second")
    assert path.read_text() == "second\n" and path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["admin-token"]  # no temporary left


@pytest.mark.parametrize("content", ["", "\n", "  \t \n"])
def test_an_empty_secret_file_is_replaced_with_a_warning(tmp_path, caplog, content):
    path = tmp_path / "admin-token"
    path.write_text(content)
    with caplog.at_level(logging.WARNING):
        secret, created = load_or_create_secret(path, what="admin token")
    assert created and len(secret) >= 40 and path.read_text() == secret + "\n"
    assert "holds no admin token" in caplog.text and secret not in caplog.text
    assert load_or_create_secret(path, what="admin token") == (secret, False)


@pytest.mark.parametrize(("content", "words"), [
    (b"\xff\xfe", "not UTF-8"), (b"two words", "without spaces"), (b"caf\xc3\xa9", "ASCII"),
])
def test_an_unusable_secret_file_is_refused(tmp_path, content, words):
    path = tmp_path / "admin-token"
    path.write_bytes(content)
    with pytest.raises(SecretFileError, match=words):
        load_or_create_secret(path, what="admin token")

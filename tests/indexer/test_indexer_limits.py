"""Per-file limits a hostile file cannot escape: each file is read in a reader process (``indexer.sandbox``) under
a memory limit, a time budget and caps on characters and chunks; a file over one fails alone naming the limit,
the reader is replaced, the batch goes on and nothing stored is touched.  Each test builds its own hostile file."""

from __future__ import annotations

import io
import threading
import time
import zipfile

import pytest
from indexer_testfiles import make_docx, sentences

from indexer.chunking import SEGMENT_CHARS, iter_chunks, rebuild_page, segments
from indexer.loaders.html import read_html
from indexer.pipeline import Pipeline
from indexer.sandbox import FRESH_SHARE, Cancelled, ChunkPlan, FileCaps, Reader, rss_bytes
from indexer.settings import IndexerSettings


def xml_bomb_docx(paragraphs: int) -> bytes:
    """A DOCX whose document.xml is ``paragraphs`` real paragraphs (45 bytes each, deflated ~400x): within the zip
    caps when they are raised, but python-docx needs ~20x the XML in memory to parse it."""
    base = make_docx(["harmless"])
    out = io.BytesIO()
    body = "<w:p><w:r><w:t>bomb text</w:t></w:r></w:p>" * paragraphs
    with zipfile.ZipFile(io.BytesIO(base)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "word/document.xml":
                data = data.replace(b"<w:body>", b"<w:body>" + body.encode(), 1)
            dst.writestr(info.filename, data)
    return out.getvalue()


def xml_bomb_pptx(paragraphs: int) -> bytes:
    """A PPTX whose first slide holds ``paragraphs`` paragraphs (~50 bytes each, deflated ~400x): python-pptx parses
    a slide into a tree of ~20x its XML (the DOCX reader streams, so a DOCX is no longer such a bomb)."""
    from test_indexer_formats import PPTX, make_pptx

    out = io.BytesIO()
    body = b"<a:p><a:r><a:t>bomb text</a:t></a:r></a:p>" * paragraphs
    with zipfile.ZipFile(io.BytesIO(make_pptx(PPTX))) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "ppt/slides/slide1.xml":
                data = data.replace(b"<a:p>", body + b"<a:p>", 1)
            dst.writestr(info.filename, data)
    return out.getvalue()


def deep_html(depth: int) -> bytes:
    return ("<div>" * depth + "the deepest anemone" + "</div>" * depth).encode()


def big_text(chars: int) -> bytes:
    para = sentences(12, 3, "lighthouse") + "\n\n"
    return (para * (chars // len(para) + 1)).encode()[:chars]


@pytest.fixture
def batch(make_settings, tiny_embedder, tmp_path):
    """``run(bad_path, **settings)``: ingest ``[bad, good]`` into a pipeline holding one document; the good file
    and the stored one must come through; returns (bad status, seconds, pipeline)."""
    opened: list[Pipeline] = []

    def run(bad_path, **settings):
        for earlier in opened:
            earlier.close()
        p = Pipeline(make_settings(data_dir=tmp_path / f"data{len(opened)}", **settings), embedder=tiny_embedder)
        opened.append(p)
        keep = tmp_path / "keep.txt"
        keep.write_text(sentences(12, 7, "okapi"))
        first = p.ingest([keep]).files[0]
        assert first.status == "ok"
        good = tmp_path / "good.txt"
        good.write_text(sentences(6, 8, "narwhal"))
        t0 = time.perf_counter()
        bad, ok = p.ingest([bad_path, good]).files
        seconds = time.perf_counter() - t0
        assert bad.status == "failed", bad
        assert ok.status == "ok", ok
        docs = {d.source: d for d in p.documents()}
        assert set(docs) == {"keep.txt", "good.txt"}
        assert docs["keep.txt"].doc_id == first.doc_id and docs["keep.txt"].chunks == first.chunks
        assert p.search("okapi", mode="keyword")[0].source == "keep.txt"
        assert p.stats().chunks == first.chunks + ok.chunks and p.stats().incomplete_chunks == 0
        return bad, seconds, p

    yield run
    for p in opened:
        p.close()


def test_memory_limit_stops_an_xml_bomb_and_the_reader_is_replaced(batch, tmp_path):
    bomb = tmp_path / "bomb.pptx"
    bomb.write_bytes(xml_bomb_pptx(2_000_000))  # 90 MB of XML in ~0.25 MB
    assert bomb.stat().st_size < 1 << 20
    reader = Reader.shared()
    before = reader.started
    bad, seconds, _ = batch(bomb, file_memory_mb=300, max_xml_mb=1000, max_unzipped_mb=1000, max_file_mb=5)
    assert "memory limit of 300 MB (MOESEARCH_FILE_MEMORY_MB)" in bad.reason
    assert seconds < 60
    assert reader.peak_rss < 300 * 2**20 + 200 * 2**20  # stopped within one look of the limit
    assert reader.started >= before + 1  # a fresh reader read the good file


def test_the_issues_300_mb_docx_is_refused_by_the_zip_caps_in_bounded_memory(batch, tmp_path):
    bomb = tmp_path / "bomb.docx"
    bomb.write_bytes(xml_bomb_docx(7_000_000))  # document.xml inflates to ~300 MB (281 MiB)
    bad, seconds, _ = batch(bomb)
    assert "DOCX unpacks to 2" in bad.reason and "MOESEARCH_MAX_UNZIPPED_MB" in bad.reason
    assert seconds < 30
    assert Reader.shared().peak_rss < 400 * 2**20


def test_time_budget_stops_a_slow_file(batch, tmp_path):
    slow = tmp_path / "deep.html"
    slow.write_bytes(deep_html(400_000))  # ~4 MB, a few seconds to read
    bad, seconds, _ = batch(slow, file_seconds=0.5)
    assert "time limit of 0.5 s (MOESEARCH_FILE_SECONDS)" in bad.reason
    assert seconds < 15


def test_100k_deep_html_reads_in_linear_time(pipeline, tmp_path):
    t0 = time.perf_counter()
    text, _ = read_html(deep_html(100_000))  # 1.1 MB; was > 300 s with tag.insert_after
    assert text.strip() == "the deepest anemone" and time.perf_counter() - t0 < 10
    (tmp_path / "deep.html").write_bytes(deep_html(100_000))
    status = pipeline.ingest([tmp_path / "deep.html"]).files[0]
    assert status.status == "ok" and pipeline.search("anemone", mode="keyword")[0].source == "deep.html"


def test_character_and_chunk_caps_name_their_setting(batch, tmp_path):
    text = tmp_path / "long.txt"
    text.write_bytes(big_text(300_000))
    bad, _, _ = batch(text, max_chars=100_000)
    assert "more than 100,000 characters (MOESEARCH_MAX_CHARS)" in bad.reason  # the streamed reader stops there
    bad, _, _ = batch(text, max_chunks=50)
    assert "more than 50 (MOESEARCH_MAX_CHUNKS)" in bad.reason


def _plan(tiny_model_dir) -> ChunkPlan:
    return ChunkPlan(str(tiny_model_dir / "tokenizer.json"), 48, 8)


def test_a_big_text_is_read_in_bounded_memory(tiny_model_dir):
    """4 MB of text (caps raised): the reader's peak RSS (measured from outside, in the child) stays bounded; at
    the default caps a 50 MB text is refused quickly, also in bounded memory."""
    reader = Reader()
    try:
        caps = FileCaps.from_settings(IndexerSettings(max_chars=10**8, max_chunks=10**6, text_page_chars=10**7))
        data = big_text(4 << 20)
        extracted, chunks = reader.read(data, "big.txt", caps, _plan(tiny_model_dir))
        assert rebuild_page([(c.start, c.end, c.text) for c in chunks]) == extracted.pages[0][1]
        assert len(chunks) > 5_000
        assert reader.peak_rss < 500 * 2**20, reader.peak_rss
        t0 = time.perf_counter()
        with pytest.raises(Exception, match="MOESEARCH_MAX_CHARS"):
            reader.read(big_text(50 << 20), "huge.txt", FileCaps.from_settings(IndexerSettings(max_chars=20_000_000)),
                        _plan(tiny_model_dir))
        assert time.perf_counter() - t0 < 60
        assert reader.peak_rss < 1024 * 2**20, reader.peak_rss
    finally:
        reader.close()


def test_a_reader_left_large_by_one_file_is_replaced_before_a_lower_limit(tiny_model_dir):
    """The memory an earlier, larger file left in the reader is not the next file's: an idle reader over
    ``FRESH_SHARE`` of the next file's limit is replaced first (a small file once failed "over the memory limit");
    a fresh one is not replaced, however low the limit."""
    reader = Reader()
    try:
        caps = FileCaps.from_settings(IndexerSettings(max_xml_mb=1000, max_unzipped_mb=1000))
        reader.read(xml_bomb_pptx(300_000), "big.pptx", caps, _plan(tiny_model_dir))  # 13 MB of slide XML
        left_mb = (rss_bytes(reader.pid) - reader.base_rss) / 2**20  # what the big file left in it (~200 MB)
        limit_mb = int(left_mb / FRESH_SHARE) - 10  # what it left is more than FRESH_SHARE of this limit
        assert limit_mb >= 150, left_mb  # room for a fresh reader to read a small file
        small = FileCaps.from_settings(IndexerSettings(file_memory_mb=limit_mb))
        started = reader.started
        _, chunks = reader.read(sentences(6, 8, "narwhal").encode(), "small.txt", small, _plan(tiny_model_dir))
        assert chunks and reader.started == started + 1
        reader.read(sentences(6, 9, "okapi").encode(), "small2.txt", small, _plan(tiny_model_dir))
        low = FileCaps.from_settings(IndexerSettings(file_memory_mb=int(2 * reader.base_rss / 2**20) + 20))
        reader.read(sentences(6, 10, "ibis").encode(), "small3.txt", low, _plan(tiny_model_dir))
        assert reader.started == started + 1  # a reader small files leave small is kept
    finally:
        reader.close()


@pytest.mark.slow
def test_a_50_mb_text_is_chunked_in_bounded_memory(tiny_model_dir):
    reader = Reader()
    try:
        caps = FileCaps.from_settings(IndexerSettings(max_chars=10**8, max_chunks=10**6, file_seconds=1200))
        _, chunks = reader.read(big_text(50 << 20), "big.txt", caps, _plan(tiny_model_dir))
        assert len(chunks) > 100_000
        assert reader.peak_rss < 1024 * 2**20, reader.peak_rss
    finally:
        reader.close()


def test_long_pages_are_chunked_a_segment_at_a_time(tiny_model_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    text = big_text(3 * SEGMENT_CHARS + 1234).decode() + " " * 5 + "tail words"
    cuts = list(segments(text))
    assert cuts[0][0] == 0 and cuts[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:], strict=False))
    assert all(b - a <= SEGMENT_CHARS for a, b in cuts) and len(cuts) == 4
    chunks = list(iter_chunks([(1, text)], tok, 48, 8))
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert rebuild_page([(c.start, c.end, c.text) for c in chunks]) == text
    assert all(c.n_tokens <= 48 for c in chunks)


@pytest.mark.slow  # a wall-clock bound: not in the default run
def test_search_answers_within_a_second_while_a_bomb_is_read(make_settings, tiny_embedder, tmp_path):
    with Pipeline(make_settings(file_memory_mb=700, max_xml_mb=1000, max_unzipped_mb=1000), embedder=tiny_embedder) \
            as p:
        keep = tmp_path / "keep.txt"
        keep.write_text(sentences(12, 7, "okapi"))
        assert p.ingest([keep]).files[0].status == "ok"
        bomb = tmp_path / "bomb.docx"
        bomb.write_bytes(xml_bomb_docx(2_000_000))
        job = threading.Thread(target=p.ingest, args=([bomb],))
        job.start()
        worst = 0.0
        searched = 0
        while job.is_alive() and searched < 30:
            t0 = time.perf_counter()
            assert p.search("okapi", mode="hybrid")[0].source == "keep.txt"
            worst = max(worst, time.perf_counter() - t0)
            searched += 1
            time.sleep(0.1)
        job.join()
        assert searched >= 3 and worst < 1.0, (searched, worst)


def test_a_cancelled_read_stops_at_once(tiny_model_dir):
    reader = Reader()
    try:
        cancel = threading.Event()
        threading.Timer(0.3, cancel.set).start()
        caps = FileCaps.from_settings(IndexerSettings(max_xml_mb=1000, max_unzipped_mb=1000))
        t0 = time.perf_counter()
        with pytest.raises(Cancelled):
            reader.read(xml_bomb_docx(2_000_000), "b.docx", caps, _plan(tiny_model_dir), cancel=cancel)
        assert time.perf_counter() - t0 < 5
        extracted, _ = reader.read(b"after the cancel", "a.txt", caps, _plan(tiny_model_dir))
        assert extracted.pages[0][1] == "after the cancel"
    finally:
        reader.close()


def test_ocr_progress_reaches_the_progress_events(pipeline, tmp_path):
    import shutil

    if shutil.which("tesseract") is None:
        pytest.skip("Tesseract is not installed (apt-get install tesseract-ocr)")
    from test_indexer_ocr import make_scanned_pdf

    scan = tmp_path / "scan.pdf"
    scan.write_bytes(make_scanned_pdf([["The first scanned page about herons"], ["The second page about cranes"]]))
    events = []
    status = pipeline.ingest([scan], progress=events.append).files[0]
    assert status.status == "ok", status
    ocr = [(e.chunks_done, e.chunks_total) for e in events if e.stage == "ocr"]
    assert ocr == [(1, 2), (2, 2)]
    assert [e.message for e in events if e.stage == "ocr"][-1] == "scan.pdf: OCR page 2/2"


def test_mime_types_of_the_new_formats():
    from indexer.catalog import mime_type

    assert mime_type("pptx", "d.pptx").endswith("presentationml.presentation")
    assert mime_type("xlsx", "s.xlsx").endswith("spreadsheetml.sheet")
    assert (mime_type("epub", "b.epub"), mime_type("eml", "m.eml")) == ("application/epub+zip", "message/rfc822")
    assert (mime_type("csv", "r.csv"), mime_type("csv", "r.tsv")) == ("text/csv", "text/tab-separated-values")
    assert (mime_type("image", "a.JPG"), mime_type("image", "t.tiff")) == ("image/jpeg", "image/tiff")
    assert mime_type("unknown", "x") == "application/octet-stream"


def test_accepted_types_is_part_of_the_api():
    import indexer
    from indexer.formats import accepted_types

    assert indexer.accepted_types is accepted_types and "accepted_types" in indexer.__all__

"""Big ordinary files (issue #25 item 3): text is streamed into pages of ``MOESEARCH_TEXT_PAGE_CHARS``, the
character cap stops a reader early, a DOCX is streamed and refused from its size in text before it is parsed.
Sizes are made small through the settings; the wall-clock goals are in ``bench/big_files.py``."""

from __future__ import annotations

import io
import random
import unicodedata
import zipfile

import pytest
from indexer_testfiles import make_docx, sentences

from indexer.extract import extract
from indexer.loaders.base import BAD_CATEGORIES, ExtractError, Limits, garbage_ratio, normalize
from indexer.loaders.text import BLOCK
from indexer.settings import CHARS_PER_TOKEN, IndexerSettings

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def limits(**changes) -> Limits:
    return Limits.from_settings(IndexerSettings(**changes))


def lines_text(n: int) -> str:
    return "".join(f"line {i:05d} {sentences(1, i)}\n" for i in range(n))


def test_a_text_file_is_cut_into_pages_at_line_breaks_in_order():
    text = lines_text(400)
    got = extract(text.encode(), "log.txt", limits(text_page_chars=1000))
    numbers = [n for n, _ in got.pages]
    assert numbers == list(range(1, len(numbers) + 1)) and got.page_count == len(numbers) > 20
    assert all(len(t) <= 1000 for _, t in got.pages)
    first_lines = [t.split("\n", 1)[0] for _, t in got.pages]
    assert all(line.startswith("line ") for line in first_lines)  # every page starts at a line's start
    assert "\n".join(t for _, t in got.pages) == normalize(text)  # nothing lost, nothing reordered


def test_a_line_longer_than_a_page_is_cut_at_the_page_size():
    text = "x" * 2500 + "\nshort tail\n"
    got = extract(text.encode(), "one.txt", limits(text_page_chars=1000))
    assert [len(t) for _, t in got.pages] == [1000, 1000, 500 + len("\nshort tail")]


def test_a_file_shorter_than_a_page_is_one_page_and_markdown_keeps_its_type():
    got = extract(b"# Title\n\nSome words.", "note.md", limits())
    assert got.doc_type == "md" and got.pages == ((1, "# Title\n\nSome words."),) and got.page_count == 1


def test_characters_cut_by_a_decoding_block_are_read_whole():
    lines = ("a" * 99 + "\n") * (BLOCK // 100)
    text = lines + "a" * (BLOCK - 1 - len(lines)) + "\u00e9\u4e2d\U0001f600 end\n" + lines_text(50)
    assert len(text.encode()) > BLOCK and text.encode()[BLOCK - 1:BLOCK + 1] == "\u00e9".encode()  # straddles
    got = extract(text.encode(), "wide.txt", limits(text_page_chars=400_000))
    assert "\n".join(t for _, t in got.pages) == normalize(text)


def test_utf16_and_detected_encodings_are_paged_too():
    text = lines_text(200)
    for data, note in ((b"\xff\xfe" + text.encode("utf-16-le"), False),
                       ((text + "caf\u00e9 na\u00efve r\u00e9sum\u00e9\n" * 50).encode("cp1252"), True)):
        got = extract(data, "enc.txt", limits(text_page_chars=1000))
        assert len(got.pages) > 5 and got.pages[0][1].startswith("line 00000")
        assert any("decoded as" in n for n in got.notes) == note


def test_the_character_cap_stops_a_text_file_and_names_its_setting():
    with pytest.raises(ExtractError, match=r"more than 5,000 characters \(MOESEARCH_MAX_CHARS\)"):
        extract(("word " * 4000).encode(), "long.txt", limits(max_chars=5000))


def test_broken_utf16_names_the_byte():
    with pytest.raises(ExtractError, match="broken UTF-16 text at byte"):
        extract(b"\xff\xfe" + "ok".encode("utf-16-le") + b"\x00\xd8", "bad.txt", limits())


def big_docx(paragraphs: int, words: str) -> bytes:
    """A DOCX whose body is ``paragraphs`` copies of one paragraph (deflates ~100x or more)."""
    out = io.BytesIO()
    body = f"<w:p><w:r><w:t>{words}</w:t></w:r></w:p>" * paragraphs
    with zipfile.ZipFile(io.BytesIO(make_docx(["start"])), "r") as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "word/document.xml":
                data = data.replace(b"<w:body>", b"<w:body>" + body.encode(), 1)
            dst.writestr(info.filename, data)
    return out.getvalue()


def test_a_docx_over_the_character_cap_is_refused_before_parsing_naming_the_cap():
    data = big_docx(5000, sentences(3, 1))  # more paragraphs than docx.JOIN
    with pytest.raises(ExtractError, match=r"^too much text: the DOCX holds more than 20,000 characters outside its "
                                           r"markup.*MOESEARCH_MAX_CHARS"):
        extract(data, "big.docx", limits(max_chars=20_000))
    got = extract(data, "big.docx", limits())  # within the default caps it is read whole
    assert got.pages[0][1] == "\n\n".join([sentences(3, 1)] * 5000 + ["start"])


def test_docx_paragraphs_and_tables_come_in_document_order_with_tabs_breaks_and_links():
    import docx

    document = docx.Document()
    document.add_paragraph("Before the table.")
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([["a", "b"], ["c", "d"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    p = document.add_paragraph("After")
    run = p.add_run()
    run.add_tab()
    run.add_text("tabbed")
    run.add_break()
    run.add_text("broken")
    link = p._p.makeelement(f"{{{W}}}hyperlink", {})
    linked = p._p.makeelement(f"{{{W}}}r", {})
    t = linked.makeelement(f"{{{W}}}t", {})
    t.text = " linked words"
    linked.append(t)
    link.append(linked)
    p._p.append(link)
    buffer = io.BytesIO()
    document.save(buffer)
    text = extract(buffer.getvalue(), "order.docx", limits()).pages[0][1]
    assert text == "Before the table.\n\na | b\n\nc | d\n\nAfter\ttabbed\nbroken linked words"


def test_garbage_ratio_counts_as_unicodedata_does():
    def by_hand(text: str) -> float:
        chars = [c for c in text if not c.isspace()]
        bad = sum(1 for c in chars if c == "\ufffd" or unicodedata.category(c) in BAD_CATEGORIES)
        return bad / len(chars) if chars else 0.0

    rnd = random.Random(3)
    pool = [0x00, 0x1C, 0x85, 0xA0, 0xE000, 0xFFFD, 0xD800, 0x378, 0x10FFFF, 0x4E2D, 0x41, 0x20, 0x0A]
    for _ in range(200):
        text = "".join(chr(rnd.choice(pool) if rnd.random() < 0.7 else rnd.randrange(0x110000)) for _ in range(40))
        assert garbage_ratio(text) == pytest.approx(by_hand(text))
    assert garbage_ratio(" \n\t") == 0.0 and garbage_ratio("\ufffd\ufffdab") == 0.5


def test_the_character_cap_is_what_the_chunk_cap_implies():
    s = IndexerSettings()
    assert s.max_chars == s.max_chunks * s.chunk_tokens * CHARS_PER_TOKEN
    assert s.max_chars > 50 * 2**20  # a 50 MB text file is within it
    assert (Limits.from_settings(s).max_chars, Limits.from_settings(s).text_page_chars) == \
        (s.max_chars, s.text_page_chars)


def test_a_paged_text_file_is_indexed_and_cited_by_page(make_settings, tiny_embedder, tmp_path):
    from indexer.pipeline import Pipeline

    path = tmp_path / "journal.txt"
    path.write_text(lines_text(300) + "the walrus appears on the last page\n")
    with Pipeline(make_settings(text_page_chars=2000), embedder=tiny_embedder) as p:
        status = p.ingest([path]).files[0]
        assert status.status == "ok", status
        hit = p.search("walrus", mode="keyword")[0]
        pages = len(extract(path.read_bytes(), path.name, limits(text_page_chars=2000)).pages)
        assert hit.source == "journal.txt" and hit.page == pages > 10

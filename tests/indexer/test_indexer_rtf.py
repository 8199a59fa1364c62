"""RTF (``indexer/loaders/rtf.py``): hand-written files with accents as ``\\'e9`` and ``\\u233?``, a second code
page, escapes, fields, pictures and page breaks; broken and hostile files fail alone (or read fast) with the
reason named."""

from __future__ import annotations

import sys
import time

import pytest
from indexer_testfiles import sentences

from indexer.extract import ExtractError, Limits, extract
from indexer.sniff import sniff

BIG = dict(max_pages=5000, max_rows=50_000, max_unzipped_mb=256, max_zip_entries=10_000, max_xml_mb=128,
           max_image_megapixels=50, ocr_seconds=300, ocr_languages="eng")
HEAD = (r"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0\fswiss\fcharset0 Arial;}{\f1\froman\fcharset204 Times;}}"
        r"{\colortbl;\red0\green0\blue0;}{\info{\title Not body text}{\author Nobody}}" "\r\n")
LETTER = HEAD + (
    r"\f0\fs24 Caf\'e9 cr\u232?me br\u251?l\u233?e for the na\u239?ve \{curly\} guests, c:\\temp.\par" "\r\n"
    r"{\f1 \'cf\'f0\'e8\'e2\'e5\'f2} from Novosibirsk.\par" "\r\n"
    r"{\field{\*\fldinst{HYPERLINK " '"https://example.org/otters"' r"}}{\fldrslt{the otter survey}}}\par" "\r\n"
    r"{\*\shppict{\pict\pngblip\picw10\pich10 89504e470d0a1a0a0000000d4948445200}}"
    r"{\pict\wmetafile8\bin6 {}\\{x} Smile \u-10179?\u-8704? please.\page" "\r\n"
    r"The second page is about kestrels.\par\page" "\r\n"
    r"\uc2 Third\u8212\'97\'97 page\uc1, with a long dash.}"
)


def limits(**changes) -> Limits:
    return Limits(**{**BIG, **changes})


def rtf(body: str) -> bytes:
    return (HEAD + body + "}").encode("ascii")


def test_a_letter_reads_page_by_page_with_its_characters():
    got = extract(LETTER.encode("ascii"), "letter.rtf", limits())
    assert got.doc_type == "rtf" and got.page_count == 3 and got.notes == ()
    (n1, first), (n2, second), (n3, third) = got.pages
    assert (n1, n2, n3) == (1, 2, 3)
    assert first.startswith("Café crème brûlée for the naïve {curly} guests, c:\\temp.")
    assert "Привет from Novosibirsk." in first  # \fcharset204: the font's code page is Cyrillic
    assert "the otter survey" in first and "HYPERLINK" not in first  # a field's result, not its instruction
    assert "Smile \U0001f600 please." in first  # a UTF-16 surrogate pair as one character
    assert "Not body text" not in first and "Arial" not in first and "89504e47" not in first
    assert second == "The second page is about kestrels."
    assert third == "Third\u2014 page, with a long dash."  # \uc2: two fallback bytes skipped


def test_without_page_breaks_the_whole_file_is_one_page():
    got = extract(rtf(r"One \b bold\b0  paragraph.\par Another, with \'e9.\sect A section."), "n.rtf", limits())
    assert got.page_count == 1 and got.pages == ((1, "One bold paragraph.\nAnother, with é.\n\nA section."),)


def test_pages_and_their_numbers_skip_empty_pages():
    got = extract(rtf(r"first\page\page third\page"), "p.rtf", limits())
    assert got.page_count == 4 and [n for n, _ in got.pages] == [1, 3]
    # the loader's page marker (a noncharacter) written by the file itself is not a page break
    got = extract(rtf(r"Noncharacters \u64976?and\u-560? are no page breaks."), "m.rtf", limits())
    assert got.page_count == 1 and got.pages[0][1] == "Noncharacters \ufffdand\ufffd are no page breaks."


@pytest.mark.parametrize("data,reason", [
    (LETTER.encode()[:len(LETTER) // 2], r"truncated RTF: \d+ group\(s\) still open at the end of the file"),
    (rtf(r"{\pict\bin999 abc}"), r"truncated RTF: its binary data \(\\bin999\) runs past the end"),
    (rtf(r"\uc text"), "malformed RTF: TypeError"),  # \uc without its number
    (rb"{\rtf1{\fonttbl{\f0\fcharset78 Osaka;}}\f0 \'82\'a0 text}",  # a Mac code page Python has no codec for
     r"RTF in a character set that cannot be decoded here \(unknown encoding: mac_japanese\)"),
    (rtf(r"{\*\generator Hand}\par\par "), "no text: the RTF file contains only whitespace or markup"),
    (rtf(r"a\page b\page c"), r"too many pages: 3 \(the cap is 2, MOESEARCH_MAX_PAGES\)"),
])
def test_broken_files_say_why(data, reason):
    with pytest.raises(ExtractError, match=reason):
        extract(data, "broken.rtf", limits(max_pages=2))


def test_recognised_by_content_whatever_the_name():
    data = rtf(r"Minutes of the heron committee.")
    assert sniff(data).kind == "rtf" and sniff(rtf(r"{\pict\bin2 " + "\x00\x01" + "}x")).kind == "rtf"
    got = extract(data, "minutes.txt", limits())
    assert got.doc_type == "rtf" and any("named .txt but the content is an RTF document" in n for n in got.notes)
    got = extract(b"Just words, no RTF header.", "plain.rtf", limits())
    assert got.doc_type == "txt" and any("named .rtf but the content is text" in n for n in got.notes)


def _hostile(n: int) -> tuple[tuple[str, str], ...]:
    """A font table of ``n`` entries without ';' and ``n`` chained hyperlink fields, with the word each ends with."""
    fonts = "{\\rtf1{\\fonttbl" + "\\f1\\fcharset0 " * n + "}hello fonts}"
    links = "{\\rtf1 " + "{\\field{\\*\\fldinst{ HYPERLINK \"a\" \"b\" " * n + "}" * (3 * n) + "hello links}"
    return (fonts, "fonts"), (links, "links")


def test_hostile_markup_reads():
    """striprtf alone: a font table of 200 entries without ';' took 223 s, 1,000 chained hyperlink fields 29 s
    (super-linear regexes); with the loader's pass these read in well under a second (the bound: the slow test)."""
    for data, word in _hostile(1_000):
        assert extract(data.encode(), "h.rtf", limits()).pages[0][1].endswith(word)


@pytest.mark.slow  # a wall-clock bound: not in the default run
def test_hostile_markup_reads_in_linear_time():
    for data, word in _hostile(20_000):
        t0 = time.perf_counter()
        got = extract(data.encode(), "h.rtf", limits())
        assert time.perf_counter() - t0 < 20 and got.pages[0][1].endswith(word)


def test_a_missing_library_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "striprtf", None)  # as in an install without the `app` extra
    with pytest.raises(ExtractError, match=r"an RTF document needs the Python package 'striprtf'.*moesearch\[app\]"):
        extract(rtf("text"), "a.rtf", limits())


def test_a_broken_rtf_fails_alone_and_pages_are_cited(pipeline, tmp_path):
    good, bad = tmp_path / "report.rtf", tmp_path / "cut.rtf"
    good.write_bytes(rtf(sentences(6, 1) + r"\page " + r"The okapi sanctuary counted n\u233?nuphars. " +
                         sentences(6, 2)))
    bad.write_bytes(LETTER.encode()[:200])
    report = pipeline.ingest([bad, good])
    failed, ok = report.files
    assert failed.status == "failed" and "truncated RTF" in failed.reason
    assert ok.status == "ok" and ok.pages == 2
    hit = [h for h in pipeline.search("okapi sanctuary", k=5, mode="keyword") if h.source == "report.rtf"][0]
    assert hit.page == 2 and "nénuphars" in hit.text
    assert {d.doc_type for d in pipeline.documents()} == {"rtf"}

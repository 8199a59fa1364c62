"""The legacy binary formats in an OLE2 container: Word 97 (.doc), PowerPoint 97 (.ppt), Excel 97 (.xls) and
Outlook (.msg), each made here (``legacy_testfiles``), recognised by content, read page by page, capped, and
refused with "encrypted" when saved with a password; a damaged part is left out with a note."""

from __future__ import annotations

import io
import struct
from datetime import date

import olefile
import pytest
from legacy_testfiles import make_doc, make_msg, make_ole, make_ppt, make_xls, with_filepass, xls_records

from indexer.extract import ExtractError, Limits, extract
from indexer.loaders import ole
from indexer.sniff import sniff

LIMITS = dict(max_pages=50, max_rows=50, max_unzipped_mb=8, max_zip_entries=100, max_xml_mb=8,
              max_image_megapixels=1, ocr_seconds=10, ocr_languages="eng")


def limits(**changes) -> Limits:
    return Limits(**{**LIMITS, **changes})


DOC = ("Heron café survey\rSee \x13 HYPERLINK \"http://example.org\" \x14the egret report\x15 today.\r"
       "\x0cZürich ñandú census\rsite\x07count\x07\x07marsh\x0712\x07\x07")
SLIDES = [("Quarterly review", "Budget is on track", "Kestrel migration chart", "Thank the okapi sanctuary"),
          ("Field season", "Tents and boats", "Parrotfish at dawn", "")]


# --- Word 97 -------------------------------------------------------------------------------------------------
def test_doc_pages_fields_tables_and_stories():
    got = extract(make_doc(DOC, extra="Footnote on walrus counts"), "survey.doc", limits())
    assert (got.doc_type, got.page_count) == ("doc", 2)
    first, second = (text for _, text in got.pages)
    assert first == "Heron café survey\nSee the egret report today."  # a field's result, not its code
    assert "HYPERLINK" not in first
    assert second.startswith("Zürich ñandú census\nsite | count\nmarsh | 12")  # 8-bit and UTF-16 pieces
    assert second.endswith("Footnote on walrus counts")  # stories after the main text follow the last page


def test_doc_without_page_breaks_is_one_page_and_pages_are_capped():
    assert extract(make_doc("One page only\r"), "a.doc", limits()).pages == ((1, "One page only"),)
    with pytest.raises(ExtractError, match=r"too many pages: 3 \(the cap is 2"):
        extract(make_doc("a\x0cb\x0cc\r"), "a.doc", limits(max_pages=2))


def test_doc_refusals_name_the_cause():
    with pytest.raises(ExtractError, match="encrypted Word document"):
        extract(make_doc("secret\r", flags=0x0200 | 0x0100), "a.doc", limits())
    with pytest.raises(ExtractError, match="encrypted Word document"):  # XOR obfuscation is a password too
        extract(make_doc("secret\r", flags=0x0200 | 0x8000), "a.doc", limits())
    word95 = bytearray(make_doc("old\r"))
    at = bytes(word95).find(struct.pack("<HH", 0xA5EC, 0x00C1))
    word95[at + 2:at + 4] = struct.pack("<H", 100)
    with pytest.raises(ExtractError, match="Word 6.0/95 document"):
        extract(bytes(word95), "a.doc", limits())
    with olefile.OleFileIO(io.BytesIO(make_doc("x\r"))) as whole:
        word = whole.openstream("WordDocument").read()
    with pytest.raises(ExtractError, match="corrupted Word document .*table stream '1Table' is missing"):
        extract(make_ole({"WordDocument": word}), "a.doc", limits())
    with pytest.raises(ExtractError, match="does not start with a Word header"):
        extract(make_ole({"WordDocument": bytes(5000), "1Table": bytes(100)}), "a.doc", limits())


def test_doc_piece_past_the_end_is_left_out_with_a_note():
    data = bytearray(make_doc("kept in eight bits\x0cthe wide part", split=18))
    at = bytes(data).find(struct.pack("<I", 0x1000 + 18))  # the UTF-16 piece's offset in the piece table
    data[at:at + 4] = struct.pack("<I", 0x7000000)
    got = extract(bytes(data), "a.doc", limits())
    assert got.pages == ((1, "kept in eight bits"),) and "1 damaged piece(s) of text left out" in got.notes[0]


def test_doc_pieces_that_overlap_or_go_backwards_are_refused():
    data = bytearray(make_doc("abc\r", split=2))
    fib = bytes(data).find(struct.pack("<HH", 0xA5EC, 0x00C1))
    plc = bytes(data).find(struct.pack("<3I", 0, 2, 4))
    struct.pack_into("<I", data, fib + 76, 0x2000)  # ccpText
    struct.pack_into("<3I", data, plc, 0, 0x1000, 0x2000)  # two pieces of 4 KB, both at the stream's start
    struct.pack_into("<HIHHIH", data, plc + 12, 0, 0x40000000, 0, 0, 0x40000000, 0)
    with pytest.raises(ExtractError, match="pieces of text overlap"):
        extract(bytes(data), "a.doc", limits())
    struct.pack_into("<3I", data, plc, 0, 0x1000, 0x800)
    with pytest.raises(ExtractError, match=r"piece table \(Clx\) is out of order"):
        extract(bytes(data), "a.doc", limits())


# --- PowerPoint 97 -------------------------------------------------------------------------------------------
def test_ppt_one_page_per_slide_with_shapes_and_notes():
    got = extract(make_ppt(SLIDES), "deck.ppt", limits())
    assert (got.doc_type, got.page_count) == ("ppt", 2)
    assert got.pages[0] == (1, "Quarterly review\n\nBudget is on track\n\nKestrel migration chart\n\n"
                               "Speaker notes: Thank the okapi sanctuary")
    assert got.pages[1] == (2, "Field season\n\nTents and boats\n\nParrotfish at dawn")


def test_ppt_record_named_by_two_slides_is_read_once():
    data = bytearray(make_ppt(SLIDES))
    directory = bytes(data).find(struct.pack("<I", 1 | (4 << 20)))
    first, _, _, _ = struct.unpack_from("<4I", data, directory + 4)
    struct.pack_into("<I", data, directory + 12, first)  # slide 2's persist id -> slide 1's record
    pages = dict(extract(bytes(data), "deck.ppt", limits()).pages)
    assert "Kestrel migration chart" in pages[1] and pages[2] == "Field season\n\nTents and boats"


def test_ppt_broken_slide_is_left_out_and_caps_and_passwords_hold():
    got = extract(make_ppt(SLIDES, broken=1), "deck.ppt", limits())
    assert [n for n, _ in got.pages] == [2] and got.notes[0].startswith("slide 1 left out: its records are damaged")
    with pytest.raises(ExtractError, match=r"too many slides: 2 \(the cap is 1"):
        extract(make_ppt(SLIDES), "deck.ppt", limits(max_pages=1))
    with pytest.raises(ExtractError, match="encrypted PowerPoint deck"):
        extract(make_ppt(SLIDES, streams={"EncryptedSummary": bytes(64)}), "deck.ppt", limits())


# --- Excel 97 ------------------------------------------------------------------------------------------------
def test_xls_sheets_rows_and_cell_types():
    book = make_xls({"Budget": [["Item", "Cost", "Bought"], ["tents", 400, date(2024, 1, 5)], ["boats", 1200.5]],
                     "Empty": [], "Inventory": [["Part", "Count"], ["flux capacitor", 3]]})
    got = extract(book, "stock.xls", limits())
    assert (got.doc_type, got.page_count, [n for n, _ in got.pages]) == ("xls", 3, [1, 3])
    assert got.pages[0][1] == ("Sheet: Budget\n\nItem | Cost | Bought\nItem: tents; Cost: 400; "
                               "Bought: 2024-01-05T00:00:00\nItem: boats; Cost: 1200.5")
    assert "Part: flux capacitor; Count: 3" in got.pages[1][1]
    with pytest.raises(ExtractError, match="too many rows: more than 2"):
        extract(book, "stock.xls", limits(max_rows=2))
    with pytest.raises(ExtractError, match="too many sheets: 3"):
        extract(book, "stock.xls", limits(max_pages=2))


def test_xls_damaged_sheet_is_left_out_and_password_is_named():
    stream, sheets = xls_records(make_xls({"Good": [["a"], ["kept"]], "Bad": [["b"], ["lost"]]}))
    damaged = bytearray(stream)
    struct.pack_into("<I", damaged, sheets[1] + 4, 100)  # the second sheet's BOF points into the globals
    got = extract(make_ole({"Workbook": bytes(damaged)}), "a.xls", limits())
    assert got.pages == ((1, "Sheet: Good\n\na\na: kept"),)
    assert got.notes == ("sheet 2 ('Bad') left out: it cannot be read (XLRDError)",)
    with pytest.raises(ExtractError, match="encrypted Excel workbook"):
        extract(with_filepass(make_xls({"S": [["a"], ["b"]]})), "a.xls", limits())


# --- Outlook -------------------------------------------------------------------------------------------------
def test_msg_message_and_attachments_are_parts():
    data = make_msg("Survey results", "Dear team, the tide tables are attached.",
                    [("tides.txt", "Spring tide peaks at the sandbar.".encode("utf-16"), "text/plain"),
                     ("chart.png", b"\x89PNG\r\n\x1a\n" + bytes(32), "image/png"),
                     ("notes.html", b"<p>Low tide <b>walks</b></p>", "text/html")])
    got = extract(data, "survey.msg", limits())
    assert (got.doc_type, got.page_count, [n for n, _ in got.pages]) == ("msg", 4, [1, 2, 4])
    assert got.pages[0][1] == ("From: Ada Field <ada@example.org>\nTo: Survey team\n"
                               "Date: Tue, 03 Mar 2026 10:00:00 +0000\nSubject: Survey results\n\n"
                               "Dear team, the tide tables are attached.")
    assert got.pages[1][1] == "Attachment: tides.txt\n\nSpring tide peaks at the sandbar."
    assert "Low tide walks" in got.pages[2][1]
    assert got.notes == ("attachment 'chart.png' not indexed: only text attachments are",)


def test_msg_unreadable_attachment_is_left_out_with_a_note():
    data = bytearray(make_msg("Report", "Body text", [("big.txt", b"lost " * 2000, "text/plain"),
                                                      ("small.txt", b"kept words", "text/plain")]))
    entry = bytes(data).find("__substg1.0_37010102".encode("utf-16-le"))  # the first attachment's data
    struct.pack_into("<I", data, entry + 116, 0x7FFFFF00)  # its first sector: far past the end of the file
    got = extract(bytes(data), "a.msg", limits())
    assert [n for n, _ in got.pages] == [1, 3] and got.pages[1][1] == "Attachment: small.txt\n\nkept words"
    assert len(got.notes) == 1 and got.notes[0].startswith("attachment 1 left out: corrupted Outlook message")


def test_msg_html_body_caps_and_encryption():
    got = extract(make_msg("Hello", "", html=b"<html><body><p>Only <i>HTML</i> here</p></body></html>"), "a.msg",
                  limits())
    assert got.pages[0][1].endswith("Only HTML here")
    two = [("a.txt", b"a", "text/plain"), ("b.txt", b"b", "text/plain")]
    with pytest.raises(ExtractError, match=r"too many parts \(the message and its attachments\): 3"):
        extract(make_msg("x", "y", two), "a.msg", limits(max_pages=2))
    with pytest.raises(ExtractError, match=r"encrypted Outlook message \(MSG\) \(S/MIME\)"):
        extract(make_msg("x", "", [("smime.p7m", b"\x30\x80", "application/pkcs7-mime")],
                         message_class="IPM.Note.SMIME"), "a.msg", limits())
    signed = make_msg("Signed", "A signed note", message_class="IPM.Note.SMIME.MultipartSigned")
    assert extract(signed, "a.msg", limits()).pages[0][1].endswith("A signed note")
    with pytest.raises(ExtractError, match="rights-protected"):
        extract(make_msg("x", "", [("message.rpmsg", b"\x76\xe8", "application/x-microsoft-rpmsg")]), "a.msg",
                limits())


# --- recognising an OLE2 file --------------------------------------------------------------------------------
def test_ole_files_are_told_apart_by_their_streams_whatever_their_name():
    files = {"doc": make_doc("Words\r"), "ppt": make_ppt(SLIDES), "xls": make_xls({"S": [["a"], ["b"]]}),
             "msg": make_msg("Hi", "there")}
    for kind, data in files.items():
        assert sniff(data).kind == kind
        got = extract(data, "renamed.bin", limits())
        assert got.doc_type == kind and "unsupported extension .bin" in got.notes[0]
    assert extract(files["doc"], "report.xls", limits()).notes[0].startswith(
        "named .xls but the content is a Word 97-2003 document (DOC); indexed as such")
    other = make_ole({"VisioDocument": bytes(5000)})
    assert sniff(other).kind == "binary"
    with pytest.raises(ExtractError, match="unsupported file type: an OLE2 compound file that is not a Word"):
        extract(other, "drawing.vsd", limits())
    with pytest.raises(ExtractError, match="named .doc but the content is a damaged OLE2 compound file"):
        extract(ole.SIGNATURE + bytes(600), "cut.doc", limits())

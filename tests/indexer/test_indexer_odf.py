"""OpenDocument (.odt pages, .ods sheets, .odp slides) made here as the ZIP of XML they are, and the text formats
told apart by suffix (JSON, XML, YAML, reStructuredText, Org, source code): read, capped, refused with
"encrypted" when saved with a password, a damaged sheet or slide left out with a note."""

from __future__ import annotations

import pytest
from legacy_testfiles import make_odf, odf_paragraphs, odf_row, zip_encrypted

from indexer.extract import ExtractError, Limits, extract
from indexer.formats import claimed, mime_type
from indexer.sniff import sniff

LIMITS = dict(max_pages=50, max_rows=50, max_unzipped_mb=8, max_zip_entries=100, max_xml_mb=8,
              max_image_megapixels=1, ocr_seconds=10, ocr_languages="eng")


def limits(**changes) -> Limits:
    return Limits(**{**LIMITS, **changes})


ODT = ("<text:h>Estuary survey</text:h>"
       '<text:p>Heron<text:s text:c="3"/>nests<text:tab/>north<text:line-break/>marsh'
       "<text:note><text:note-body><text:p>counted twice</text:p></text:note-body></text:note></text:p>"
       "<text:list><text:list-item><text:p>tents</text:p></text:list-item></text:list>"
       "<table:table><table:table-row><table:table-cell><text:p>site</text:p></table:table-cell>"
       "<table:table-cell><text:p>count</text:p></table:table-cell></table:table-row></table:table>"
       "<text:p><text:soft-page-break/>Walrus colony on page two</text:p>")


def test_odt_pages_follow_the_soft_page_breaks():
    got = extract(make_odf("text", ODT), "survey.odt", limits())
    assert (got.doc_type, got.page_count) == ("odt", 2)
    assert got.pages == ((1, "Estuary survey\n\nHeron   nests\tnorth\nmarsh\ncounted twice\n\ntents\n\n"
                             "site | count"),
                         (2, "Walrus colony on page two"))
    assert extract(make_odf("text", odf_paragraphs("one page")), "a.odt", limits()).pages == ((1, "one page"),)
    with pytest.raises(ExtractError, match=r"too many pages: 2 \(the cap is 1"):
        extract(make_odf("text", ODT), "survey.odt", limits(max_pages=1))


def test_odt_pages_also_break_where_a_style_asks_for_it():
    styles = ('<style:style style:name="P1" style:family="paragraph"><style:paragraph-properties '
              'fo:break-before="page"/></style:style><style:style style:name="P2" style:family="paragraph">'
              '<style:paragraph-properties fo:break-after="page"/></style:style>')
    body = ('<text:p>Cover <text:page-number>&lt;number&gt;</text:page-number></text:p>'
            '<text:p text:style-name="P1">Chapter one heron</text:p><text:p text:style-name="P2">egret</text:p>'
            '<text:p>Chapter two walrus</text:p><text:p text:style-name="P1"><text:soft-page-break/>osprey</text:p>')
    got = extract(make_odf("text", body, styles=styles), "book.odt", limits())
    assert got.pages == ((1, "Cover"), (2, "Chapter one heron\n\negret"), (3, "Chapter two walrus"), (4, "osprey"))


def test_ods_sheets_with_repeated_rows_and_columns():
    sheets = ('<table:table table:name="Budget">'
              + odf_row("Item", "Cost") + odf_row("tents", "400", repeat=2)
              + '<table:table-row><table:table-cell table:number-columns-repeated="3"><text:p>x</text:p>'
                '</table:table-cell><table:table-cell table:number-columns-repeated="16000"/></table:table-row>'
              + odf_row("", "", repeat=1_048_000) + "</table:table>"
              + '<table:table table:name="Blank">' + odf_row("") + "</table:table>"
              + '<table:table table:name="Inventory">' + odf_row("Part") + odf_row("flux capacitor") + "</table:table>")
    got = extract(make_odf("spreadsheet", sheets), "stock.ods", limits())
    assert (got.doc_type, got.page_count, [n for n, _ in got.pages]) == ("ods", 3, [1, 3])
    assert got.pages[0][1] == ("Sheet: Budget\n\nItem | Cost\nItem: tents; Cost: 400\nItem: tents; Cost: 400\n"
                               "Item: x; Cost: x; column 3: x")
    with pytest.raises(ExtractError, match="too many rows: more than 3"):
        extract(make_odf("spreadsheet", sheets), "stock.ods", limits(max_rows=3))
    flood = '<table:table table:name="S">' + odf_row("a") + odf_row("same", repeat=10**9) + "</table:table>"
    with pytest.raises(ExtractError, match="too many rows: more than 50"):
        extract(make_odf("spreadsheet", flood), "flood.ods", limits())


def test_odp_slides_with_their_notes():
    def frame(text: str) -> str:
        return f"<draw:frame><draw:text-box>{odf_paragraphs(text)}</draw:text-box></draw:frame>"

    slides = (f"<draw:page>{frame('Kestrel migration')}<presentation:notes>{frame('Thank the okapi sanctuary')}"
              f"</presentation:notes></draw:page><draw:page>{frame('Field season')}</draw:page>")
    got = extract(make_odf("presentation", slides), "deck.odp", limits())
    assert got.pages == ((1, "Kestrel migration\n\nSpeaker notes: Thank the okapi sanctuary"), (2, "Field season"))
    with pytest.raises(ExtractError, match="too many slides: 2"):
        extract(make_odf("presentation", slides), "deck.odp", limits(max_pages=1))


@pytest.mark.parametrize("kind,name", [("text", "a.odt"), ("spreadsheet", "a.ods"), ("presentation", "a.odp")])
def test_odf_with_a_password_or_broken_xml_is_refused(kind, name):
    with pytest.raises(ExtractError, match=r"encrypted OpenDocument \w+ \(OD.\): it needs a password"):
        extract(make_odf(kind, "", encrypted=True), name, limits())
    with pytest.raises(ExtractError, match=r"the content is an encrypted \(password-protected\) ZIP archive"):
        extract(zip_encrypted(make_odf(kind, "")), name, limits())
    with pytest.raises(ExtractError, match="corrupted OpenDocument .*its XML cannot be parsed"):
        extract(make_odf(kind, "<text:p>unclosed"), name, limits())
    assert sniff(make_odf(kind, "")).kind == name[-3:]


def test_odf_entities_are_neither_expanded_nor_fetched(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("walrus password")
    doctype = f'<!DOCTYPE office:document-content [<!ENTITY file SYSTEM "file://{secret}">]>'
    got = extract(make_odf("text", odf_paragraphs("kept &file; words"), doctype=doctype), "a.odt", limits())
    assert got.pages == ((1, "kept  words"),)  # the file's entity is neither fetched nor expanded
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10 if i else "heron"}">' for i in range(9))
    bomb = make_odf("text", odf_paragraphs("&l8;"), doctype=f"<!DOCTYPE office:document-content [{laughs}]>")
    with pytest.raises(ExtractError, match="XML cannot be parsed .*amplification"):
        extract(bomb, "a.odt", limits())


# --- text formats --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,doc_type,mime", [
    ("data.json", "json", "application/json"), ("log.ndjson", "json", "application/x-ndjson"),
    ("feed.xml", "xml", "application/xml"), ("conf.yaml", "yaml", "application/yaml"),
    ("conf.yml", "yaml", "application/yaml"), ("guide.rst", "rst", "text/x-rst"), ("todo.org", "org", "text/x-org"),
    ("tool.py", "code", "text/plain"), ("app.ts", "code", "text/plain"), ("main.c", "code", "text/plain"),
    ("query.sql", "code", "text/plain"), ("site.css", "code", "text/plain"), ("run.sh", "code", "text/plain"),
])
def test_text_formats_are_told_apart_by_suffix(name, doc_type, mime):
    text = "heron: {\"egret\": [1, 2]}  # walrus\nlighthouse = 'ñandú'\n"
    got = extract(text.encode("utf-8"), name, limits())
    assert (got.doc_type, got.pages) == (doc_type, ((1, text.strip()),))
    assert claimed(name).doc_type == doc_type and mime_type(doc_type, name) == mime
    legacy = extract(text.encode("cp1252"), name, limits())  # any encoding, as for .txt
    assert legacy.pages == got.pages and "not UTF-8" in legacy.notes[0]


def test_xml_stays_xml_and_xhtml_is_html():
    feed = b'<?xml version="1.0"?>\n<feed><entry>Heron sighting</entry></feed>\n'
    assert extract(feed, "feed.xml", limits()).doc_type == "xml"
    page = b"<!DOCTYPE html><html><body><p>Heron sighting</p></body></html>"
    assert extract(page, "page.xml", limits()).doc_type == "html"  # the content decides, with a note
    with pytest.raises(ExtractError, match="no text"):
        extract(b"  \n\n ", "empty.json", limits())

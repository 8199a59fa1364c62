"""Search page logic through streamlit's AppTest: empty states, the search flow, XSS-safe snippets."""

from __future__ import annotations

import re
from html import unescape

from app_helpers import htmls, open_page, texts

from app.sample import EXAMPLES, sample_files
from app.service import get_service
from indexer import Source

XSS = ("Field report. <script>window.__xss = 1; alert('pwned')</script> The pelican survey found "
       "<img src=x onerror=\"alert('img')\"> nesting colonies & eggs near <b>the</b> estuary.")


def _ingest(items) -> None:
    """Put documents in the index through the process-wide service the app will use."""
    report = get_service().ingest(items, "test documents")
    assert report.all_ok, report.to_dict()


def _cards(at) -> list[str]:
    return [h for h in htmls(at) if 'class="ms-head"' in h]


def _snippets(at) -> list[str]:
    return [h for h in htmls(at) if 'class="ms-snippet"' in h]


def _search(at, query: str, **widgets):
    for key, value in widgets.items():
        widget = at.segmented_control(key=key) if key == "mode" else (
            at.selectbox(key=key) if key == "k" else at.multiselect(key=key))
        widget.set_value(value)
    at.text_input(key="q").set_value(query)
    return at.run()


def test_empty_index_explains_and_offers_the_sample_corpus(app_env, monkeypatch, admin_hash):
    from app_helpers import sign_in

    import app.auth
    from app.auth import ENV_VAR

    monkeypatch.setattr(app.auth, "client_address", lambda: "203.0.113.9")  # a browser on another machine
    at = open_page()
    assert "An admin can load it" in texts(at.caption)  # anonymous, not local: no button
    assert not any(b.label == "Load the sample corpus" for b in at.button)
    monkeypatch.setenv(ENV_VAR, admin_hash)
    at = sign_in(open_page("views/ingest.py"))
    at.switch_page("views/search.py").run()
    assert not at.exception
    info = texts(at.info)
    assert "The index is empty" in info and "Ingest" in info and "python -m indexer ingest" in info
    assert not at.text_input  # no search box over an empty index
    load = next(b for b in at.button if b.label == "Load the sample corpus")
    load.click().run()
    assert not at.exception and not at.error
    assert get_service().stats().documents == len(sample_files())
    # Now a search box; an empty query gets a hint (not an error) and sample queries to try.
    assert at.text_input(key="q").value == ""
    assert "Type what you are looking for" in texts(at.info)
    assert list(at.pills(key="example").options) == list(EXAMPLES)
    at.pills(key="example").set_value(EXAMPLES[0]).run()
    assert at.text_input(key="q").value == EXAMPLES[0]
    assert _cards(at) and not at.exception


def test_search_flow_cards_modes_filters_context_and_experts(app_env):
    _ingest(sample_files())
    at = open_page()
    _search(at, "unreasonable searches")
    assert not at.exception and not at.error
    cards = _cards(at)
    assert 1 <= len(cards) <= 10
    assert "bill-of-rights.pdf" in cards[0] and "page 2 of 3" in cards[0] and "RRF" in cards[0]
    assert re.search(r"<mark>(unreasonable|searche[sd])</mark>", _snippets(at)[0])
    assert any("results · hybrid" in c.value for c in at.caption)
    # "why these results": router choices for the query and for the top hit, one heatmap each
    assert len(at.get("vega_lite_chart")) == 2
    assert "Why these results" in texts(at.markdown)
    assert any("same experts as your query" in c.value for c in at.caption)
    # the original can be downloaded (the file is still at its path)
    assert any(b.label == "Download PDF" for b in at.get("download_button"))

    # keyword mode, fewer results, BM25 scores
    _search(at, "unreasonable searches", mode="keyword", k=5)
    cards = _cards(at)
    assert 1 <= len(cards) <= 5 and "BM25" in cards[0] and "bill-of-rights.pdf" in cards[0]
    assert "<mark>unreasonable</mark> <mark>searches</mark>" in _snippets(at)[0]

    # a source filter keeps only that file
    _search(at, "the people", mode="hybrid", sources=["gettysburg-address.txt"])
    cards = _cards(at)
    assert cards and all("gettysburg-address.txt" in c for c in cards)
    _search(at, "the people", sources=[], types=["pdf"])
    assert all("bill-of-rights.pdf" in c for c in _cards(at))

    # expand the first hit to its neighbouring chunks
    _search(at, "Amendment VIII excessive bail", types=[])
    first = _cards(at)[0]
    toggle = at.toggle[0]
    toggle.set_value(True).run()
    context = [h for h in htmls(at) if 'class="ms-context"' in h]
    assert len(context) == 1 and "ms-hit" in context[0]
    assert _cards(at)[0] == first
    assert "<mark>" in context[0]


def test_no_hits_and_bad_queries_get_messages_not_tracebacks(app_env):
    _ingest(sample_files())
    at = open_page()
    _search(at, "zyzzyva quokka", mode="keyword")
    assert not at.exception and not _cards(at)
    warning = texts(at.warning)
    assert "No results for" in warning and "Hybrid or Dense" in warning
    _search(at, "the of and", mode="keyword")  # only stop words: nothing BM25 can match
    assert not at.exception and "No results for" in texts(at.warning)
    _search(at, "zyzzyva", mode="keyword", sources=["walden-where-i-lived.txt"])
    assert "remove the filters" in texts(at.warning)
    _search(at, "   ", mode="hybrid", sources=[])
    assert not at.exception and "Type what you are looking for" in texts(at.info)


def test_snippets_are_escaped_before_highlighting(app_env, monkeypatch):
    monkeypatch.setenv("MOESEARCH_CHUNK_TOKENS", "120")  # the whole note in one chunk
    _ingest([Source.upload("field-notes.txt", XSS.encode())])
    at = open_page()
    _search(at, "pelican nesting script")
    assert not at.exception
    snippet = _snippets(at)[0]
    assert "<mark>pelican</mark>" in snippet and "<mark>nesting</mark>" in snippet
    assert "&lt;<mark>script</mark>&gt;" in snippet  # the tag's name is highlighted as a word, inside the escape
    assert "&lt;img src=x onerror=&quot;alert(&#x27;img&#x27;)&quot;&gt;" in snippet
    assert "&amp; eggs" in snippet and "&lt;b&gt;the&lt;/b&gt;" in snippet
    for body in htmls(at):  # no element the document could have injected, anywhere on the page
        assert not re.search(r"<\s*(script|img|b)\b", body, re.I), body
        assert "onerror=" not in body.replace("onerror=&quot;", "")
    shown = unescape(re.sub(r"</?mark>|<[^>]+>", "", snippet))
    assert "<script>window.__xss = 1; alert('pwned')</script>" in shown  # the text itself is all there

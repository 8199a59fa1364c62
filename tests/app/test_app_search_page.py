"""Search page logic through streamlit's AppTest: empty states, the search flow (one card per document or per
passage, relevance labels instead of raw scores), "no good match", the date filter, XSS-safe snippets."""

from __future__ import annotations

import re
from datetime import date, timedelta
from html import unescape

from app_helpers import htmls, open_page, texts

from app.sample import EXAMPLES, sample_files
from app.service import get_service
from app.theme import switch_html
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


def _sources(cards: list[str]) -> list[str]:
    return [re.search(r'class="ms-source">([^<]*)<', c).group(1) for c in cards]


def _search(at, query: str, **widgets):
    kinds = {"mode": at.segmented_control, "k": at.selectbox, "dates": at.date_input, "per_passage": at.toggle}
    for key, value in widgets.items():
        kinds.get(key, at.multiselect)(key=key).set_value(value)
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
    assert get_service().pipeline.stats().documents == len(sample_files())
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
    assert len(set(_sources(cards))) == len(cards)  # one card per document
    assert "bill-of-rights.pdf" in cards[0] and "page 2 of 3" in cards[0]
    # a relevance label, never a raw RRF score (the tiny test model is not calibrated: its cosine)
    assert re.search(r'class="ms-rel ms-rel-unknown"[^>]*>similarity 0\.\d\d<', cards[0]) and "RRF" not in cards[0]
    assert re.search(r"<mark>(unreasonable|searche[sd])</mark>", _snippets(at)[0])
    assert any(re.search(r"^\d+ files · \d+ passages · hybrid", c.value) for c in at.caption)
    passages = [h for h in htmls(at) if 'class="ms-passage"' in h]
    assert passages and all(1 <= p.count('class="ms-passage"') <= 3 for p in passages)

    # one card per passage: a document may come back several times, up to k cards
    _search(at, "unreasonable searches", per_passage=True)
    per_passage = _cards(at)
    assert len(per_passage) == 10 and len(set(_sources(per_passage))) < len(per_passage)
    assert any(re.search(r"^10 passages · hybrid", c.value) for c in at.caption)
    _search(at, "unreasonable searches", per_passage=False)
    # "why these results": router choices for the query and for the top hit, one heatmap each
    assert len(at.get("vega_lite_chart")) == 2
    assert "Why these results" in texts(at.markdown)
    assert any("same experts as your query" in h for h in htmls(at))
    # the original can be downloaded (the file is still at its path)
    assert any(b.label == "Download PDF" for b in at.get("download_button"))

    # keyword mode, fewer results, BM25 scores
    _search(at, "unreasonable searches", mode="keyword", k=5)
    cards = _cards(at)
    assert 1 <= len(cards) <= 5 and "keyword match" in cards[0] and "bill-of-rights.pdf" in cards[0]
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
    toggle = next(t for t in at.toggle if t.label == "Show surrounding text")
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
        if body == switch_html():
            continue  # the app's own theme switch (constant markup and script)
        assert not re.search(r"<\s*(script|img|b)\b", body, re.I), body
        assert "onerror=" not in body.replace("onerror=&quot;", "")
    shown = unescape(re.sub(r"</?mark>|<[^>]+>", "", snippet))
    assert "<script>window.__xss = 1; alert('pwned')</script>" in shown  # the text itself is all there


def test_no_good_match_under_the_threshold(app_env, monkeypatch):
    monkeypatch.setenv("MOESEARCH_MIN_SIMILARITY", "0.999")  # no passage is that close: every search is "no match"
    _ingest(sample_files())
    at = open_page()
    _search(at, "qzxv plorb wexx")
    assert not at.exception and not _cards(at)
    warning = texts(at.warning)
    assert "No good match for" in warning and "below this model's 1.00" in warning
    show = next(b for b in at.button if b.label == "Show the closest results anyway")
    show.click().run()
    assert _cards(at) and not texts(at.warning)  # the closest results, labelled "weak match"
    assert all("weak match" in c for c in _cards(at))
    _search(at, "a new query")  # asked again for a new query
    assert "No good match for" in texts(at.warning) and not _cards(at)


def test_date_filter_keeps_files_ingested_in_the_window(app_env):
    _ingest(sample_files())
    at = open_page()
    today = date.today()
    _search(at, "the people", dates=(today + timedelta(days=1), today + timedelta(days=9)))
    assert not _cards(at) and "remove the filters" in texts(at.warning)
    assert "1 filter on" in texts(at.caption)
    _search(at, "the people", dates=(today - timedelta(days=1), today))
    assert _cards(at) and not at.exception
    _search(at, "the people", dates=(today,))  # only a start picked so far: from that day on
    assert _cards(at) and not at.exception

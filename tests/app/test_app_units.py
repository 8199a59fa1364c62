"""Pure helpers: password hashes, safe snippet HTML, context trimming, the sample corpus."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from html import unescape

import pytest

from app import auth
from app.sample import PDF_NAME, SAMPLE_DIR, build_pdf, sample_files
from app.snippets import context_html, highlight, kv_table_html, snippet_html, tidy


def _text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", html))


# --- auth ----------------------------------------------------------------------------------------------------------
def test_hash_round_trip_and_salting():
    h = auth.make_hash("s3cret-pass")
    parsed = auth.PasswordHash.parse(h)
    assert parsed.verify("s3cret-pass") and not parsed.verify("s3cret-pasS") and not parsed.verify("")
    assert auth.make_hash("s3cret-pass") != h  # random salt
    assert parsed.format() == h and h.startswith("scrypt$16384$8$1$")


@pytest.mark.parametrize("bad", ["", "plain-password", "scrypt$16384$8$1$zz$00", "scrypt$1000$8$1$" + "00" * 16 +
                                 "$" + "00" * 32, "bcrypt$x$y$z$a$b", "scrypt$16384$8$1$00$" + "00" * 32])
def test_malformed_hashes_are_refused(bad):
    with pytest.raises(ValueError):
        auth.PasswordHash.parse(bad)


def test_configured_hash_sources(monkeypatch, tmp_path):
    monkeypatch.setenv("MOESEARCH_DATA_DIR", str(tmp_path))  # no first-run hash file (./data may hold one)
    monkeypatch.delenv(auth.ENV_VAR, raising=False)
    assert auth.configured_hash() == (None, "")
    assert auth.configured_hash(lambda name: "scrypt$from-secrets")[0] == "scrypt$from-secrets"

    def no_secrets(name):
        raise FileNotFoundError("no secrets.toml")

    assert auth.configured_hash(no_secrets) == (None, "")
    monkeypatch.setenv(auth.ENV_VAR, " scrypt$from-env ")
    assert auth.configured_hash(lambda name: "scrypt$from-secrets") == ("scrypt$from-env",
                                                                         f"environment variable {auth.ENV_VAR}")


def test_hash_cli(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert auth.main(["--stdin"]) == 0
    printed = capsys.readouterr().out.strip()
    assert auth.PasswordHash.parse(printed).verify("a long enough password")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert auth.main(["--stdin"]) == 2


# --- snippets ------------------------------------------------------------------------------------------------------
def test_highlight_escapes_everything_and_marks_whole_words():
    text = 'Run <script>alert("x")</script> & <img src=x onerror=alert(1)> running RUN runner'
    out = highlight(text, ("run", "script", "onerror"))
    assert "<script" not in out and "<img" not in out
    assert out.count("<mark>") == 5  # Run, script, script, onerror, RUN (not "running", "runner")
    assert "<mark>Run</mark>" in out and "<mark>RUN</mark>" in out and "running" in out
    assert _text(out) == text
    # terms that look like entity names never break the escaping
    amp = highlight("a & b < c", ("amp", "lt", "b"))
    assert amp == "a &amp; <mark>b</mark> &lt; c"
    assert highlight("<b>", ()) == "&lt;b&gt;"


def test_snippet_layout_joins_pdf_lines_and_keeps_paragraphs():
    assert tidy("  line one\nline two\n\n\n\nnext  para\n") == "line one line two\n\nnext  para"
    html = snippet_html("A <i>\nB\n\nC", ("b",))
    assert html == '<div class="ms-snippet">A &lt;i&gt; <mark>B</mark>\n\nC</div>'


def test_context_trims_overlaps_to_the_page_text():
    page = "Alpha beta gamma. Delta epsilon zeta. Eta theta iota. Kappa lambda mu."
    spans = [(0, 36), (18, 53), (37, 71)]  # overlapping chunk spans over one page
    chunks = [(i, 1, s, e, page[s:e], ("theta",) if i == 1 else ()) for i, (s, e) in enumerate(spans)]
    out = context_html(1, 1, 18, 53, chunks)
    assert _text(out) == page[:71] and out.count('class="ms-hit"') == 1 and "<mark>theta</mark>" in out
    # a neighbour on another page is shown whole, after a page marker
    other = [(0, 1, 0, 20, "End of page one.", ()), (1, 2, 0, 18, "Start of page two", ())]
    out = context_html(0, 1, 0, 20, other)
    assert "page 2" in out and _text(out).endswith("Start of page two")


def test_key_value_table_escapes():
    html = kv_table_html({"location": "/srv/<x>", "n": 3})
    assert "&lt;x&gt;" in html and "<x>" not in html and "<td>3</td>" in html


# --- sample corpus -------------------------------------------------------------------------------------------------
def test_sample_corpus_is_small_and_the_pdf_is_reproducible(tmp_path):
    files = sample_files()
    assert {p.suffix for p in files} == {".txt", ".md", ".pdf"} and len(files) >= 5
    assert all(p.stat().st_size < 20_000 for p in files)
    assert (SAMPLE_DIR / "NOTICE").is_file() and SAMPLE_DIR / "NOTICE" not in files
    pytest.importorskip("fpdf", reason="fpdf2 rebuilds the sample PDF")
    rebuilt = build_pdf(tmp_path / PDF_NAME)
    assert rebuilt.read_bytes() == (SAMPLE_DIR / PDF_NAME).read_bytes()


def test_the_app_never_imports_torch():
    code = ("import sys; import app.service, app.render, app.charts, app.auth, app.snippets, app.sample; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(SAMPLE_DIR.parents[1]))
    assert out.stdout.strip() == "False", out.stderr


def test_markdown_escape_neutralises_file_names():
    from app.snippets import md_escape

    name = "[click](javascript:alert(1)) <b>x</b> *bold* :red[text] a_b.txt"
    out = md_escape(name)
    assert re.sub(r"\\(.)", r"\1", out) == name
    assert not re.search(r"(?<!\\)[\[\]()<>*:_]", out)  # every special character is escaped

"""PDF text benchmark (issue #25): words run together, per file and per engine, and pages/s, before and after.

Files: PDFs written here (``tests/indexer/indexer_pdffiles.py``: words placed by TJ gaps as LaTeX manuals place
them, ligatures, hyphens, headers, two columns) and every PDF of the Debian documentation packages installed on
the machine (``--install`` installs ``PACKAGES`` with apt-get first, as root; gzipped PDFs are read gunzipped;
nothing is written into the repository).  Per file, all measured in this run:

- run-on rate: ``indexer.loaders.pdf_text.runon_rate`` (the loader's own measure: words of a spaced script longer
  than ``RUNON_LETTERS`` letters, camelCase split) over the whole file's text, for
  before = pypdf's ``extract_text()`` per page (what the loader read until this change), pypdf's layout mode,
  PDFium's text alone, and after = ``load_pdf`` (the loader now);
- dict: with ``/usr/share/dict/words`` (Debian ``wamerican``), the share of the ASCII words absent from the list
  that split into listed words, one of them a function word ("installationofuploadedfiles") -- a cross-check
  for English files (in other languages it counts words that happen to split so);
- pages/s of before, of the layout mode, of PDFium alone and of after.  OCR is left out of both clocks (image
  pages are skipped: ``ocr_languages`` names no installed language), so they time the text layer.

Prints "PASS"/"FAIL" for "after: run-on rate <= 1% on every file".

    python bench/pdf_text.py --install          # as root: apt-get install the packages, then measure
    python bench/pdf_text.py --no-layout --max-pages 30
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import logging
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "indexer"))

from indexer_pdffiles import book, two_columns, wrap  # noqa: E402
from indexer_testfiles import sentences  # noqa: E402

from indexer.loaders.base import Limits, normalize  # noqa: E402
from indexer.loaders.pdf import load_pdf  # noqa: E402
from indexer.loaders.pdf_text import clean, runon_counts  # noqa: E402

PACKAGES = ["debian-policy", "debmake-doc", "auto-multiple-choice-doc", "auto-multiple-choice-doc-pdf",
            "docbook-xsl-doc-pdf"]
DOCS = Path("/usr/share/doc")
TARGET = 0.01
SHORT = frozenset("a i of to in is it on an as at be by do he if me my no or so up us we".split())
FUNCTION = frozenset("a an the of to in on at by for from with and or but as is are was be it this that which "
                     "not can may must should will".split())
LIMITS = Limits(max_pages=100_000, max_rows=1, max_unzipped_mb=1, max_zip_entries=1, max_xml_mb=1,
                max_image_megapixels=200, ocr_seconds=1, ocr_languages="nocr")  # no such language: no OCR


def install() -> None:
    if os.geteuid() != 0:
        print("--install needs root; measuring the PDFs already installed")
        return
    try:
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES], check=True,
                       capture_output=True, text=True, timeout=900, env={**os.environ,
                                                                          "DEBIAN_FRONTEND": "noninteractive"})
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        print(f"apt-get install failed (apt unreachable?): {exc} {detail.strip()[-300:]}")


def generated() -> dict[str, bytes]:
    pages = [wrap(sentences(12, seed, "heron")) for seed in range(8)]
    hyphens = [["The \ufb01rst \ufb02ow of o\ufb03ce work keeps the dis-", "tribution of words and the US-",
                "ASCII hyphen.", *wrap(sentences(8, seed))] for seed in range(4)]
    return {"generated/kerned-book.pdf": book(pages, header="Field Guide, Release 2.{n}"),
            "generated/spaced-book.pdf": book(pages, header="Field Guide", kerned=False),
            "generated/ligatures-hyphens.pdf": book(hyphens),
            "generated/two-columns.pdf": two_columns(wrap(sentences(10, 1), 40), wrap(sentences(10, 2), 40))}


def installed(max_files: int) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    seen: set[str] = set()
    paths = sorted(p for p in DOCS.rglob("*") if p.name.endswith((".pdf", ".pdf.gz")) and p.is_file())
    for path in paths[:max_files]:
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        digest = hashlib.sha256(data).hexdigest()
        if data.startswith(b"%PDF") and digest not in seen:  # symlinked copies once
            seen.add(digest)
            out[str(path.relative_to(DOCS))] = data
    return out


def words(path: str = "/usr/share/dict/words") -> frozenset[str]:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    return frozenset(w.lower() for w in text.split() if w.isascii() and w.isalpha() and (len(w) > 2 or
                                                                                           w.lower() in SHORT))


def _run_together(word: str, known: frozenset[str]) -> bool:
    """Whether ``word`` splits into two or more words of ``known``, one of them a function word ("of", "the"): so
    "installationofuploadedfiles" counts and compounds such as "changelog" or "debhelper" do not."""
    reach: list[set[bool]] = [{False}] + [set() for _ in word]  # reach[i]: word[:i] splits; True: with a FUNCTION
    for end in range(1, len(word) + 1):
        for start in range(max(0, end - 24), end):
            piece = word[start:end]
            if reach[start] and piece in known and (start > 0 or end < len(word)):
                reach[end] |= {flag or piece in FUNCTION for flag in reach[start]}
    return True in reach[-1]


def dict_rate(text: str, known: frozenset[str]) -> float | None:
    """Share of the ASCII words that are listed words run together (``_run_together``); None without a list."""
    if not known:
        return None
    tokens = [t.lower() for w in re.findall(r"[A-Za-z]+", text) for t in re.split(r"(?<=[a-z])(?=[A-Z])", w)]
    runs = sum(1 for t in tokens if len(t) >= 5 and t not in known and _run_together(t, known))
    return runs / len(tokens) if tokens else 0.0


def rate(texts: list[str]) -> float:
    runons = total = 0
    for text in texts:
        r, w = runon_counts(text)
        runons, total = runons + r, total + w
    return runons / total if total else 0.0


def measure(data: bytes, max_pages: int, layout: bool) -> dict:
    import pypdfium2 as pdfium
    from pypdf import PdfReader

    got: dict = {}
    t = time.perf_counter()
    reader = PdfReader(io.BytesIO(data))
    n = min(len(reader.pages), max_pages)
    before = [normalize(reader.pages[i].extract_text() or "") for i in range(n)]
    got["before"] = (before, time.perf_counter() - t)
    if layout:
        t = time.perf_counter()
        reader = PdfReader(io.BytesIO(data))
        got["layout"] = ([reader.pages[i].extract_text(extraction_mode="layout") for i in range(n)],
                         time.perf_counter() - t)
    t = time.perf_counter()
    doc = pdfium.PdfDocument(data)
    texts = []
    for i in range(n):
        page = doc[i]
        textpage = page.get_textpage()
        texts.append(clean(textpage.get_text_range()))
        textpage.close()
        page.close()
    doc.close()
    got["pdfium"] = (texts, time.perf_counter() - t)
    if len(reader.pages) <= max_pages:
        t = time.perf_counter()
        after = load_pdf(data, LIMITS)
        got["after"] = ([text for _, text in after.pages], time.perf_counter() - t)
    else:  # the loader reads whole files: time it on the first pages only
        from pypdf import PdfWriter

        writer = PdfWriter()
        for i in range(n):
            writer.add_page(reader.pages[i])
        buf = io.BytesIO()
        writer.write(buf)
        t = time.perf_counter()
        after = load_pdf(buf.getvalue(), LIMITS)
        got["after"] = ([text for _, text in after.pages], time.perf_counter() - t)
    got["pages"] = n
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--install", action="store_true", help="apt-get install PACKAGES first (root)")
    ap.add_argument("--max-files", type=int, default=1000)
    ap.add_argument("--max-pages", type=int, default=100_000, help="pages per file")
    ap.add_argument("--no-layout", action="store_true", help="leave out pypdf's layout mode (slow)")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    if args.install:
        install()
    files = {**generated(), **installed(args.max_files)}
    known = words()
    if not known:
        print("no /usr/share/dict/words (apt-get install wamerican): the dict column is left out")
    engines = ["before"] + ([] if args.no_layout else ["layout"]) + ["pdfium", "after"]
    print(f"{'file':52s} {'pages':>5s}  run-on % " + " ".join(f"{e:>7s}" for e in engines) + "  dict % before/after"
          + "   pages/s " + " ".join(f"{e:>7s}" for e in engines))
    failed, totals = [], {e: [0, 0.0] for e in engines}
    for name, data in files.items():
        try:
            got = measure(data, args.max_pages, not args.no_layout)
        except Exception as exc:  # a file the loader refuses is reported, not measured
            print(f"{name[:52]:52s} skipped: {type(exc).__name__}: {str(exc)[:80]}")
            continue
        rates = {e: rate(got[e][0]) for e in engines}
        speeds = {e: got["pages"] / got[e][1] for e in engines}
        for e in engines:
            totals[e][0] += got["pages"]
            totals[e][1] += got[e][1]
        d_before, d_after = (dict_rate("\n".join(got[e][0]), known) for e in ("before", "after"))
        dict_col = "   --/--  " if d_before is None else f"{100 * d_before:5.2f}/{100 * d_after:5.2f}"
        if rates["after"] > TARGET:
            failed.append(name)
        print(f"{name[:52]:52s} {got['pages']:5d}  " + " " * 9 + " ".join(f"{100 * rates[e]:7.2f}" for e in engines)
              + f"  {dict_col:>19s}   " + " " * 8 + " ".join(f"{speeds[e]:7.1f}" for e in engines), flush=True)
    print("all files: pages/s " + ", ".join(f"{e} {totals[e][0] / totals[e][1]:.1f}" for e in engines if totals[e][1])
          + f"; after/before {totals['before'][1] / totals['after'][1]:.2f}x")
    print(("PASS" if not failed else "FAIL") + f": after, run-on rate <= {TARGET:.0%} on every file"
          + (f" (over: {', '.join(failed)})" if failed else f" ({len(files)} files)"))


if __name__ == "__main__":
    main()

"""Makers for the files the indexer tests ingest: real PDFs (fpdf2), DOCX (python-docx), and bad inputs."""

from __future__ import annotations

import io
import random

WORDS = ("protein folding enzyme membrane receptor signal pathway neuron cortex memory plasticity genome mutation "
         "vaccine antibody immune response virus bacteria tissue organ muscle heart lung liver kidney brain "
         "river mountain glacier climate ocean current storm forest soil nitrogen carbon solar wind turbine "
         "battery lithium circuit voltage software compiler kernel network packet router database index query "
         "matrix vector tensor gradient optimizer language grammar poetry novel history empire trade market").split()


def sentences(n: int, seed: int = 0, topic: str = "") -> str:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rnd.choice(WORDS) for _ in range(rnd.randint(6, 14))]
        if topic:
            words.insert(rnd.randrange(len(words)), topic)
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


def make_pdf(pages: list[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 5, text)
    return bytes(pdf.output())


def make_image_pdf() -> bytes:
    """A 'scanned' PDF: one page holding only an image, no text layer."""
    from fpdf import FPDF
    from PIL import Image

    pdf = FPDF()
    pdf.add_page()
    pdf.image(Image.new("RGB", (300, 200), "white"), x=10, y=10, w=120)
    return bytes(pdf.output())


def make_encrypted_pdf(text: str, password: str = "secret") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([text]))))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def corrupt(data: bytes, at: float = 0.3, n: int = 200, seed: int = 0) -> bytes:
    """Overwrite ``n`` bytes from ``at`` (fraction of the length) with random bytes."""
    buf = bytearray(data)
    start = int(len(buf) * at)
    rnd = random.Random(seed)
    for i in range(start, min(len(buf), start + n)):
        buf[i] = rnd.randrange(256)
    return bytes(buf)


def make_png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(out, "PNG")
    return out.getvalue()


def make_docx(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    import docx

    document = docx.Document()
    for p in paragraphs:
        document.add_paragraph(p)
    if table:
        t = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                t.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()

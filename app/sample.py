"""The bundled sample corpus (public-domain texts under ``app/sample_corpus/``, see its NOTICE).

``python -m app.sample`` rebuilds ``bill-of-rights.pdf`` (3 pages) from the text below with fpdf2; the output
is deterministic, so rebuilding it does not change the document's id.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent / "sample_corpus"
SUFFIXES = (".txt", ".md", ".pdf")
PDF_NAME = "bill-of-rights.pdf"
# Queries that show off the sample corpus on an empty search page, two of them in other languages than the
# (English) documents: the default model is multilingual. Each one's file, found first by the default model
# (tests/embedder/test_default_model.py, `pytest -m slow`).
EXAMPLE_FILES = {
    "four score and seven years ago": "gettysburg-address.txt",
    "freedom of speech": "bill-of-rights.pdf",
    "why go to sea": "moby-dick-loomings.md",
    "Où vivait Thoreau ?": "walden-where-i-lived.txt",
    "自然选择": "origin-of-species-conclusion.txt",
    "unreasonable searches and seizures": "bill-of-rights.pdf",
}
EXAMPLES = tuple(EXAMPLE_FILES)

PREAMBLE = (
    "We the People of the United States, in Order to form a more perfect Union, establish Justice, insure "
    "domestic Tranquility, provide for the common defence, promote the general Welfare, and secure the Blessings "
    "of Liberty to ourselves and our Posterity, do ordain and establish this Constitution for the United States "
    "of America."
)
AMENDMENTS = (
    ("I", "Congress shall make no law respecting an establishment of religion, or prohibiting the free exercise "
          "thereof; or abridging the freedom of speech, or of the press; or the right of the people peaceably to "
          "assemble, and to petition the Government for a redress of grievances."),
    ("II", "A well regulated Militia, being necessary to the security of a free State, the right of the people to "
           "keep and bear Arms, shall not be infringed."),
    ("III", "No Soldier shall, in time of peace be quartered in any house, without the consent of the Owner, nor "
            "in time of war, but in a manner to be prescribed by law."),
    ("IV", "The right of the people to be secure in their persons, houses, papers, and effects, against "
           "unreasonable searches and seizures, shall not be violated, and no Warrants shall issue, but upon "
           "probable cause, supported by Oath or affirmation, and particularly describing the place to be "
           "searched, and the persons or things to be seized."),
    ("V", "No person shall be held to answer for a capital, or otherwise infamous crime, unless on a presentment or "
          "indictment of a Grand Jury, except in cases arising in the land or naval forces, or in the Militia, when "
          "in actual service in time of War or public danger; nor shall any person be subject for the same offence "
          "to be twice put in jeopardy of life or limb; nor shall be compelled in any criminal case to be a witness "
          "against himself, nor be deprived of life, liberty, or property, without due process of law; nor shall "
          "private property be taken for public use, without just compensation."),
    ("VI", "In all criminal prosecutions, the accused shall enjoy the right to a speedy and public trial, by an "
           "impartial jury of the State and district wherein the crime shall have been committed, which district "
           "shall have been previously ascertained by law, and to be informed of the nature and cause of the "
           "accusation; to be confronted with the witnesses against him; to have compulsory process for obtaining "
           "witnesses in his favor, and to have the Assistance of Counsel for his defence."),
    ("VII", "In Suits at common law, where the value in controversy shall exceed twenty dollars, the right of trial "
            "by jury shall be preserved, and no fact tried by a jury, shall be otherwise re-examined in any Court of "
            "the United States, than according to the rules of the common law."),
    ("VIII", "Excessive bail shall not be required, nor excessive fines imposed, nor cruel and unusual punishments "
             "inflicted."),
    ("IX", "The enumeration in the Constitution, of certain rights, shall not be construed to deny or disparage "
           "others retained by the people."),
    ("X", "The powers not delegated to the United States by the Constitution, nor prohibited by it to the States, "
          "are reserved to the States respectively, or to the people."),
)


def sample_files() -> list[Path]:
    """The sample documents (NOTICE and anything else is left out)."""
    return sorted(p for p in SAMPLE_DIR.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


def build_pdf(out: Path) -> Path:
    """Write the 3-page Bill of Rights PDF: preamble, Amendments I-V, Amendments VI-X."""
    from fpdf import FPDF

    pdf = FPDF(format="Letter")
    pdf.set_creation_date(datetime(2024, 1, 1, tzinfo=UTC))
    pdf.set_title("The Constitution of the United States: Preamble and Bill of Rights")
    pdf.set_author("United States (public domain)")
    pdf.set_margins(25, 25, 25)

    def heading(text: str, size: int = 16) -> None:
        pdf.set_font("Helvetica", "B", size)
        pdf.multi_cell(0, 9, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)

    def body(text: str) -> None:
        pdf.set_font("Helvetica", "", 11)
        pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)

    pdf.add_page()
    heading("The Constitution of the United States")
    heading("Preamble (1787)", 13)
    body(PREAMBLE)
    body("The first ten amendments to the Constitution, known as the Bill of Rights, were proposed by the First "
         "Congress in 1789 and ratified in 1791. They follow on the next two pages.")
    for page in (AMENDMENTS[:5], AMENDMENTS[5:]):
        pdf.add_page()
        heading(f"The Bill of Rights: Amendments {page[0][0]} to {page[-1][0]}", 14)
        for number, text in page:
            pdf.set_font("Helvetica", "B", 12)
            pdf.cell(0, 8, f"Amendment {number}", new_x="LMARGIN", new_y="NEXT")
            body(text)
    out.write_bytes(bytes(pdf.output()))
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE_DIR / PDF_NAME
    print(build_pdf(target))

"""E-mail (.eml, RFC 5322 / MIME, standard ``email``) -> page 1: the headers and the body (plain text, else
HTML); then one page per text attachment, so each attachment is a citation of its own."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage

from .base import Extracted, ExtractError, Limits, paged
from .html import read_html
from .record import Format, LoadInput
from .text import decode_text

HEADERS = ("From", "To", "Cc", "Date", "Subject")
HEADER = re.compile(rb"([A-Za-z][A-Za-z0-9-]*):")
MAIL_HEADERS = {b"to", b"subject", b"date", b"message-id", b"mime-version", b"received", b"return-path"}


def _text(part: EmailMessage) -> str:
    """A text part's content as text (HTML reduced to its text)."""
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):  # an unknown charset or a broken transfer encoding
        content = None
    if not isinstance(content, str):
        raw = part.get_payload(decode=True) or b""
        content = decode_text(raw)[0] if raw else ""
    if part.get_content_subtype() == "html":
        content = read_html(content)[0]
    return content


def load_eml(data: bytes, limits: Limits) -> Extracted:
    try:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        head = [f"{name}: {msg[name]}" for name in HEADERS if msg[name]]
        body = msg.get_body(preferencelist=("plain", "html"))
        attachments = list(msg.iter_attachments())
    except Exception as exc:  # header parsing errors of damaged messages
        raise ExtractError(f"corrupted e-mail message: {type(exc).__name__}: {str(exc)[:160]}") from None
    if not head:
        raise ExtractError("not an e-mail message: none of the headers From, To, Cc, Date, Subject")
    limits.check_pages(1 + len(attachments), "parts (the message and its attachments)")
    pages = [(1, "\n".join(head) + "\n\n" + (_text(body) if body is not None else ""))]
    notes: list[str] = []
    for number, part in enumerate(attachments, 2):
        name = part.get_filename() or f"attachment {number - 1}"
        if part.get_content_maintype() == "text":
            pages.append((number, f"Attachment: {name}\n\n{_text(part)}"))
        else:
            notes.append(f"attachment {name!r} ({part.get_content_type()}) not indexed: only text attachments are")
    return paged("eml", pages, 1 + len(attachments), "parts", notes)


def looks_email(data: bytes) -> bool:
    """RFC 5322 headers up to the first blank line, among them From and one more that mail always has."""
    names: set[bytes] = set()
    for line in data[:16384].split(b"\n"):
        line = line.rstrip(b"\r")
        if not line:
            return b"from" in names and bool(names & MAIL_HEADERS)
        if line[:1] in (b" ", b"\t") and names:  # a folded header continues
            continue
        found = HEADER.match(line)
        if not found:
            return False
        names.add(found.group(1).lower())
    return False


def _load(got: LoadInput) -> Extracted:
    return load_eml(got.data, got.limits)


FORMAT = Format("eml", "e-mail", (".eml",), _load, page="part", mime="message/rfc822",
                description="an e-mail message", detect=looks_email)

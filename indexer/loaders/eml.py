"""E-mail (.eml, RFC 5322 / MIME, standard ``email``) -> page 1: the headers and the body (plain text, else
HTML); then one page per text attachment, so each attachment is a citation of its own."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from .base import Extracted, ExtractError, Limits, paged
from .html import read_html
from .text import decode_text

HEADERS = ("From", "To", "Cc", "Date", "Subject")


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

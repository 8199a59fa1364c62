"""OLE2 compound files (Microsoft's "structured storage"), read with olefile (BSD): the container of the legacy
Office formats (.doc, .xls, .ppt), of Outlook's .msg and of a password-protected OOXML file (.docx/.xlsx/.pptx
saved with a password are an OLE2 file holding ``EncryptionInfo`` and ``EncryptedPackage`` streams).

``container_kind`` tells them apart by the streams at the root; the loaders open the container with ``open_ole``
and read its streams with ``read_stream``.  An OLE2 file is not compressed, so what its streams hold is bounded by
the file's size (``MOESEARCH_MAX_FILE_MB``).
"""

from __future__ import annotations

import io

from .base import ExtractError

SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ENCRYPTED_OOXML = "encrypted"  # what container_kind calls a password-protected OOXML file
DAMAGED = "damaged"  # ... and an OLE2 file whose container cannot be read
KINDS = {  # a stream at the root -> the format whose container it marks (the first match counts)
    "worddocument": "doc",
    "workbook": "xls",
    "book": "xls",  # Excel 5/95
    "powerpoint document": "ppt",
    "__properties_version1.0": "msg",
}
DESCRIPTIONS = {
    "doc": "a Word 97-2003 document (DOC)",
    "xls": "an Excel 97-2003 workbook (XLS)",
    "ppt": "a PowerPoint 97-2003 deck (PPT)",
    "msg": "an Outlook message (MSG)",
    ENCRYPTED_OOXML: "a password-protected (encrypted) Office document",
    DAMAGED: "a damaged OLE2 compound file (the container of legacy Office and Outlook files)",
    "": "an OLE2 compound file that is not a Word, Excel, PowerPoint or Outlook file",
}


def open_ole(data: bytes, what: str):
    """The container (``olefile.OleFileIO``); ExtractError naming ``what`` when it is not a readable one."""
    import olefile

    if not data.startswith(SIGNATURE):
        raise ExtractError(f"not {what}: it does not start with the OLE2 signature")
    try:
        return olefile.OleFileIO(io.BytesIO(data))
    except Exception as exc:  # olefile raises OSError, struct.error, IndexError ... on a damaged container
        raise ExtractError(f"corrupted {what}: its OLE2 container cannot be read ({type(exc).__name__}: "
                           f"{str(exc)[:160]})") from None


def read_stream(ole, path: str | list[str], what: str) -> bytes:
    """One stream's bytes; ExtractError when it is missing, or its sectors cannot be followed to its declared size
    (olefile itself hands back what it could read)."""
    name = path if isinstance(path, str) else "/".join(path)
    try:
        size = ole.get_size(path)
        with ole.openstream(path) as stream:
            data = stream.read()
    except Exception as exc:
        raise ExtractError(f"corrupted {what}: its {name!r} stream cannot be read ({type(exc).__name__}: "
                           f"{str(exc)[:120]})") from None
    if len(data) < size:
        raise ExtractError(f"corrupted {what}: its {name!r} stream is cut short ({len(data)} of {size} bytes)")
    return data


def root_names(ole) -> set[str]:
    """The names of the entries at the container's root, lower case (OLE2 names are case-insensitive)."""
    return {path[0].lower() for path in ole.listdir(streams=True, storages=True) if path}


def container_kind(data: bytes) -> str | None:
    """"doc", "xls", "ppt", "msg", ``ENCRYPTED_OOXML``, ``DAMAGED``, "" for another OLE2 file; None when it is
    not one."""
    if not data.startswith(SIGNATURE):
        return None
    try:
        ole = open_ole(data, "an OLE2 file")
    except ExtractError:
        return DAMAGED
    with ole:
        names = root_names(ole)
    if {"encryptioninfo", "encryptedpackage"} <= names:
        return ENCRYPTED_OOXML
    for name, kind in KINDS.items():
        if name in names and (kind != "msg" or any(n.startswith("__substg1.0_") for n in names)):
            return kind
    return ""


def describe(data: bytes) -> str:
    """What an OLE2 file is, in words, for messages."""
    return DESCRIPTIONS[container_kind(data) or ""]


def detector(kind: str):
    """A format record's ``detect``: whether the bytes are an OLE2 container of this kind."""

    def detect(data: bytes) -> bool:
        return container_kind(data) == kind

    detect.__name__ = f"is_{kind}"
    return detect


def encrypted(what: str) -> ExtractError:
    return ExtractError(f"encrypted {what}: it needs a password to open; save an unprotected copy and ingest that")

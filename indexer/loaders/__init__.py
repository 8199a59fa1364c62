"""One loader per file format (bytes -> ``Extracted`` pages), behind ``indexer.extract.extract``.

Each declares its format's record (``FORMAT = Format(...)``, ``record.py``), collected by ``indexer.formats``.
``base`` holds what they share (``ExtractError``, ``Extracted``, ``Limits``), ``zipsafe`` checks ZIP containers
(docx, pptx, xlsx, epub) before a library unpacks them, and ``ocr`` reads images with Tesseract.
"""

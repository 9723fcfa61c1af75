"""The web UI (``instantrestore ui``): restore whole photos in a browser.

``build_app`` returns the gradio page without launching it; ``launch_app`` serves it. The buttons'
work is done by the plain functions of ``session.py``, which need no gradio. gradio itself is the
optional extra ``instantrestore[ui]`` and is imported only when a page is built.
"""
from __future__ import annotations

from .app import ELEM, INSTALL_HINT, build_app, import_gradio, launch_app
from .session import (AUTO_MATCH, TABLE_COLUMNS, RestoreResult, UiContext, attention_at, face_at, face_rows,
                      restore_photo, weights_notice)

__all__ = ["AUTO_MATCH", "ELEM", "INSTALL_HINT", "TABLE_COLUMNS", "RestoreResult", "UiContext", "attention_at",
           "build_app", "face_at", "face_rows", "import_gradio", "launch_app", "restore_photo", "weights_notice"]

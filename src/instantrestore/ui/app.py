"""The gradio page: a thin layout over ``session.py``'s plain functions.

    app = build_app(model, album=Album("album/"), source="runs/sd-turbo/final")
    launch_app(app, host="127.0.0.1", port=7860)
"""
# No `from __future__ import annotations`: gradio reads the event-data annotation (gr.SelectData) at run time.
from ..pipeline.album import Album
from .session import TABLE_COLUMNS, RestoreResult, UiContext, attention_at, restore_photo, weights_notice

INSTALL_HINT = "the web UI needs gradio: pip install 'instantrestore[ui]'"
TITLE = "InstantRestore"
ELEM = {  # element ids the browser test and the docs' screenshot script find the page's parts by
    "photo": "ir-photo", "refs": "ir-refs", "person": "ir-person", "strength": "ir-strength",
    "auto": "ir-auto-strength", "run": "ir-restore", "compare": "ir-compare", "after": "ir-after",
    "table": "ir-table", "status": "ir-status", "attention": "ir-attention", "attention_note": "ir-attention-note",
    "weights": "ir-weights",
}


def import_gradio():
    """gradio, or an ImportError that says how to install it (it is an optional extra)."""
    try:
        import gradio
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return gradio


def build_app(model, album: Album | None = None, source: str = "a model passed in", random_weights: bool = False,
              k: int = 4, unknown: str = "blind"):
    """The page as a ``gradio.Blocks`` (not launched): drop a photo, pick an album person or drop
    references, set the strength, restore; a before/after view, the per-face table, and the
    attention map of any point clicked on a restored face. ``source`` names where the weights came
    from for the notice at the top (``weights_notice``); ``k`` / ``unknown`` go to ``FaceRestorer``."""
    gr = import_gradio()
    ctx = UiContext(model=model, album=album, k=k, unknown=unknown)

    def on_restore(photo, person, files, strength, auto):
        try:
            result = restore_photo(ctx, photo, person, _paths(files), strength, auto)
        except ValueError as exc:  # no photo, an unknown person, an unreadable file: said on the page
            raise gr.Error(str(exc)) from exc
        return ((result.before, result.after), result.after, result.rows, result.status, result,
                None, "click a point on a restored face to see where it looks in its references")

    def on_click(result: RestoreResult | None, evt: gr.SelectData):
        x, y = evt.index[:2]
        return attention_at(ctx, result, (float(x), float(y)))

    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"# {TITLE}: reference-based face restoration")
        gr.Markdown(weights_notice(model, source, random_weights), elem_id=ELEM["weights"])
        with gr.Row():
            with gr.Column(scale=1):
                photo = gr.Image(label="photo (any size; every face is restored)", type="numpy", image_mode="RGB",
                                 sources=["upload", "clipboard"], elem_id=ELEM["photo"])
                person = gr.Dropdown(ctx.persons(), value=ctx.persons()[0], label="album person",
                                     info=("faces are matched to this person (or to everyone); a face that is not "
                                           "them is " + ("restored blind" if unknown == "blind" else "kept as it is"))
                                     if album is not None
                                     else "no album: start with --album DIR to pick a person, or drop references",
                                     interactive=album is not None, elem_id=ELEM["person"])
                refs = gr.File(label="or drop reference photos of the person (used instead of the album)",
                               file_count="multiple", file_types=["image"], type="filepath", elem_id=ELEM["refs"])
                strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="strength",
                                     info="how much the references are followed: 1 = fully, 0 = blind",
                                     elem_id=ELEM["strength"])
                auto = gr.Checkbox(False, label="auto: strength chosen per face from how degraded it is",
                                   elem_id=ELEM["auto"])
                run = gr.Button("Restore", variant="primary", elem_id=ELEM["run"])
            with gr.Column(scale=2):
                compare = gr.ImageSlider(label="before / after (drag the handle)", type="numpy", format="png",
                                         interactive=False, elem_id=ELEM["compare"])
                status = gr.Markdown(elem_id=ELEM["status"])
        table = gr.Dataframe(headers=TABLE_COLUMNS, label="faces", interactive=False, wrap=True,
                             elem_id=ELEM["table"])
        with gr.Row():
            after = gr.Image(label="restored: click a point on a face", type="numpy", format="png",
                             interactive=False, elem_id=ELEM["after"])
            with gr.Column():
                attention = gr.Image(label="attention map", type="pil", interactive=False, elem_id=ELEM["attention"])
                note = gr.Markdown(elem_id=ELEM["attention_note"])
        state = gr.State(None)
        # One model call at a time across both events and all visitors: the album's caches are
        # filled as faces come, and the model is not made for concurrent calls.
        run.click(on_restore, [photo, person, refs, strength, auto],
                  [compare, after, table, status, state, attention, note], concurrency_id="model",
                  concurrency_limit=1)
        after.select(on_click, [state], [attention, note], concurrency_id="model", concurrency_limit=1)
    return app


def _paths(files) -> list[str]:
    """gradio's multiple-file value (paths, or objects with ``.name``) as a list of paths."""
    if not files:
        return []
    return [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files]


def launch_app(app, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
               block: bool = True):
    """Serve ``app``; ``block=False`` returns at once (tests, notebooks). Returns gradio's launch result."""
    gr = import_gradio()
    return app.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block,
                      theme=gr.themes.Default(), show_error=True, quiet=not block)

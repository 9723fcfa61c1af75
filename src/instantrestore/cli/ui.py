"""`instantrestore ui`: the web UI (gradio) over FaceRestorer."""
from __future__ import annotations

import argparse
from pathlib import Path

from .checks import at_least, port
from .common import add_model_arguments, load_model, load_shipped


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help and the examples epilog kept as written."""


UI_EPILOG = """examples:
  instantrestore ui                  # the shipped tiny synthetic model: shows the page, not a restoration
  instantrestore ui --album album/ --checkpoint models/instantrestore
  instantrestore ui --album album/ --checkpoint models/instantrestore --host 0.0.0.0 --port 8080
The page says which weights are loaded. With no --checkpoint it runs the shipped tiny model, which
was trained only on synthetic faces: real photos go through every step, but the faces do NOT get
better. Real faces need real weights: the authors' published checkpoint (README, 'Use the
published weights': convert-official, then --checkpoint models/instantrestore). Needs the extra:
pip install 'instantrestore[ui]'."""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ui", formatter_class=_Formatter, epilog=UI_EPILOG,
        help="web UI: drop photos, pick an album person or drop references, see before/after and attention",
        description="Serve a web page (gradio) for whole photos: drop a photo, pick a person of --album or drop "
                    "reference photos, set the reference strength, restore; see before/after, a table of the faces "
                    "found (who each is, the references used, why a face fell back) and, by clicking a point on a "
                    "restored face, where that spot attends in its references.")
    p.add_argument("--album", type=Path, help="album folder, one sub-folder of reference photos per person "
                                              "(album/<person>/*.jpg); references are cached beside it")
    p.add_argument("-k", "--k", type=at_least(1), default=4, help="references per face, chosen per face")
    p.add_argument("--unknown", choices=["blind", "keep"], default="blind",
                   help="a face that matches no one: restore it blind, or keep it as it is")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=port, default=7860, help="port to listen on (1-65535)")
    p.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    add_model_arguments(p)
    p.set_defaults(func=run_ui_command)


def load_ui_model(args: argparse.Namespace):
    """(model, where its weights came from, whether they are random): --checkpoint / --backbone as in
    every command, else the shipped tiny model (so the page opens with no download)."""
    if args.checkpoint or args.backbone:
        return load_model(args), args.checkpoint or f"--backbone {args.backbone}", not args.checkpoint
    from ..assets import shipped_model_path

    return load_shipped(args), f"the shipped tiny synthetic model ({shipped_model_path().name})", False


def run_ui_command(args: argparse.Namespace) -> int:
    from ..ui import build_app, import_gradio, launch_app

    import_gradio()  # before loading a model: a missing extra is said at once
    album = None
    if args.album is not None:
        from ..pipeline.album import Album

        album = Album(args.album)
        if not album.persons:
            raise ValueError(f"--album {args.album}: no person folder with images (expected album/<person>/*.jpg)")
    model, source, random_weights = load_ui_model(args)
    app = build_app(model, album=album, source=source, random_weights=random_weights, k=args.k, unknown=args.unknown)
    launch_app(app, host=args.host, port=args.port, share=args.share)
    return 0

"""`instantrestore attention`: where a point of the face looks in the references (paper fig. 4)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import add_model_arguments, load_model

ATTENTION_EPILOG = """examples:
  instantrestore attention face.png --refs ref1.png ref2.png ref3.png --point 200,230 --out map.png --checkpoint runs/model
  instantrestore attention face.png --refs album/ --point 256,300 --layers 0 1 --out map.png --checkpoint runs/model
FACE is an aligned square crop (run `instantrestore align` on full photos first); --point X,Y is in
its pixels. The map is the point's attention averaged over heads and the chosen decoder layers
(all by default; `instantrestore info` lists them, --layers takes names or indices), drawn over
each reference with the mass it gets."""


def parse_point(text: str) -> tuple[float, float]:
    """"X,Y" -> (x, y) floats; ValueError naming the expected form otherwise."""
    parts = text.replace(" ", "").split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"--point {text!r}: expected X,Y in the face's pixels, e.g. --point 120,96") from None


def resolve_layers(items: list[str] | None, injected: list[str]) -> list[str] | None:
    """--layers values (names or indices into ``injected``) -> layer names; None = all."""
    if not items:
        return None
    names = []
    for item in items:
        if item.isdigit():
            if int(item) >= len(injected):
                raise ValueError(f"--layers {item}: this model has {len(injected)} injected layers (0-"
                                 f"{len(injected) - 1})")
            names.append(injected[int(item)])
        elif item in injected:
            names.append(item)
        else:
            raise ValueError(f"--layers {item}: not an injected layer; choose an index 0-{len(injected) - 1} or one "
                             f"of {', '.join(injected)}")
    return names


def run_attention(args: argparse.Namespace) -> int:
    from ..generator.attention_map import attention_map, render_attention_map
    from ..pipeline.folder_jobs import check_recordable, expand_inputs, provenance_text
    from ..utils.images import save_image
    from ..utils.outputs import claim_outputs, recorded_by

    point = parse_point(args.point)
    faces = expand_inputs([args.face])
    if len(faces) != 1:
        raise ValueError(f"{args.face}: give one face crop, not a folder of {len(faces)}")
    references = expand_inputs(args.refs)
    out = Path(args.out)
    check_recordable(out)
    # a map attention wrote before may be replaced; any other file is the user's
    claim_outputs([out], recorded_by("attention"), "attention", args.overwrite, inputs=[*faces, *references])
    model = load_model(args)
    layers = resolve_layers(args.layers, model.injected_layers)
    result = attention_map(model, faces[0], references, point, layers)
    made = {"command": "attention", "face": faces[0].name, "references": [p.name for p in references],
            "point": list(point), "layers": result.layers}
    save_image(render_attention_map(result, references, faces[0]), out, provenance=provenance_text(made))
    masses = ", ".join(f"{p.name} {100 * m:.1f}%" for p, m in zip(references, result.mass))
    print(f"attention of ({point[0]:g}, {point[1]:g}) over {len(result.layers)} layer(s): {masses}"
          + (f", own tokens {100 * result.self_mass:.1f}%" if result.self_mass else "") + f"; wrote {args.out}",
          file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("attention", help="draw where a point of the face looks in the references",
                                   description="Run one restoration and draw the attention of one point of the "
                                               "degraded face on each reference as a heat map (paper fig. 4).",
                                   epilog=ATTENTION_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("face", metavar="FACE", help="the degraded, aligned face crop")
    parser.add_argument("--refs", nargs="+", required=True, metavar="REF", help="reference photos or folders")
    parser.add_argument("--point", required=True, metavar="X,Y", help="the point of FACE, in its pixels")
    parser.add_argument("--out", required=True, help="the image to write (PNG)")
    parser.add_argument("--overwrite", action="store_true", help="replace an --out file that attention did not write")
    parser.add_argument("--layers", nargs="+", metavar="LAYER",
                        help="decoder layers to average, by name or index (default: all)")
    add_model_arguments(parser)
    parser.set_defaults(func=run_attention)

"""``python -m pipelines time-machine``: add a person from photos, train (here, in the
foreground), and write portraits of them in the chosen eras to a folder.

    python -m pipelines time-machine photos/ --name Ada --consent -o portraits/ --eras victorian viking
    python -m pipelines time-machine --person ada-1f2e... -o portraits/ --eras roman   # generate again
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    from pipelines.time_machine.config import PRESETS
    from pipelines.time_machine.eras import all_eras

    p = sub.add_parser("time-machine", help="portraits of a person in past eras (DreamBooth LoRA)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("inputs", nargs="*", type=Path, metavar="PHOTO", help="10-20 photos of one person, or a folder")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR", help="folder for the portraits")
    p.add_argument("--name", default="", help="the person's name")
    p.add_argument("--consent", action="store_true", help="these are photos of me, or I have the person's permission")
    p.add_argument("--person", help="an already trained person's id (skip training)")
    p.add_argument("--preset", choices=tuple(PRESETS), default="test")
    p.add_argument("--minutes", type=float, default=None, help="training time budget")
    p.add_argument("--eras", nargs="+", default=["victorian", "viking"], choices=tuple(all_eras()), metavar="ERA")
    p.add_argument("--n", type=int, default=2, help="portraits per era")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cuda, cuda:1, mps or cpu (default: the best available)")


def run(args: argparse.Namespace) -> int:
    from pipelines.common.errors import NostalgiaError
    from pipelines.time_machine import pipeline

    try:
        person = args.person
        if not person:
            photos: list[Path] = []
            for path in args.inputs:
                photos += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS) if path.is_dir() else [path]
            person = pipeline.create_person(photos, name=args.name, consent=args.consent)
            print(f"person {person}: training ({args.preset})", flush=True)
            pipeline.train_person(person, preset=args.preset, minutes=args.minutes, background=False,
                                  device=args.device or "")  # fmt: skip
            print(pipeline.person_status(person)["summary"], flush=True)
        args.output.mkdir(parents=True, exist_ok=True)
        portraits = pipeline.generate(person, args.eras, n=args.n, seed=args.seed)
        for p in portraits:
            print(shutil.copyfile(p.path, args.output / p.path.name))
        return 0
    except NostalgiaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

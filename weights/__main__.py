"""``python -m weights list | download ID... | download all | verify [ID...] | fixture ID... --salt S``."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from weights import registry, store


def _select(ids: list[str]) -> list[registry.Checkpoint]:
    if ids == ["all"] or not ids:
        return registry.all_checkpoints()
    return [registry.get(i) for i in ids]


class _Bar:
    """A tqdm bar per file, fed by the store's ``progress(done, total, message)`` callback."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.message = ""

    def __call__(self, done: int, total: int | None, message: str) -> None:
        if self.bar is None or message != self.message:
            self.close()
            self.message = message
            self.bar = tqdm(total=total, unit="B", unit_scale=True, desc=message, file=sys.stderr, leave=False)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def cmd_list(_: argparse.Namespace) -> int:
    rows = [("id", "status", "size", "licence", "file")]
    footnotes = []
    for c in registry.all_checkpoints():
        state = store.status(c).state
        if c.no_fixture and state == "missing":
            state = "missing (no fixture)"
            footnotes.append(f"{c.id}: {c.no_fixture}")
        rows.append((c.id, state, registry.size_label(c), c.licence_short, c.filename))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    print("size: as published; 'est.' = float32 bytes of the networks' parameters (no size published; "
          "'≥' where the file also holds other state, e.g. optimizer state)")
    for note in footnotes:
        print(f"note: {note}")
    print(f"cache: {store.cache_dir()}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    failed = 0
    for c in _select(args.ids):
        bar = _Bar()
        try:
            path = store.download(c, bar, force=args.force)
            print(f"ok       {c.id} -> {path}")
        except store.WeightsError as exc:
            failed += 1
            print(f"FAILED   {c.id}\n{exc}", file=sys.stderr)
        finally:
            bar.close()
    return 1 if failed else 0


def cmd_verify(args: argparse.Namespace) -> int:
    bad = 0
    for c in _select(args.ids):
        bar = _Bar()
        st = store.verify(c, bar)
        bar.close()
        bad += st.state == "corrupt"
        print(f"{st.state:9s}{c.id} {st.detail}".rstrip())
    return 1 if bad else 0


def cmd_fixture(args: argparse.Namespace) -> int:
    for c in _select(args.ids):
        if args.missing and store.status(c).state != "missing":
            continue  # never replace a downloaded (or already written) file
        if c.no_fixture:
            print(f"skipped  {c.id}: no fixture: {c.no_fixture}")
            continue
        if c.real_fallback and args.missing and c.id not in args.ids:
            print(f"skipped  {c.id}: {c.real_fallback} is used while it is absent (real, not a fixture); "
                  f"name {c.id} to write its fixture anyway")  # fmt: skip
            continue
        path = store.write_fixture(c, salt=args.salt, gain=args.gain)
        print(f"fixture  {c.id} -> {path} (salt {args.salt!r}; outputs are not real)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m weights", description="Checkpoint registry and cache.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every registered checkpoint and its status").set_defaults(fn=cmd_list)
    p = sub.add_parser("download", help="download checkpoints (IDs or 'all')")
    p.add_argument("ids", nargs="+")
    p.add_argument("--force", action="store_true", help="download again even if present")
    p.set_defaults(fn=cmd_download)
    p = sub.add_parser("verify", help="check sha256 and size of cached files (default: all)")
    p.add_argument("ids", nargs="*")
    p.set_defaults(fn=cmd_verify)
    p = sub.add_parser("fixture", help="write fixture-weight checkpoints (offline testing; outputs are not real)")
    p.add_argument("ids", nargs="+", help="checkpoint ids or 'all'")
    p.add_argument("--salt", default="fixture", help="fixture salt; '{component}' is replaced by the component name")
    p.add_argument("--gain", type=float, default=1.0)
    p.add_argument("--missing", action="store_true", help="only for checkpoints not in the cache")
    p.set_defaults(fn=cmd_fixture)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

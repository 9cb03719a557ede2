"""``python -m weights.parity CASE_DIR...``: one line per case, non-zero exit on any failure."""

from __future__ import annotations

import argparse
import sys

import torch

from weights.parity.runner import discover, reference_dir, run_case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m weights.parity", description=__doc__)
    parser.add_argument("paths", nargs="*", help="case folders or folders of cases (default: the whole reference dir)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = args.paths or [str(reference_dir())]
    try:
        cases = discover(paths)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not cases:
        print("error: no cases found under " + ", ".join(paths), file=sys.stderr)
        return 2
    failures = 0
    for path in cases:
        result = run_case(path)
        print(result.line, flush=True)
        failures += not result.passed
    print(f"{len(cases) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

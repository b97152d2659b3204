"""Command line: ``python -m ranking {score,build-corpus,train,evaluate,bench}``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence


def _build_corpus(args: argparse.Namespace) -> int:
    from ranking._corpus import build_corpus, finalize_corpus

    t0 = time.time()
    if not args.finalize_only:
        build_corpus(runs=args.runs, start=args.start, jobs=args.jobs, work_dir=args.work)
    if not args.no_finalize:
        out, man = finalize_corpus(args.work, args.out)
        print(f"wrote {out} and {man} ({time.time() - t0:.0f}s)")
    return 0


def make_parser() -> argparse.ArgumentParser:
    from ranking._corpus import CORPUS_DIR, WORK_DIR

    p = argparse.ArgumentParser(prog="python -m ranking", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build-corpus", help="train real runs and record their histories")
    b.add_argument("--runs", type=int, default=3300, help="number of run ids to cover")
    b.add_argument("--start", type=int, default=0, help="first run id (split work by ranges)")
    b.add_argument("--jobs", type=int, default=1, help="worker processes (one core each)")
    b.add_argument("--work", default=WORK_DIR, help="folder for resumable shards")
    b.add_argument("--out", default=CORPUS_DIR, help="folder for corpus.parquet/manifest.csv")
    b.add_argument("--no-finalize", action="store_true", help="only train, do not merge")
    b.add_argument("--finalize-only", action="store_true", help="only merge existing shards")
    b.set_defaults(func=_build_corpus)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

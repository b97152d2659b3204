"""Command line: ``python -m ranking {score,build-corpus,train,evaluate,bench}``."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence

_EVAL_DIR = os.path.join(os.path.dirname(__file__), "eval")


def _score(args: argparse.Namespace) -> int:
    from ranking._history import read_history
    from ranking._ranker import EarlyRanker

    try:
        ranker = EarlyRanker.load(args.model)
    except (OSError, ValueError) as e:
        print(f"error\t--model: {e}", file=sys.stderr)
        return 2
    status = 0
    results = []
    for path in args.files:
        warnings: list[str] = []
        try:
            # The platform's rule (sweeps ingestion reads the same way): malformed lines are
            # skipped with a warning each, the rest is scored. A finished file: its last line
            # counts even without a newline.
            df = read_history(path, errors="skip", complete=True)
            warnings = list(df.attrs["warnings"])
            for w in warnings:
                print(f"warning\t{path}\tskipped a malformed row: {w}", file=sys.stderr)
            if len(df) == 0:
                why = (
                    f"all {len(warnings)} data line(s) are malformed, the first: {warnings[0]}"
                    if warnings
                    else "the header has no data lines below it"
                )
                raise ValueError(f"{os.path.basename(path)}: no usable row: {why}")
            score = ranker.score(df, total_epochs=args.total_epochs)
            epochs = int(df["epoch"].nunique())
            results.append(
                {
                    "file": path,
                    "score": score,
                    "epochs": epochs,
                    "error": None,
                    "warnings": warnings,
                }
            )
        except (OSError, ValueError) as e:
            status = 1
            results.append(
                {"file": path, "score": None, "epochs": None, "error": str(e), "warnings": warnings}
            )
    if args.json:
        # inf is not JSON: encode it explicitly as a string.
        for r in results:
            if isinstance(r["score"], float) and not math.isfinite(r["score"]):
                r["score"] = "inf"
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            if r["error"]:
                print(f"error\t{r['file']}\t{r['error']}", file=sys.stderr)
            else:
                print(f"{r['score']:.6g}\t{r['file']}\t({r['epochs']} epochs)")
    return status


def _build_corpus(args: argparse.Namespace) -> int:
    from ranking._corpus import build_corpus, finalize_corpus

    t0 = time.time()
    if not args.finalize_only:
        build_corpus(runs=args.runs, start=args.start, jobs=args.jobs, work_dir=args.work)
    if not args.no_finalize:
        try:
            out, man = finalize_corpus(args.work, args.out)
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"wrote {out} and {man} ({time.time() - t0:.0f}s)")
    return 0


def _load_runs(args: argparse.Namespace) -> list | None:
    """The corpus plus ``--add-runs``; None (after saying why) for an --add-runs folder that
    is not there or holds no run."""
    from ranking._train import load_runs

    try:
        return load_runs(args.corpus, args.work, args.add_runs, args.min_epochs)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return None


def _train(args: argparse.Namespace) -> int:
    from ranking._ranker import EarlyRanker
    from ranking._train import quick_report, train_model

    runs = _load_runs(args)
    if runs is None:
        return 2
    print(f"{len(runs)} runs ({sum(r.task.startswith('user:') for r in runs)} from --add-runs)")
    try:
        before: EarlyRanker | None = EarlyRanker.load(args.out)
    except (OSError, ValueError):
        before = None
    new = train_model(runs, out=args.out)
    rb = quick_report(before, runs)
    ra = quick_report(new, runs)
    rep = rb.rename(columns={"spearman": "before"}).assign(after=ra["spearman"])
    print("Spearman by group and budget (before = previous model or best-so-far if none;")
    print("after = new model, in-sample on these runs; use `evaluate` for held-out numbers):")
    print(rep.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ranking._dataset import make_rows
    from ranking._evaluate import evaluate, markdown_report, plot_report, summary_table
    from ranking._ranker import EarlyRanker
    from ranking._train import DEFAULT_PARAMS

    t0 = time.time()
    runs = _load_runs(args)
    if runs is None:
        return 2
    rows = make_rows(runs)
    print(f"{len(runs)} runs, {len(rows.X)} training rows ({time.time() - t0:.0f}s)")
    default_obj = str(DEFAULT_PARAMS["objective"])
    if args.objective == "both":
        objectives = [default_obj, "lambdarank"]
    elif args.objective == "default":
        objectives = [default_obj]
    else:
        objectives = [args.objective]
    os.makedirs(args.out, exist_ok=True)
    results = {}
    for obj in objectives:
        params = dict(DEFAULT_PARAMS) if obj in ("default", default_obj) else {"objective": obj}
        res = evaluate(
            runs,
            lambda p=params: EarlyRanker(**p),  # type: ignore[misc]
            fractions=args.fractions,
            view=args.view,
            train_rows=rows,
            draws=args.draws,
        )
        results[obj] = res
        res.table.to_csv(os.path.join(args.out, f"results-{obj}.csv"), index=False)
    main_obj = max(
        results,
        key=lambda o: (
            summary_table(results[o].table)
            .query("method == 'ranker' and abs(fraction - 0.1) < 1e-9")["spearman"]
            .mean()
        ),
    )
    notes = [
        f"Command: `python -m ranking {' '.join(args.argv)}`",
        "",
        f"Leave-one-task-out over {len({r.task for r in runs})} tasks, {len(runs)} runs; "
        f"history view `{args.view}`; {args.draws} simulated 25-trial sweeps per task and budget "
        "(relative regret capped at 10). Baselines use the same prefixes.",
        f"Objective shown: `{main_obj}`.",
    ]
    for obj, res in results.items():
        s = summary_table(res.table)
        at = s[(s["method"] == "ranker")].set_index("fraction")["spearman"]
        notes.append(
            f"* `{obj}`: mean ranker Spearman "
            + ", ".join(f"{f:.0%}: {v:.3f}" for f, v in at.items())
        )
    md = markdown_report(results[main_obj], title="Early Ranking evaluation", notes=notes)
    with open(os.path.join(args.out, "README.md"), "w", encoding="utf-8") as fh:
        fh.write(md)
    paths = plot_report(results[main_obj], args.out)
    print(md)
    print(
        f"wrote {args.out}/README.md, {', '.join(os.path.basename(p) for p in paths)} "
        f"({time.time() - t0:.0f}s)"
    )
    return 0


def _bench(args: argparse.Namespace) -> int:
    from ranking._bench import run_bench

    print(json.dumps(run_bench(n=args.n, epochs=args.epochs, model=args.model), indent=2))
    return 0


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of epochs")
    return value


def make_parser() -> argparse.ArgumentParser:
    from ranking._corpus import CORPUS_DIR, WORK_DIR
    from ranking._dataset import VIEWS

    p = argparse.ArgumentParser(prog="python -m ranking", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("score", help="score history.csv files (lower is better)")
    s.add_argument("files", nargs="+")
    s.add_argument("--json", action="store_true", help="JSON output")
    s.add_argument("--model", default=None, help="model path stem (default: shipped model)")
    s.add_argument(
        "--total-epochs", type=_positive, default=None, help="planned full length (epochs)"
    )
    s.set_defaults(func=_score)

    b = sub.add_parser("build-corpus", help="train real runs and record their histories")
    b.add_argument("--runs", type=int, default=3400, help="number of run ids to cover")
    b.add_argument("--start", type=int, default=0, help="first run id (split work by ranges)")
    b.add_argument("--jobs", type=int, default=1, help="worker processes (one core each)")
    b.add_argument("--work", default=WORK_DIR, help="folder for resumable shards")
    b.add_argument("--out", default=CORPUS_DIR, help="folder for corpus.parquet/manifest.csv")
    b.add_argument("--no-finalize", action="store_true", help="only train, do not merge")
    b.add_argument("--finalize-only", action="store_true", help="only merge existing shards")
    b.set_defaults(func=_build_corpus)

    for name, helptext in (("train", "retrain the model"), ("evaluate", "leave-one-task-out")):
        t = sub.add_parser(name, help=helptext)
        t.add_argument("--corpus", default=None, help="corpus.parquet (default: shipped)")
        t.add_argument("--work", default=None, help="use a build's partial shards instead")
        t.add_argument(
            "--add-runs",
            nargs="*",
            default=[],
            metavar="DIR",
            help="folders searched for completed runs' history.csv",
        )
        t.add_argument(
            "--min-epochs",
            type=int,
            default=10,
            help="--add-runs: leave out shorter runs (fast runs, Fast Sweep trials)",
        )
        if name == "train":
            from ranking._ranker import DEFAULT_MODEL

            t.add_argument("--out", default=DEFAULT_MODEL, help="model path stem")
            t.set_defaults(func=_train)
        else:
            t.add_argument("--out", default=_EVAL_DIR, help="folder for README.md and PNGs")
            t.add_argument(
                "--objective",
                default="default",
                choices=["default", "both", "regression", "huber", "quantile", "lambdarank"],
                help="'default' = the shipped model's settings; 'both' adds lambdarank",
            )
            t.add_argument(
                "--view", default="full", choices=VIEWS, help="history view of held-out runs"
            )
            t.add_argument("--draws", type=int, default=2000, help="simulated sweeps")
            t.add_argument(
                "--fractions", type=float, nargs="+", default=[0.05, 0.06, 0.10, 0.20, 0.33]
            )
            t.set_defaults(func=_evaluate)

    k = sub.add_parser("bench", help="score_many throughput and model load time")
    k.add_argument("--n", type=int, default=2000, help="histories")
    k.add_argument("--epochs", type=int, default=50)
    k.add_argument("--model", default=None)
    k.set_defaults(func=_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = make_parser().parse_args(argv)
    args.argv = argv
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

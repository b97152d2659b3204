"""``manage.py ranker_check``: how well Early Ranking orders a project's or template's runs.

Trains random configs from ``sweep.yaml`` to their full length (``full.sh``, here, no
workers needed), then scores each run's first epochs (as many as ``fast.sh`` trains) and
compares that order with the runs' true best validation loss: what a Fast Sweep can expect
on this code. The runs are kept in ``--work``, so a second call only scores them (a larger
``--configs`` adds runs); once the code has changed, kept runs are refused, not mixed in.

``--sweep SLUG/expN`` checks a finished sweep's configs instead of random ones: a full
sweep's trials are scored as they are (no training), a Fast Sweep's are trained to full
length first. Tuned configs sit close together, so this is where picking the best is hard.

A second table shows the same at 10-70% of the epochs, and how the run leading at that
point ends: the most any method that picks from partial training can expect on this code.
Its "best 30%" column ranks only the runs that end in the best 30%: picking the best needs
order among the good runs, which the Spearman over all runs (bad ones included) hides.
"""

from __future__ import annotations

import csv
import math
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import optuna
import yaml
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from scipy.stats import kendalltau, spearmanr

from luminide.models import Project
from luminide.workspace import TEMPLATE_INPUTS, TEMPLATES_DIR, list_templates
from sweeps.calibration import calibrate
from sweeps.models import Experiment, RunState
from sweeps.runner import run_full_sh
from sweeps.search_space import YamlFileError, parse_config_yaml, parse_sweep_yaml

SCRIPTS = ("full.sh", "fast.sh", "config.yaml", "sweep.yaml")
#: Shares of the full run at which the second table ranks the runs.
FRACTIONS = (0.1, 0.2, 0.3, 0.5, 0.7)
#: The share of runs (by true outcome) whose order the "best 30%" column checks.
TOP_SHARE = 0.3


def fast_epochs(fast_sh: str) -> int:
    """Epochs ``fast.sh`` trains: its ``--stop-after N``, else its ``--epochs N``."""
    for flag in ("--stop-after", "--epochs"):
        found = re.search(rf"{flag}\s+(\d+)", fast_sh)
        if found:
            return int(found.group(1))
    raise CommandError("fast.sh: no --stop-after N or --epochs N found")


class Command(BaseCommand):
    help = __doc__.splitlines()[0].split(": ", 1)[1]

    def add_arguments(self, parser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--template", choices=list_templates(), help="a code template")
        source.add_argument("--project", help="a project's slug: its code/ and input/")
        source.add_argument("--sweep", metavar="SLUG/expN", help="a finished sweep's configs")
        parser.add_argument("--configs", type=int, default=40)
        parser.add_argument("--seed", type=int, default=0, help="of the config sampler")
        parser.add_argument("--jobs", type=int, default=2, help="runs at once")
        parser.add_argument("--work", default=None, help="default var/ranker-check/NAME")
        parser.add_argument("--out", default=None, help="CSV of every run (default in --work)")

    def handle(self, *args, **options) -> None:
        experiment = _find_sweep(options["sweep"]) if options["sweep"] else None
        name = options["template"] or options["project"] or str(experiment).replace("/", "-")
        work = Path(options["work"] or settings.LUMINIDE_VAR_DIR / "ranker-check" / name)
        code = work / "code"
        if not code.is_dir():
            self._prepare(work, options["template"], options["project"], experiment)
        elif experiment is None:  # a sweep's snapshot never changes; a template or project can
            _check_same_code(code, self._source(options["template"], options["project"]), work)
        try:
            # A sweep's snapshot is read as that sweep started; new random configs as a new
            # sweep would start.
            space = parse_sweep_yaml((code / "sweep.yaml").read_text(), strict=experiment is None)
            defaults = parse_config_yaml((code / "config.yaml").read_text())
            if experiment is None:  # random configs from sweep.yaml, as a sweep would start
                space.check_against(defaults)
        except YamlFileError as exc:
            raise CommandError(str(exc)) from exc
        n_fast = fast_epochs((code / "fast.sh").read_text())

        if experiment is None:
            folders = self._random_configs(
                work, space, defaults, options["configs"], options["seed"]
            )
        else:
            folders = self._sweep_configs(work, experiment)
        todo = [folder for folder in folders if not (folder / "done").exists()]
        self.stdout.write(f"{name}: {len(todo)} of {len(folders)} runs to train in {work}")

        def train(folder: Path) -> None:
            rc = run_full_sh(folder, folder / "stdout.txt")
            if rc != 0:
                raise CommandError(f"{folder}: full.sh exited {rc}; see {folder}/stdout.txt")
            (folder / "done").touch()
            self.stdout.write(f"  {folder.name}: done")

        with ThreadPoolExecutor(options["jobs"]) as pool:
            list(pool.map(train, todo))
        runs = _Runs(folders)
        rows = self._score(runs, n_fast)
        out = Path(options["out"] or work / "ranker-check.csv")
        with open(out, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        self.stdout.write(self._summary(name, rows, n_fast))
        self.stdout.write(self._predictions(rows, n_fast))
        self.stdout.write(self._leaders(runs) + f"\nruns: {out}")

    @staticmethod
    def _random_configs(work: Path, space, defaults, configs: int, seed: int) -> list[Path]:
        """``configs`` run folders with random configs from ``sweep.yaml`` (kept ones reused)."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        folders = []
        for i in range(configs):
            params = study.ask(space.distributions).params  # asked even when kept: same seeds
            folder = work / f"run-{i:03d}"  # beside code/ and input/, as full.sh expects
            folders.append(folder)
            if not (folder / "done").exists():
                folder.mkdir(parents=True, exist_ok=True)
                config = space.trial_config(defaults, params)
                (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        return folders

    @staticmethod
    def _sweep_configs(work: Path, experiment: Experiment) -> list[Path]:
        """A run folder per completed trial: a full sweep's trial with its history (already
        trained), a Fast Sweep's with its config only (trained here)."""
        folders = []
        for trial in experiment.trials.filter(state=RunState.COMPLETE).order_by("number"):
            folder = work / f"run-{trial.number:03d}"
            folders.append(folder)
            if (folder / "done").exists():
                continue
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(trial.run_dir / "config.yaml", folder / "config.yaml")
            if experiment.kind == Experiment.Kind.SWEEP:
                shutil.copy(trial.run_dir / "history.csv", folder / "history.csv")
                (folder / "done").touch()
        if not folders:
            raise CommandError(f"--sweep {experiment}: no completed trial to check")
        return folders

    @staticmethod
    def _source(template: str | None, slug: str | None) -> Path:
        """The code a template or project check trains: the template's, or the project's code/."""
        return TEMPLATES_DIR / template if template else _project(slug).code_dir

    @staticmethod
    def _prepare(
        work: Path, template: str | None, slug: str | None, experiment: Experiment | None
    ) -> None:
        """A copy of the code (edits made meanwhile do not mix in) and the input data."""
        work.mkdir(parents=True, exist_ok=True)
        if experiment is not None:  # the code the sweep ran: its snapshot
            if not (experiment.output_dir / "code").is_dir():
                raise CommandError(
                    f"--sweep {experiment}: no code snapshot in {experiment.output_dir}"
                )
            shutil.copytree(experiment.output_dir / "code", work / "code")
            (work / "input").symlink_to(experiment.project.input_dir.resolve())
            return
        if template:
            shutil.copytree(TEMPLATES_DIR / template, work / "code")
            (work / "input").mkdir()
            TEMPLATE_INPUTS[template](work / "input")
            return
        project = _project(slug)
        missing = [f for f in SCRIPTS if not (project.code_dir / f).is_file()]
        if missing:
            raise CommandError(f"--project {slug}: code/ has no {', '.join(missing)}")
        shutil.copytree(project.code_dir, work / "code")
        (work / "input").symlink_to(project.input_dir.resolve())

    @staticmethod
    def _score(runs: _Runs, n_fast: int) -> list[dict]:
        """A CSV row per run: its config, outcome, best so far and score after ``n_fast``."""
        scores, seen = runs.at(n_fast)
        return [
            {
                "run": folder.name,
                "final_best": float(final),
                "best_so_far": float(best_so_far),
                "steps_per_epoch": int((df["epoch"] == 0).sum() - 1),
                **yaml.safe_load((folder / "config.yaml").read_text()),
                "score": float(score),
            }
            for folder, df, final, best_so_far, score in zip(
                runs.folders, runs.histories, runs.finals, seen, scores, strict=True
            )
        ]

    @staticmethod
    def _summary(name: str, rows: list[dict], n_fast: int) -> str:
        final = np.array([r["final_best"] for r in rows])
        best = final.min()
        lines = [
            f"{name}: {len(rows)} runs, first {n_fast} epochs scored; "
            f"true best final val loss {best:.4f}",
            "| method | Spearman | Kendall | pick's final | vs true best |",
            "|---|---:|---:|---:|---:|",
        ]
        for method in ("score", "best_so_far"):
            predicted = np.array([r[method] for r in rows])
            # Diverged runs (inf) tie at the bottom on both sides, as in ranking's evaluation.
            rho = spearmanr(predicted, final).statistic
            tau = kendalltau(predicted, final).statistic
            pick = final[int(np.argmin(predicted))]
            lines.append(
                f"| {method} | {rho:.3f} | {tau:.3f} | {pick:.4f} | {pick / best - 1:+.1%} |"
            )
        return "\n".join(lines)

    @staticmethod
    def _predictions(rows: list[dict], n_fast: int) -> str:
        """How close a Fast Training page's calibrated prediction (sweeps/calibration.py)
        comes to the final best, each run predicted from the others as if they were the
        project's earlier full runs; against the raw Early Ranking score."""
        runs = [(r["score"], r["final_best"]) for r in rows]
        calibrated, raw, inside = [], [], []
        for i, (score, final) in enumerate(runs):
            others = runs[:i] + runs[i + 1 :]
            p = calibrate(score, others, epochs=n_fast)
            if p is None or not math.isfinite(final):
                continue
            calibrated.append(abs(p.estimate / final - 1))
            raw.append(abs(score / final - 1))
            inside.append(p.low <= final <= p.high)
        if not calibrated:
            return "Fast Training prediction: no run to check it on."
        return (
            f"Fast Training's predicted final val loss, each of {len(calibrated)} runs from the "
            f"other runs (leave one out): median error {np.median(calibrated):.0%} "
            f"(the raw Early Ranking score: {np.median(raw):.0%}); the final best inside the "
            f"range shown for {np.mean(inside):.0%} of runs."
        )

    @staticmethod
    def _leaders(runs: _Runs) -> str:
        """The first table's figures at shares of the full run (the longest history)."""
        epochs = max(int(df["epoch"].max()) + 1 for df in runs.histories)
        final = runs.finals
        # At least 3 runs, or a rank correlation says nothing.
        n_top = min(len(final), max(3, math.ceil(TOP_SHARE * len(final))))
        top = np.argsort(final, kind="stable")[:n_top]
        lines = [
            f"At shares of the {epochs} epochs (how the run picked then ends, vs the true best;"
            f" Spearman also among the {n_top} runs that end best, by score / best so far):",
            f"| share | epochs | Spearman | best {TOP_SHARE:.0%}: score | best so far "
            "| score's pick | leader's (best so far) |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for share in FRACTIONS:
            n = max(1, round(share * epochs))
            scores, seen = runs.at(n)
            picks = [final[int(np.argmin(order))] / final.min() - 1 for order in (scores, seen)]
            rho = spearmanr(scores, final).statistic
            rho_top = [spearmanr(order[top], final[top]).statistic for order in (scores, seen)]
            lines.append(
                f"| {share:.0%} | {n} | {rho:.3f} | {rho_top[0]:.3f} | {rho_top[1]:.3f} "
                f"| {picks[0]:+.1%} | {picks[1]:+.1%} |"
            )
        return "\n".join(lines)


class _Runs:
    """The trained runs, read once: their histories and true outcomes, scored at any length."""

    def __init__(self, folders: list[Path]) -> None:
        from ranking import EarlyRanker, read_history

        self.folders = folders
        self.ranker = EarlyRanker.load()
        self.histories = [read_history(f / "history.csv", errors="skip") for f in folders]
        ends = [df["epoch_val_loss"] for df in self.histories]
        finals = np.array([float(e.min()) if e.notna().any() else math.inf for e in ends])
        # The ranker's own test for divergence (inf, or the losses turning NaN) on the whole
        # run: a sweep fails such a trial, so it ranks last whatever it reached before.
        finals[np.isinf(self.ranker.score_many(self.histories))] = math.inf
        self.finals = finals

    def at(self, epochs: int) -> tuple[np.ndarray, np.ndarray]:
        """Each run's Early Ranking score and best so far after its first ``epochs``."""
        prefixes = [df[df["epoch"] < epochs] for df in self.histories]
        seen = [p["epoch_val_loss"] for p in prefixes]
        best = np.array([float(v.min()) if v.notna().any() else math.inf for v in seen])
        return np.asarray(self.ranker.score_many(prefixes), dtype=float), best


def _project(slug: str | None) -> Project:
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise CommandError(f"--project: no project {slug!r}")
    return project


def _code_files(folder: Path) -> dict[str, bytes]:
    return {
        str(f.relative_to(folder)): f.read_bytes()
        for f in sorted(folder.rglob("*"))
        if f.is_file() and "__pycache__" not in f.parts
    }


def _check_same_code(kept: Path, source: Path, work: Path) -> None:
    """Refuse to mix kept runs with code that changed since they were trained."""
    old, new = _code_files(kept), _code_files(source)
    changed = sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))
    if changed:
        raise CommandError(
            f"--work {work}: its runs were trained with other code than {source} "
            f"(changed: {', '.join(changed[:5])}); delete {work} or choose another --work"
        )


def _find_sweep(name: str) -> Experiment:
    """The sweep ``SLUG/expN`` (as the experiment pages and ``sweep`` print it)."""
    slug, _, exp = name.rpartition("/")
    number = exp.removeprefix("exp")
    if not slug or not number.isdigit():
        raise CommandError(f"--sweep {name!r}: expected SLUG/expN, e.g. demo/exp3")
    experiment = Experiment.objects.filter(project__slug=slug, number=int(number)).first()
    if experiment is None:
        raise CommandError(f"--sweep {name}: no such experiment")
    if not experiment.is_sweep:
        raise CommandError(f"--sweep {name}: a {experiment.get_kind_display()} run, not a sweep")
    return experiment

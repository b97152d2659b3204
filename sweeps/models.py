"""Experiments, trials and their stored history.

Every run is a ``Trial`` of an ``Experiment`` (``expN`` of a project): a single training is an
experiment with one trial (number 0); a sweep has one trial per Optuna trial; an API
experiment (Training Monitor REST API) has one trial per suggestion/training run. History
rows, per-epoch summaries and Early Ranking scores all hang off trials, so ingestion, live
charts and ranking work the same way for every kind of run.
"""

from __future__ import annotations

from pathlib import Path

from django.db import models
from django.db.models import Q
from django.utils import timezone

from luminide.models import ComputeNode, Project


class RunState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PRUNED = "pruned"


ACTIVE_STATES = (RunState.QUEUED, RunState.RUNNING)


class ExperimentQuerySet(models.QuerySet["Experiment"]):
    def for_user(self, user) -> ExperimentQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self.filter(Q(project__owner=user) | Q(project__collaborators=user)).distinct()


class Experiment(models.Model):
    class Kind(models.TextChoices):
        TRAIN = "train", "Training"
        FAST_TRAIN = "fast_train", "Fast Training"
        SWEEP = "sweep", "Sweep"
        FAST_SWEEP = "fast_sweep", "Fast Sweep"
        API = "api", "API"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="experiments")
    number = models.PositiveIntegerField(help_text="N of the output folder expN")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TRAIN)
    description = models.CharField(max_length=500, blank=True)
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    failure_reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The config.yaml the run started with (single runs) or the defaults (sweeps).
    config = models.JSONField(default=dict, blank=True)
    # Kind-specific definition: sweep space and settings (n_trials, parallel, study name,
    # seed), or the SigOpt experiment body for API experiments.
    spec = models.JSONField(default=dict, blank=True)
    best_value = models.FloatField(null=True, blank=True, help_text="Best val loss / objective")

    objects = ExperimentQuerySet.as_manager()

    class Meta:
        ordering = ["project", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="unique_exp_number")
        ]

    def __str__(self) -> str:
        return f"{self.project.slug}/exp{self.number}"

    @property
    def name(self) -> str:
        return f"exp{self.number}"

    @property
    def output_dir(self) -> Path:
        return self.project.output_dir / self.name

    @property
    def is_sweep(self) -> bool:
        return self.kind in (self.Kind.SWEEP, self.Kind.FAST_SWEEP)

    @property
    def state_label(self) -> str:
        """The state as shown: a sweep ended by its Stop button (and resumable) is "Stopped"."""
        if self.is_sweep and self.state == RunState.CANCELLED:
            return "Stopped"
        return self.get_state_display()

    @property
    def is_fast(self) -> bool:
        return self.kind in (self.Kind.FAST_TRAIN, self.Kind.FAST_SWEEP)

    @property
    def duration(self):
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at


class Trial(models.Model):
    """One training process (or one API training run) and its history."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="trials")
    number = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    failure_reason = models.TextField(blank=True)
    node = models.ForeignKey(
        ComputeNode, null=True, blank=True, on_delete=models.SET_NULL, related_name="trials"
    )
    params = models.JSONField(default=dict, blank=True, help_text="Sampled hyperparameters")
    metadata = models.JSONField(default=dict, blank=True)
    # Objective told to the study: best epoch val loss (full) or Early Ranking score (fast).
    value = models.FloatField(null=True, blank=True)
    best_val_loss = models.FloatField(null=True, blank=True)
    score = models.FloatField(null=True, blank=True, help_text="Latest Early Ranking score")
    epochs_done = models.PositiveIntegerField(default=0)
    rows_stored = models.PositiveBigIntegerField(default=0, help_text="History cursor")
    attempts = models.PositiveSmallIntegerField(default=0)
    task_id = models.CharField(max_length=64, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["experiment", "number"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "number"], name="unique_trial_number")
        ]
        indexes = [models.Index(fields=["state"])]

    def __str__(self) -> str:
        return f"{self.experiment}/trial{self.number}"

    @property
    def run_dir(self) -> Path:
        """Working directory of the training process: ``expN/trialK`` (trial 0 for a single
        run), so that ``../code`` is the experiment's code snapshot."""
        output = self.experiment.output_dir
        folder = output / f"trial{self.number}"
        if not self.experiment.is_sweep and not folder.exists() and (output / "log.txt").exists():
            return output  # single runs before 2026-12 ran in expN itself
        return folder

    @property
    def duration(self):
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at


class HistoryChunk(models.Model):
    """A batch of consecutive ``history.csv`` rows, stored column-wise in one blob.

    One database row per ingested batch keeps ingestion of million-row histories close to
    CSV-parsing speed. Rows are numbered by ``seq`` (0-based, per trial); the trial's
    ``rows_stored`` is the cursor clients re-sync from.
    """

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="history_chunks")
    first_seq = models.PositiveBigIntegerField()
    row_count = models.PositiveIntegerField()
    first_epoch = models.IntegerField()
    last_epoch = models.IntegerField()
    data = models.BinaryField()

    class Meta:
        ordering = ["trial", "first_seq"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "first_seq"], name="unique_chunk_start")
        ]

    def __str__(self) -> str:
        return f"{self.trial} rows {self.first_seq}..{self.first_seq + self.row_count - 1}"


class TrialEpoch(models.Model):
    """Per-epoch summary of a trial: what the sweep page and the ranker read."""

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="epochs")
    epoch = models.IntegerField()
    train_loss = models.FloatField(null=True, blank=True)
    val_loss = models.FloatField(null=True, blank=True, help_text="Epoch validation loss")
    score = models.FloatField(null=True, blank=True, help_text="Early Ranking score")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["trial", "epoch"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "epoch"], name="unique_trial_epoch")
        ]

    def __str__(self) -> str:
        return f"{self.trial} epoch {self.epoch}"


class Checkpoint(models.Model):
    """A Training Monitor checkpoint reported through the REST API."""

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="checkpoints")
    seq = models.PositiveIntegerField()
    values = models.JSONField(default=list)
    metadata = models.JSONField(default=dict, blank=True)
    should_stop = models.BooleanField(default=False)
    stopping_reasons = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["trial", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "seq"], name="unique_checkpoint_seq")
        ]

    def __str__(self) -> str:
        return f"{self.trial} checkpoint {self.seq}"

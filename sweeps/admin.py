"""Admin console for experiments and trials (staff only)."""

from __future__ import annotations

from django.contrib import admin

from luminide.templatetags.luminide_tags import duration
from sweeps.models import Checkpoint, Experiment, Trial, TrialEpoch


class TrialInline(admin.TabularInline):
    model = Trial
    extra = 0
    fields = ("number", "state", "node", "epochs_done", "best_val_loss", "score", "rows_stored")
    readonly_fields = fields
    show_change_link = True
    can_delete = False


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "kind",
        "state",
        "description",
        "created_by",
        "started_at",
        "run_time",
        "best_value",
    )
    list_filter = ("state", "kind", "project", "created_at")
    search_fields = ("description", "project__slug", "project__name", "created_by__username")
    list_select_related = ("project", "created_by")
    readonly_fields = ("created_at", "started_at", "finished_at")
    date_hierarchy = "created_at"
    inlines = [TrialInline]

    @admin.display(description="Duration")
    def run_time(self, obj: Experiment) -> str:
        return duration(obj.duration)


class TrialEpochInline(admin.TabularInline):
    model = TrialEpoch
    extra = 0
    fields = ("epoch", "train_loss", "val_loss", "score")
    readonly_fields = fields
    can_delete = False


@admin.register(Trial)
class TrialAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "state",
        "node",
        "epochs_done",
        "best_val_loss",
        "score",
        "value",
        "rows_stored",
        "started_at",
        "run_time",
    )
    list_filter = ("state", "node", "experiment__kind", "experiment__project")
    search_fields = ("experiment__project__slug", "experiment__description", "node__hostname")
    list_select_related = ("experiment__project", "node")
    readonly_fields = ("rows_stored", "created_at", "started_at", "finished_at", "pid", "task_id")
    inlines = [TrialEpochInline]

    @admin.display(description="Duration")
    def run_time(self, obj: Trial) -> str:
        return duration(obj.duration)


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    list_display = ("trial", "seq", "should_stop", "created_at")
    list_filter = ("should_stop",)
    search_fields = ("trial__experiment__project__slug",)
    list_select_related = ("trial__experiment__project",)

"""Experiment pages and their JSON endpoints (tracking, detail, compare, diff, restore)."""

from __future__ import annotations

from django.urls import path

from sweeps import sweep_views, views

P = "projects/<slug:slug>/experiments/"
E = P + "<int:number>/"

urlpatterns = [
    path("experiments/", views.all_experiments, name="all_experiments"),
    path(P, views.experiment_list, name="experiment_list"),
    path(P + "start", views.experiment_start, name="experiment_start"),
    path(P + "compare", views.experiment_compare, name="experiment_compare"),
    path(P + "diff", views.experiment_diff, name="experiment_diff"),
    path(E, views.experiment_detail, name="experiment_detail"),
    path(E + "cancel", views.experiment_cancel, name="experiment_cancel"),
    path(E + "description", views.experiment_description, name="experiment_description"),
    path(E + "delete", views.experiment_delete, name="experiment_delete"),
    path(E + "restore", views.experiment_restore, name="experiment_restore"),
    path(E + "history", views.experiment_history, name="experiment_history"),
    path(E + "status", views.experiment_status, name="experiment_status"),
    path(E + "log", views.experiment_log, name="experiment_log"),
    path(E + "files/<path:path>", views.experiment_file, name="experiment_file"),
    # --- sweeps (sweeps/sweep_views.py) ---
    path(P + "sweep", sweep_views.sweep_start, name="sweep_start"),
    path(E + "sweep/data", sweep_views.sweep_data, name="sweep_data"),
    path(E + "sweep/importance", sweep_views.sweep_importance, name="sweep_importance"),
    path(E + "sweep/stop", sweep_views.sweep_stop, name="sweep_stop"),
    path(E + "sweep/resume", sweep_views.sweep_resume, name="sweep_resume"),
    path(E + "sweep/use-tuned", sweep_views.sweep_use_tuned, name="sweep_use_tuned"),
    path(E + "sweep/train-tuned", sweep_views.sweep_train_tuned, name="sweep_train_tuned"),
    # --- end sweeps ---
]

"""URL map: workspace pages, experiment pages, the REST API and the admin."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("v1/", include("sweeps.api.urls")),
    path("", include("sweeps.urls")),
    path("", include("luminide.urls_workspace")),
]

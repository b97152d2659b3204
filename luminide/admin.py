"""Admin console for the workspace: projects, compute nodes, API tokens (staff only)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count
from django.utils import timezone

from luminide.models import ApiToken, ComputeNode, Project

admin.site.site_header = "Luminide admin"
admin.site.site_title = "Luminide admin"
admin.site.index_title = "Users, projects, experiments and compute nodes"


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "owner", "template", "experiment_count", "created_at")
    list_filter = ("template", "created_at")
    search_fields = ("slug", "name", "owner__username", "owner__email")
    list_select_related = ("owner",)
    filter_horizontal = ("collaborators",)
    autocomplete_fields = ("owner",)
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_experiments=Count("experiments"))

    @admin.display(description="Experiments", ordering="_experiments")
    def experiment_count(self, obj: Project) -> int:
        return obj._experiments


@admin.register(ComputeNode)
class ComputeNodeAdmin(admin.ModelAdmin):
    list_display = (
        "hostname",
        "device",
        "device_memory_mb",
        "gpu_count",
        "state",
        "last_heartbeat",
        "heartbeat_age",
        "started_at",
    )
    list_filter = ("state", "device")
    search_fields = ("hostname", "device")
    readonly_fields = ("started_at", "last_heartbeat")

    @admin.display(description="Heartbeat age")
    def heartbeat_age(self, obj: ComputeNode) -> str:
        seconds = int((timezone.now() - obj.last_heartbeat).total_seconds())
        return f"{seconds} s"


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "created_at", "last_used_at", "is_active")
    list_filter = ("revoked_at", "created_at")
    search_fields = ("prefix", "name", "user__username")
    list_select_related = ("user",)
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")
    actions = ["revoke"]

    @admin.display(boolean=True, description="Active")
    def is_active(self, obj: ApiToken) -> bool:
        return obj.revoked_at is None

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{count} token(s) revoked.")

    def has_add_permission(self, request) -> bool:
        # Raw tokens are shown once at creation: issue them from the API tokens page.
        return False

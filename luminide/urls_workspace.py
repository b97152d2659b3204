"""Workspace URLs: login, projects, the IDE and its file API, nodes, API tokens."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from luminide import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("projects/", views.project_list, name="project_list"),
    path("projects/<slug:slug>/", views.project_ide, name="project_ide"),
    path("projects/<slug:slug>/files/tree", views.file_tree, name="file_tree"),
    path("projects/<slug:slug>/files/open", views.file_open, name="file_open"),
    path("projects/<slug:slug>/files/save", views.file_save, name="file_save"),
    path("projects/<slug:slug>/files/delete", views.file_delete, name="file_delete"),
    path("projects/<slug:slug>/files/rename", views.file_rename, name="file_rename"),
    path("projects/<slug:slug>/files/upload", views.file_upload, name="file_upload"),
    path("nodes/", views.nodes, name="nodes"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke", views.token_revoke, name="token_revoke"),
    path("assets/plotly.min.js", views.plotly_js, name="plotly_js"),
]

"""ASGI entry point: HTTP and websockets in each daphne process (``luminide.serve``).

The REST API (``/v1/``) has its own Django handler, :class:`ApiHandler`; pages, static
files and websockets keep Django's and Channels' defaults.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "luminide.settings")
# Build the Django app first: routing imports consumers, which import models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.handlers.exception import convert_exception_to_response  # noqa: E402

from sweeps.routing import websocket_urlpatterns  # noqa: E402

API_PREFIX = "/v1/"


class ApiHandler(ASGIHandler):
    """Django for the token-authenticated JSON API, made for many small writes.

    * No middleware: API views authenticate by token and are CSRF-exempt, so sessions,
      CSRF, messages and static files have nothing to do (``nosniff`` is set here). Django's
      sync middleware would also move each request between the event loop and a thread
      several times.
    * No ``ThreadSensitiveContext``: Django's handler gives every request a thread of its
      own, so concurrent checkpoint posts write SQLite from several connections at once and
      wait on each other's locks (p95 of 0.3-0.6 s at 8 clients). Here the API's views run one
      at a time in the process's one sync thread, on one connection.
    """

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(self._get_response_async)

    async def __call__(self, scope, receive, send) -> None:
        await self.handle(scope, receive, send)

    async def get_response_async(self, request):
        response = await super().get_response_async(request)
        # The one header of SecurityMiddleware's that matters for JSON answers.
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


api_asgi_app = ApiHandler()


async def http_application(scope, receive, send) -> None:
    app = api_asgi_app if scope["path"].startswith(API_PREFIX) else django_asgi_app
    await app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)

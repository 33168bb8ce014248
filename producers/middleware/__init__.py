"""Framework integration: set the user context per request, record a page_view after it."""

from producers.middleware.asgi import TrackingMiddleware
from producers.middleware.wsgi import WsgiTrackingMiddleware

__all__ = ["TrackingMiddleware", "WsgiTrackingMiddleware"]

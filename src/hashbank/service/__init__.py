"""service: the authenticated HTTP API (FastAPI on uvicorn) — hash, match, banks, feeds, logs, webhooks."""

from hashbank.service.app import create_app
from hashbank.service.config import ServiceConfig

__all__ = ["ServiceConfig", "create_app"]

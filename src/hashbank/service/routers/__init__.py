"""One router per area; create_app includes them all."""

from hashbank.service.routers import banks, health, logs, matching, webhooks

ROUTERS = [health.router, matching.router, banks.router, logs.router, webhooks.router]

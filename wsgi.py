"""WSGI entry point: `gunicorn wsgi:server`. Configured by RETENTION_* environment variables."""

import logging

from dashboard.app import create_app

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

app = create_app()
server = app.server

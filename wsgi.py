"""WSGI entry point: `gunicorn wsgi:app` (the only module-level app)."""
from service import create_app

app = create_app()

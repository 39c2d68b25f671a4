"""WSGI entry point: `gunicorn wsgi:app` (the only module-level app)."""
from service import create_app, heap

app = create_app()
heap.settle()  # the start-up heap leaves the collector's reach (service/heap.py)

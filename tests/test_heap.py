"""The WSGI entry point settles the collector after start-up (service/heap.py): the start-up heap is frozen and
the thresholds are those for request work, in the process gunicorn serves from."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from service import heap

ROOT = Path(__file__).resolve().parent.parent
PROBE = "import gc, json, wsgi; print(json.dumps({'frozen': gc.get_freeze_count(), 'threshold': gc.get_threshold()}))"


def test_wsgi_app_freezes_the_start_up_heap(tmp_path: Path) -> None:
    env = {**os.environ, "IOP_DATABASE_URL": f"sqlite:///{tmp_path / 'heap.db'}", "IOP_AUTH": "off", "IOP_LOG_LEVEL": "WARNING"}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["frozen"] > 100_000  # the element tables, profiles and models: far more than a request allocates
    assert tuple(found["threshold"]) == (heap.YOUNG_THRESHOLD, heap.MIDDLE_THRESHOLD, heap.OLD_THRESHOLD)

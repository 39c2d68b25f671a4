"""The committed profiles/fsh-generated/resources is exactly what SUSHI builds from profiles/input/fsh today."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT.parent / "shared" / "tools"


def test_committed_guide_matches_the_fsh(peers, tmp_path):
    assert (peers / "node_modules" / ".bin" / "sushi").exists(), "SUSHI is missing from the test peers: run `make test`"
    project = tmp_path / "profiles"
    shutil.copytree(ROOT / "profiles", project, ignore=shutil.ignore_patterns("fsh-generated"))
    result = subprocess.run(["bash", str(TOOLS / "sushi-offline.sh"), str(peers), str(project)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and " 0 Errors" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    built = {p.name: p.read_text() for p in (project / "fsh-generated" / "resources").glob("*.json")}
    committed = {p.name: p.read_text() for p in (ROOT / "profiles" / "fsh-generated" / "resources").glob("*.json")}
    assert sorted(built) == sorted(committed), "rerun scripts/build_profiles.sh and commit profiles/fsh-generated"
    stale = [name for name in built if built[name] != committed[name]]
    assert not stale, f"stale: {stale}; rerun scripts/build_profiles.sh and commit profiles/fsh-generated"

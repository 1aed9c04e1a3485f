"""Shared fixtures: paths to ../shared data (tests that need it skip with a reason when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: the shared data sets and seed posts live beside the checkout")
    return SHARED


@pytest.fixture
def coco8(shared_dir: Path) -> Path:
    path = shared_dir / "datasets" / "coco8"
    if not path.is_dir():
        pytest.skip(f"{path} is absent: the real 8-image COCO subset is needed for this test")
    return path


@pytest.fixture(autouse=True, scope="session")
def one_search_worker():
    """`nas search` runs one worker per core on a journal file by default; tests name their workers and their
    storage (NAS_WORKERS, NAS_STORAGE) so a test's trial counts do not depend on the machine and its studies
    are SQLite files it can read with plain Optuna. Tests of the defaults (test_workers.py, test_study.py)
    delete both."""
    with pytest.MonkeyPatch.context() as mp:  # its own patch: a test's monkeypatch.undo() keeps these
        mp.setenv("NAS_WORKERS", "1")
        mp.setenv("NAS_STORAGE", "sqlite:///studies/nas.db")
        yield

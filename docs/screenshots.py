"""Screenshots of `nas dashboard` for the README: a tiny real study (or yours) in headless Chromium.

    python docs/screenshots.py                       # tiny search + audit in a temporary folder (~2 min on CPU)
    python docs/screenshots.py --storage sqlite:///studies/nas.db --study neck

Needs chromium (`apt-get install chromium fonts-dejavu-core`); writes docs/img/dashboard-*.png. Not a test:
CI has no browser. Look at the pictures: normal-height table rows, the rejected trial grey ("Infeasible").
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPACE = """\
base: yolov5n
imgsz: 640
width_multiple: [0.25, 0.5]
hyperparameters: {SGE: {groups: [4, 8]}}
insert: [{after: 23, name: P5, blocks: [none, SGE, GE]}]
"""
SERVE = """
import sys, optuna_dashboard
from nas.storage import artifact_store, resolve_storage
url, folder, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
optuna_dashboard.run_server(resolve_storage(url, create=False), host="127.0.0.1", port=port,
                            artifact_store=artifact_store(url, folder))
"""


def nas(*args: str, cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "nas.cli", *args], cwd=cwd, env=env, check=True)


def tiny_study(folder: Path) -> tuple[str, str]:
    """A real search at 64 px, 2 epochs: four trained candidates and an over-budget one; then a tiny audit."""
    import optuna

    from nas.space import baseline, load_space, trial_params

    (folder / "space.yaml").write_text(SPACE)
    tiny = ["--epochs", "2", "--imgsz", "64", "--batch", "8", "--sampler", "random", "--budget", "10gflops"]
    nas("search", "--space", "space.yaml", "--trials", "1", *tiny, cwd=folder)
    url = f"sqlite:///{folder}/studies/nas.db"
    space = load_space(str(folder / "space.yaml"))
    wide = dict(trial_params(space, baseline(space)), width_multiple=0.5)
    optuna.load_study(study_name="space", storage=url).enqueue_trial(wide)  # over the budget: rejected
    nas("search", "--space", "space.yaml", "--trials", "4", *tiny, cwd=folder)
    nas("audit", "--candidates", "3", "--seeds", "1", "--reference-epochs", "4", cwd=folder)
    return url, "space"


def shoot(url: str, out: Path, size: str, crop: tuple[int, int] | None = None) -> None:
    """Screenshot `url` at `size` (W,H); keep rows crop[0]..crop[1] of it when given."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        sys.exit("chromium not found: apt-get install -y chromium fonts-dejavu-core")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={size}", "--virtual-time-budget=15000", f"--screenshot={out}", url],
                   check=True, capture_output=True, timeout=120)
    from PIL import Image

    with Image.open(out) as im:  # keep the README light: a palette PNG of a UI is a fraction of the size
        im = im.convert("RGB")
        if crop is not None:
            im = im.crop((0, crop[0], im.width, min(crop[1], im.height)))
        im.quantize(colors=128).save(out, optimize=True)
    print(f"{out} ({out.stat().st_size // 1024} KB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--storage", help="storage URL of an existing study (default: make a tiny one)")
    ap.add_argument("--study", help="study name (with --storage)")
    ap.add_argument("--artifact-dir", help="artifact folder (default: beside the database)")
    ap.add_argument("--trial", type=int, default=0, help="trial whose page to take")
    ap.add_argument("--workdir", help="make (or reuse) the tiny study here instead of a scratch folder")
    ap.add_argument("--port", type=int, default=8089)
    ap.add_argument("--out", default=str(ROOT / "docs" / "img"))
    args = ap.parse_args()

    import optuna

    from nas.storage import artifact_dir

    tmp = Path(args.workdir or tempfile.mkdtemp(prefix="nas-shots-"))
    tmp.mkdir(parents=True, exist_ok=True)
    if args.storage:
        url, name = args.storage, args.study
    elif (tmp / "studies" / "nas.db").is_file():
        url, name = f"sqlite:///{tmp}/studies/nas.db", "space"
    else:
        url, name = tiny_study(tmp)
    folder = args.artifact_dir or str(artifact_dir(url))
    study = optuna.load_study(study_name=name, storage=url) if name else optuna.load_study(study_name=None,
                                                                                             storage=url)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-c", SERVE, url, folder, str(args.port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{args.port}/dashboard/studies/{study._study_id}"
        for _ in range(60):
            try:
                urllib.request.urlopen(base, timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        shoot(base, out / "dashboard-study.png", "1400,1400")
        shoot(f"{base}/smartSelection", out / "dashboard-table.png", "1400,3200", crop=(1150, 2350))
        shoot(f"{base}/trials?numbers={args.trial}", out / "dashboard-trial.png", "1400,1300")
        shoot(f"{base}/note", out / "dashboard-audit-note.png", "1400,1300")
    finally:
        server.terminate()
        server.wait(timeout=10)
        if not args.workdir and not args.storage:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

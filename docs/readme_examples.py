"""Regenerate every command output shown in README.md from a real run of the current code.

Each example in the README sits between two markers:

    <!-- example: NAME -->
    ```
    $ nas ...
    (output)
    ```
    <!-- /example -->

This script runs the commands of each example (table EXAMPLES below) in one scratch directory, in order,
so later examples (pareto, export-best) read the study the search example left, and writes their real
output between the markers. Long outputs are shortened by keeping head/tail lines around a "..." line.

    python docs/readme_examples.py                 # rerun all examples and rewrite README.md
    python docs/readme_examples.py --only profile  # just some (those that need a study run the search too)
    python docs/readme_examples.py --check         # exit 1 if the README's markers and the table disagree

The search example is the README's main command and takes about ten minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
WIDTH = 120


@dataclass
class Example:
    """One README block: commands run in order; their output shortened to head/tail lines."""

    commands: list[str]
    head: int = 0  # 0 = keep everything
    tail: int = 0
    needs: list[str] = field(default_factory=list)  # examples that must run first (same scratch directory)
    show_command: bool = True
    setup: list[str] = field(default_factory=list)  # run first, output not shown (e.g. a small demo study)
    keep: str | None = None  # regex: when set, lines matching it are kept from the elided middle
    time_it: bool = False


DEMO = "--study demo --storage sqlite:///studies/demo.db"
FT = "--study ft --storage sqlite:///studies/ft.db"
PRETRAIN = ("python -c \"import torch; from nas.data import SyntheticConfig; from nas.model import build_model; "
            "from nas.train import train_and_evaluate; from nas.weights import write_checkpoint; "
            "task = SyntheticConfig(n_train=256, n_val=32, size=128, nc=8, seed=1); torch.manual_seed(0); "
            "m = build_model('yolov5n', nc=8); train_and_evaluate(m, task, epochs=4, imgsz=128); "
            "write_checkpoint(m, 'yolov5n-demo.pt', names=task.names)\"")
ONNX_DEMO = "--study onnx-demo --storage sqlite:///studies/onnx-demo.db"
PRETRAIN_ONCE = f"test -f yolov5n-demo.pt || {PRETRAIN}"
# yolov5n.yaml as a user edits it: SGE inserted after layer 17 (the P3 output), the later `from`s moved by hand
SGE_YAML = ("python -c \"import yaml; from nas.model import load_cfg; c = load_cfg('yolov5n'); c.pop('_source'); "
            "c['nc'] = 8; h = c['head']; h.insert(8, [-1, 1, 'SGE', [256]]); h[10][0] = [-1, 14]; "
            "h[13][0] = [-1, 10]; h[15][0] = [18, 21, 24]; "
            "open('yolov5n_sge.yaml', 'w').write(yaml.safe_dump(c, sort_keys=False))\"")
TX = "--study tx --storage sqlite:///studies/tx.db"
LAT = "--study lat --storage sqlite:///studies/lat.db"

EXAMPLES: dict[str, Example] = {
    "profile": Example(["nas profile yolov5s"], head=12, tail=6),
    "profile-onnx": Example(["nas profile yolov5n --onnx yolov5n.onnx"], head=1, tail=3),
    "blocks": Example(["nas blocks --channels 128 --imgsz 40x40"]),
    "space": Example(["nas space search_spaces/sppf.yaml"]),
    "evaluate": Example(["nas evaluate yolov5n"]),
    "memory": Example(["nas search --space neck --budget 10gflops --imgsz 100000"]),
    "search": Example(["nas search --space search_spaces/neck.yaml --budget 10gflops"], head=8, tail=44,
                      keep=r"-> (rejected|stopped)", time_it=True, show_command=False),
    "pareto": Example(["nas pareto"], needs=["search"]),
    "export": Example(["nas export-best --out best.yaml", "cat best.yaml"], head=18, tail=6, needs=["search"]),
    "knee": Example(["nas export-best --pick knee --out knee.yaml"], needs=["search"]),
    # --onnx on a demo study of 3 one-epoch candidates; trial 3 has GE, FLA and GE after P3, P4, P5
    "export-onnx": Example([f"nas export-best {ONNX_DEMO} --trial 3 --out demo.yaml --onnx demo.onnx",
                            "grep '^# choices' demo.yaml"],
                           setup=[f"nas search --space search_spaces/neck.yaml --budget 10gflops {ONNX_DEMO} "
                                  f"--epochs 1 --imgsz 64 --trials 3"]),
    # `nas audit` at demo scale: a 2-epoch, 128 px study of 8 candidates, audited against 8-epoch training
    "audit": Example([f"nas audit {DEMO} --candidates 6 --seeds 1 --plot audit.png"], head=4, tail=31,
                     setup=[f"nas search --space search_spaces/neck.yaml --budget 10gflops {DEMO} --epochs 2 "
                            f"--imgsz 128 --trials 8"]),
    "pareto-noise": Example([f"nas pareto {DEMO}"], needs=["audit"]),
    # --weights: a stand-in for yolov5n.pt (no COCO weights can be downloaded here), pretrained by nas on another
    # synthetic task (8 classes, other seed) and saved as YOLOv5 saves a checkpoint; then a short fine-tuning search
    "search-weights": Example([f"nas search --space neck --budget 10gflops --weights yolov5n-demo.pt {FT} --epochs 2 "
                               f"--imgsz 128 --trials 4 --no-early-stop",
                               f"nas search --space neck --budget 10gflops {FT} --epochs 2 --imgsz 128 --trials 5 "
                               f"--no-early-stop"],
                              head=8, tail=14, setup=[PRETRAIN]),
    # the main command with --weights and the fine-tuning proxy's defaults (no --epochs/--imgsz), 5 minutes, one
    # worker so that it leaves the other core to the machine's other work
    "search-weights-default": Example(["nas search --space neck --budget 10gflops --weights yolov5n-demo.pt "
                                       "--study ftd --storage sqlite:///studies/ftd.db --timeout 5m --workers 1"],
                                      head=8, tail=20, time_it=True, setup=[PRETRAIN]),
    "evaluate-weights": Example([f"nas export-best {FT} --out ft.yaml",
                                 "nas evaluate ft.yaml --weights yolov5n-demo.pt --epochs 2"],
                                needs=["search-weights"]),
    # nas transfer: the stand-in checkpoint into a hand-edited yolov5n.yaml (SGE after layer 17)
    "transfer": Example(["nas transfer --weights yolov5n-demo.pt --cfg yolov5n_sge.yaml --out yolov5n_sge.pt"],
                        setup=[PRETRAIN_ONCE, SGE_YAML]),
    # export-best --weights on a demo study fine-tuned from the stand-in (3 one-epoch candidates at 64 px)
    "export-weights": Example([f"nas export-best {TX} --trial 1 --out best.yaml --weights yolov5n-demo.pt",
                               "grep -E '^# (choices|train)' best.yaml"],
                              setup=[PRETRAIN_ONCE, f"nas search --space neck --budget 10gflops --weights "
                                     f"yolov5n-demo.pt {TX} --epochs 1 --imgsz 64 --trials 3"]),
    # latency: the model and each layer; a space's latency table; a latency-budget search at demo scale, its front
    "profile-latency": Example(["nas profile yolov5n --latency"], head=3, tail=6),
    "space-latency": Example(["nas space search_spaces/sppf.yaml --latency"], head=0),
    "search-latency": Example([f"nas search --space neck --budget 150ms --objective latency {LAT} --epochs 1 "
                               f"--imgsz 64 --trials 4 --workers 1"], head=6, tail=14),
    "pareto-latency": Example([f"nas pareto {LAT} --plot front-latency.png"], needs=["search-latency"]),
    "audit-weights": Example([f"nas audit {FT} --candidates 3 --seeds 1 --reference-epochs 4"], head=3, tail=8,
                             needs=["search-weights"]),
}


def run(cmd: str, cwd: Path, env: dict[str, str]) -> tuple[str, float]:
    """Run one README command (a shell line) and return stdout+stderr as the user sees them."""
    start = time.monotonic()
    # one stream, unbuffered: stdout and stderr lines in the order a terminal shows them
    proc = subprocess.run(cmd, shell=True, cwd=cwd, env=dict(env, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    out = proc.stdout
    if proc.returncode not in (0,):
        print(f"warning: {cmd!r} exited {proc.returncode}", file=sys.stderr)
    return out.rstrip("\n") + "\n", time.monotonic() - start


def shorten(text: str, ex: Example) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    if not ex.head or len(lines) <= ex.head + ex.tail + 1:
        return "\n".join(lines)
    middle = lines[ex.head : len(lines) - ex.tail]
    kept = [line for line in middle if ex.keep and re.search(ex.keep, line)]
    out = lines[: ex.head] + ["..."]
    for line in kept:
        out += [line, "..."]
    return "\n".join(out + lines[len(lines) - ex.tail :])


def render(name: str, cwd: Path, env: dict[str, str]) -> str:
    ex = EXAMPLES[name]
    parts = []
    for cmd in ex.setup:
        print(f"[{name}] (setup) $ {cmd}", file=sys.stderr, flush=True)
        run(cmd, cwd, env)
    for cmd in ex.commands:
        print(f"[{name}] $ {cmd}", file=sys.stderr, flush=True)
        out, seconds = run(cmd, cwd, env)
        block = shorten(out, ex)
        if ex.time_it:
            block += f"\n(wall time {seconds / 60:.1f} min on this machine)"
        parts.append((f"$ {cmd}\n" if ex.show_command else "") + block)
    return "\n".join(parts)


def splice(readme: str, name: str, body: str) -> str:
    # the closing fence at a line start, so an empty block ends at its own fence, not the next example's
    pattern = re.compile(rf"(<!-- example: {re.escape(name)} -->\n```[a-z]*\n)(.*?)(^```\n<!-- /example -->)",
                         re.S | re.M)
    if not pattern.search(readme):
        raise SystemExit(f"error: README.md has no '<!-- example: {name} -->' block followed by a code fence")
    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(3), readme, count=1)


def markers(readme: str) -> list[str]:
    return re.findall(r"<!-- example: ([\w-]+) -->", readme)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="example names (default: all)")
    ap.add_argument("--check", action="store_true", help="only compare README markers with the table")
    ap.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a new temp dir)")
    args = ap.parse_args(argv)
    readme = README.read_text()
    found = markers(readme)
    missing, unknown = set(EXAMPLES) - set(found), set(found) - set(EXAMPLES)
    if (missing or unknown) and (args.check or not args.only):
        print(f"README markers missing: {sorted(missing)}; unknown: {sorted(unknown)}", file=sys.stderr)
        return 1
    if args.check:
        return 0
    names = args.only or list(EXAMPLES)
    order: list[str] = []
    for n in names:
        for dep in EXAMPLES[n].needs + [n]:
            if dep not in order:
                order.append(dep)
    cwd = args.workdir or Path(tempfile.mkdtemp(prefix="nas-readme-"))
    cwd.mkdir(parents=True, exist_ok=True)
    (cwd / "search_spaces").exists() or (cwd / "search_spaces").symlink_to(ROOT / "search_spaces")
    env = dict(os.environ, COLUMNS=str(WIDTH), TERM="dumb", NO_COLOR="1")
    for name in order:
        body = render(name, cwd, env)
        readme = splice(readme, name, body)
        README.write_text(readme)  # after each example, so a long run keeps what it finished
        print(f"[{name}] written to README.md", file=sys.stderr)
    print(f"done; scratch directory {cwd} ({shlex.quote(str(cwd))})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

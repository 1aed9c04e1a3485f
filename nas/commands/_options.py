"""Help texts of the options several commands share, so each reads the same everywhere."""

from collections.abc import Callable

import click

STORAGE_HELP = ("Study storage URL: journal:studies/nas.journal (the default, or $NAS_STORAGE), "
                "sqlite:///FILE.db, postgresql://... or mysql://...")
DEVICE_HELP = "Where torch runs (training, and latency measured in torch): cpu, cuda (the first GPU) or cuda:N."
STUDY_HELP = "Study name [default: the only study in the storage]."
SAMPLER_HELP = ("How candidates are proposed: tpe = multivariate TPE (learns from every scored and rejected "
                "candidate; best here), nsga2 = NSGA-II genetic search, gp = Gaussian-process Bayesian optimisation "
                "(needs scipy, ~1 s per trial), random = uniform sampling (a baseline).")
ONNX_HELP = ("Also write the model as ONNX to FILE.onnx (batch 1, fp32, seeded random weights), run it in "
             "onnxruntime on a seeded input and fail unless it matches torch (numpy.allclose, atol 1e-4, rtol "
             "1e-3). Needs the onnx extra: pip install 'nas[onnx]'.")
ONNX_OPSET_HELP = "ONNX opset for --onnx [default: 17; 18 with --onnx-exporter dynamo]."
ONNX_EXPORTER_HELP = ("torch.onnx exporter for --onnx: torchscript (torch.onnx.export(dynamo=False)) or dynamo "
                      "(torch.export based; needs onnxscript).")
WEIGHTS_HELP = ("Fine-tune from this checkpoint (YOLOv5 v6.x/v7.0 train.py's, or nas's; read without running its "
                "code): every model starts from its weights, each base layer in the layer that plays its role; "
                "the proxy then fine-tunes with the same hyperparameters, as YOLOv5's train.py --weights does.")
LATENCY_ON_HELP = "Where --latency measures: torch (eager, on --device) or onnxruntime (CPU)."
LATENCY_THREADS_HELP = "Threads --latency measures with (batch 1)."


def latency_options(latency_help: str) -> Callable:
    """--latency (its help: `latency_help`), --latency-on, --latency-threads and --device, as `nas profile` and
    `nas space` take them."""
    def apply(f: Callable) -> Callable:
        for option in reversed([
            click.option("--latency", "latency", is_flag=True, help=latency_help),
            click.option("--latency-on", "latency_on", default="torch", show_default=True,
                         metavar="torch|onnxruntime", help=LATENCY_ON_HELP),
            click.option("--latency-threads", "latency_threads", default=1, show_default=True, type=int,
                         help=LATENCY_THREADS_HELP),
            click.option("--device", default="cpu", show_default=True, metavar="DEVICE", help=DEVICE_HELP),
        ]):
            f = option(f)
        return f

    return apply

"""Proxy training: determinism, failure as a result, early stop, learning, and the `nas evaluate` command."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from click.testing import CliRunner

from nas.data import SyntheticConfig, load_data_yaml, load_split, synthetic_dataset
from nas.errors import NasError
from nas.model import build_model, load_cfg
from nas.train import StopTraining, evaluate, train_and_evaluate

IMGSZ = 64


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run faster on one thread, and far faster when other processes share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_cfg() -> dict:
    """yolov5n's layout at an eighth of the width: the real builder, a few thousand parameters."""
    cfg = load_cfg("yolov5n")
    cfg.pop("_source", None)
    cfg["width_multiple"] = 0.125
    return cfg


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    cache = tmp_path_factory.mktemp("nascache")
    return synthetic_dataset(SyntheticConfig(n_train=24, n_val=8, size=IMGSZ, nc=3), cache)


def run(data, **kw):
    args = dict(epochs=2, imgsz=IMGSZ, batch=8, seed=0)
    args.update(kw)
    return train_and_evaluate(args.pop("model", tiny_cfg()), data, **args)


def test_result_fields_and_history(tiny_data):
    seen = []
    r = run(tiny_data, callback=seen.append)
    assert r.status == "trained" and r.reason == ""
    assert r.epochs == 2 and len(r.history) == 2 and seen == r.history
    for rec in r.history:
        assert set(rec) == {"epoch", "box", "obj", "cls", "loss", "mAP50", "mAP50-95", "fitness", "time"}
        assert rec["loss"] == pytest.approx(rec["box"] + rec["obj"] + rec["cls"])
        assert rec["fitness"] == pytest.approx(0.1 * rec["mAP50"] + 0.9 * rec["mAP50-95"])
    best = max(r.history, key=lambda h: h["fitness"])
    assert r.fitness == best["fitness"] and r.best_epoch == best["epoch"]
    assert r.params == sum(p.numel() for p in build_model(tiny_cfg(), nc=3).parameters())
    assert r.wall_time > 0 and set(r.times) == {"data", "train", "eval"}
    d = r.to_dict()
    assert "mAP50-95" in d and "mAP50_95" not in d
    json.dumps(d)


def test_same_seed_same_result(tiny_data):
    a, b = run(tiny_data), run(tiny_data)
    assert a.history and a.status == b.status == "trained"
    for x, y in zip(a.history, b.history, strict=True):
        for k in ("box", "obj", "cls", "mAP50", "mAP50-95", "fitness"):
            assert x[k] == pytest.approx(y[k], abs=1e-6), k
    assert a.fitness == pytest.approx(b.fitness, abs=1e-6)
    c = run(tiny_data, seed=1)
    assert c.history[0]["loss"] != a.history[0]["loss"]


class Poison:
    """A forward hook on the first layer that starts returning NaN (or raising) after some calls."""

    def __init__(self, after: int, kind: str):
        self.calls, self.after, self.kind = 0, after, kind

    def __call__(self, module, inputs, output):
        self.calls += 1
        if module.training and self.calls > self.after:
            if self.kind == "nan":
                return output * float("nan")
            raise RuntimeError("boom in the candidate's forward")
        return output


@pytest.mark.parametrize("kind, words", [("nan", "non-finite loss at epoch 2"), ("raise", "RuntimeError: boom")])
def test_failures_become_results(tiny_data, kind, words):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(), nc=3)
    model.model[0].register_forward_hook(Poison(after=3, kind=kind))  # 3 batches per epoch at batch 8
    r = run(tiny_data, model=model, epochs=3)
    assert r.status == "failed" and words in r.reason
    assert len(r.history) == 1 and r.fitness == 0.0 and r.epochs == 1


def test_callback_can_stop_training(tiny_data):
    r = run(tiny_data, epochs=3, callback=lambda rec: rec["epoch"] < 1)
    assert r.status == "stopped" and r.epochs == 1 and "epoch 1" in r.reason
    assert r.fitness == r.history[0]["fitness"]

    def stop(rec):
        raise StopTraining("hopeless")

    r = run(tiny_data, epochs=3, callback=stop)
    assert r.status == "stopped" and r.reason == "hopeless" and r.epochs == 1

    def broken(rec):
        raise ValueError("a bug in the caller")

    with pytest.raises(ValueError, match="a bug in the caller"):
        run(tiny_data, epochs=1, callback=broken)

    def broken_progress(epoch, i, nb):
        raise ValueError("a bug in the progress display")

    with pytest.raises(ValueError, match="progress display"):
        run(tiny_data, epochs=1, batch_callback=broken_progress)


def test_user_errors_raise(tiny_data, tmp_path):
    with pytest.raises(NasError, match="multiple of the model's largest stride 32"):
        run(tiny_data, imgsz=80)
    with pytest.raises(NasError, match="unknown training hyperparameter"):
        run(tiny_data, hyp={"lr": 0.1})
    with pytest.raises(NasError, match="predicts 80 classes but the data has 3"):
        run(tiny_data, model=build_model(tiny_cfg()))
    with pytest.raises(NasError, match="data YAML not found"):
        run(tmp_path / "missing.yaml")
    if not torch.cuda.is_available():
        with pytest.raises(NasError, match="CUDA is not available"):
            run(tiny_data, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trains_on_cuda_in_fp16_and_auto(tiny_data):
    """On a GPU, fp16 AMP + channels_last (with its GradScaler) finishes, scores, and matches fp32 loosely;
    auto trains in fp32 there."""
    amp = run(tiny_data, device="cuda", precision="fp16")
    fp32 = run(tiny_data, device="cuda", precision="auto")
    assert amp.status == fp32.status == "trained", (amp.reason, fp32.reason)
    assert (amp.precision, fp32.precision) == ("fp16", "fp32") and amp.device.startswith("cuda")
    assert 0 <= amp.fitness <= 1 and "fitness" in amp.history[-1]
    losses = [r.history[0]["loss"] for r in (amp, fp32)]  # the first epoch: before trajectories can diverge
    assert all(math.isfinite(v) for v in losses) and losses[0] == pytest.approx(losses[1], rel=0.05), losses


def test_build_problems(tiny_data, monkeypatch):
    cfg = tiny_cfg()
    cfg["head"][2] = [[-1, 3], 1, "Concat", [1]]  # mismatched sizes: the builder names the layer (user error)
    with pytest.raises(NasError):
        run(tiny_data, model=cfg)

    def crash(*a, **k):
        raise RuntimeError("out of memory while building")

    monkeypatch.setattr("nas.train.trainer.build_model", crash)  # anything else while building: a failed candidate
    r = run(tiny_data)
    assert r.status == "failed" and r.reason == "model build: RuntimeError: out of memory while building"


# ---------------------------------------------------------------- precision and evaluation schedule


def test_precision_choice_by_cpu_feature(monkeypatch):
    from nas.train import precision as P

    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: True)
    auto = P.resolve_precision("auto", "cpu")
    assert (auto.name, auto.autocast_dtype, auto.channels_last, auto.grad_scaler) == (
        "bf16", torch.bfloat16, True, False)
    assert P.resolve_precision("bf16", "cpu") == auto
    assert P.resolve_precision("fp32", "cpu") == P.FP32 and P.FP32.autocast_dtype is None

    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: False)
    assert P.resolve_precision("auto", "cpu") == P.FP32
    with pytest.raises(NasError, match="no native bf16.*use --precision fp32"):
        P.resolve_precision("bf16", "cpu")
    with pytest.raises(NasError, match="fp16 is for CUDA.*--precision bf16"):
        P.resolve_precision("fp16", "cpu")
    with pytest.raises(NasError, match="'fp8' is unknown; use one of auto, fp32, bf16, fp16"):
        P.resolve_precision("fp8", "cpu")
    # resolving needs no GPU; auto is fp32 there (fp16 did not rank like fp32 on a GPU), fp16 on request
    assert P.resolve_precision("auto", "cuda") == P.FP32
    cuda = P.resolve_precision("fp16", "cuda")
    assert (cuda.name, cuda.autocast_dtype, cuda.channels_last, cuda.grad_scaler) == (
        "fp16", torch.float16, True, True)
    # the trainer refuses before loading anything
    with pytest.raises(NasError, match="no native bf16"):
        train_and_evaluate(tiny_cfg(), "missing.yaml", precision="bf16")


def test_native_bf16_detection_falls_back_to_cpuinfo_flags(monkeypatch):
    from nas.train import precision as P

    def broken():
        raise RuntimeError("probe changed")

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", broken, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    for flags, expected in (({"avx512f", "avx512_bf16"}, True), ({"amx_bf16"}, True), ({"avx512f", "avx2"}, False)):
        monkeypatch.setattr(P, "_cpuinfo_flags", lambda flags=flags: flags)
        P.cpu_has_native_bf16.cache_clear()
        assert P.cpu_has_native_bf16() is expected, flags
    P.cpu_has_native_bf16.cache_clear()


def _grad_reaching_first_input(cat, fmt) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(output, gradient handed to cat's first input, the output gradient) for a 4 + 8 channel cat."""
    a = torch.randn(2, 4, 5, 6).contiguous(memory_format=fmt).requires_grad_()
    b = torch.randn(2, 8, 5, 6).contiguous(memory_format=fmt).requires_grad_()
    xa, xb = a * 1, b * 1
    y = cat((xa, xb))
    seen = []
    xa.register_hook(seen.append)  # runs after any hook cat registered
    g = torch.randn_like(y)
    (y * g).sum().backward()
    torch.testing.assert_close(a.grad, g[:, :4])
    return y, seen[0], g


def test_concat_hands_dense_gradients_in_channels_last():
    """cat's backward gives channel slices with gaps in channels_last; cat_channels makes them dense."""
    from nas.model.common import cat_channels

    cl = torch.channels_last
    torch.manual_seed(0)
    y, plain, g = _grad_reaching_first_input(lambda xs: torch.cat(xs, 1), cl)
    torch.manual_seed(0)
    y2, dense, g2 = _grad_reaching_first_input(cat_channels, cl)
    torch.testing.assert_close(y2, y)
    torch.testing.assert_close(dense, plain)
    assert not plain.is_contiguous(memory_format=cl) and dense.is_contiguous(memory_format=cl)
    # NCHW slices are whole planes: left as torch.cat hands them
    _, nchw, _ = _grad_reaching_first_input(cat_channels, torch.contiguous_format)
    assert not nchw.is_contiguous() and nchw.stride(1) == 5 * 6


def all_blocks_cfg() -> dict:
    """tiny_cfg with every attention block in the backbone (same layer count and widths, so wiring holds)."""
    cfg = tiny_cfg()
    bb = cfg["backbone"]
    bb[2], bb[4], bb[6] = [-1, 1, "SGE", [128, 8]], [-1, 1, "GE", [256]], [-1, 1, "FLA", [512]]
    bb[8], bb[9] = [-1, 1, "BiFormer", [1024]], [-1, 1, "FocalModulation", [1024]]
    return cfg


def test_bf16_channels_last_training_with_every_block(tiny_data):
    from nas.train import Precision

    bf16 = Precision("bf16", torch.bfloat16, True)  # given resolved: runs (slowly) on any CPU
    torch.manual_seed(0)
    model = build_model(all_blocks_cfg(), nc=3)
    assert {"SGE", "GE", "FLA", "BiFormer", "FocalModulation"} <= {type(m).__name__ for m in model.model}
    evaluate(model, load_split(load_data_yaml(tiny_data), "val", IMGSZ))  # caches Detect's 5-d grids
    r = run(tiny_data, model=model, precision=bf16, epochs=1)  # moving those to channels_last must not fail
    ref = run(tiny_data, model=all_blocks_cfg(), epochs=1)
    assert r.status == "trained" and r.precision == "bf16" and ref.precision == "fp32", r.reason
    losses = [h["loss"] for h in r.history]
    assert all(math.isfinite(v) for v in losses) and len(losses) == 1
    # bf16 really ran (not bit-identical to fp32) and trains like fp32
    assert losses != [h["loss"] for h in ref.history]
    assert losses[0] == pytest.approx(ref.history[0]["loss"], rel=0.05)
    # weights stay float32, convolutions in channels_last
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.model[0].conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_eval_epochs_scores_only_chosen_epochs(tiny_data):
    every = run(tiny_data, epochs=3)
    some = run(tiny_data, epochs=3, eval_epochs={1})
    last = run(tiny_data, epochs=3, eval_epochs=lambda e: False)
    scored = {"mAP50", "mAP50-95", "fitness"}
    assert [scored <= set(h) for h in every.history] == [True, True, True]
    assert [scored <= set(h) for h in some.history] == [True, False, True]  # the last epoch always
    assert [scored <= set(h) for h in last.history] == [False, False, True]
    assert not scored & set(some.history[1]) and {"epoch", "box", "obj", "cls", "loss", "time"} <= set(some.history[1])
    # evaluation does not change training: same losses, same scores where scored
    for h_every, h_some in zip(every.history, some.history):
        assert h_some["loss"] == h_every["loss"]
        if "fitness" in h_some:
            assert h_some["fitness"] == h_every["fitness"]
    best = max((h for h in some.history if "fitness" in h), key=lambda h: h["fitness"])
    assert some.fitness == best["fitness"] and some.best_epoch == best["epoch"]
    assert last.fitness == every.history[-1]["fitness"] and last.best_epoch == 3
    with pytest.raises(NasError, match="whole epoch numbers"):
        run(tiny_data, eval_epochs=[1.5])


@pytest.mark.slow
def test_training_learns(tmp_path_factory):
    """Eight epochs (128 steps) on easy one-class synthetic data lift mAP far above the untrained model's."""
    cache = tmp_path_factory.mktemp("nascache_learn")
    cfg = SyntheticConfig(n_train=128, n_val=24, size=96, nc=1, difficulty=0.0)
    data = synthetic_dataset(cfg, cache)
    model_cfg = load_cfg("yolov5n")
    model_cfg.pop("_source", None)
    torch.manual_seed(0)
    untrained = evaluate(build_model(model_cfg, nc=1), load_split(load_data_yaml(data), "val", 96))
    r = train_and_evaluate(model_cfg, data, epochs=8, imgsz=96, batch=8, seed=0)
    assert r.status == "trained"
    assert untrained[0] < 0.05
    assert r.mAP50 > 0.4 and r.mAP50 > 10 * untrained[0], (untrained, [h["mAP50"] for h in r.history])
    assert r.history[-1]["loss"] < r.history[0]["loss"]


def test_cli_evaluate_json(tmp_path):
    from nas.cli import main

    model = tmp_path / "tiny.yaml"
    model.write_text(yaml.safe_dump(tiny_cfg()))
    data = synthetic_dataset(SyntheticConfig(n_train=16, n_val=4, size=IMGSZ, nc=2), tmp_path / "cache")
    res = CliRunner().invoke(
        main,
        ["evaluate", str(model), "--data", str(data), "--epochs", "1", "--imgsz", str(IMGSZ),
         "--batch", "8", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["status"] == "trained" and len(doc["history"]) == 1
    for k in ("fitness", "mAP50", "mAP50-95", "params", "gflops", "wall_time", "history"):
        assert k in doc
    assert math.isfinite(doc["fitness"])

    bad = CliRunner().invoke(main, ["evaluate", str(model), "--data", str(tmp_path / "none.yaml")])
    assert bad.exit_code == 2 and "error: data YAML not found" in bad.stderr

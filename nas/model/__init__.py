"""YOLOv5 model YAMLs (built-in names or paths) -> DetectionModel, and what a model costs (params, GFLOPs).

build.py reads and checks a model YAML and builds it; parse.py is YOLOv5's parse_model (YAML rows -> layers),
yolo.py its DetectionModel, detect.py its Detect head, common.py its layers; count.py counts a model, a module
or a block on the meta device.
"""

from nas.model.build import BUILTIN, CFG_DIR, build_model, load_cfg, model_source, parse_imgsz, read_yaml
from nas.model.count import BlockCost, Cost, LayerCost, at_multiples, block_costs, count, module_flops, thop_gflops
from nas.model.detect import Detect
from nas.model.parse import LayerInfo, layer_inputs, make_divisible, source_index
from nas.model.yolo import DetectionModel

__all__ = ["BUILTIN", "CFG_DIR", "BlockCost", "Cost", "Detect", "DetectionModel", "LayerCost", "LayerInfo",
           "at_multiples", "block_costs", "build_model", "count", "layer_inputs", "load_cfg", "make_divisible",
           "model_source", "module_flops", "parse_imgsz", "read_yaml", "source_index", "thop_gflops"]

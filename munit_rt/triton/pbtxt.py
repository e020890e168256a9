"""Triton `config.pbtxt` text: a small writer for protobuf text format and the two config shapes we emit.

No protobuf import at runtime: the structures are plain dicts and lists, written in the layout Triton's own
examples use. tests/test_triton.py parses every written file into `tritonclient.grpc.model_config_pb2
.ModelConfig` with `google.protobuf.text_format`, which is the schema check.

    Enum("TYPE_FP32")     written bare (enum value)
    Map({"k": "v"})       written as repeated `field { key: "k" value: "v" }` blocks (a proto map)
    dict                  a message: `field { ... }`
    list of dicts         repeated messages: `field [ { ... }, { ... } ]`
    list of scalars       repeated scalars: `field: [ 3, -1, -1 ]`
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

INDENT = "  "

# manifest dtype -> Triton data_type (model_config.proto DataType)
TRITON_DTYPES = {
    "float32": "TYPE_FP32", "float16": "TYPE_FP16", "float64": "TYPE_FP64", "bfloat16": "TYPE_BF16",
    "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
    "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL",
}


@dataclass(frozen=True)
class Enum:
    value: str


class Map(dict):
    """A proto map field (e.g. an ensemble step's input_map)."""


def _scalar(value: Any) -> str:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # names are ASCII identifiers; JSON escaping is valid text-format escaping
    raise TypeError(f"cannot write {type(value).__name__} into a pbtxt")


def _message_body(fields: Mapping[str, Any], depth: int) -> list[str]:
    pad = INDENT * depth
    lines: list[str] = []
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, Map):
            for key, item in value.items():
                lines += [f"{pad}{name} {{", f"{pad}{INDENT}key: {_scalar(key)}",
                          f"{pad}{INDENT}value: {_scalar(item)}", f"{pad}}}"]
        elif isinstance(value, dict):
            lines += _message(name, value, depth)
        elif isinstance(value, (list, tuple)):
            if value and all(isinstance(item, dict) for item in value):
                lines.append(f"{pad}{name} [")
                for index, item in enumerate(value):
                    block = _message("", item, depth + 1)
                    block[-1] += "," if index < len(value) - 1 else ""
                    lines += block
                lines.append(f"{pad}]")
            else:
                lines.append(f"{pad}{name}: [ {', '.join(_scalar(item) for item in value)} ]")
        else:
            lines.append(f"{pad}{name}: {_scalar(value)}")
    return lines


def _message(name: str, fields: Mapping[str, Any], depth: int) -> list[str]:
    pad = INDENT * depth
    opener = f"{pad}{name} {{" if name else f"{pad}{{"
    body = _message_body(fields, depth + 1)
    return [opener + " }"] if not body else [opener, *body, f"{pad}}}"]


def to_pbtxt(fields: Mapping[str, Any], comments: tuple[str, ...] = ()) -> str:
    """A top-level message (ModelConfig) as text, with `# comment` lines first."""
    return "".join(f"# {line}\n" for line in comments) + "\n".join(_message_body(fields, 0)) + "\n"


# ----------------------------------------------------------------------------------------- model configs


def tensor_fields(tensor) -> dict[str, Any]:
    """A `ModelInput`/`ModelOutput` (the batch dim is implicit: max_batch_size > 0)."""
    return {"name": tensor.name, "data_type": Enum(TRITON_DTYPES[tensor.dtype]), "dims": list(tensor.dims)}


def model_config(name: str, platform: str, max_batch: int, inputs, outputs, instances: int, kind: str) -> dict:
    """One graph: a backend model with dynamic batching and `instances` instances of `kind`."""
    return {
        "name": name,
        "platform": platform,
        "max_batch_size": max_batch,
        "input": [tensor_fields(t) for t in inputs],
        "output": [tensor_fields(t) for t in outputs],
        "instance_group": [{"count": instances, "kind": Enum(kind)}],
        "dynamic_batching": {},
    }


def ensemble_config(name: str, max_batch: int, inputs, outputs, steps) -> dict:
    """An ensemble: no instances and no batcher of its own (its steps' models batch), steps in order."""
    return {
        "name": name,
        "platform": "ensemble",
        "max_batch_size": max_batch,
        "input": [tensor_fields(t) for t in inputs],
        "output": [tensor_fields(t) for t in outputs],
        "ensemble_scheduling": {
            "step": [{"model_name": step.model, "model_version": -1, "input_map": Map(step.input_map),
                      "output_map": Map(step.output_map)} for step in steps],
        },
    }

"""What the bundle reader needs to know of an ONNX file, from a minimal protobuf walk (no `onnx` package):
does it reference external data, and what are its graph's real inputs and outputs.

A tensor in an ONNX file may keep its values in another file (`data_location: EXTERNAL` with
`external_data {key: "location" value: "../../somewhere"}`); ONNX Runtime and TensorRT's parser then open that
path relative to the model file (or, for a model loaded from bytes, the working directory). munit-rt bundles
are self-contained (the exporter never writes external data), so the bundle reader refuses any graph with an
external reference before a backend sees it: nothing outside the bundle is ever opened, whatever the
installed ONNX Runtime version checks itself.

Tensors can sit in several places, all walked (field numbers from onnx/onnx.proto, IR version 10):
  ModelProto.graph(7), .training_info(20) -> initialization(1)/algorithm(2), .functions(25)
  GraphProto.node(1), .initializer(5), .sparse_initializer(15)
  NodeProto.attribute(5); FunctionProto.node(7), .attribute_proto(11)
  AttributeProto.t(5), .g(6), .tensors(10), .graphs(11), .sparse_tensor(22), .sparse_tensors(23)
  SparseTensorProto.values(1), .indices(2)
  TensorProto.external_data(13) {key(1), value(2)}, .data_location(14) (EXTERNAL = 1)
Other fields are skipped by their wire type without being decoded (raw tensor bytes cost nothing).

Graph I/O (`graph_io`): GraphProto.input(11) / .output(12) are ValueInfoProto {name(1), type(2)}; TypeProto
.tensor_type(1) {elem_type(1), shape(2)}; TensorShapeProto.dim(1) {dim_value(1) | dim_param(2)}. Inputs that
are also initializers (GraphProto.initializer(5), TensorProto.name(8)) are weights, not feeds (IR < 4 lists
them as inputs), and are left out.

The walk follows protobuf's own parsing rules, so it sees exactly the tensors ONNX Runtime would: unknown
fields and groups are skipped, a known field with an unexpected wire type is skipped (protobuf treats it as
unknown), and bytes that are not a well-formed message raise MalformedModel, as protobuf's all-or-nothing
parse fails on them too (so such a file can make no runtime open anything). Only nesting deeper than
protobuf's default recursion limit is refused outright (NestingTooDeep), whatever a parser's limit might be.
"""
from __future__ import annotations

from dataclasses import dataclass

_VARINT, _FIXED64, _LEN, _START_GROUP, _END_GROUP, _FIXED32 = 0, 1, 2, 3, 4, 5
_EXTERNAL = 1
MAX_DEPTH = 100  # protobuf's own default recursion limit

# message -> {field number: message type of that (length-delimited) field}; only fields that can hold tensors
_SCHEMA: dict[str, dict[int, str]] = {
    "Model": {7: "Graph", 20: "TrainingInfo", 25: "Function"},
    "TrainingInfo": {1: "Graph", 2: "Graph"},
    "Graph": {1: "Node", 5: "Tensor", 15: "SparseTensor"},
    "Node": {5: "Attribute"},
    "Function": {7: "Node", 11: "Attribute"},
    "Attribute": {5: "Tensor", 6: "Graph", 10: "Tensor", 11: "Graph", 22: "SparseTensor", 23: "SparseTensor"},
    "SparseTensor": {1: "Tensor", 2: "Tensor"},
}


class MalformedModel(ValueError):
    """Not a well-formed protobuf message: no protobuf parser (ONNX Runtime's, TensorRT's) accepts it either."""


class NestingTooDeep(MalformedModel):
    """Messages nested deeper than MAX_DEPTH: refused rather than trusting every parser to stop there too."""


def external_data_locations(data: bytes) -> list[str]:
    """The external-data `location` of every tensor that keeps its values outside `data` (a serialized
    ModelProto); a tensor marked EXTERNAL without a location is listed as ''. Empty: self-contained.
    Raises MalformedModel when `data` is not a well-formed protobuf message."""
    found: list[str] = []
    _walk(memoryview(data), "Model", 0, found)
    return found


def _skip_group(buf: memoryview, pos: int, number: int, depth: int) -> int:
    """Position after the END_GROUP matching a START_GROUP of field `number` (protobuf skips groups whole)."""
    if depth > MAX_DEPTH:
        raise NestingTooDeep(f"groups nested deeper than {MAX_DEPTH}")
    while True:
        key, pos = _varint(buf, pos)
        inner, wire = key >> 3, key & 7
        if inner == 0:
            raise MalformedModel("field number 0")
        if wire == _END_GROUP:
            if inner != number:
                raise MalformedModel("mismatched end of group")
            return pos
        pos = _skip(buf, pos, inner, wire, depth + 1)


def _skip(buf: memoryview, pos: int, number: int, wire: int, depth: int) -> int:
    if wire == _VARINT:
        return _varint(buf, pos)[1]
    if wire == _LEN:
        length, pos = _varint(buf, pos)
        end = pos + length
    elif wire in (_FIXED64, _FIXED32):
        end = pos + (8 if wire == _FIXED64 else 4)
    elif wire == _START_GROUP:
        return _skip_group(buf, pos, number, depth)
    else:  # a stray END_GROUP, or wire types 6 and 7, which do not exist
        raise MalformedModel(f"wire type {wire}")
    if end > len(buf):
        raise MalformedModel("field runs past the end")
    return end


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise MalformedModel("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise MalformedModel("varint longer than 10 bytes")


def _fields(buf: memoryview, depth: int = 0):
    """(field number, wire type, value): an int for varints, a memoryview for length-delimited fields, None
    for the rest (fixed-width values and groups are skipped)."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise MalformedModel("field number 0")
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _LEN:
            start = _varint(buf, pos)[1]
            pos = _skip(buf, pos, number, wire, depth)
            value = buf[start:pos]
        else:
            pos, value = _skip(buf, pos, number, wire, depth), None
        yield number, wire, value


def _walk(buf: memoryview, message: str, depth: int, found: list[str]) -> None:
    if depth > MAX_DEPTH:
        raise NestingTooDeep(f"messages nested deeper than {MAX_DEPTH}")
    if message == "Tensor":
        _tensor(buf, found)
        return
    children = _SCHEMA[message]
    for number, wire, value in _fields(buf, depth):
        child = children.get(number)
        if child is not None and wire == _LEN:  # another wire type: protobuf keeps it as an unknown field
            _walk(value, child, depth + 1, found)


def _tensor(buf: memoryview, found: list[str]) -> None:
    external, location = False, None
    for number, wire, value in _fields(buf):
        if number == 14 and wire == _VARINT:  # data_location (any EXTERNAL counts, even if a later one resets it)
            external = external or value == _EXTERNAL
        elif number == 13 and wire == _LEN:  # external_data: StringStringEntryProto (any entry counts)
            external = True
            entry = {n: bytes(v) for n, w, v in _fields(value) if w == _LEN}
            if entry.get(1) == b"location":
                location = entry.get(2, b"").decode("utf-8", "backslashreplace")
    if external:
        found.append(location or "")


# ONNX TensorProto.DataType -> the manifest's dtype names
ELEM_TYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
              11: "float64", 16: "bfloat16"}


@dataclass(frozen=True)
class ValueInfo:
    """One graph input or output as the file declares it: dims are ints, strings (symbolic) or None (unknown)."""

    name: str
    dtype: str | None  # None: an element type munit-rt does not use, or none declared
    shape: tuple[int | str | None, ...] | None  # None: no shape declared


def graph_io(data: bytes) -> tuple[list[ValueInfo], list[ValueInfo]]:
    """(inputs, outputs) of a serialized ModelProto's main graph; MalformedModel if it is not one."""
    graph = None
    for number, wire, value in _fields(memoryview(data)):
        if number == 7 and wire == _LEN:
            graph = value  # protobuf keeps the last occurrence of a singular field
    if graph is None:
        raise MalformedModel("no graph")
    inputs, outputs, weights = [], [], set()
    for number, wire, value in _fields(graph):
        if wire != _LEN:
            continue
        if number == 11:
            inputs.append(_value_info(value))
        elif number == 12:
            outputs.append(_value_info(value))
        elif number == 5:
            weights.update(_text(v) for n, w, v in _fields(value) if n == 8 and w == _LEN)
    return [v for v in inputs if v.name not in weights], outputs


def _value_info(buf: memoryview) -> ValueInfo:
    name, dtype, shape = "", None, None
    for number, wire, value in _fields(buf):
        if number == 1 and wire == _LEN:
            name = _text(value)
        elif number == 2 and wire == _LEN:
            for n, w, tensor in _fields(value):
                if n == 1 and w == _LEN:  # tensor_type
                    dtype, shape = _tensor_type(tensor)
    return ValueInfo(name, dtype, shape)


def _tensor_type(buf: memoryview) -> tuple[str | None, tuple | None]:
    dtype, shape = None, None
    for number, wire, value in _fields(buf):
        if number == 1 and wire == _VARINT:
            dtype = ELEM_TYPES.get(value)
        elif number == 2 and wire == _LEN:
            shape = tuple(_dim(dim) for n, w, dim in _fields(value) if n == 1 and w == _LEN)
    return dtype, shape


def _dim(buf: memoryview) -> int | str | None:
    dim: int | str | None = None
    for number, wire, value in _fields(buf):
        if number == 1 and wire == _VARINT:
            dim = value if value < 1 << 63 else value - (1 << 64)  # int64 two's complement
        elif number == 2 and wire == _LEN:
            dim = _text(value)
    return dim


def _text(buf: memoryview) -> str:
    return bytes(buf).decode("utf-8", "backslashreplace")

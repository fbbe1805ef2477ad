"""Read a TensorFlow frozen graph (``GraphDef`` protobuf) without TensorFlow or OpenCV.

A frozen graph is one ``GraphDef`` message: its nodes carry a name, an op, their inputs
and attributes; the weights are ``Const`` nodes whose ``value`` attribute holds a
``TensorProto``. This module decodes the protobuf wire format directly (varints and
length-delimited fields, about a hundred lines) because the message definitions ship
only with TensorFlow, and OpenCV 5 no longer reads TensorFlow graphs. It reads what a
weight converter needs: every node's op, inputs and attributes (scalars, strings, lists,
shapes, tensors), and ``Const`` tensors as NumPy arrays.

Field numbers (tensorflow/core/framework/*.proto): ``GraphDef.node = 1``;
``NodeDef``: name 1, op 2, input 3, device 4, attr 5 (map<string, AttrValue>);
``AttrValue``: list 1, s 2, i 3, f 4, b 5, type 6, shape 7, tensor 8;
``TensorProto``: dtype 1, tensor_shape 2, tensor_content 4, float_val 5, double_val 6,
int_val 7, string_val 8, int64_val 10, bool_val 11, half_val 13; ``TensorShapeProto.dim = 2``,
``Dim.size = 1``.

Example:
    >>> graph = read_graph("frozen_inference_graph.pb")  # doctest: +SKIP
    >>> graph.const("FeatureExtractor/MobilenetV2/Conv/weights").shape  # doctest: +SKIP
    (3, 3, 3, 32)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cvpipe.errors import CheckpointError

# TensorFlow DataType enum → NumPy dtype (types.proto).
_DTYPES: dict[int, Any] = {
    1: np.float32,
    2: np.float64,
    3: np.int32,
    4: np.uint8,
    5: np.int16,
    6: np.int8,
    9: np.int64,
    10: np.bool_,
    19: np.float16,
}


class _Reader:
    """Protobuf wire-format fields of one message: ``(field number, wire type, value)``."""

    def __init__(self, data: bytes | memoryview, where: str) -> None:
        self.data = memoryview(data)
        self.where = where

    def _varint(self, pos: int) -> tuple[int, int]:
        result = shift = 0
        data = self.data
        while True:
            if pos >= len(data):
                raise CheckpointError(f"{self.where}: truncated protobuf (varint past the end)")
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result, pos
            shift += 7

    def fields(self) -> list[tuple[int, int, Any]]:
        out: list[tuple[int, int, Any]] = []
        pos, end = 0, len(self.data)
        while pos < end:
            key, pos = self._varint(pos)
            num, wire = key >> 3, key & 7
            value: Any
            if wire == 0:
                value, pos = self._varint(pos)
            elif wire == 1:
                value, pos = self.data[pos : pos + 8], pos + 8
            elif wire == 2:
                size, pos = self._varint(pos)
                value, pos = self.data[pos : pos + size], pos + size
            elif wire == 5:
                value, pos = self.data[pos : pos + 4], pos + 4
            else:
                raise CheckpointError(
                    f"{self.where}: not a TensorFlow GraphDef (protobuf wire type {wire} at byte {pos})"
                )
            if pos > end:
                raise CheckpointError(
                    f"{self.where}: truncated protobuf (field {num} past the end)"
                )
            out.append((num, wire, value))
        return out


def _packed_varints(data: memoryview, where: str) -> list[int]:
    reader = _Reader(data, where)
    out, pos = [], 0
    while pos < len(data):
        value, pos = reader._varint(pos)
        out.append(value)
    return out


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


@dataclass
class Node:
    """One ``NodeDef``: name, op, inputs (``^name`` control inputs kept) and attributes."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attr: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    """The nodes of a frozen graph by name, in file order."""

    nodes: dict[str, Node]
    path: str

    def const(self, name: str) -> np.ndarray:
        """The value of ``Const`` node ``name`` (through ``Identity`` nodes).

        Raises:
            CheckpointError: no such node, or it is not a constant tensor.
        """
        node = self.nodes.get(name)
        while node is not None and node.op == "Identity" and node.inputs:
            node = self.nodes.get(node.inputs[0])
        if node is None or node.op != "Const" or not isinstance(node.attr.get("value"), np.ndarray):
            raise CheckpointError(f"{self.path}: no constant tensor {name!r} in the graph")
        value: np.ndarray = node.attr["value"]
        return value

    def has(self, name: str) -> bool:
        return name in self.nodes


def _tensor(data: memoryview, where: str) -> np.ndarray:
    dtype_id, shape, content = 1, [], None
    values: list[Any] = []
    for num, wire, v in _Reader(data, where).fields():
        if num == 1:
            dtype_id = v
        elif num == 2:
            shape = _shape(v, where)
        elif num == 4:
            content = bytes(v)
        elif num == 8:  # string_val
            values.append(bytes(v))
        elif num == 5:  # float_val
            values += (
                list(struct.unpack(f"<{len(v) // 4}f", v))
                if wire == 2
                else list(struct.unpack("<f", v))
            )
        elif num == 6:  # double_val
            values += (
                list(struct.unpack(f"<{len(v) // 8}d", v))
                if wire == 2
                else list(struct.unpack("<d", v))
            )
        elif num in (7, 10, 11, 13):  # int_val, int64_val, bool_val, half_val (varints)
            ints = _packed_varints(v, where) if wire == 2 else [v]
            if num == 13:
                values += list(np.array(ints, np.uint16).view(np.float16))
            else:
                values += [_signed(i) for i in ints]
    if dtype_id == 7:  # DT_STRING
        return np.array(values, dtype=object)
    dtype = _DTYPES.get(dtype_id)
    if dtype is None:
        raise CheckpointError(f"{where}: unsupported tensor dtype id {dtype_id}")
    count = int(np.prod(shape)) if shape else 1
    if content is not None:
        return np.frombuffer(content, dtype=dtype).reshape(shape).copy()
    arr = np.array(values, dtype=dtype)
    if arr.size == count:
        return arr.reshape(shape)
    if arr.size == 1 or arr.size == 0:  # TF stores a splat as one value
        return np.full(shape, arr[0] if arr.size else 0, dtype=dtype)
    raise CheckpointError(f"{where}: tensor has {arr.size} values for shape {shape}")


def _shape(data: memoryview, where: str) -> list[int]:
    dims = []
    for num, _, v in _Reader(data, where).fields():
        if num == 2:
            size = 0
            for n2, _, v2 in _Reader(v, where).fields():
                if n2 == 1:
                    size = _signed(v2)
            dims.append(size)
    return dims


def _attr_value(data: memoryview, where: str) -> Any:
    for num, _, v in _Reader(data, where).fields():
        if num == 1:
            return _attr_list(v, where)
        if num == 2:
            return bytes(v).decode("utf-8", "replace")
        if num == 3:
            return _signed(v)
        if num == 4:
            return struct.unpack("<f", v)[0]
        if num == 5:
            return bool(v)
        if num == 6:
            return int(v)
        if num == 7:
            return _shape(v, where)
        if num == 8:
            return _tensor(v, where)
    return None


def _attr_list(data: memoryview, where: str) -> list[Any]:
    out: list[Any] = []
    for num, wire, v in _Reader(data, where).fields():
        if num == 2:
            out.append(bytes(v).decode("utf-8", "replace"))
        elif num == 3:
            out += [_signed(i) for i in _packed_varints(v, where)] if wire == 2 else [_signed(v)]
        elif num == 4:
            out += (
                list(struct.unpack(f"<{len(v) // 4}f", v))
                if wire == 2
                else list(struct.unpack("<f", v))
            )
    return out


def _node(data: memoryview, where: str) -> Node:
    node = Node("", "")
    for num, _, v in _Reader(data, where).fields():
        if num == 1:
            node.name = bytes(v).decode("utf-8")
        elif num == 2:
            node.op = bytes(v).decode("utf-8")
        elif num == 3:
            node.inputs.append(bytes(v).decode("utf-8"))
        elif num == 5:
            key, value = "", None
            for n2, _, v2 in _Reader(v, where).fields():
                if n2 == 1:
                    key = bytes(v2).decode("utf-8")
                elif n2 == 2:
                    value = v2
            if value is not None:
                node.attr[key] = _attr_value(value, f"{where} [{node.name}.{key}]")
    return node


def read_graph(path: str | Path) -> Graph:
    """Parse a TensorFlow frozen graph (``GraphDef``, binary protobuf).

    Args:
        path: the ``.pb`` file.

    Returns:
        A :class:`Graph` whose nodes keep file order.

    Raises:
        CheckpointError: the file is missing or not a binary ``GraphDef``.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: TensorFlow graph file not found")
    where = str(p)
    nodes: dict[str, Node] = {}
    for num, wire, v in _Reader(p.read_bytes(), where).fields():
        if num == 1 and wire == 2:
            node = _node(v, where)
            nodes[node.name] = node
    if not nodes:
        raise CheckpointError(f"{p}: no nodes found; expected a binary TensorFlow GraphDef (.pb)")
    return Graph(nodes, where)

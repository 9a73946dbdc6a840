"""OTLP `.proto` text for ClickHouse's Protobuf input format, generated from the installed descriptors.

`opentelemetry-proto` ships compiled descriptors, not `.proto` files. ClickHouse needs the schema as
text (passed inline with `format_schema_source='string'`) and cannot follow recursive messages, so
`AnyValue` is unrolled to a fixed depth: below it, nested arrays and maps arrive as raw bytes. Fields
named as raw arrive as their wire bytes too, whatever their type, for the ingest views to decode.
"""

from __future__ import annotations

from functools import cache

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

# How many times one message type may appear on a path before its field degrades to `bytes`.
MAX_REPEAT = 2

_SCALARS = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_SINT32: "sint32",
    FieldDescriptor.TYPE_SINT64: "sint64",
    FieldDescriptor.TYPE_FIXED32: "fixed32",
    FieldDescriptor.TYPE_FIXED64: "fixed64",
    FieldDescriptor.TYPE_SFIXED32: "sfixed32",
    FieldDescriptor.TYPE_SFIXED64: "sfixed64",
    FieldDescriptor.TYPE_DOUBLE: "double",
    FieldDescriptor.TYPE_FLOAT: "float",
    FieldDescriptor.TYPE_ENUM: "int32",  # wire-compatible; ClickHouse stores the number
}


def _cyclic(root: Descriptor) -> set[str]:
    """Full names of the message types that can contain themselves."""
    edges: dict[str, set[str]] = {}

    def collect(desc: Descriptor) -> None:
        if desc.full_name in edges:
            return
        edges[desc.full_name] = {f.message_type.full_name for f in desc.fields if f.message_type}
        for f in desc.fields:
            if f.message_type:
                collect(f.message_type)

    collect(root)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    return {name for name in edges if reaches(name, name)}


def _render(root: Descriptor, raw: tuple[str, ...]) -> tuple[str, str]:
    """Every message reachable from `root` as a top-level message, unrolled where it recurses; the fields
    at the dotted paths in `raw` (field names from `root`) declared `bytes`."""
    cyclic = _cyclic(root)
    raw_paths = [tuple(path.split(".")) for path in raw]
    names: dict[tuple, str] = {}
    bodies: list[str] = []

    def visit(desc: Descriptor, path: tuple[str, ...], fields: tuple[str, ...]) -> str:
        below = frozenset(r[len(fields):] for r in raw_paths if r[:len(fields)] == fields)
        key = (desc.full_name, tuple(p for p in path if p in cyclic), below)
        if key in names:
            return names[key]
        base = desc.full_name.replace(".", "_")
        name = base if base not in names.values() else f"{base}_{len(names)}"
        names[key] = name
        path = (*path, desc.full_name)
        lines = []
        for field in desc.fields:
            label = "repeated " if field.is_repeated else ""
            sub = field.message_type
            if (field.name,) in below:
                ftype = "bytes"  # the same wire format as a string or an embedded message
            elif sub is None:
                ftype = _SCALARS[field.type]
            elif path.count(sub.full_name) >= MAX_REPEAT:
                ftype = "bytes"
            else:
                ftype = visit(sub, path, (*fields, field.name))
            lines.append(f"  {label}{ftype} {field.name} = {field.number};")
        bodies.append(f"message {name} {{\n" + "\n".join(lines) + "\n}\n")
        return name

    top = visit(root, (), ())
    return 'syntax = "proto3";\n\n' + "\n".join(bodies), top


@cache
def format_schema(root: Descriptor, raw: tuple[str, ...] = ()) -> tuple[str, str]:
    """(`.proto` text, top-level message name) for `root`, the fields at the paths in `raw` as bytes; cached."""
    return _render(root, raw)


def lenient_message_class(root: Descriptor) -> type[Message]:
    """`root` with every `string` field declared as `bytes` (the same wire format).

    Parsing with it checks the whole structure of a request, like the real class, but accepts
    invalid UTF-8 in strings, which ClickHouse stores as bytes anyway; so one bad attribute value
    does not cost the rest of the request.
    """
    package = "llmloop.lenient"
    file = descriptor_pb2.FileDescriptorProto(name=f"llmloop/lenient/{root.full_name}.proto", package=package,
                                              syntax="proto3")
    names: dict[str, str] = {}

    def add(desc: Descriptor) -> str:
        if desc.full_name in names:
            return names[desc.full_name]
        name = names[desc.full_name] = desc.full_name.replace(".", "_")
        message = file.message_type.add(name=name)
        for oneof in desc.oneofs:  # kept: presence (an AnyValue's int_value 0) survives re-encoding
            message.oneof_decl.add(name=oneof.name)
        for field in desc.fields:
            proto = message.field.add(
                name=field.name, number=field.number,
                type=FieldDescriptor.TYPE_BYTES if field.type == FieldDescriptor.TYPE_STRING
                else FieldDescriptor.TYPE_INT32 if field.type == FieldDescriptor.TYPE_ENUM else field.type,
                label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED if field.is_repeated
                else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
            if field.containing_oneof is not None:
                proto.oneof_index = desc.oneofs.index(field.containing_oneof)
            if field.message_type is not None:
                proto.type_name = f".{package}.{add(field.message_type)}"
        return name

    top = add(root)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{top}"))

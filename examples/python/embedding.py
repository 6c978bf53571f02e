"""The crossmodal `embedding` type for psycopg 3, in its text and binary forms.

Text form: pgvector's, '[1,2.5,-3]'.  Binary form: int16 dimensions, int16
reserved (0), then the float4 elements, all in network byte order.

    conn = psycopg.connect()
    register_embedding(conn)          # after CREATE EXTENSION crossmodal
    conn.execute("SELECT %t", [Embedding([1, 2, 3])])   # sent in the text form
    conn.execute("SELECT %b", [Embedding([1, 2, 3])])   # sent in the binary form
"""
import struct

from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo


class Embedding(tuple):
    """An embedding as a tuple of floats."""

    def float4(self):
        """The values as the float4 the server stores (bytes, native order)."""
        return struct.pack(f"{len(self)}f", *self)

    def to_text(self):
        return "[" + ",".join(repr(float(x)) for x in self) + "]"


def parse_text(data):
    text = bytes(data).decode("ascii").strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError(f"not an embedding: {text[:40]!r}")
    return Embedding(float(x) for x in text[1:-1].split(","))


def parse_binary(data):
    data = bytes(data)
    dims, reserved = struct.unpack_from(">hh", data)
    if dims < 1 or reserved != 0 or len(data) != 4 + 4 * dims:
        raise ValueError("malformed binary embedding")
    return Embedding(struct.unpack_from(f">{dims}f", data, 4))


class EmbeddingTextDumper(Dumper):
    format = Format.TEXT

    def dump(self, obj):
        return obj.to_text().encode("ascii")


class EmbeddingBinaryDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj):
        return struct.pack(f">hh{len(obj)}f", len(obj), 0, *obj)


class EmbeddingTextLoader(Loader):
    format = Format.TEXT

    def load(self, data):
        return parse_text(data)


class EmbeddingBinaryLoader(Loader):
    format = Format.BINARY

    def load(self, data):
        return parse_binary(data)


def register_embedding(conn):
    """Teach a connection the embedding type, both forms.

    Parameters: an Embedding goes in the text form with a %t placeholder and
    in the binary form with %b (%s lets psycopg choose).  Results come back as
    Embedding in either form (a cursor made with binary=True asks for binary
    results)."""
    info = TypeInfo.fetch(conn, "embedding")
    if info is None:
        raise RuntimeError("type embedding not found: CREATE EXTENSION crossmodal first")
    for dumper in (EmbeddingTextDumper, EmbeddingBinaryDumper):
        conn.adapters.register_dumper(Embedding, type(dumper.__name__, (dumper,), {"oid": info.oid}))
    conn.adapters.register_loader(info.oid, EmbeddingTextLoader)
    conn.adapters.register_loader(info.oid, EmbeddingBinaryLoader)

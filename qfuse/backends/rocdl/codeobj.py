"""Reading an AMDGPU code object (hsaco): its ELF header, kernel descriptors and the
``amdhsa.kernels`` metadata, with nothing but the standard library.

The metadata is the ``NT_AMDGPU_METADATA`` note (name ``AMDGPU``, type 32), a MessagePack
map; :func:`msgpack_load` decodes the subset it uses (maps, arrays, strings, integers,
floats, booleans, nil, bin). The launcher's argument packing is tested against it: each
explicit argument's offset and size, and the kernarg segment size.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["CodeObject", "read_code_object", "msgpack_load", "EM_AMDGPU", "MACH"]

EM_AMDGPU = 224
#: EF_AMDGPU_MACH values (the low byte of e_flags)
MACH = {"gfx942": 0x04C, "gfx950": 0x04F}
_NT_AMDGPU_METADATA = 32


@dataclass
class CodeObject:
    machine: int
    mach: int                  # EF_AMDGPU_MACH
    kernel_descriptors: list   # names of the ``<kernel>.kd`` symbols
    metadata: dict             # the decoded note (``amdhsa.kernels``, ``amdhsa.version``)

    def kernel(self, name: str) -> dict:
        for k in self.metadata.get("amdhsa.kernels", []):
            if k.get(".name") == name:
                return k
        raise KeyError(name)


def read_code_object(data: bytes) -> CodeObject:
    """The header, ``.kd`` symbols and metadata of an hsaco; a ``ValueError`` for any
    file that is not a well-formed 64-bit ELF (a damaged stored code object)."""
    if data[:4] != b"\x7fELF" or len(data) < 64 or data[4] != 2:
        raise ValueError("not a 64-bit ELF file")
    try:
        return _read(data)
    except (struct.error, IndexError, ZeroDivisionError, UnicodeDecodeError, TypeError,
            RecursionError) as e:
        raise ValueError(f"a damaged ELF file ({type(e).__name__}: {e})") from None


def _read(data: bytes) -> CodeObject:
    machine = struct.unpack_from("<H", data, 18)[0]
    flags = struct.unpack_from("<I", data, 48)[0]
    shoff = struct.unpack_from("<Q", data, 40)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 58)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                for i in range(shnum)]
    kds, meta = [], {}
    for name, stype, _, _, off, size, link, _, _, entsize in sections:
        if stype in (2, 11):                      # SHT_SYMTAB, SHT_DYNSYM
            strtab = sections[link]
            for j in range(size // entsize):
                st_name = struct.unpack_from("<I", data, off + j * entsize)[0]
                sym = _cstr(data, strtab[4] + st_name)
                if sym.endswith(".kd") and sym not in kds:
                    kds.append(sym)
        elif stype == 7:                          # SHT_NOTE
            meta.update(_notes(data[off:off + size]))
    return CodeObject(machine, flags & 0xFF, kds, meta)


def _cstr(data: bytes, at: int) -> str:
    return data[at:data.index(b"\0", at)].decode()


def _notes(blob: bytes) -> dict:
    out, at = {}, 0
    while at + 12 <= len(blob):
        namesz, descsz, ntype = struct.unpack_from("<III", blob, at)
        at += 12
        name = blob[at:at + namesz].rstrip(b"\0")
        at += (namesz + 3) & ~3
        desc = blob[at:at + descsz]
        at += (descsz + 3) & ~3
        if name == b"AMDGPU" and ntype == _NT_AMDGPU_METADATA:
            out.update(msgpack_load(desc))
    return out


def msgpack_load(data: bytes):
    """Decode one MessagePack value (the subset code object metadata uses)."""
    value, _ = _unpack(data, 0)
    return value


def _unpack(d: bytes, i: int):
    b = d[i]
    i += 1
    if b <= 0x7F:
        return b, i
    if b >= 0xE0:
        return b - 0x100, i
    if 0x80 <= b <= 0x8F:
        return _map(d, i, b & 0x0F)
    if 0x90 <= b <= 0x9F:
        return _array(d, i, b & 0x0F)
    if 0xA0 <= b <= 0xBF:
        n = b & 0x1F
        return d[i:i + n].decode(), i + n
    fixed = {0xC0: None, 0xC2: False, 0xC3: True}
    if b in fixed:
        return fixed[b], i
    sized = {0xCC: "B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: "b", 0xD1: ">h",
             0xD2: ">i", 0xD3: ">q", 0xCA: ">f", 0xCB: ">d"}
    if b in sized:
        fmt = sized[b]
        return struct.unpack_from(fmt, d, i)[0], i + struct.calcsize(fmt)
    lengths = {0xD9: ("B", "str"), 0xDA: (">H", "str"), 0xDB: (">I", "str"),
               0xC4: ("B", "bin"), 0xC5: (">H", "bin"), 0xC6: (">I", "bin"),
               0xDC: (">H", "arr"), 0xDD: (">I", "arr"), 0xDE: (">H", "map"),
               0xDF: (">I", "map")}
    if b in lengths:
        fmt, kind = lengths[b]
        n = struct.unpack_from(fmt, d, i)[0]
        i += struct.calcsize(fmt)
        if kind == "str":
            return d[i:i + n].decode(), i + n
        if kind == "bin":
            return d[i:i + n], i + n
        return (_array if kind == "arr" else _map)(d, i, n)
    raise ValueError(f"msgpack byte 0x{b:02x} is not decoded here")


def _array(d: bytes, i: int, n: int):
    out = []
    for _ in range(n):
        v, i = _unpack(d, i)
        out.append(v)
    return out, i


def _map(d: bytes, i: int, n: int):
    out = {}
    for _ in range(n):
        k, i = _unpack(d, i)
        v, i = _unpack(d, i)
        out[k] = v
    return out, i

"""A mutation engine over the example pipelines: deterministic, seedable, bytes out.

Seeds are the pipelines of ``examples/*.qp`` and ``benchmarks/pipelines.qp``, one
``def`` block each, plus whole files (several pipelines side by side). A mutant applies
one to three mutations to a seed's tokens: delete, duplicate or swap tokens; replace a
literal with a huge or odd value; rename an identifier (another name of the language, a
Python keyword, a long or reserved name, a name the generated code uses); add an option;
change a dim or a rank; call a random stage on names in use; add a decorator or a
docstring; nest calls or chain operators far past what anyone writes; add parameters or
statements by the hundred; insert random or non-UTF-8 bytes; truncate.

``mutant(seed, i)`` depends only on its arguments, so a failure is reproduced from the
pair printed by the fuzz tests.
"""
from __future__ import annotations

import keyword
import random
import re
from dataclasses import dataclass
from pathlib import Path

from qfuse.dialect.stages import STAGES
from qfuse.dialect.types import DTYPE_ALIASES, DTYPES

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "examples").glob("*.qp")) + [ROOT / "benchmarks" / "pipelines.qp"]

_TOKEN = re.compile(r"""(?P<comment>\#[^\n]*)|(?P<space>[ \t]+)|(?P<newline>\n)
    |(?P<number>(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?)|(?P<name>[A-Za-z_]\w*)
    |(?P<string>"[^"\n]*"|'[^'\n]*')|(?P<punct>.)""", re.X)

_STAGE_WORDS = sorted(STAGES)
_OPTION_WORDS = sorted({str(c) for s in STAGES.values() for o in s.options for c in o.choices})
_OPTION_NAMES = sorted({o.name for s in STAGES.values() for o in s.options})
_OPERAND_NAMES = sorted({o.name for s in STAGES.values() for o in s.operands})
_DTYPE_WORDS = sorted(DTYPES) + sorted(DTYPE_ALIASES)
_ODD_NAMES = (keyword.kwlist + ["a__k0", "p__k1", "_", "__init__", "tl", "triton", "torch",
                                "BLOCK_M", "pid", "x_ptr", "ws_ptr", "N_1", "M", "N", "self",
                                "Tensor", "float", "int", "inf", "nan", "None", "x" * 300,
                                "p" * 129, "out", "return_", "def_"])
_ODD_NUMBERS = ["0", "-0", "1", "-1", "2", "3", "7", "0.0", "-0.0", "1e-400", "1e-46",
                "1.4e-45", "255", "256", "-129", "127", "128", "240", "241", "448", "449.0",
                "65504", "65536", "3.4e38", "3.5e38", "1e39", "1e308", "1e309", "2147483647",
                "2147483648", "4294967296", str(2**63 - 1), str(2**63), str(2**64),
                "1" + "0" * 400, "9" * 5000, "0.5", "1e-6", ".5", "5.", "00007"]
_RANDOM_BYTES = [b"\xff", b"\xfe\xff", b"\xc3", b"\x80", b"\x00", b"\r", b"\t", b"\x0c",
                 b"\xe2\x80\xa8", b"\\", b"\"", b"'", b"'''", b"#", b"@", b"$", b"-", b"/",
                 b"%", b"(", b")", b"[", b"]", b":", b",", b"=", b"\n    ", b"\n", "é".encode()]


@dataclass(frozen=True)
class Seed:
    """A starting program: ``name`` (pipeline or file) and its source text."""
    name: str
    text: str


def seeds() -> list:
    """Every pipeline of the sources as its own seed, then each whole file."""
    out = []
    for path in SOURCES:
        text = path.read_text()
        for block in re.split(r"\n(?=def )", "\n" + text):
            head = re.match(r"def (\w+)", block)
            if head:
                out.append(Seed(head.group(1), block.strip("\n") + "\n"))
        out.append(Seed(path.name, text))
    return out


def tokenize(text: str) -> list:
    """``[(kind, text), ...]`` covering ``text`` exactly (never fails)."""
    return [(m.lastgroup, m.group()) for m in _TOKEN.finditer(text)]


class Mutator:
    """Applies random mutations to one token list; ``rng`` makes it reproducible."""

    def __init__(self, text: str, rng: random.Random):
        self.rng = rng
        self.tokens = tokenize(text)
        self.raw_inserts: list = []          # (token index, bytes) applied at render time

    # ------------------------------------------------------------------ helpers
    def _indices(self, *kinds) -> list:
        return [i for i, (k, _) in enumerate(self.tokens) if k in kinds]

    def _pick(self, *kinds):
        found = self._indices(*kinds)
        return self.rng.choice(found) if found else None

    def _set(self, i: int, text: str, kind: str = "name") -> None:
        self.tokens[i] = (kind, text)

    def _names_in_use(self) -> list:
        return sorted({t for k, t in self.tokens if k == "name"}) or ["x"]

    # ---------------------------------------------------------------- mutations
    def delete_token(self) -> None:
        i = self._pick("name", "number", "punct", "string")
        if i is not None:
            del self.tokens[i]

    def duplicate_token(self) -> None:
        i = self._pick("name", "number", "punct")
        if i is not None:
            self.tokens.insert(i, self.tokens[i])

    def swap_tokens(self) -> None:
        found = self._indices("name", "number", "punct")
        if len(found) >= 2:
            i = self.rng.choice(found)
            j = self.rng.choice([k for k in found if abs(k - i) <= 4] if self.rng.random() < 0.7
                                else found)
            self.tokens[i], self.tokens[j] = self.tokens[j], self.tokens[i]

    def odd_number(self) -> None:
        i = self._pick("number")
        if i is not None:
            self._set(i, self.rng.choice(_ODD_NUMBERS), "number")

    def rename(self) -> None:
        i = self._pick("name")
        if i is None:
            return
        pool = self.rng.choice([_STAGE_WORDS, _OPTION_WORDS, _OPTION_NAMES, _OPERAND_NAMES,
                                _DTYPE_WORDS, _ODD_NAMES, self._names_in_use()])
        new = self.rng.choice(pool)
        old = self.tokens[i][1]
        if self.rng.random() < 0.5:               # rename every use, keeping the program linked
            self.tokens = [(k, new if k == "name" and t == old else t) for k, t in self.tokens]
        else:
            self._set(i, new)

    def add_option(self) -> None:
        closers = [i for i, (k, t) in enumerate(self.tokens) if t == ")"]
        if closers:
            i = self.rng.choice(closers)
            value = self.rng.choice(_OPTION_WORDS + _ODD_NUMBERS[:30] + _DTYPE_WORDS + ["true"])
            name = self.rng.choice(_OPTION_NAMES + _OPERAND_NAMES)
            self.tokens[i:i] = [("punct", ","), ("space", " "), ("name", name), ("punct", "="),
                                ("name", value)]

    def change_dims(self) -> None:
        """Replace, drop or add a dim inside a ``[...]`` of a parameter type."""
        opens = [i for i, (k, t) in enumerate(self.tokens) if t == "[" and i > 0
                 and self.tokens[i - 1][1] in _DTYPE_WORDS]
        if not opens:
            return
        i = self.rng.choice(opens)
        j = next((k for k in range(i, len(self.tokens)) if self.tokens[k][1] == "]"), None)
        if j is None:
            return
        dims = [t for k, t in self.tokens[i + 1:j] if k in ("name", "number")]
        choice = self.rng.random()
        if choice < 0.3 and len(dims) > 1:
            dims.pop(self.rng.randrange(len(dims)))
        elif choice < 0.5:
            dims.insert(self.rng.randrange(len(dims) + 1), self.rng.choice(["M", "K", "2", "1"]))
        elif dims:
            dims[self.rng.randrange(len(dims))] = self.rng.choice(
                ["1", "2", "3", "31", "32", "33", "64", "128", "129", "M", "N", "K", "Q",
                 "2147483648", str(2**64)])
        self.tokens[i + 1:j] = tokenize(", ".join(dims))

    def nest(self) -> None:
        """Wrap a name in many calls (or brackets)."""
        i = self._pick("name")
        if i is None:
            return
        depth = self.rng.choice([2, 8, 31, 33, 120, 300])
        fn = self.rng.choice(["silu", "gelu", "cast", "", "norm", "act_mul"])
        self.tokens[i:i + 1] = tokenize(f"{fn}(" * depth + self.tokens[i][1] + ")" * depth)

    def chain(self) -> None:
        """Replace a name by a long ``+`` / ``*`` chain of it."""
        i = self._pick("name")
        if i is None:
            return
        terms = self.rng.choice([3, 30, 64, 65, 66, 300])
        op = self.rng.choice([" + ", " * "])
        self.tokens[i:i + 1] = tokenize(op.join([self.tokens[i][1]] * terms))

    def repeat_statement(self) -> None:
        """Append many statements that each read the one before (a long stage chain)."""
        lines = "".join(self.rng.choice([f"    z{k + 1} = silu(z{k})\n", f"    z{k + 1} = z{k} * 2.0\n"])
                        for k in range(self.rng.choice([5, 200, 700])))
        ret = self._pick("name")
        if ret is None:
            return
        head = self.tokens[ret][1]
        stmt = f"    z0 = silu({head})\n" + lines
        newlines = self._indices("newline")
        if len(newlines) > 1:
            at = newlines[0] + 1
            self.tokens[at:at] = tokenize(stmt)

    def many_params(self) -> None:
        i = next((k for k, (_, t) in enumerate(self.tokens) if t == "("), None)
        if i is not None:
            count = self.rng.choice([3, 63, 64, 65, 200])
            extra = "".join(f"p{k}: bf16[M, N], " for k in range(count))
            self.tokens[i + 1:i + 1] = tokenize(extra)

    def new_stage(self) -> None:
        """Insert ``v = <random stage>(<names in use>, <random options>)`` before the
        ``return`` and return ``v`` too: well-formed programs off the examples' paths."""
        returns = [i for i, (k, t) in enumerate(self.tokens) if t == "return"]
        if not returns:
            return
        at = self.rng.choice(returns)
        st = STAGES[self.rng.choice(_STAGE_WORDS)]
        pipelines = {self.tokens[i + 2][1] for i, (_, t) in enumerate(self.tokens[:-2])
                     if t == "def"}
        names = [n for n in self._names_in_use() if n not in STAGES and n not in _OPTION_WORDS
                 and n not in _DTYPE_WORDS and not n.isupper() and not keyword.iskeyword(n)
                 and n not in pipelines]
        args = [self.rng.choice(names or ["x"]) if st.operand(p) else self._option_value(st, p)
                for p in st.positional[:self.rng.randint(1, len(st.positional))]]
        for opt in self.rng.sample(st.options, k=min(len(st.options), self.rng.randint(0, 2))):
            if opt.name not in st.positional[:len(args)]:
                args.append(f"{opt.name}={self._option_value(st, opt.name)}")
        var = f"v{self.rng.randrange(1000)}"
        self.tokens[at:at + 1] = tokenize(f"{var} = {st.name}({', '.join(args)})\n    return {var},")

    def _option_value(self, st, name: str) -> str:
        return self._value_of(st.option(name), self.rng)

    @staticmethod
    def _value_of(opt, rng: random.Random) -> str:
        """A value for option ``opt``: one of its choices, a bool, or an odd number."""
        if opt.choices:
            return str(rng.choice(opt.choices))
        if opt.type == "bool":
            return rng.choice(["true", "false"])
        return rng.choice(_ODD_NUMBERS[:32])

    def decorate(self) -> None:
        """A decorator line (arguments are not checked) or a docstring."""
        defs = [i for i, (k, t) in enumerate(self.tokens) if t == "def"]
        if not defs:
            return
        at = self.rng.choice(defs)
        if self.rng.random() < 0.5:
            text = self.rng.choice(["@quant_pipeline\n", "@quant_pipeline(backend=\"triton\")\n",
                                    "@a.b.c(1, x=[)\n", "@q(" * 40 + ")" * 40 + "\n"])
            self.tokens[at:at] = tokenize(text)
            return
        colon = next((k for k in range(at, len(self.tokens)) if self.tokens[k][1] == ":"
                      and self.tokens[k + 1:k + 2] == [("newline", "\n")]), None)
        if colon is not None:
            doc = self.rng.choice(['"""doc"""', "'x'", '"\\N{nope}"', '"""a\n\tb"""', "'\\'"])
            self.tokens[colon + 2:colon + 2] = tokenize(f"    {doc}\n")

    def random_bytes(self) -> None:
        at = self.rng.randrange(len(self.tokens) + 1)
        self.raw_inserts.append((at, self.rng.choice(_RANDOM_BYTES)))

    def truncate(self) -> None:
        if self.tokens:
            del self.tokens[self.rng.randrange(len(self.tokens)):]

    def reindent(self) -> None:
        spaces = [i for i in self._indices("space") if i > 0 and self.tokens[i - 1][0] == "newline"]
        if spaces:
            self._set(self.rng.choice(spaces), self.rng.choice(["", " ", "  ", "\t", "        "]),
                      "space")

    MUTATIONS = ("delete_token", "duplicate_token", "swap_tokens", "odd_number", "odd_number",
                 "rename", "rename", "rename", "add_option", "add_option", "change_dims",
                 "change_dims", "nest", "chain", "repeat_statement", "many_params",
                 "random_bytes", "truncate", "reindent", "new_stage", "new_stage", "new_stage",
                 "decorate")

    def mutate(self, count: int) -> None:
        for _ in range(count):
            getattr(self, self.rng.choice(self.MUTATIONS))()

    def render(self) -> bytes:
        parts = [t.encode() for _, t in self.tokens]
        for at, raw in sorted(self.raw_inserts, key=lambda x: -x[0]):
            parts.insert(min(at, len(parts)), raw)
        return b"".join(parts)


_GEN_DTYPES = ["bf16"] * 4 + ["f16", "f32", "f32", "i32", "i64", "u8", "i8", "fp8_e4m3fn",
                              "e8m0", "fp4_e2m1"]
_GEN_DIMS = ["M", "M", "N", "N", "N", "K", "1", "2", "32", "64", "128"]


def generated(rng: random.Random) -> str:
    """A small random pipeline: typed parameters, then one to four stage calls on them
    (and on earlier results) with random options; most are refused, some run."""
    params = []
    for i in range(rng.randint(1, 4)):
        dims = ", ".join(rng.choice(_GEN_DIMS) for _ in range(rng.choice([1, 2, 2, 2, 3])))
        params.append((f"p{i}", f"{rng.choice(_GEN_DTYPES)}[{dims}]"))
    if rng.random() < 0.3:
        params.append(("c", f"f32 = {rng.choice(['1e-6', '0.5', '2'])}"))
    names = [n for n, _ in params]
    lines = []
    for j in range(rng.randint(1, 4)):
        st = STAGES[rng.choice(_STAGE_WORDS)]
        args = []
        for spec in st.operands:
            if not spec.optional or rng.random() < 0.3:
                pick = rng.random()           # mostly the latest value: chains of stages
                value = (names[-1] if pick < 0.5 else rng.choice(names) if pick < 0.9
                         else rng.choice(_ODD_NUMBERS[:12]))
                args.append(f"{spec.name}={value}")
        for opt in st.options:
            if opt.default is None or rng.random() < 0.3:
                args.append(f"{opt.name}={Mutator._value_of(opt, rng)}")
        lines.append(f"    r{j} = {st.name}({', '.join(args)})")
        names.append(f"r{j}")
    head = ", ".join(f"{n}: {t}" for n, t in params)
    return f"def g({head}):\n" + "\n".join(lines) + f"\n    return {names[-1]}\n"


def mutant(seed: int, index: int, corpus: list) -> tuple:
    """``(seed name, mutated bytes)`` of mutant ``index`` of campaign ``seed``: a quarter
    are generated programs, the rest mutated seeds."""
    rng = random.Random(f"qfuse-fuzz:{seed}:{index}")
    if rng.random() < 0.25:
        return "generated", generated(rng).encode()
    base = rng.choice(corpus)
    m = Mutator(base.text, rng)
    m.mutate(rng.choice([1, 1, 2, 3]))
    return base.name, m.render()

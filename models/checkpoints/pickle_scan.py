"""Checks a pickle's opcodes before any of them runs, and describes untrusted objects boundedly.

The restricted unpickler decides which globals a file may name, but some harm is done by the
unpickler itself before any of our code sees an object: inserting a key into a dict hashes it,
and a 400-byte tuple DAG (`t = (t, t)` sixty times) hashes for centuries; a key nested 100,000
deep overflows the stack; `BUILD` rewrites the attributes of whatever object it is given, our
stand-ins included; a memo index of 4 billion makes the C unpickler allocate 32 GB. So each
pickle is first walked opcode by opcode (`pickletools.genops`, linear in its size, running
nothing), simulating the stack with small placeholders, and refused when it does anything a
PyTorch state dict never does. Only then does the real unpickler run.

`describe` is the other half: a refusal message never calls `repr` on an untrusted object.
"""

from __future__ import annotations

import pickle
import pickletools
from collections.abc import Collection

# A state dict needs about 6 levels (wrapper dict, ordered dict, rebuild arguments, storage
# reference); 32 leaves room for nested wrappers and metadata without risking the stack.
MAX_DEPTH = 32
# A legal string long enough to name a global; longer ones are kept only as "a str".
_KEEP_STR = 256

_LEAVES = {
    **dict.fromkeys(["NONE"], "None"),
    **dict.fromkeys(["NEWTRUE", "NEWFALSE"], "bool"),
    **dict.fromkeys(["INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"], "int"),
    **dict.fromkeys(["FLOAT", "BINFLOAT"], "float"),
    **dict.fromkeys(
        ["UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"]
        + ["STRING", "BINSTRING", "SHORT_BINSTRING"],
        "str",
    ),
    **dict.fromkeys(["BINBYTES", "SHORT_BINBYTES", "BINBYTES8"], "bytes"),
}
_MEMO_PUT = ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE")
_MEMO_GET = ("GET", "BINGET", "LONG_BINGET")
_IGNORED = ("PROTO", "FRAME", "STOP")
ORDERED_DICT = ("collections", "OrderedDict")


class _Node:
    """A placeholder for one object the unpickler would build: its kind and nesting depth."""

    __slots__ = ("kind", "depth", "value", "length", "nested")

    def __init__(self, kind: str, depth: int = 1, value=None, length: int = 0) -> None:
        self.kind, self.depth, self.value, self.length = kind, depth, value, length
        self.nested = False  # placed inside another container: its depth may no longer grow


_MARK = object()


def _refuse(reason: str):
    raise pickle.UnpicklingError(reason)


class _Scanner:
    def __init__(self, allowed: Collection[tuple[str, str]]) -> None:
        self.allowed = allowed
        self.stack: list = []
        self.memo: dict[int, _Node] = {}
        self.ops = 0

    def pop(self) -> _Node:
        if not self.stack or self.stack[-1] is _MARK:
            _refuse("a malformed pickle (it pops from an empty stack)")
        return self.stack.pop()

    def top(self) -> _Node:
        if not self.stack or self.stack[-1] is _MARK:
            _refuse("a malformed pickle (it works on an empty stack)")
        return self.stack[-1]

    def pop_mark(self) -> list[_Node]:
        if _MARK not in self.stack:
            _refuse("a malformed pickle (no mark)")
        at = len(self.stack) - 1 - self.stack[::-1].index(_MARK)
        items = self.stack[at + 1 :]
        del self.stack[at:]
        return items

    def container(self, kind: str, items: list[_Node]) -> _Node:
        depth = 1 + max((item.depth for item in items), default=0)
        if depth > MAX_DEPTH:
            _refuse(f"it nests objects more than {MAX_DEPTH} levels deep")
        for item in items:
            item.nested = True
        return _Node(kind, depth, length=len(items))

    def grow(self, target: _Node, kinds: tuple[str, ...], items: list[_Node]) -> None:
        """`target` (a list or dict on the stack) receives `items`: its depth follows them."""
        if target.kind not in kinds:
            _refuse(f"it adds items to {_kind_phrase(target)}")
        if target.nested:  # pickle fills a container before placing it; filling it later could
            # deepen every container above it unseen
            _refuse(f"it fills {_kind_phrase(target)} after placing it inside another")
        target.depth = max(target.depth, self.container(target.kind, items).depth)

    def set_items(self, target: _Node, items: list[_Node]) -> None:
        if len(items) % 2:
            _refuse("a malformed pickle (a key without a value)")
        for key in items[::2]:
            if key.kind not in ("str", "int"):
                _refuse(f"a dict key that is {_kind_phrase(key)}, not a name")
        self.grow(target, ("dict", "odict"), items)

    def name_global(self, module, name) -> _Node:
        if (module, name) not in self.allowed:
            _refuse(
                f"it names {str(module)[:80]}.{str(name)[:80]}, which a state dict never needs "
                "(only tensors and ordered dicts are admitted)"
            )
        return _Node("global", value=(module, name))

    def step(self, name: str, arg) -> None:
        self.ops += 1
        stack = self.stack
        if name in _IGNORED:
            return
        if name in _LEAVES:
            kind = _LEAVES[name]
            keep = kind == "str" and len(arg) <= _KEEP_STR
            stack.append(_Node(kind, value=arg if keep else None))
        elif name == "MARK":
            stack.append(_MARK)
        elif name in ("EMPTY_TUPLE", "EMPTY_LIST", "EMPTY_DICT"):
            stack.append(_Node(name[6:].lower()))
        elif name in ("TUPLE", "LIST", "DICT"):
            items = self.pop_mark()
            node = self.container(name.lower(), items)
            if name == "DICT":
                self.set_items(_Node("dict"), items)
            stack.append(node)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            items = [self.pop() for _ in range(int(name[-1]))][::-1]
            stack.append(self.container("tuple", items))
        elif name in ("APPEND", "APPENDS"):
            items = [self.pop()] if name == "APPEND" else self.pop_mark()
            self.grow(self.top(), ("list",), items)
        elif name in ("SETITEM", "SETITEMS"):
            items = [self.pop(), self.pop()][::-1] if name == "SETITEM" else self.pop_mark()
            self.set_items(self.top(), items)
        elif name in _MEMO_PUT:
            index = len(self.memo) if name == "MEMOIZE" else arg
            if not 0 <= index <= self.ops:  # the C unpickler sizes its memo by the index
                _refuse(f"a memo index of {index} in a pickle of {self.ops} opcodes so far")
            self.memo[index] = self.top()
        elif name in _MEMO_GET:
            if arg not in self.memo:
                _refuse(f"a malformed pickle (memo entry {arg} is never stored)")
            stack.append(self.memo[arg])
        elif name == "POP":
            if not stack:
                _refuse("a malformed pickle (it pops an empty stack)")
            stack.pop()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            stack.append(self.top())
        elif name == "GLOBAL":
            module, _, attr = arg.partition(" ")
            stack.append(self.name_global(module, attr))
        elif name == "STACK_GLOBAL":
            attr, module = self.pop(), self.pop()
            if attr.value is None or module.value is None:
                _refuse("a global named by something other than two short strings")
            stack.append(self.name_global(module.value, attr.value))
        elif name == "REDUCE":
            self.reduce(self.pop(), self.pop())
        elif name == "BINPERSID":
            self.pop()
            stack.append(_Node("storage"))
        elif name == "BUILD":
            state, target = self.pop(), self.top()
            if target.kind != "odict" or state.kind not in ("dict", "None"):
                _refuse(
                    f"it rewrites {_kind_phrase(target)} with {_kind_phrase(state)} (BUILD), "
                    "which only an ordered dict's attributes may take"
                )
            self.grow(target, ("odict",), [state])
        else:
            _refuse(f"it uses the pickle opcode {name}, which a state dict never needs")

    def reduce(self, args: _Node, func: _Node) -> None:
        if func.kind != "global" or args.kind != "tuple":
            _refuse(f"it calls {_kind_phrase(func)} with {_kind_phrase(args)}")
        if func.value == ORDERED_DICT:
            if args.length:
                _refuse("it builds an ordered dict from arguments (a state dict fills it after)")
            self.stack.append(_Node("odict"))
        elif func.value[0] == "torch._utils":
            self.stack.append(self.container("tensor", [args]))
        else:
            _refuse(f"it calls {'.'.join(func.value)}, which a state dict never calls")


def _kind_phrase(node: _Node) -> str:
    if node.kind == "global":
        return ".".join(node.value)
    return {"odict": "an ordered dict", "int": "an int", "None": "None"}.get(
        node.kind, f"a {node.kind}"
    )


def scan_pickle(stream, allowed: Collection[tuple[str, str]], max_bytes: int) -> None:
    """Walks one pickle from the stream's position to its STOP, refusing what a state dict never
    does and a pickle longer than `max_bytes` (walking costs about 1.3 ms a kilobyte); leaves the
    stream after the STOP. Raises `pickle.UnpicklingError` with the reason."""
    scanner = _Scanner(allowed)
    start = stream.tell()
    try:
        for opcode, arg, pos in pickletools.genops(stream):
            if pos - start > max_bytes:
                _refuse(f"its pickle runs past {max_bytes} bytes (a state dict's is far shorter)")
            scanner.step(opcode.name, arg)
    except ValueError as err:  # genops: truncated or unknown opcodes, bad lengths
        _refuse(f"a malformed pickle ({str(err)[:120]})")


def describe(value, limit: int = 60) -> str:
    """A short description of an untrusted object, built without walking it (never `repr`)."""
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, int):
        bits = value.bit_length()
        return repr(value) if bits <= 64 else f"an int of {bits} bits"
    if isinstance(value, (str, bytes)):
        cut = repr(value[:limit])
        return cut if len(value) <= limit else f"{cut}... ({len(value)} long)"
    if isinstance(value, (tuple, list, dict)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"

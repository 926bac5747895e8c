"""Which AWS operations each pushdeploy binary can call, found by reading src/ (tree-sitter).

Every function of the crate and of the three binaries is read (test code excluded: `*_tests.rs`
files and `#[cfg(test)]` modules). An AWS call is a method call with no arguments, whose name is an
operation of the AWS SDK crate the receiver is a client of (`self.ecs.describe_services()`,
`self.client.query()`), as the SDK crate's own `src/client/*.rs` lists them. The receiver's type
is worked out from struct fields, parameters, `let` bindings, `use` declarations and declared
return types; a receiver of unknown type whose method is an operation of exactly one SDK crate in
use counts as a call of that crate, and one of several is an error (the check cannot guess).

Calls between the crate's own functions make a call graph: `Type::f(..)`, `module::f(..)`,
`f(..)`, `self.f(..)`, `x.f(..)` (by x's type when known, else every crate method named f: more
reachable, never less), paths named without a call (`.map(Record::from_item)`), and calls written
inside macros (`tokio::join!(..)`). What is reachable from an entry point (a binary's `main`, or
one arm of the CLI's `match cli.command`) is what that binary, or that subcommand, can call.

Each call also records the builder setters chained onto it (`.index_name(BY_DIGEST_INDEX)`,
`.registry_id(..)`), with string constants resolved, so the map can tell a Query of an index from
a Query of the table.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SRC = ROOT / "src"

# A method called on a receiver whose type the reader cannot work out is taken to be every crate
# method of that name (more reachable, never less), except these names, which such receivers here
# are std, futures or SDK types (maps, options, iterators, request builders), never the crate's:
# guessing them would make every binary "call" Ledger::get (GetItem) or Notifier::send (Publish).
STD_METHOD_NAMES = {
    "get", "send", "as_str", "len", "iter", "map", "clone", "insert", "remove", "push", "contains",
    "first", "last", "next", "find", "filter", "take", "into", "from", "to_string", "parse", "is_empty",
}


@dataclass
class SdkCall:
    crate: str            # "ecs" for aws_sdk_ecs
    op: str               # snake_case method: describe_services
    operation: str        # PascalCase API operation: DescribeServices
    setters: dict         # setter name -> literal argument (resolved constant) or None
    where: str            # file:line
    function: str         # key of the function it is in
    guessed: bool = False  # receiver type unknown, op name unique among the SDK crates


@dataclass
class Function:
    key: str
    module: str
    impl: str | None
    name: str
    file: Path
    line: int
    node: object = None
    params: dict = field(default_factory=dict)
    ret: str = ""
    uses: dict = field(default_factory=dict)
    sdk_calls: list = field(default_factory=list)
    edges: set = field(default_factory=set)
    guessed_edges: set = field(default_factory=set)


def _parser():
    import tree_sitter_rust
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_rust.language()))


def sdk_operations(crates: list[str]) -> dict[str, dict[str, str]]:
    """For each SDK crate in use (Cargo.lock), its client's operations: snake -> Pascal.

    Reads the crate's source where cargo keeps it (`cargo metadata` fetches what is missing)."""
    cargo = os.environ.get("CARGO", "cargo")
    out = subprocess.run([cargo, "metadata", "--locked", "--format-version", "1"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    packages = {p["name"]: Path(p["manifest_path"]).parent for p in json.loads(out)["packages"]}
    found: dict[str, dict[str, str]] = {}
    # rustfmt wraps the signature of a long operation name: `pub fn name(\n        &self,\n    ) -> ...`.
    sig = re.compile(r"pub fn (\w+)\(\s*&self,?\s*\)\s*->\s*crate::operation::\w+::builders::(\w+)FluentBuilder")
    for crate in crates:
        directory = packages.get(f"aws-sdk-{crate}")
        if directory is None:
            raise RuntimeError(f"aws-sdk-{crate} is not a dependency (cargo metadata)")
        ops: dict[str, str] = {}
        for path in sorted((directory / "src" / "client").glob("*.rs")):
            for snake, pascal in sig.findall(path.read_text()):
                ops[snake] = pascal
        if not ops:
            raise RuntimeError(f"no operations found in {directory}/src/client")
        found[crate] = ops
    return found


def module_of(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "bin":
        return "bin::" + parts[1]
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return "::".join(["crate"] + parts)


def text(node) -> str:
    return node.text.decode()


class Crate:
    """The crate's functions, types and the AWS calls in them."""

    def __init__(self, sdk_ops: dict[str, dict[str, str]], replacements: dict | None = None):
        # replacements: "src/file.rs" -> (old, new), applied in memory (the check's mutants)
        self.replacements = replacements or {}
        self.parser = _parser()
        self.sdk_ops = sdk_ops
        self.functions: dict[str, Function] = {}
        self.methods: dict[str, list[str]] = {}        # name -> keys of methods (any impl)
        self.by_type: dict[tuple, list[str]] = {}     # (Type, name) -> keys
        self.free: dict[tuple, str] = {}              # (module, name) -> key
        self.free_by_name: dict[str, list[str]] = {}
        self.structs: dict[str, dict[str, str]] = {}  # Type -> field -> type text
        self.struct_uses: dict[str, dict] = {}        # Type -> the `use`s of its file
        self.types: set[str] = set()
        self.consts: dict[str, str] = {}              # NAME -> string literal
        self.files: dict[Path, dict] = {}             # file -> uses
        self.problems: list[str] = []
        self.unresolved_ambiguous: list[str] = []
        for path in sorted(SRC.rglob("*.rs")):
            if path.name.endswith("_tests.rs"):
                continue
            self._read(path)
        for fn in self.functions.values():
            self._scan(fn)

    # ---------------------------------------------------------------- reading

    def _read(self, path: Path) -> None:
        source = path.read_text()
        old_new = self.replacements.get(str(path.relative_to(ROOT)))
        if old_new:
            if old_new[0] not in source:
                raise RuntimeError(f"{path}: {old_new[0]!r} not found to replace")
            source = source.replace(old_new[0], old_new[1], 1)
        tree = self.parser.parse(source.encode())
        module = module_of(path)
        uses: dict[str, str] = {}
        self.files[path] = uses
        self._items(tree.root_node, path, module, None, uses)

    def _items(self, node, path, module, impl, uses) -> None:
        children = list(node.named_children)
        for i, child in enumerate(children):
            kind = child.type
            if kind == "mod_item":
                attrs = []
                j = i - 1
                while j >= 0 and children[j].type in ("attribute_item", "line_comment", "block_comment"):
                    attrs.append(text(children[j]))
                    j -= 1
                name = text(child.child_by_field_name("name"))
                if any("cfg(test)" in a for a in attrs):
                    continue
                body = child.child_by_field_name("body")
                if body is not None:
                    self._items(body, path, f"{module}::{name}", None, uses)
            elif kind == "use_declaration":
                self._use(text(child.child_by_field_name("argument")), uses)
            elif kind == "struct_item":
                name = text(child.child_by_field_name("name"))
                self.types.add(name)
                fields = {}
                body = child.child_by_field_name("body")
                if body is not None and body.type == "field_declaration_list":
                    for f in body.named_children:
                        if f.type == "field_declaration":
                            fields[text(f.child_by_field_name("name"))] = text(f.child_by_field_name("type"))
                self.structs[name] = fields
                self.struct_uses[name] = uses
            elif kind in ("enum_item", "trait_item"):
                self.types.add(text(child.child_by_field_name("name")))
            elif kind == "const_item":
                value = child.child_by_field_name("value")
                if value is not None and value.type == "string_literal":
                    self.consts[text(child.child_by_field_name("name"))] = text(value)[1:-1]
            elif kind == "impl_item":
                ty = child.child_by_field_name("type")
                tname = self._base_type(text(ty))
                body = child.child_by_field_name("body")
                if body is not None:
                    self._items(body, path, module, tname, uses)
            elif kind == "function_item":
                self._function(child, path, module, impl, uses)

    @staticmethod
    def _base_type(type_text: str) -> str:
        # "Ledger", "Foo<'a>", "crate::x::Foo" -> last path segment without generics
        t = re.sub(r"<.*", "", type_text).strip()
        return t.split("::")[-1]

    def _use(self, arg: str, uses: dict) -> None:
        arg = re.sub(r"\s+as\s+", "@", arg)
        arg = re.sub(r"\s+", "", arg)

        def expand(prefix: str, rest: str):
            if rest.startswith("{") and rest.endswith("}"):
                depth, part, parts = 0, "", []
                for ch in rest[1:-1]:
                    if ch == "," and depth == 0:
                        parts.append(part)
                        part = ""
                        continue
                    depth += ch == "{"
                    depth -= ch == "}"
                    part += ch
                parts.append(part)
                for p in parts:
                    if p:
                        expand(prefix, p)
                return
            m = re.match(r"^(.*?)::(\{.*\})$", rest)
            if m:
                expand(f"{prefix}{m.group(1)}::", m.group(2))
                return
            full, _, alias = (prefix + rest).partition("@")
            if full.endswith("::self"):
                full = full[: -len("::self")]
            name = alias or full.split("::")[-1]
            if name not in ("*", "_"):
                uses[name] = full

        expand("", arg)

    def _function(self, node, path, module, impl, uses) -> None:
        name = text(node.child_by_field_name("name"))
        key = f"{module}::{impl}::{name}" if impl else f"{module}::{name}"
        fn = Function(key=key, module=module, impl=impl, name=name, file=path,
                      line=node.start_point[0] + 1, node=node, uses=uses)
        params = node.child_by_field_name("parameters")
        for p in params.named_children if params is not None else []:
            if p.type == "parameter":
                pat, ty = p.child_by_field_name("pattern"), p.child_by_field_name("type")
                if pat is not None and ty is not None:
                    fn.params[text(pat).replace("mut ", "")] = text(ty)
        ret = node.child_by_field_name("return_type")
        fn.ret = text(ret) if ret is not None else ""
        if key in self.functions:
            key = f"{key}@{path.name}:{fn.line}"
            fn.key = key
        self.functions[key] = fn
        if impl:
            self.methods.setdefault(name, []).append(key)
            self.by_type.setdefault((impl, name), []).append(key)
        else:
            self.free[(module, name)] = key
            self.free_by_name.setdefault(name, []).append(key)

    # ---------------------------------------------------------------- types

    def classify(self, type_text: str, fn: Function, impl: str | None = None):
        """('sdk', crate) | ('crate', Type) | ('external', text) | None"""
        if not type_text:
            return None
        m = re.search(r"aws_sdk_(\w+)::Client\b", type_text)
        if m:
            return ("sdk", m.group(1))
        for ident in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", type_text):
            if ident == "Self" and (impl or fn.impl):
                return ("crate", impl or fn.impl)
            if ident == "Client":
                full = fn.uses.get("Client", "")
                m = re.match(r"aws_sdk_(\w+)::Client$", full)
                if m:
                    return ("sdk", m.group(1))
            if ident in self.types and ident not in ("Result", "Option"):
                return ("crate", ident)
        return ("external", type_text)

    def type_of(self, node, fn: Function):
        kind = node.type
        if kind == "self":
            return ("crate", fn.impl) if fn.impl else None
        if kind in ("reference_expression", "parenthesized_expression", "try_expression",
                    "await_expression", "unary_expression"):
            inner = node.named_children[-1] if kind == "reference_expression" else node.named_children[0]
            return self.type_of(inner, fn)
        if kind == "identifier":
            name = text(node)
            if name in fn.params:
                return self.classify(fn.params[name], fn)
            return self._let_type(name, node, fn)
        if kind == "field_expression":
            base = self.type_of(node.child_by_field_name("value"), fn)
            fname = text(node.child_by_field_name("field"))
            if base and base[0] == "crate" and fname in self.structs.get(base[1], {}):
                home = Function(key="", module="", impl=base[1], name="", file=fn.file, line=0,
                                uses=self.struct_uses[base[1]])
                return self.classify(self.structs[base[1]][fname], home)
            return None
        if kind == "call_expression":
            func = node.child_by_field_name("function")
            if func.type == "scoped_identifier":
                path = text(func)
                m = re.search(r"aws_sdk_(\w+)::Client::(new|from_conf)$", path)
                if m:
                    return ("sdk", m.group(1))
                targets = self._path_targets(path, fn)
                if targets:
                    t = self.functions[targets[0]]
                    return self.classify(t.ret, fn, t.impl)
                return None
            if func.type == "field_expression":
                recv = self.type_of(func.child_by_field_name("value"), fn)
                m = text(func.child_by_field_name("field"))
                if recv and recv[0] == "sdk" and m in self.sdk_ops.get(recv[1], {}):
                    return ("builder", recv[1])
                if recv and recv[0] in ("builder", "external"):
                    return recv
                if recv and recv[0] == "crate":
                    keys = self.by_type.get((recv[1], m), [])
                    if keys:
                        t = self.functions[keys[0]]
                        return self.classify(t.ret, fn, t.impl)
                return None
        if kind == "match_expression":
            body = node.child_by_field_name("body")
            arms = [a for a in body.named_children if a.type == "match_arm"] if body else []
            return self.type_of(arms[0].child_by_field_name("value"), fn) if arms else None
        if kind == "if_expression":
            return self.type_of(node.child_by_field_name("consequence"), fn)
        if kind == "block":
            last = [c for c in node.named_children if c.type not in ("line_comment", "block_comment")]
            return self.type_of(last[-1], fn) if last and last[-1].type != "expression_statement" else None
        if kind == "struct_expression":
            name = self._base_type(text(node.child_by_field_name("name")))
            return ("crate", name) if name in self.types else ("external", name)
        return None

    def _let_type(self, name: str, use_node, fn: Function):
        best = None
        for let in self._walk(fn.node, "let_declaration"):
            if let.end_byte > use_node.start_byte:
                continue
            pat = let.child_by_field_name("pattern")
            if pat is None or text(pat).replace("mut ", "") != name:
                continue
            best = let
        if best is None:
            return None
        ty = best.child_by_field_name("type")
        if ty is not None:
            return self.classify(text(ty), fn)
        value = best.child_by_field_name("value")
        return self.type_of(value, fn) if value is not None else None

    @staticmethod
    def _walk(node, kind=None):
        stack = [node]
        while stack:
            n = stack.pop()
            if kind is None or n.type == kind:
                yield n
            stack.extend(reversed(n.children))

    # ---------------------------------------------------------------- resolution

    def _module_path(self, segments: list[str], fn: Function) -> str | None:
        """The crate module a path prefix names, or None when it is not the crate's."""
        if not segments:
            return fn.module
        first = segments[0]
        base = fn.module.split("::")
        if first == "crate" or first == "pushdeploy":
            return "::".join(["crate"] + segments[1:])
        if first == "self":
            return "::".join(base + segments[1:])
        if first == "super":
            up = base[:]
            for s in segments:
                if s != "super":
                    break
                up = up[:-1]
            rest = [s for s in segments if s != "super"]
            return "::".join(up + rest)
        if first in fn.uses:
            full = fn.uses[first].split("::")
            return self._module_path(full + segments[1:], fn)
        child = f"{fn.module}::{first}"
        if any(k.startswith(child + "::") for k in self.functions):
            return "::".join([fn.module] + segments)
        top = f"crate::{first}"
        if any(k.startswith(top + "::") for k in self.functions):
            return "::".join(["crate"] + segments)
        return None

    def _path_targets(self, path: str, fn: Function) -> list[str]:
        segments = path.replace(" ", "").split("::")
        segments = [re.sub(r"<.*", "", s) for s in segments if s]
        name = segments[-1]
        owner = segments[:-1]
        if not owner:
            return []
        last = owner[-1]
        if last == "Self" and fn.impl:
            return self.by_type.get((fn.impl, name), [])
        if last in self.types:
            return self.by_type.get((last, name), [])
        module = self._module_path(owner, fn)
        if module is None:
            return []
        key = self.free.get((module, name))
        if key:
            return [key]
        # a re-export (`pub use`): by name within the module tree
        return [k for k in self.free_by_name.get(name, []) if self.functions[k].module.startswith(module)]

    def _name_targets(self, name: str, fn: Function) -> list[str]:
        key = self.free.get((fn.module, name))
        if key:
            return [key]
        if name in fn.uses:
            return self._path_targets(fn.uses[name], fn)
        return []

    def _setters(self, call_node) -> dict:
        """The setters chained directly onto an SDK operation call, up to `.send()`."""
        setters = {}
        node = call_node
        while True:
            parent = node.parent
            if parent is None or parent.type != "field_expression":
                break
            grand = parent.parent
            if grand is None or grand.type != "call_expression":
                break
            name = text(parent.child_by_field_name("field"))
            if name in ("send", "into_paginator", "customize"):
                break
            args = grand.child_by_field_name("arguments")
            value = None
            if args is not None and len(args.named_children) == 1:
                a = args.named_children[0]
                if a.type == "string_literal":
                    value = text(a)[1:-1]
                elif a.type in ("identifier", "scoped_identifier"):
                    value = self.consts.get(text(a).split("::")[-1])
            setters[name] = value
            node = grand
        return setters

    def _scan(self, fn: Function) -> None:
        self._scan_node(fn.node.child_by_field_name("body"), fn)

    def _scan_node(self, body, fn: Function) -> None:
        if body is None:
            return
        for node in self._walk(body):
            if node.type == "macro_invocation":
                self._scan_macro(node, fn)
            elif node.type == "call_expression":
                self._scan_call(node, fn)
            elif node.type == "scoped_identifier":
                parent = node.parent
                if parent is not None and parent.type == "call_expression" and parent.child_by_field_name("function") == node:
                    continue
                if parent is not None and parent.type in ("scoped_identifier", "scoped_type_identifier", "use_declaration"):
                    continue
                fn.edges.update(self._path_targets(text(node), fn))

    def _scan_macro(self, node, fn: Function) -> None:
        name = text(node.child_by_field_name("macro")) if node.child_by_field_name("macro") else ""
        if name.split("::")[-1] in ("matches", "assert", "debug_assert"):
            return
        tokens = [c for c in node.named_children if c.type == "token_tree"]
        if not tokens:
            return
        inner = text(tokens[0])[1:-1]
        source = f"fn __macro() {{ __args({inner}); }}".encode()
        tree = self.parser.parse(source)
        fn_node = tree.root_node.named_children[0] if tree.root_node.named_children else None
        if fn_node is None or tree.root_node.has_error:
            return
        shadow = Function(key=fn.key, module=fn.module, impl=fn.impl, name=fn.name, file=fn.file,
                          line=fn.line, node=fn.node, params=fn.params, ret=fn.ret, uses=fn.uses)
        self._scan_node(fn_node.child_by_field_name("body"), shadow)
        fn.edges.update(shadow.edges)
        fn.guessed_edges.update(shadow.guessed_edges)
        for call in shadow.sdk_calls:
            call.where = f"{fn.file.relative_to(ROOT)}:{node.start_point[0] + 1} (in a macro)"
            fn.sdk_calls.append(call)

    def _scan_call(self, node, fn: Function) -> None:
        func = node.child_by_field_name("function")
        args = node.child_by_field_name("arguments")
        no_args = args is not None and not args.named_children
        where = f"{fn.file.relative_to(ROOT)}:{node.start_point[0] + 1}"
        if func.type == "field_expression":
            method = text(func.child_by_field_name("field"))
            recv_node = func.child_by_field_name("value")
            recv = self.type_of(recv_node, fn)
            if recv and recv[0] == "sdk":
                ops = self.sdk_ops.get(recv[1])
                if ops is None:
                    self.problems.append(f"{where}: a client of aws_sdk_{recv[1]}, which the map does not know")
                elif method in ops and no_args:
                    fn.sdk_calls.append(SdkCall(recv[1], method, ops[method], self._setters(node), where, fn.key))
                return
            if recv and recv[0] in ("builder", "external"):
                return
            if recv and recv[0] == "crate":
                # A method the type does not define is a trait's from outside the crate (clone,
                # as_ref, ...): no crate function.
                fn.edges.update(self.by_type.get((recv[1], method), []))
                return
            # Unknown receiver: an SDK operation name of one crate, or every crate method so named.
            if no_args:
                owners = [c for c, ops in self.sdk_ops.items() if method in ops]
                if len(owners) == 1 and not self.methods.get(method):
                    fn.sdk_calls.append(SdkCall(owners[0], method, self.sdk_ops[owners[0]][method],
                                                self._setters(node), where, fn.key, guessed=True))
                    return
                if len(owners) > 1:
                    self.unresolved_ambiguous.append(
                        f"{where}: .{method}() on {text(recv_node)!r} of unknown type is an operation of "
                        f"{', '.join('aws_sdk_' + o for o in owners)}")
                    return
            if method not in STD_METHOD_NAMES:
                fn.guessed_edges.update(self.methods.get(method, []))
            return
        if func.type == "scoped_identifier":
            fn.edges.update(self._path_targets(text(func), fn))
            return
        if func.type == "identifier":
            fn.edges.update(self._name_targets(text(func), fn))
            return
        if func.type == "generic_function":
            inner = func.child_by_field_name("function")
            if inner is not None and inner.type == "scoped_identifier":
                fn.edges.update(self._path_targets(text(inner), fn))

    # ---------------------------------------------------------------- reachability

    def reachable(self, roots: list[str]) -> list[str]:
        seen: list[str] = []
        todo = list(roots)
        while todo:
            key = todo.pop()
            if key in seen:
                continue
            seen.append(key)
            fn = self.functions[key]
            todo.extend(sorted(fn.edges | fn.guessed_edges))
        return seen

    def calls_from(self, roots: list[str]) -> list[SdkCall]:
        return [c for key in self.reachable(roots) for c in self.functions[key].sdk_calls]

    def all_calls(self) -> list[SdkCall]:
        return [c for fn in self.functions.values() for c in fn.sdk_calls]

    def cli_commands(self, binary: str = "pushdeploy") -> dict[str, list[str]]:
        """The CLI's subcommands and the crate functions each arm of `match cli.command` calls."""
        main = self.functions[f"bin::{binary}::main"]
        commands: dict[str, list[str]] = {}
        for match in self._walk(main.node, "match_expression"):
            value = match.child_by_field_name("value")
            if value is None or text(value) != "cli.command":
                continue
            body = match.child_by_field_name("body")
            for arm in body.named_children:
                if arm.type != "match_arm":
                    continue
                pattern = text(arm.child_by_field_name("pattern"))
                names = re.findall(r"Command::(\w+)", pattern)
                shadow = Function(key=main.key, module=main.module, impl=None, name="main",
                                  file=main.file, line=main.line, node=main.node,
                                  params=main.params, uses=main.uses)
                self._scan_node(arm.child_by_field_name("value"), shadow)
                roots = sorted(shadow.edges | shadow.guessed_edges)
                extra = [c for c in shadow.sdk_calls]
                for name in names:
                    commands[name] = roots
                    if extra:
                        self.functions.setdefault(f"bin::{binary}::main#{name}", Function(
                            key=f"bin::{binary}::main#{name}", module=main.module, impl=None,
                            name=f"main#{name}", file=main.file, line=arm.start_point[0] + 1,
                            sdk_calls=extra))
                        commands[name] = roots + [f"bin::{binary}::main#{name}"]
        return commands

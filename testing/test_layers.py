"""README's Layout table holds: no module imports a later layer.

The table in README.md is the only statement of the layering; this test
reads it (module -> layer) and every import of every module: `import` and
`from ... import` anywhere (inside functions too), and the module names
handed to `importlib.import_module` or `__import__`, given whole or as a
literal prefix plus a name from a table of strings in the same module
(the lazy tables of `docker_image` and `console_scripts`). A package's
`__all__` names the modules its `__getattr__` loads. Loading a package
because one of its modules is imported is not counted: a package's
`__init__` loads none of its modules until asked.
"""
import ast
import fnmatch
import os
import re
import subprocess
import sys
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = 'containerregistry'

# Upstream offered the merged filesystem as `docker_image.extract`; the
# project keeps that name, loading the sink `flatten` when it is called.
# Nothing else may reach a later layer.
UPSTREAM_FORWARD = {
    ('containerregistry.client.v2_2.docker_image',
     'containerregistry.client.v2_2.flatten'),
    ('containerregistry.client.v2.docker_image',
     'containerregistry.client.v2_2.flatten'),
}

# Dynamic imports of names the test cannot read, each with why that is safe.
UNREAD_DYNAMIC = {
    # The loader of every package: the names are the packages' `__all__`.
    'containerregistry',
    # Optional third-party modules (zstd, zlib-ng), never the project's.
    'containerregistry.client.v2_2.compression',
    'containerregistry.client.v2_2.inflater',
}

# Sources and sinks that work without a registry: loading one must not load
# the registry protocol.
OFFLINE = [
    'containerregistry.client.v2_2.' + m for m in (
        'append', 'compression', 'disk_image', 'docker_digest',
        'docker_image', 'docker_image_list', 'flatten', 'image_checks',
        'json_docs', 'media_types', 'oci_compat', 'oci_layout_image',
        'outputs', 'save', 'tarball_image', 'tarball_writer', 'v2_compat')
] + ['containerregistry.client.v2.' + m for m in (
    'append', 'docker_digest', 'docker_image', 'util')] + [
    'containerregistry.transform.v2_2.metadata',
    'containerregistry.transform.v1.metadata',
]


# README's table.

def _cells() -> Iterator[Tuple[str, str]]:
    """(layer, modules cell) of each row of README's Layout table."""
    with open(os.path.join(ROOT, 'README.md'), encoding='utf8') as f:
        text = f.read()
    section = text.split('\n## Layout\n', 1)[1].split('\n## ', 1)[0]
    rows = [line for line in section.splitlines() if line.startswith('|')]
    assert rows, "README's Layout section has no table"
    for row in rows[2:]:
        layer, cell = [c.strip() for c in row.strip('|').split('|', 1)]
        yield layer, cell


def _expand(token: str) -> List[str]:
    """TOKEN with `{a,b}` spelled out."""
    match = re.search(r'\{([^}]*)\}', token)
    if not match:
        return [token]
    return [alt for part in match.group(1).split(',')
            for alt in _expand(token[:match.start()] + part
                               + token[match.end():])]


def _entries() -> List[Tuple[int, str, str]]:
    """(layer index, kind, path) for each module path of the table.

    A path with a folder sets the folder of the bare names after it in its
    row; KIND is 'file', 'dir' (`folder/`) or 'glob' (`**/name.py`).
    """
    entries = []
    for index, (_, cell) in enumerate(_cells()):
        folder = ''
        for token in re.findall(r'`([^`]+)`', cell):
            for path in _expand(token):
                if path.startswith('/') or not (
                        path.endswith('.py') or path.endswith('/')):
                    continue  # a class, a file of another kind, a device
                if '*' in path:
                    entries.append((index, 'glob', path))
                    continue
                if '/' in path.rstrip('/'):
                    folder = os.path.dirname(path.rstrip('/'))
                else:
                    path = os.path.join(folder, path)
                entries.append((index, 'dir' if path.endswith('/')
                                else 'file', path))
    return entries


LAYERS = [layer for layer, _ in _cells()]


# The project's modules and their imports.

def _module_files() -> Dict[str, str]:
    """Dotted module name -> path under ROOT, for every .py file."""
    found = {}
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if not d.startswith(('.', 'bazel-'))
                         and d != '__pycache__'
                         and os.path.relpath(os.path.join(top, d), ROOT)
                         != os.path.join('bench', 'out'))
        for name in files:
            if name.endswith('.py'):
                rel = os.path.relpath(os.path.join(top, name), ROOT)
                parts = [PACKAGE] + rel[:-3].split(os.sep)
                if parts[-1] == '__init__':
                    parts.pop()
                found['.'.join(parts)] = rel.replace(os.sep, '/')
    return found


MODULES = _module_files()


def _matches(kind: str, pattern: str, path: str) -> bool:
    if kind == 'file':
        return path == pattern
    if kind == 'dir':
        return path.startswith(pattern)
    return fnmatch.fnmatch(path, pattern)


def layer_of(modules: Dict[str, str]) -> Tuple[Dict[str, int], List[str]]:
    """Module -> layer index, and the problems found mapping them."""
    entries = _entries()
    problems = ['README names %s, which does not exist' % path
                for _, kind, path in entries
                if kind == 'file' and path not in modules.values()]
    problems += ['README names %s twice' % path for path in sorted(
        {p for _, k, p in entries if k == 'file'
         and [e[2] for e in entries].count(p) > 1})]
    layers = {}
    for module, path in modules.items():
        # A file named outright wins over its folder, a folder over a glob.
        for kind in ('file', 'dir', 'glob'):
            hits = [i for i, k, p in entries
                    if k == kind and _matches(kind, p, path)]
            if hits:
                layers[module] = hits[0]
                break
        else:
            problems.append("%s is in no layer: add it to README's Layout "
                            'table' % path)
    return layers, problems


def _resolve(name: str, modules: Dict[str, str]) -> Optional[str]:
    """The project module NAME loads (its longest prefix that is one)."""
    while name.startswith(PACKAGE):
        if name in modules:
            return name
        name = name.rpartition('.')[0]
    return None


def imports(module: str, source: str, modules: Dict[str, str]
            ) -> Tuple[Set[str], List[str]]:
    """The project modules MODULE's SOURCE imports, and any dynamic import
    whose name cannot be read."""
    tree = ast.parse(source)
    package = module if modules.get(module, '').endswith(
        '__init__.py') else module.rpartition('.')[0]
    names: Set[str] = set()
    prefixes: Set[str] = set()
    unread = []
    tables = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                up = package.split('.')[:len(package.split('.'))
                                        - node.level + 1]
                base = '.'.join(up + ([base] if base else []))
            for alias in node.names:
                whole = '%s.%s' % (base, alias.name)
                names.add(whole if whole in modules else base)
        elif isinstance(node, ast.Call) and (
                getattr(node.func, 'attr', None) == 'import_module'
                or getattr(node.func, 'id', None) in ('import_module',
                                                      '__import__')):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
            elif (isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Add)
                  and isinstance(arg.left, ast.Constant)
                  and isinstance(arg.left.value, str)):
                prefixes.add(arg.left.value)
            else:
                unread.append('%s line %d: %s' % (module, node.lineno,
                                                  ast.unparse(node)))
        elif isinstance(node, (ast.Dict, ast.List, ast.Tuple, ast.Set)):
            elements = (node.values if isinstance(node, ast.Dict)
                        else node.elts)
            tables.update(e.value for e in elements
                          if isinstance(e, ast.Constant)
                          and isinstance(e.value, str))
        elif isinstance(node, ast.Assign) and any(
                getattr(t, 'id', None) == '__all__' for t in node.targets
        ) and modules.get(module, '').endswith('__init__.py'):
            prefixes.add(module + '.')
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value in modules and '.' in node.value:
            names.add(node.value)  # a module named whole, anywhere
    names.update(prefix + entry for prefix in prefixes for entry in tables
                 if prefix + entry in modules)
    found = {_resolve(name, modules) for name in names}
    return {m for m in found if m is not None and m != module}, unread


def _sources() -> Iterator[Tuple[str, str]]:
    for module, path in sorted(MODULES.items()):
        with open(os.path.join(ROOT, path), encoding='utf8') as f:
            yield module, f.read()


def violations(modules: Dict[str, str], sources: Dict[str, str],
               layers: Dict[str, int]) -> List[str]:
    """Each import of a later layer, as 'A (layer) imports B (layer)'."""
    found = []
    for module, source in sorted(sources.items()):
        targets, _ = imports(module, source, modules)
        for target in sorted(targets):
            if (module in layers and target in layers
                    and layers[target] > layers[module]
                    and (module, target) not in UPSTREAM_FORWARD):
                found.append('%s (%s) imports %s (%s)' % (
                    modules[module], LAYERS[layers[module]],
                    modules[target], LAYERS[layers[target]]))
    return found


SOURCES = dict(_sources())


def test_every_module_is_in_one_layer_of_the_table():
    _, problems = layer_of(MODULES)
    assert problems == []


def test_no_module_imports_a_later_layer():
    layers, _ = layer_of(MODULES)
    assert violations(MODULES, SOURCES, layers) == []


def test_every_dynamic_import_is_read():
    """Outside the last layer (tests), which may import anything."""
    layers, _ = layer_of(MODULES)
    unread = [line for module, source in SOURCES.items()
              for line in imports(module, source, MODULES)[1]
              if module not in UNREAD_DYNAMIC
              and layers.get(module) != len(LAYERS) - 1]
    assert unread == []


def test_the_upstream_exceptions_are_still_needed():
    layers, _ = layer_of(MODULES)
    for module, target in sorted(UPSTREAM_FORWARD):
        assert target in imports(module, SOURCES[module], MODULES)[0]
        assert layers[target] > layers[module]


# The reader itself: each way of importing is seen, so an upward import of
# any of these forms fails the test above.

_FAKE = {
    'containerregistry.low.a': 'low/a.py',
    'containerregistry.low.b': 'low/b.py',
    'containerregistry.high': 'high/__init__.py',
    'containerregistry.high.sink': 'high/sink.py',
    'containerregistry.high.other': 'high/other.py',
}


@pytest.mark.parametrize('source', [
    'import containerregistry.high.sink',
    'from containerregistry.high import sink',
    'from containerregistry.high.sink import write',
    'from ..high import sink',
    'def f():\n    from containerregistry.high import sink\n',
    'import importlib\nimportlib.import_module("containerregistry.high.sink")',
    '__import__("containerregistry.high.sink")',
    'T = {"w": "sink"}\n'
    'def f(n):\n'
    '    return importlib.import_module("containerregistry.high." + T[n])',
    'NAMES = ["containerregistry.high.sink"]',
])
def test_reader_sees_the_import(source):
    layers = {'containerregistry.low.a': 0, 'containerregistry.low.b': 0,
              'containerregistry.high': 1, 'containerregistry.high.sink': 1,
              'containerregistry.high.other': 1}
    found = violations(_FAKE, {'containerregistry.low.a': source}, layers)
    assert found == ['low/a.py (%s) imports high/sink.py (%s)'
                     % (LAYERS[0], LAYERS[1])]


def test_reader_follows_a_package_table_and_not_other_strings():
    targets, unread = imports('containerregistry.high',
                              '__all__ = ["sink", "other"]\nX = "a"\n',
                              _FAKE)
    assert (targets, unread) == ({'containerregistry.high.sink',
                                  'containerregistry.high.other'}, [])
    targets, unread = imports(
        'containerregistry.low.a',
        'x = {"k": "sink"}\ny = "containerregistry.low.b is here"\n'
        'import_module(name)\n', _FAKE)
    assert targets == set()
    assert unread == ['containerregistry.low.a line 3: import_module(name)']


# What offline sources and sinks load.

# Offline modules that also hold a registry reader, loading the protocol
# only when it is used.
WITH_REGISTRY_READER = {'containerregistry.client.v2_2.docker_image_list',
                        'containerregistry.client.v2.docker_image'}


def test_offline_modules_import_no_registry_protocol_even_late():
    found = {module: sorted(t for t in imports(module, SOURCES[module],
                                               MODULES)[0]
                            if t.endswith('.docker_http'))
             for module in OFFLINE if module not in WITH_REGISTRY_READER}
    assert {m: t for m, t in found.items() if t} == {}


def _shim_env() -> Dict[str, str]:
    shim = [p for p in sys.path
            if os.path.islink(os.path.join(p, PACKAGE))]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(shim))


def test_offline_modules_do_not_load_the_registry_protocol():
    code = ('import importlib, sys\n'
            'for m in sys.argv[1:]:\n'
            '    before = set(sys.modules)\n'
            '    importlib.import_module(m)\n'
            '    print(m, sorted(n for n in set(sys.modules) - before\n'
            '                    if n.endswith(".docker_http")\n'
            '                    or n.startswith("containerregistry.transport")'
            '))\n')
    out = subprocess.run(
        [sys.executable, '-c', code] + OFFLINE, env=_shim_env(),
        capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.splitlines() == ['%s []' % m for m in OFFLINE]


def test_docker_http_offers_every_media_type():
    from containerregistry.client.v2_2 import docker_http
    from containerregistry.client.v2_2 import media_types
    names = [n for n in vars(media_types) if n.isupper()]
    assert names and [n for n in names if getattr(docker_http, n, None)
                      is not getattr(media_types, n)] == []

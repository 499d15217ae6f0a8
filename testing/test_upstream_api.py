"""Upstream's callers keep working: every public module, name and signature.

The table in upstream_api.py lists what upstream's library offered. Each
module must import under its upstream path, be an attribute of its package
(loaded on first use, so a tool's start-up does not grow), give upstream's
names to `from M import *`, and accept upstream's parameters: the same
names in the same positions, with a default wherever upstream had one
(the same value where it can be compared), `*args`/`**kwargs` where
upstream took them, and no new required parameter.
"""
import ast
import importlib
import inspect
import json
import os
import subprocess
import sys
from typing import Any, Dict, List

import pytest

from containerregistry.testing import images
from containerregistry.testing import pars
from containerregistry.testing import upstream_api

MODULES = sorted(upstream_api.MODULES)
PACKAGES = upstream_api.PACKAGES

# Methods whose signature callers do not rely on: Python calls them.
_PROTOCOL = {'__str__', '__repr__', '__eq__', '__ne__', '__hash__',
             '__iter__', '__enter__', '__exit__', '__getstate__',
             '__setstate__'}


def _resolve(dotted: str) -> Any:
    """The object a dotted name names, importing its module."""
    parts = dotted.split('.')
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(dotted)


def _upstream_params(text: str) -> List[inspect.Parameter]:
    """Upstream's parameters; defaults stay source text (ast nodes)."""
    args = ast.parse('def f%s: pass' % text).body[0].args
    params = []
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(
        args.defaults)
    for arg, default in zip(positional, defaults):
        params.append(inspect.Parameter(
            arg.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=inspect.Parameter.empty if default is None else default))
    if args.vararg:
        params.append(inspect.Parameter(
            args.vararg.arg, inspect.Parameter.VAR_POSITIONAL))
    if args.kwarg:
        params.append(inspect.Parameter(
            args.kwarg.arg, inspect.Parameter.VAR_KEYWORD))
    return params


def _value(node: ast.AST, namespace: Dict[str, Any]) -> Any:
    """Upstream's default evaluated in the project's module, or `empty`.

    Upstream took media types from `docker_http`; a module that takes them
    from `media_types` (the same objects) is read with that name bound.
    """
    scope = dict(namespace)
    if 'media_types' in scope:
        scope.setdefault('docker_http', scope['media_types'])
    try:
        return eval(compile(ast.Expression(node), '<default>', 'eval'),
                    scope)
    except Exception:
        return inspect.Parameter.empty


def _mismatches(upstream: List[inspect.Parameter],
                project: List[inspect.Parameter],
                namespace: Dict[str, Any]) -> List[str]:
    """How `project`'s parameters fail to accept upstream's calls."""
    kinds = {p.kind for p in project}
    takes_args = inspect.Parameter.VAR_POSITIONAL in kinds
    takes_kwargs = inspect.Parameter.VAR_KEYWORD in kinds
    positional = [p for p in project if p.kind in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    problems = []
    index = 0
    for up in upstream:
        if up.kind == inspect.Parameter.VAR_POSITIONAL:
            if not takes_args:
                problems.append('takes no *%s' % up.name)
            continue
        if up.kind == inspect.Parameter.VAR_KEYWORD:
            if not takes_kwargs:
                problems.append('takes no **%s' % up.name)
            continue
        mine = positional[index] if index < len(positional) else None
        index += 1
        if mine is None:
            if not (takes_args and takes_kwargs):
                problems.append('has no parameter %r' % up.name)
            continue
        if mine.name != up.name:
            problems.append('has %r where upstream has %r' % (
                mine.name, up.name))
            continue
        if mine.kind != inspect.Parameter.POSITIONAL_OR_KEYWORD:
            problems.append('%r cannot be passed by keyword' % up.name)
        if up.default is inspect.Parameter.empty:
            continue
        if mine.default is inspect.Parameter.empty:
            problems.append('%r has no default (upstream: %s)' % (
                up.name, ast.unparse(up.default)))
            continue
        expected = _value(up.default, namespace)
        if expected is not inspect.Parameter.empty and not _same(
                expected, mine.default):
            problems.append('%r defaults to %r, upstream to %s' % (
                up.name, mine.default, ast.unparse(up.default)))
    seen = {p.name for p in upstream}
    for p in positional[index:] + [
            p for p in project if p.kind == inspect.Parameter.KEYWORD_ONLY]:
        if p.name not in seen and p.default is inspect.Parameter.empty:
            problems.append('requires %r, which upstream did not' % p.name)
    return problems


def _same(expected: Any, actual: Any) -> bool:
    try:
        return bool(expected == actual)
    except Exception:
        return expected is actual


def _callable_params(owner: Any, name: str, text: str):
    """(upstream params, project params) for a function or method."""
    upstream = _upstream_params(text.removeprefix('static').removeprefix(
        'class'))
    if inspect.isclass(owner):
        static = inspect.getattr_static(owner, name)
        if isinstance(static, staticmethod):
            fn, drop_self = static.__func__, False
        elif isinstance(static, classmethod):
            fn, drop_self = static.__func__, True
        else:
            fn, drop_self = getattr(owner, name), True
        if name == '__new__':
            fn, drop_self = static.__func__, True
        if not text.startswith('static'):
            upstream = upstream[1:]
    else:
        fn, drop_self = getattr(owner, name), False
    project = list(inspect.signature(fn).parameters.values())
    if drop_self and project and project[0].kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD):
        project = project[1:]
    return upstream, project


def _names(entry: Dict[str, Any]) -> List[str]:
    return (list(entry.get('constants', [])) +
            list(entry.get('functions', {})) + list(entry.get('classes', {})))


@pytest.mark.parametrize('module', MODULES)
def test_module_imports_under_upstream_path(module):
    package, _, leaf = module.rpartition('.')
    namespace: Dict[str, Any] = {}
    exec('from %s import %s' % (package, leaf), namespace)
    assert namespace[leaf] is importlib.import_module(module)


def _shim_env() -> Dict[str, str]:
    shim = [p for p in sys.path
            if os.path.islink(os.path.join(p, 'containerregistry'))]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(shim))


_READ_ATTRIBUTE = """
import importlib, json, sys
module = sys.argv[1]
package, _, leaf = module.rpartition('.')
pkg = importlib.import_module(package)
listed = leaf in dir(pkg)
try:
    got = getattr(pkg, leaf) is sys.modules.get(module)
except Exception as e:
    got = '%s: %s' % (type(e).__name__, e)
print(json.dumps([listed, got]))
"""


@pytest.mark.parametrize('module', MODULES)
def test_module_is_a_package_attribute(module):
    """Read off its package in a fresh interpreter, where importing only
    the package (not the module by name) has loaded it."""
    out = subprocess.run([sys.executable, '-c', _READ_ATTRIBUTE, module],
                         env=_shim_env(), capture_output=True, text=True,
                         timeout=60, check=True).stdout
    listed, got = json.loads(out)
    assert got is True
    assert listed, 'dir() of its package does not list it'


def test_every_upstream_module_is_in_its_package_table():
    listed = {'%s.%s' % (pkg, leaf)
              for pkg, leaves in PACKAGES.items() for leaf in leaves}
    assert listed == set(MODULES)


@pytest.mark.parametrize('package', sorted(PACKAGES) + [
    'containerregistry', 'containerregistry.transform'])
def test_package_import_loads_no_submodule(package):
    """Importing a package alone stays as cheap as it was."""
    code = ('import sys, importlib; importlib.import_module(%r); '
            'print(sorted(m for m in sys.modules '
            'if m.startswith("containerregistry")))' % package)
    out = subprocess.run([sys.executable, '-c', code], env=_shim_env(),
                         capture_output=True, text=True, timeout=60,
                         check=True).stdout
    parts = package.split('.')
    expected = ['.'.join(parts[:n]) for n in range(1, len(parts) + 1)]
    assert out.strip() == repr(expected)


@pytest.mark.parametrize('package', sorted(PACKAGES))
def test_package_star_import_gives_its_modules(package):
    namespace: Dict[str, Any] = {}
    exec('from %s import *' % package, namespace)
    assert [leaf for leaf in PACKAGES[package]
            if namespace.get(leaf) is not sys.modules.get(
                '%s.%s' % (package, leaf))] == []


def test_unknown_package_attribute_is_an_attribute_error():
    from containerregistry.client import v2_2
    with pytest.raises(AttributeError, match='no_such_module'):
        _ = v2_2.no_such_module
    assert not hasattr(v2_2, 'no_such_module')


@pytest.mark.parametrize('module', MODULES)
def test_star_import_gives_upstream_names(module):
    namespace: Dict[str, Any] = {}
    exec('from %s import *' % module, namespace)
    missing = [n for n in _names(upstream_api.MODULES[module])
               if n not in namespace]
    assert missing == []


@pytest.mark.parametrize('module', MODULES)
def test_signatures_accept_upstream_calls(module):
    mod = importlib.import_module(module)
    entry = upstream_api.MODULES[module]
    namespace = vars(mod)
    problems = []
    for name, text in entry.get('functions', {}).items():
        if not hasattr(mod, name):
            problems.append('%s: missing' % name)
            continue
        upstream, project = _callable_params(mod, name, text)
        problems += ['%s%s' % (name, p) for p in
                     [': ' + m for m in _mismatches(upstream, project,
                                                    namespace)]]
    for cname, spec in entry.get('classes', {}).items():
        cls = getattr(mod, cname, None)
        if cls is None:
            problems.append('%s: missing' % cname)
            continue
        for name, text in spec['methods'].items():
            label = '%s.%s' % (cname, name)
            if not hasattr(cls, name):
                problems.append('%s: missing' % label)
                continue
            if name in _PROTOCOL:
                continue
            upstream, project = _callable_params(cls, name, text)
            problems += ['%s: %s' % (label, m) for m in
                         _mismatches(upstream, project, namespace)]
    assert problems == []


@pytest.mark.parametrize('module', MODULES)
def test_classes_keep_bases_and_attributes(module):
    mod = importlib.import_module(module)
    problems = []
    for cname, spec in upstream_api.MODULES[module].get('classes',
                                                        {}).items():
        cls = getattr(mod, cname, None)
        if cls is None:
            problems.append('%s: missing' % cname)
            continue
        for base in spec['bases']:
            dotted = base if base.split('.')[0] in (
                'builtins', 'httplib2', 'logging') else (
                'containerregistry.' + base)
            if not issubclass(cls, _resolve(dotted)):
                problems.append('%s is not a %s' % (cname, base))
        for attr in spec.get('attributes', []):
            if not hasattr(cls, attr):
                problems.append('%s has no %s' % (cname, attr))
    assert problems == []


def _loaded_by(tool: str, *args: str) -> set:
    """The modules tool TOOL imports while it runs with ARGS."""
    command = pars.tool_command(tool)
    proc = subprocess.run(command[:1] + ['-X', 'importtime'] + command[1:] +
                          list(args), env=pars.tool_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return {line.rsplit('|', 1)[1].strip()
            for line in proc.stderr.splitlines()
            if line.startswith('import time:') and '|' in line}


def test_tools_do_not_load_httplib2(registry, repo_name, tmp_path):
    """The httplib2-based wrappers are for library callers only."""
    pushed = images.push_image(registry, repo_name + ':v1',
                               [images.make_layer(7)])
    out = tmp_path / 'out'
    pulled = _loaded_by('puller', '--name', pushed.by_tag,
                        '--directory', str(out))
    pushed_again = _loaded_by(
        'pusher', '--name', '%s/%s:copy' % (registry.host, repo_name),
        '--config', str(out / 'config.json'),
        '--digest', str(out / '000.sha256'),
        '--layer', str(out / '000.tar.gz'))
    assert (out / 'digest').exists()
    for loaded in (pulled, pushed_again):
        assert 'containerregistry.transport.pooled_http' in loaded
        assert loaded & {'httplib2', 'containerregistry.transport.nested',
                         'containerregistry.transport.retry',
                         'containerregistry.transport.transport_pool'} == set()

"""`par_binary`: a py_binary plus a self-contained `.par` of it.

    load("//build_defs:par.bzl", "par_binary")
    par_binary(name = "puller", main = "tools/fast_puller.py")

defines `:puller` (a py_binary run from its runfiles tree) and `:puller.par`:
one executable file, `#!/usr/bin/env python3` followed by a zip of the
binary's runfiles, that runs anywhere with only `python3` (3.10+):

  * our files keep their runfiles path, so the zip root holds the package
    `containerregistry/`; the repository must be named `containerregistry`;
  * the import roots of dependencies (`imports` of py_library, e.g. the pip
    repository's `site/`) are hoisted to the zip root, so `import httplib2`
    and `importlib.metadata` work;
  * every .py has an unchecked-hash .pyc beside it; another Python minor
    version ignores it and compiles the .py;
  * `__main__.py` drops the host's site-packages, user site and PYTHONPATH
    from sys.path, then runs the main module as
    `containerregistry.tools.<module>` through runpy;
  * entries are sorted and have fixed timestamps: the same inputs give the
    same bytes.
"""

_PY_TOOLCHAIN = "@bazel_tools//tools/python:toolchain_type"

def _runfiles_path(ctx, f):
    """The path of F below the runfiles root, starting with its repository name."""
    if f.short_path.startswith("../"):
        return f.short_path[3:]
    return ctx.workspace_name + "/" + f.short_path

def _main_module(ctx):
    path = _runfiles_path(ctx, ctx.file.main)
    if not path.endswith(".py"):
        fail("main must be a .py file: %s" % path)
    module = path[:-3].replace("/", ".")
    for part in module.split("."):
        if not part or not (part[0].isalpha() or part[0] == "_") or not part.replace("_", "a").isalnum():
            fail("%s is not importable as a module (%s); the repository must be named containerregistry" % (path, module))
    return module

def _negative_length(s):
    return -len(s)

def _par_impl(ctx):
    binary = ctx.attr.binary
    runtime = ctx.toolchains[_PY_TOOLCHAIN].py3_runtime
    skip = {binary[DefaultInfo].files_to_run.executable.path: True}
    if runtime.interpreter:
        skip[runtime.interpreter.path] = True
    for f in runtime.files.to_list():
        skip[f.path] = True

    # Longest first, so a nested import root wins over its parent.
    roots = sorted(binary[PyInfo].imports.to_list(), key = _negative_length)

    lines = []
    inputs = []
    for f in binary[DefaultInfo].default_runfiles.files.to_list():
        if f.path in skip:
            continue
        path = _runfiles_path(ctx, f)
        for root in roots:
            if path.startswith(root + "/"):
                path = path[len(root) + 1:]
                break
        lines.append("%s\t%s" % (path, f.path))
        inputs.append(f)

    manifest = ctx.actions.declare_file(ctx.label.name + ".manifest")
    ctx.actions.write(manifest, "\n".join(sorted(lines)) + "\n")

    out = ctx.actions.declare_file(ctx.label.name)
    args = ctx.actions.args()
    args.add("--manifest", manifest)
    args.add("--output", out)
    args.add("--main-module", _main_module(ctx))
    if not ctx.attr.compile:
        args.add("--no-compile")
    ctx.actions.run(
        executable = ctx.executable._make_par,
        arguments = [args],
        inputs = inputs + [manifest],
        outputs = [out],
        mnemonic = "PythonPar",
        progress_message = "Packing %s" % ctx.label,
        # A fixed hash seed keeps the marshalled .pyc (frozensets) stable.
        env = {"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
    )
    return [DefaultInfo(
        files = depset([out]),
        executable = out,
        runfiles = ctx.runfiles(files = [out]),
    )]

par = rule(
    implementation = _par_impl,
    executable = True,
    attrs = {
        "binary": attr.label(
            mandatory = True,
            executable = True,
            cfg = "target",
            providers = [PyInfo],
            doc = "The py_binary whose runfiles go into the .par.",
        ),
        "main": attr.label(
            mandatory = True,
            allow_single_file = [".py"],
            doc = "The binary's main file; it runs as a module.",
        ),
        "compile": attr.bool(default = True, doc = "Add unchecked-hash .pyc files."),
        "_make_par": attr.label(
            default = Label("//build_defs:make_par"),
            executable = True,
            cfg = "exec",
        ),
    },
    toolchains = [_PY_TOOLCHAIN],
    doc = "A self-contained executable zip of a py_binary's runfiles.",
)

def par_binary(name, main, deps = None, compile = True, visibility = None, **kwargs):
    """Defines py_binary NAME and its self-contained zip NAME.par.

    Args:
      name: the py_binary's name; the zip is NAME.par.
      main: the main .py file, e.g. "tools/fast_puller.py".
      deps: defaults to the `:containerregistry` library of this repository.
      compile: put .pyc files into the .par.
      visibility: of both targets.
      **kwargs: passed to py_binary.
    """
    if deps == None:
        deps = [Label("//:containerregistry")]
    native.py_binary(
        name = name,
        srcs = [main],
        main = main,
        deps = deps,
        python_version = "PY3",
        srcs_version = "PY3",
        legacy_create_init = False,
        visibility = visibility,
        **kwargs
    )
    par(
        name = name + ".par",
        binary = ":" + name,
        main = main,
        compile = compile,
        visibility = visibility,
    )

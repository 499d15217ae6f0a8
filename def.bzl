"""Repositories that the containerregistry build needs, for WORKSPACE files.

A consumer's WORKSPACE does:

    local_repository(name = "containerregistry", path = "...")  # or http_archive
    load("@containerregistry//:def.bzl", "repositories")
    repositories()

`repositories()` defines only names that are not defined yet, so a consumer
can point any of them somewhere else by defining it first. It defines:

  * `rules_cc`, `rules_java`, `remote_coverage_tools`: empty stand-ins.
    Bazel 4 appends a WORKSPACE suffix that downloads these from GitHub;
    nothing here uses them, and the build must work offline.
    (`bazel coverage` therefore cannot work.)
  * `containerregistry_pip`: the third-party Python packages pinned in
    requirements.txt, installed by pip from hash-pinned wheels. It holds one
    `py_library` per wheel, named by the normalised project name: lowercase,
    with `-` and `.` turned into `_`. Examples: `@containerregistry_pip//:httplib2`,
    `:urllib3`, `:oauth2client`, `:six`, `:absl_py`,
    `:concurrent_log_handler`. Each one depends on the libraries of the
    wheels it requires.
  * `containerregistry_native`: the compiled packages pinned in
    requirements-native.txt (`@containerregistry_native//:zlib_ng`), with
    the extension modules of CPython 3.10-3.14 on x86_64 and aarch64 Linux.
    The code loads the one matching the running interpreter, if any, and
    does without otherwise.
  * our Python toolchain (`//build_defs:py_toolchain`), unless
    `register_toolchain = False`: `/usr/bin/python3 -S`, so a missing dep
    fails under `bazel run`/`bazel test` instead of being found in the
    host's site-packages; the launcher shebang is `#!/usr/bin/env python3`.
"""

def _stub_repository_impl(rctx):
    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
    rctx.file("BUILD.bazel", "")
    package = rctx.attr.package
    rctx.file(package + "/BUILD.bazel", "")
    defs = ['"""Offline stand-in: the native rules under their rules_* names."""\n']
    for rule in rctx.attr.rules:
        defs.append("\ndef %s(**kwargs):\n    native.%s(**kwargs)\n" % (rule, rule))
    rctx.file(package + "/defs.bzl", "".join(defs))

_stub_repository = repository_rule(
    implementation = _stub_repository_impl,
    attrs = {
        "package": attr.string(mandatory = True),
        "rules": attr.string_list(mandatory = True),
    },
    doc = "An offline stand-in for rules_cc/rules_java: PACKAGE/defs.bzl forwards RULES to native.",
)

# What @bazel_tools loads from the two rule sets.
_STUBS = {
    "rules_cc": ("cc", [
        "cc_binary",
        "cc_import",
        "cc_library",
        "cc_proto_library",
        "cc_test",
        "cc_toolchain",
        "cc_toolchain_suite",
        "objc_library",
    ]),
    "rules_java": ("java", [
        "java_binary",
        "java_import",
        "java_library",
        "java_lite_proto_library",
        "java_plugin",
        "java_proto_library",
        "java_runtime",
        "java_test",
        "java_toolchain",
    ]),
}

_COVERAGE_STUB = """\
package(default_visibility = ["//visibility:public"])

# Test rules refer to these two targets; coverage itself is not supported.
[sh_binary(
    name = name,
    srcs = ["unsupported.sh"],
) for name in ["coverage_report_generator", "lcov_merger"]]
"""

def _coverage_stub_impl(rctx):
    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
    rctx.file("BUILD.bazel", _COVERAGE_STUB)
    rctx.file(
        "unsupported.sh",
        "#!/bin/sh\necho 'coverage is not supported in this build' >&2\nexit 1\n",
        executable = True,
    )

_coverage_stub = repository_rule(
    implementation = _coverage_stub_impl,
    doc = "Stands in for @remote_coverage_tools, which `bazel test` refers to.",
)

def _pip_command(rctx):
    """The argv prefix that runs pip: `python3 -m pip`, else `pip3`, else `pip`."""
    candidates = []
    for python in [rctx.which("python3"), "/usr/bin/python3"]:
        if python:
            candidates.append([str(python), "-m", "pip"])
    for pip in ["pip3", "pip"]:
        path = rctx.which(pip)
        if path:
            candidates.append([str(path)])
    for command in candidates:
        if rctx.execute(command + ["--version"]).return_code == 0:
            return command
    fail("pip_repository: no working pip found (tried python3 -m pip, pip3, pip on PATH)")

def _generate(rctx, generator, args):
    """Runs GENERATOR (a stdlib-only script) with ARGS; writes the WORKSPACE file."""
    python = str(rctx.which("python3") or "/usr/bin/python3")
    result = rctx.execute([python, "-S", str(generator)] + args)
    if result.return_code != 0:
        fail("%s failed:\n%s\n%s" % (generator.basename, result.stdout, result.stderr))
    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)

def _pip_repository_impl(rctx):
    requirements = rctx.path(rctx.attr.requirements)
    generator = rctx.path(rctx.attr._generator)
    pip = _pip_command(rctx)
    rctx.report_progress("pip install -r %s" % rctx.attr.requirements)
    result = rctx.execute(
        pip + [
            "install",
            "--no-deps",
            "--require-hashes",
            "--only-binary=:all:",
            # Pure-Python wheels only: the .par imports them from a zip.
            "--platform=any",
            "--implementation=py",
            "--abi=none",
            "--python-version=" + rctx.attr.python_version,
            "--no-compile",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--target=site",
            "--requirement=%s" % requirements,
        ],
        timeout = 600,
        environment = {"PYTHONDONTWRITEBYTECODE": "1"},
    )
    if result.return_code != 0:
        fail("pip install failed (rc=%d):\n%s\n%s" % (result.return_code, result.stdout, result.stderr))
    _generate(rctx, generator, ["site", "BUILD.bazel"])

pip_repository = repository_rule(
    implementation = _pip_repository_impl,
    attrs = {
        "requirements": attr.label(mandatory = True, allow_single_file = True),
        "python_version": attr.string(
            default = "3.10",
            doc = "Oldest Python the wheels must support (checks Requires-Python).",
        ),
        "_generator": attr.label(default = Label("//build_defs:pip_repository.py")),
    },
    doc = "One py_library per wheel of a hash-pinned requirements file.",
)

def _native_repository_impl(rctx):
    requirements = rctx.path(rctx.attr.requirements)
    generator = rctx.path(rctx.attr._generator)
    pip = _pip_command(rctx)
    rctx.report_progress("pip download -r %s" % rctx.attr.requirements)
    for version in rctx.attr.python_versions:
        abi = "cp" + version.replace(".", "")
        for platform in rctx.attr.platforms:
            result = rctx.execute(
                pip + [
                    "download",
                    "--no-deps",
                    "--require-hashes",
                    "--only-binary=:all:",
                    "--platform=" + platform,
                    "--implementation=cp",
                    "--abi=" + abi,
                    "--python-version=" + version,
                    "--disable-pip-version-check",
                    "--no-input",
                    "--quiet",
                    "--dest=wheels",
                    "--requirement=%s" % requirements,
                ],
                timeout = 600,
            )
            if result.return_code != 0:
                fail("pip download for %s %s failed (rc=%d):\n%s\n%s" % (
                    abi,
                    platform,
                    result.return_code,
                    result.stdout,
                    result.stderr,
                ))
    _generate(rctx, generator, ["wheels", "site", "BUILD.bazel"])
    rctx.delete("wheels")

native_repository = repository_rule(
    implementation = _native_repository_impl,
    attrs = {
        "requirements": attr.label(mandatory = True, allow_single_file = True),
        "python_versions": attr.string_list(
            default = ["3.10", "3.11", "3.12", "3.13", "3.14"],
            doc = "CPython versions whose wheels are fetched.",
        ),
        "platforms": attr.string_list(
            default = ["manylinux2014_x86_64", "manylinux2014_aarch64"],
            doc = "pip platform tags whose wheels are fetched.",
        ),
        "_generator": attr.label(default = Label("//build_defs:native_repository.py")),
    },
    doc = "One py_library per project of a hash-pinned requirements file of " +
          "compiled wheels: its Python files and the extension modules of " +
          "every listed CPython version and platform, side by side.",
)

def repositories(register_toolchain = True):
    """Defines the repositories this build needs, skipping those already defined.

    Args:
      register_toolchain: register our Python toolchain (`/usr/bin/python3 -S`).
        Pass False to keep your own; register yours before calling this, or
        skip ours: the first registered toolchain wins.
    """
    existing = native.existing_rules()
    for name, (package, rules) in _STUBS.items():
        if name not in existing:
            _stub_repository(name = name, package = package, rules = rules)
    if "remote_coverage_tools" not in existing:
        _coverage_stub(name = "remote_coverage_tools")
    if "containerregistry_pip" not in existing:
        pip_repository(
            name = "containerregistry_pip",
            requirements = Label("//:requirements.txt"),
        )
    if "containerregistry_native" not in existing:
        native_repository(
            name = "containerregistry_native",
            requirements = Label("//:requirements-native.txt"),
        )
    if register_toolchain:
        native.register_toolchains(str(Label("//build_defs:py_toolchain")))

"""A repository rule that turns Debian's system libraries into cc_library targets.

Each entry maps a target name to one or more pkg-config modules (or to nothing for
header-only libraries found under /usr/include). Compile and link flags come from
`pkg-config --cflags --libs`, so nothing here lists gRPC's ~90 transitive libraries by hand.

    system_libs(name = "system", libs = {"grpc": ["grpc++"], "curl": ["libcurl"]})
    # then depend on "@system//:grpc"
"""

def _pkg_config(ctx, args):
    result = ctx.execute(["pkg-config"] + args)
    if result.return_code != 0:
        fail("pkg-config %s failed (run `make setup`): %s" % (" ".join(args), result.stderr))
    return result.stdout.strip()

def _system_libs_impl(ctx):
    build = ['package(default_visibility = ["//visibility:public"])', ""]
    for name, modules in ctx.attr.libs.items():
        copts = []
        defines = []
        linkopts = []
        if modules:
            for flag in _pkg_config(ctx, ["--cflags"] + modules).split(" "):
                # System include dirs are already searched; -I/usr/include would break #include_next.
                if not flag or flag == "-I/usr/include":
                    continue
                if flag.startswith("-D"):
                    # `defines` reach every dependent target (copts would not): cpp-httplib's
                    # struct layouts depend on its -D flags, so all users must see them.
                    defines.append(flag[2:])
                else:
                    copts.append(flag)
            linkopts = [f for f in _pkg_config(ctx, ["--libs"] + modules).split(" ") if f]
        linkopts = linkopts + ctx.attr.extra_linkopts.get(name, [])
        build.append("cc_library(")
        build.append('    name = "%s",' % name)
        build.append("    copts = %s," % repr(copts))
        build.append("    defines = %s," % repr(defines))
        build.append("    linkopts = %s," % repr(linkopts))
        build.append(")")
        build.append("")
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD", "\n".join(build))

system_libs = repository_rule(
    implementation = _system_libs_impl,
    attrs = {
        "libs": attr.string_list_dict(mandatory = True),
        "extra_linkopts": attr.string_list_dict(),
    },
    local = True,
    environ = ["PKG_CONFIG_PATH"],
)

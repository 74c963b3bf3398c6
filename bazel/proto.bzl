"""Compiles .proto files with Debian's protoc and grpc_cpp_plugin into a cc_library.

    gateway_proto_library(
        name = "respondio_proto",
        srcs = ["contact.proto"],
        deps = ["//proto/gateway/v1:gateway_proto"],
    )

Imports are relative to `root` (default "proto", the buf module root), so the generated headers
are included as "respondio/v2/contact.pb.h". Also produces `<name>_descriptor_set`, a
FileDescriptorSet with all imports, for tools such as `buf` and reflection tests.
"""

def gateway_proto_library(name, srcs, deps = [], root = "proto", grpc = True, visibility = None):
    pkg = native.package_name()
    if not pkg.startswith(root):
        fail("package %s is not under proto root %s" % (pkg, root))
    native.filegroup(
        name = name + "_srcs",
        srcs = srcs + [d + "_srcs" for d in deps],
        visibility = visibility,
    )
    bases = [s[:-len(".proto")] for s in srcs]
    hdrs = [b + ".pb.h" for b in bases]
    cc_srcs = [b + ".pb.cc" for b in bases]
    if grpc:
        hdrs += [b + ".grpc.pb.h" for b in bases]
        cc_srcs += [b + ".grpc.pb.cc" for b in bases]
    roots = depset([root] + [_root_of(d) for d in deps]).to_list()
    includes = " ".join(["-I" + r for r in roots]) + " -I/usr/include"
    grpc_flags = ""
    if grpc:
        grpc_flags = " --grpc_out=$(GENDIR)/%s --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin" % root
    own = " ".join(["$(location %s)" % s for s in srcs])
    native.genrule(
        name = name + "_gen",
        srcs = srcs + [name + "_srcs"],
        outs = hdrs + cc_srcs,
        cmd = "protoc %s --cpp_out=$(GENDIR)/%s%s %s" % (includes, root, grpc_flags, own),
    )
    native.genrule(
        name = name + "_descriptor_set",
        srcs = srcs + [name + "_srcs"],
        outs = [name + ".pb"],
        cmd = "protoc %s --include_imports --include_source_info --descriptor_set_out=$@ %s" % (includes, own),
        visibility = visibility,
    )
    native.cc_library(
        name = name,
        srcs = cc_srcs,
        hdrs = hdrs,
        strip_include_prefix = "/" + root,
        alwayslink = True,
        deps = deps + ["@system//:grpc", "@system//:protobuf"],
        visibility = visibility,
    )

def _root_of(label):
    # Labels look like //proto/gateway/v1:x or //third_party/googleapis/google/rpc:x.
    path = label.lstrip("/").split(":")[0]
    if path.startswith("third_party/googleapis"):
        return "third_party/googleapis"
    return "proto"

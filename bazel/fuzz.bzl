"""libFuzzer targets that double as corpus-replay tests.

    gateway_fuzz_test(name = "page_token_fuzzer", srcs = [...], deps = [...], corpus = "corpus/page_token")

defines
  - `name`: a cc_binary. Under --config=asan (which sets --define=fuzz=libfuzzer) it links
    libFuzzer (-fsanitize=fuzzer): run it as `bazel-bin/tests/fuzz/NAME -max_total_time=30 DIR`.
    Otherwise it links tests/fuzz/standalone_main.cc, which runs each input file once.
  - `name + "_corpus_test"`: a cc_test replaying the seed corpus (and any regression inputs in
    it) through the target with the replay main, so `bazel test //...` (g++) and `bazel test --config=asan` check
    every committed input.
"""

load("@rules_cc//cc:defs.bzl", "cc_binary", "cc_test")

def gateway_fuzz_test(name, srcs, deps, corpus):
    cc_binary(
        name = name,
        srcs = srcs,
        deps = deps + select({
            "//bazel:libfuzzer": [],
            "//conditions:default": ["//tests/fuzz:standalone_main"],
        }),
        linkopts = select({
            "//bazel:libfuzzer": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
    )

    # The replay test never links libFuzzer (given a directory, libFuzzer would fuzz forever).
    cc_test(
        name = name + "_corpus_test",
        size = "small",
        srcs = srcs,
        deps = deps + ["//tests/fuzz:standalone_main"],
        args = [native.package_name() + "/" + corpus],
        data = native.glob([corpus + "/**"]),
    )

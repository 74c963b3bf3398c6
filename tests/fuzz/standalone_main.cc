// main() for fuzz targets when libFuzzer is not linked (g++ builds, `bazel test //...`): runs
// LLVMFuzzerTestOneInput once per file named on the command line (a directory: every file in
// it), so every seed corpus and regression input is replayed by the normal test run.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

int RunFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return 1;
  }
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // A copy of exactly `size` bytes, so ASan sees reads past the end.
  std::vector<uint8_t> data(bytes.begin(), bytes.end());
  LLVMFuzzerTestOneInput(data.empty() ? nullptr : data.data(), data.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int inputs = 0;
  int failed = 0;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path arg(argv[i]);
    if (std::filesystem::is_directory(arg)) {
      for (const auto& entry : std::filesystem::recursive_directory_iterator(arg)) {
        if (!entry.is_regular_file()) continue;
        failed += RunFile(entry.path());
        ++inputs;
      }
    } else {
      failed += RunFile(arg);
      ++inputs;
    }
  }
  std::printf("ran %d inputs\n", inputs);
  // No input at all means the corpus went missing: that must not pass silently.
  return (failed == 0 && inputs > 0) ? 0 : 1;
}

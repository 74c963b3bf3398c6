#include "upstream/safe_text.h"

#include <string>

#include "gtest/gtest.h"

namespace gateway::upstream {
namespace {

TEST(SanitizeUtf8, KeepsValidTextAndReplacesIllFormedBytes) {
  EXPECT_EQ(SanitizeUtf8("plain ascii"), "plain ascii");
  EXPECT_EQ(SanitizeUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  EXPECT_EQ(SanitizeUtf8("a\xFFz"), "a\xEF\xBF\xBDz");           // never valid
  EXPECT_EQ(SanitizeUtf8("a\x80z"), "a\xEF\xBF\xBDz");           // stray continuation
  EXPECT_EQ(SanitizeUtf8("a\xC3"), "a\xEF\xBF\xBD");             // truncated sequence
  EXPECT_EQ(SanitizeUtf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/'
  EXPECT_EQ(SanitizeUtf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(SanitizeUtf8("\xF4\x90\x80\x80").substr(0, 3), "\xEF\xBF\xBD");  // > U+10FFFF
  EXPECT_EQ(SanitizeUtf8(std::string("nul\0byte", 8)), std::string("nul\0byte", 8));
}

TEST(TruncateUtf8, CutsOnACharacterBoundary) {
  EXPECT_EQ(TruncateUtf8("short", 500), "short");
  EXPECT_EQ(TruncateUtf8(std::string(600, 'm'), 500), std::string(500, 'm') + "...");
  // 499 ASCII bytes then a 2-byte character: byte 500 is inside it, so it is dropped whole.
  const std::string text = std::string(499, 'a') + "\xC3\xA9" + "tail";
  EXPECT_EQ(TruncateUtf8(text, 500), std::string(499, 'a') + "...");
  // 4-byte characters all the way: the cut backs up to a multiple of 4.
  std::string emoji;
  for (int i = 0; i < 200; ++i) emoji += "\xF0\x9F\x98\x80";
  const std::string cut = TruncateUtf8(emoji, 501);
  EXPECT_EQ(cut.size(), 500u + 3u);
  EXPECT_EQ(SanitizeUtf8(cut), cut);  // still valid UTF-8
}

TEST(RedactSecrets, RemovesEveryRegisteredSecret) {
  RegisterSecret("tok-0123456789abcdef");
  RegisterSecret("tok-0123456789abcdef-longer");
  RegisterSecret("abc");  // too short to be a credential: ignored
  EXPECT_EQ(RedactSecrets("bad token tok-0123456789abcdef, again tok-0123456789abcdef"),
            "bad token [REDACTED], again [REDACTED]");
  EXPECT_EQ(RedactSecrets("x tok-0123456789abcdef-longer y"), "x [REDACTED] y");
  EXPECT_EQ(RedactSecrets("abc stays"), "abc stays");
}

}  // namespace
}  // namespace gateway::upstream

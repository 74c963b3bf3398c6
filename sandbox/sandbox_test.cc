// End-to-end tests of the sandbox: a real SandboxServer on a free 127.0.0.1
// port, driven over HTTP with httplib::Client and raw sockets.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "sandbox/sandbox_server.h"

namespace sandbox {
namespace {

using Json = nlohmann::json;

constexpr char kToken[] = "sandbox-token";

// Sends a raw HTTP/1.1 request and reads until the server closes. Returns ""
// when the server closed without answering.
std::string RawHttp(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "socket-error";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "connect-error";
  }
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, 0);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

std::string RawGet(int port, const std::string& target,
                   const std::string& token = kToken) {
  return RawHttp(port, "GET " + target +
                           " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Authorization: Bearer " +
                           token + "\r\nConnection: close\r\n\r\n");
}

int RawStatus(const std::string& response) {
  // "HTTP/1.1 200 OK"
  if (response.size() < 12) return -1;
  return std::stoi(response.substr(9, 3));
}

Json RawBody(const std::string& response) {
  size_t p = response.find("\r\n\r\n");
  if (p == std::string::npos) return Json();
  return Json::parse(response.substr(p + 4), nullptr, false);
}

// The original tests: the openapi dialect. Live-dialect tests use
// LiveSandboxTest (live_test.cc shares this fixture through the header).
class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(/*rate_limits=*/false); }
  Dialect dialect_ = Dialect::kOpenapi;
  void TearDown() override { server_.reset(); }

  void StartServer(bool rate_limits) {
    server_.reset();
    SandboxOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.respondio_token = kToken;
    options.rate_limits = rate_limits;
    options.threads = 16;
    options.respondio_dialect = dialect_;
    options.chatwoot_dialect = dialect_;
    server_ = std::make_unique<SandboxServer>(options);
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    port_ = server_->port();
  }

  std::unique_ptr<httplib::Client> Client(bool auth = true) const {
    auto cli = std::make_unique<httplib::Client>("127.0.0.1", port_);
    cli->set_read_timeout(10, 0);
    if (auth) {
      cli->set_default_headers(
          {{"Authorization", std::string("Bearer ") + kToken}});
    }
    return cli;
  }

  httplib::Result Get(const std::string& path) { return Client()->Get(path.c_str()); }
  httplib::Result Post(const std::string& path, const std::string& body) {
    return Client()->Post(path.c_str(), body, "application/json");
  }
  httplib::Result Put(const std::string& path, const std::string& body) {
    return Client()->Put(path.c_str(), body, "application/json");
  }
  httplib::Result Delete(const std::string& path, const std::string& body = "") {
    return Client()->Delete(path.c_str(), body, "application/json");
  }
  httplib::Result AdminPost(const std::string& path, const std::string& body) {
    return Client(false)->Post(path.c_str(), body, "application/json");
  }

  static Json Body(const httplib::Result& res) {
    return Json::parse(res->body, nullptr, false);
  }

  // Strips "http://127.0.0.1:PORT" from a pagination URL.
  std::string PathOf(const Json& url) const {
    std::string prefix = "http://127.0.0.1:" + std::to_string(port_);
    std::string s = url.get<std::string>();
    EXPECT_EQ(s.rfind(prefix, 0), 0u) << s;
    return s.substr(prefix.size());
  }

  Json Requests(const std::string& query = "") {
    auto res = Client(false)->Get(("/__admin/requests" + query).c_str());
    EXPECT_TRUE(res);
    return Body(res)["requests"];
  }

  std::unique_ptr<SandboxServer> server_;
  int port_ = 0;
};

// ---------------------------------------------------------------------------

TEST_F(SandboxTest, AuthIsRequired) {
  auto res = Client(false)->Get("/contact/id:12345");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  Json b = Body(res);
  EXPECT_EQ(b["code"], 401);
  EXPECT_TRUE(b["message"].is_string());

  auto cli = Client(false);
  cli->set_default_headers({{"Authorization", "Bearer wrong"}});
  res = cli->Get("/contact/id:12345");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);

  cli->set_default_headers({{"Authorization", std::string("Basic ") + kToken}});
  res = cli->Get("/contact/id:12345");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);

  res = Get("/contact/id:12345");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST_F(SandboxTest, SeedData) {
  auto res = Get("/contact/id:12345");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  Json c = Body(res);
  EXPECT_EQ(c["id"], 12345);
  EXPECT_EQ(c["firstName"], "Ada");
  EXPECT_EQ(c["email"], "ada.lovelace@example.com");
  EXPECT_EQ(c["phone"], "+60123450001");
  EXPECT_TRUE(c["tags"].is_array());
  EXPECT_TRUE(c["customFields"].is_array());

  res = Get("/contact/id:67890");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);

  res = Get("/contact/id:12345/channel");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  Json channels = Body(res);
  ASSERT_TRUE(channels.is_array());
  ASSERT_EQ(channels.size(), 1u);
  EXPECT_EQ(channels[0]["id"], 123);
  EXPECT_EQ(channels[0]["source"], "whatsapp");
  EXPECT_TRUE(channels[0]["meta"].is_object());

  res = Get("/contact/id:12345/channels");  // the clients' spelling
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  res = Get("/contact/id:12345/channel/123");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(Body(res)["id"], 123);
  res = Get("/contact/id:12345/channel/124");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);

  res = Get("/space/user/1");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  Json u = Body(res);
  EXPECT_EQ(u["email"], "agent@example.com");
  for (const char* k : {"id", "firstName", "lastName", "email", "role"}) {
    EXPECT_TRUE(u.contains(k)) << k;
  }
  res = Get("/space/user/999");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);

  for (const char* path : {"/space/channel", "/space/closing_notes",
                           "/space/user"}) {
    res = Get(path);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << path;
    Json b = Body(res);
    EXPECT_TRUE(b["items"].is_array()) << path;
    // The OpenAPI document's Pagination schema.
    EXPECT_TRUE(b["pagination"].contains("cursorId")) << path;
    EXPECT_TRUE(b["pagination"]["hasMore"].is_boolean()) << path;
  }

  for (const char* path : {"/custom_field", "/space/custom_field",
                           "/space/contact_field"}) {
    res = Get(path);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << path;
    Json b = Body(res);
    ASSERT_TRUE(b.is_array());
    EXPECT_EQ(b[0]["id"], 1);
    EXPECT_EQ(b[0]["name"], "tier");
  }
  res = Get("/space/contact_field/1");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(Body(res)["options"], Json::array({"free", "pro"}));
  res = Get("/custom_field/99");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

TEST_F(SandboxTest, CreateAndGetByIdEmailPhone) {
  auto res = Post("/contact",
                  R"({"firstName":"Lin","lastName":"Lee","email":"lin@example.com","phone":"+6011222333"})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  Json c = Body(res);
  int64_t id = c["id"].get<int64_t>();
  EXPECT_GE(id, 1000);
  EXPECT_EQ(c["firstName"], "Lin");

  for (const std::string& ident :
       {"id:" + std::to_string(id), std::string("email:lin@example.com"),
        std::string("email:LIN@example.com"), std::string("phone:+6011222333"),
        std::string("phone:%2B6011222333")}) {
    res = Get("/contact/" + ident);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << ident;
    EXPECT_EQ(Body(res)["id"], id) << ident;
  }

  // A literal '+' in the path is a '+' (not a space).
  std::string raw = RawGet(port_, "/contact/phone:+6011222333");
  EXPECT_EQ(RawStatus(raw), 200) << raw;
  EXPECT_EQ(RawBody(raw)["id"], id);

  // Duplicate email / phone.
  res = Post("/contact", R"({"firstName":"Dup","email":"lin@example.com"})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = Post("/contact", R"({"firstName":"Dup","phone":"+6011222333"})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);

  // Update changes only the supplied fields.
  res = Put("/contact/id:" + std::to_string(id), R"({"lastName":"Li"})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  c = Body(res);
  EXPECT_EQ(c["lastName"], "Li");
  EXPECT_EQ(c["firstName"], "Lin");
  EXPECT_EQ(c["email"], "lin@example.com");

  // create_or_update: update an existing one, create a new one.
  res = Post("/contact/create_or_update/email:lin@example.com",
             R"({"language":"ms"})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(Body(res)["id"], id);
  EXPECT_EQ(Body(res)["language"], "ms");
  res = Post("/contact/create_or_update/phone:+6019999",
             R"({"firstName":"New"})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_NE(Body(res)["id"], id);
  EXPECT_EQ(Body(res)["phone"], "+6019999");

  // Delete.
  res = Delete("/contact/id:" + std::to_string(id));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(Body(res)["contactId"], id);
  res = Get("/contact/id:" + std::to_string(id));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

TEST_F(SandboxTest, PercentEncodedEmail) {
  auto res = Post("/contact", R"({"firstName":"Odd","email":"a/b?c@x.io"})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  int64_t id = Body(res)["id"];

  std::string raw = RawGet(port_, "/contact/email:a%2Fb%3Fc%40x.io");
  ASSERT_EQ(RawStatus(raw), 200) << raw;
  EXPECT_EQ(RawBody(raw)["id"], id);
  EXPECT_EQ(RawBody(raw)["email"], "a/b?c@x.io");

  // Sub-resources too.
  raw = RawGet(port_, "/contact/email:a%2Fb%3Fc%40x.io/channel");
  EXPECT_EQ(RawStatus(raw), 200) << raw;

  res = Get("/contact/email:a%2Fb%3Fc%40x.io");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);

  Json log = Requests("?endpoint=get_contact");
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log[0]["path"], "/contact/email:a/b?c@x.io");
  EXPECT_EQ(log[0]["raw_path"], "/contact/email:a%2Fb%3Fc%40x.io");
}

TEST_F(SandboxTest, NotFoundAndBadIdentifiers) {
  auto res = Get("/contact/id:1");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_EQ(Body(res)["code"], 404);
  res = Get("/contact/email:nobody@example.com");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  for (const char* bad : {"/contact/12345", "/contact/id:abc",
                          "/contact/email:nope", "/contact/phone:6012",
                          "/contact/name:ada"}) {
    res = Get(bad);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << bad;
    EXPECT_EQ(Body(res)["code"], 400);
  }
  res = Get("/no/such/route");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

TEST_F(SandboxTest, MalformedBodies) {
  auto res = Post("/contact", "{not json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = Post("/contact", R"({"firstName":5})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(Body(res)["message"].get<std::string>().find("firstName"),
            std::string::npos);
  res = Post("/contact", R"({"email":"not-an-email"})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = Post("/contact", "[]");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = Post("/contact/merge", R"({"primaryContactId":"12345","secondaryContactId":67890})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(Body(res)["message"].get<std::string>().find("primaryContactId"),
            std::string::npos);
  // No Content-Length at all: an empty body, answered by the emulator (and
  // logged), not by httplib.
  std::string raw = RawHttp(port_,
                            "POST /contact/merge HTTP/1.1\r\nHost: x\r\n"
                            "Authorization: Bearer sandbox-token\r\n"
                            "Connection: close\r\n\r\n");
  EXPECT_EQ(RawStatus(raw), 400) << raw;
  EXPECT_NE(RawBody(raw)["message"].get<std::string>().find("body"),
            std::string::npos);
  EXPECT_EQ(Requests("?endpoint=merge_contacts").size(), 2u);
  res = Post("/contact/id:12345/message", R"({"message":{"type":"text","text":7}})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(Body(res)["message"].get<std::string>().find("message.text"),
            std::string::npos);
}

TEST_F(SandboxTest, PaginationAcrossPages) {
  for (int i = 0; i < 12; ++i) {
    auto res = Post("/contact", Json{{"firstName", "P" + std::to_string(i)},
                                     {"email", "p" + std::to_string(i) +
                                                   "@example.com"}}
                                    .dump());
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200);
  }
  std::vector<int64_t> ids;
  std::string path = "/contact/list?limit=5";
  int pages = 0;
  Json first_page_pagination;
  while (true) {
    auto res = Get(path);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    Json b = Body(res);
    ++pages;
    if (pages == 1) first_page_pagination = b["pagination"];
    for (const Json& c : b["items"]) ids.push_back(c["id"]);
    EXPECT_LE(b["items"].size(), 5u);
    if (!b["pagination"]["hasMore"].get<bool>()) {
      EXPECT_TRUE(b["pagination"]["cursorId"].is_null());
      break;
    }
    path = "/contact/list?limit=5&cursorId=" +
           std::to_string(b["pagination"]["cursorId"].get<int64_t>());
    ASSERT_LT(pages, 10);
  }
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(ids.size(), 14u);  // 12 + 2 seeded
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), ids.size());
  EXPECT_EQ(first_page_pagination["cursorId"], ids[4]);
  EXPECT_FALSE(first_page_pagination.contains("next"));

  auto res = Get("/contact/list?cursorId=" + std::to_string(ids[9]) + "&limit=5");
  ASSERT_TRUE(res);
  Json b = Body(res);
  EXPECT_EQ(b["items"][0]["id"], ids[10]);

  // Default limit 10.
  res = Get("/contact/list");
  ASSERT_TRUE(res);
  EXPECT_EQ(Body(res)["items"].size(), 10u);

  for (const char* q : {"limit=0", "limit=101", "limit=abc", "limit=5x",
                        "cursorId=x", "cursorId=-1"}) {
    res = Get(std::string("/contact/list?") + q);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << q;
  }
  res = Get("/contact/list?limit=100");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);

  // POST /contact/list with search.
  res = Post("/contact/list?limit=20", R"({"search":"p1","timezone":"UTC","filter":{}})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  b = Body(res);
  // p1, p10, p11
  EXPECT_EQ(b["items"].size(), 3u);

  // Space lists paginate the same way.
  res = Get("/space/user?limit=1");
  ASSERT_TRUE(res);
  b = Body(res);
  ASSERT_EQ(b["items"].size(), 1u);
  EXPECT_EQ(b["pagination"]["cursorId"], 1);
  res = Get("/space/user?cursorId=1&limit=1");
  ASSERT_TRUE(res);
  b = Body(res);
  EXPECT_EQ(b["items"][0]["id"], 2);
}

TEST_F(SandboxTest, TagsAndLimits) {
  auto res = Post("/contact/id:67890/tag", R"(["vip","newsletter"])");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  res = Post("/contact/id:67890/tag", R"(["vip"])");  // idempotent
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  res = Get("/contact/id:67890");
  ASSERT_TRUE(res);
  EXPECT_EQ(Body(res)["tags"], Json::array({"vip", "newsletter"}));

  res = Delete("/contact/id:67890/tag", R"(["vip"])");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  res = Get("/contact/id:67890");
  ASSERT_TRUE(res);
  EXPECT_EQ(Body(res)["tags"], Json::array({"newsletter"}));

  Json eleven = Json::array();
  for (int i = 0; i < 11; ++i) eleven.push_back("t" + std::to_string(i));
  res = Post("/contact/id:67890/tag", eleven.dump());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  Json ten = eleven;
  ten.erase(ten.size() - 1);
  res = Post("/contact/id:67890/tag", ten.dump());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);

  res = Post("/contact/id:67890/tag", Json::array({std::string(256, 'x')}).dump());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = Post("/contact/id:67890/tag", Json::array({std::string(255, 'x')}).dump());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  for (const char* bad : {R"([""])", "[]", R"(["a", 1])", R"({"tags":["a"]})",
                          "\"vip\""}) {
    res = Post("/contact/id:67890/tag", bad);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << bad;
  }
  res = Post("/contact/id:1/tag", R"(["vip"])");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);

  // Workspace tags.
  res = Post("/tag", R"({"name":"vip"})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  int64_t tag_id = Body(res)["id"];
  EXPECT_EQ(Body(res)["name"], "vip");
  res = Post("/space/tag", R"({"name":"vip"})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = Put("/tag/" + std::to_string(tag_id), R"({"name":"gold"})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(Body(res)["name"], "gold");
  res = Delete("/tag/" + std::to_string(tag_id));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  res = Delete("/tag/" + std::to_string(tag_id));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  res = Put("/space/tag/9999", R"({"name":"x"})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

TEST_F(SandboxTest, CustomFields) {
  auto res = Post("/custom_field", R"({"name":"score","type":"number"})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  int64_t id = Body(res)["id"];
  res = Get("/custom_field/" + std::to_string(id));
  ASSERT_TRUE(res);
  EXPECT_EQ(Body(res)["type"], "number");
  res = Post("/space/custom_field", R"({"name":"bad","type":"color"})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = Post("/space/contact_field", R"({"name":"plan","type":"list"})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = Post("/custom_field", R"({"name":"tier","type":"text"})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);

  res = Put("/contact/id:67890",
            R"({"customFields":[{"name":"score","value":"42"},{"name":"tier","value":"free"}]})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(Body(res)["customFields"].size(), 2u);
  res = Put("/contact/id:67890",
            R"({"customFields":[{"name":"tier","value":"gold"}]})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = Put("/contact/id:67890",
            R"({"customFields":[{"name":"nope","value":"1"}]})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
}

TEST_F(SandboxTest, Merge) {
  auto res = Post("/contact/id:67890/tag", R"(["vip"])");
  ASSERT_TRUE(res);
  res = Put("/contact/id:67890",
            R"({"customFields":[{"name":"company","value":"Navy"}]})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);

  res = Post("/contact/merge", R"({"primaryContactId":12345,"secondaryContactId":67890})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  Json c = Body(res);
  EXPECT_EQ(c["id"], 12345);
  std::set<std::string> tags(c["tags"].begin(), c["tags"].end());
  EXPECT_EQ(tags.count("vip"), 1u);
  EXPECT_EQ(tags.count("customer"), 1u);
  bool has_company = false;
  for (const Json& f : c["customFields"]) {
    if (f["name"] == "company" && f["value"] == "Navy") has_company = true;
  }
  EXPECT_TRUE(has_company);
  res = Get("/contact/id:67890");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);

  res = Post("/contact/merge", R"({"primaryContactId":12345,"secondaryContactId":12345})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = Post("/contact/merge", R"({"primaryContactId":12345,"secondaryContactId":67890})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  res = Post("/contact/merge", R"({"primaryContactId":12345})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
}

TEST_F(SandboxTest, Messages) {
  auto res = Post("/contact/id:12345/message",
                  R"({"channelId":123,"message":{"type":"text","text":"Hello"}})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  Json r = Body(res);
  int64_t mid = r["messageId"];
  EXPECT_EQ(r["status"], "queued");

  res = Get("/contact/id:12345/message/" + std::to_string(mid));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  Json m = Body(res);
  EXPECT_EQ(m["messageId"], mid);
  EXPECT_EQ(m["contactId"], 12345);
  EXPECT_EQ(m["channelId"], 123);
  EXPECT_EQ(m["traffic"], "outgoing");
  EXPECT_EQ(m["status"], "sent");
  EXPECT_EQ(m["message"]["text"], "Hello");
  EXPECT_TRUE(m["timestamp"].is_number_integer());

  // Another contact's message / unknown message.
  res = Get("/contact/id:67890/message/" + std::to_string(mid));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  res = Get("/contact/id:12345/message/999999");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  res = Get("/contact/id:12345/message/abc");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);

  // Without channelId: the last channel.
  res = Post("/contact/id:12345/message", R"({"message":{"type":"text","text":"again"}})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  res = Get("/contact/id:12345/message/" + Body(res)["messageId"].dump());
  ASSERT_TRUE(res);
  EXPECT_EQ(Body(res)["channelId"], 123);

  // A new channel becomes reachable.
  res = Post("/contact/id:12345/message",
             R"({"channelId":124,"message":{"type":"text","text":"via messenger"}})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  res = Get("/contact/id:12345/channel");
  ASSERT_TRUE(res);
  EXPECT_EQ(Body(res).size(), 2u);
  res = Post("/contact/id:12345/message",
             R"({"channelId":999,"message":{"type":"text","text":"x"}})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);

  // Validation.
  for (const char* bad :
       {R"({"message":{"type":"fax","text":"x"}})",
        R"({"message":{"type":"text"}})", R"({"channelId":123})",
        R"({"message":{"type":"attachment","attachment":{"type":"image"}}})",
        R"({"message":{"type":"quick_reply","text":"pick"}})",
        R"({"message":{"type":"whatsapp_template","template":{"languageCode":"en"}}})",
        R"({"channelId":"123","message":{"type":"text","text":"x"}})"}) {
    res = Post("/contact/id:12345/message", bad);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << bad << " " << res->body;
  }
  res = Post("/contact/id:12345/message",
             R"({"channelId":123,"message":{"type":"whatsapp_template","template":{"name":"hello","languageCode":"en","components":[]}}})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  res = Post("/contact/id:12345/message",
             R"({"channelId":124,"message":{"type":"whatsapp_template","template":{"name":"hello","languageCode":"en"}}})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);

  // A brand-new contact has no channel: channelId is needed.
  res = Post("/contact", R"({"firstName":"NoChan","email":"nc@example.com"})");
  ASSERT_TRUE(res);
  res = Post("/contact/email:nc@example.com/message",
             R"({"message":{"type":"text","text":"x"}})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
}

TEST_F(SandboxTest, ConversationsAndComments) {
  auto res = Post("/contact/id:12345/conversation", R"({"status":"close","closingNoteId":1})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  Json conv = Body(res);
  EXPECT_EQ(conv["contactId"], 12345);
  EXPECT_EQ(conv["status"], "close");
  EXPECT_TRUE(conv["closed"].is_number_integer());

  res = Post("/contact/id:12345/conversation/status",
             R"({"status":"open"})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(Body(res)["status"], "open");
  EXPECT_TRUE(Body(res)["closed"].is_null());
  res = Post("/contact/id:12345/conversation", R"({"status":"pending"})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = Post("/contact/id:12345/conversation", R"({"status":"close","closingNoteId":99})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);

  res = Post("/contact/id:12345/conversation/assignee",
             R"({"assignee":"email:agent@example.com"})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(Body(res)["assignee"], "agent@example.com");
  res = Get("/contact/id:12345");
  ASSERT_TRUE(res);
  EXPECT_EQ(Body(res)["assignee"], "agent@example.com");
  res = Post("/contact/id:12345/conversation/assignee", R"({"assignee":"id:2"})");
  ASSERT_TRUE(res);
  EXPECT_EQ(Body(res)["assignee"], "admin@example.com");
  res = Post("/contact/id:12345/conversation/assignee", R"({"assignee":null})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_TRUE(Body(res)["assignee"].is_null());
  res = Post("/contact/id:12345/conversation/assignee",
             R"({"assignee":"email:ghost@example.com"})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  res = Post("/contact/id:12345/conversation/assignee", R"({"assignee":"agent"})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = Post("/contact/id:12345/conversation/assignee", R"({})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);

  res = Post("/contact/id:12345/comment", R"({"text":"Following up @[agent@example.com]"})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_TRUE(Body(res)["commentId"].is_number_integer());
  res = Post("/contact/id:12345/comment", Json{{"text", std::string(1001, 'a')}}.dump());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = Post("/contact/id:12345/comment", Json{{"text", std::string(1000, 'a')}}.dump());
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  res = Post("/contact/id:12345/comment", R"({"text":""})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
}

// One sandbox, several respond.io organizations (gateway workspaces): each token is accepted,
// has its own limits, and the request log shows which token each request carried.
TEST(SandboxTokens, SeveralTokensEachWithItsOwnLimits) {
  SandboxOptions options;
  options.port = 0;
  options.respondio_token = "org-a-token,org-b-token";
  options.chatwoot_token = "cw-a-token,cw-b-token";
  options.respondio_dialect = Dialect::kOpenapi;  // GET /contact/list, as RateLimit429
  options.chatwoot_dialect = Dialect::kOpenapi;
  options.rate_limits = true;
  SandboxServer server(options);
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  const int port = server.port();
  // GET /contact/list allows 5 per second per organization: A spends all of its five...
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(RawStatus(RawGet(port, "/contact/list", "org-a-token")), 200) << i;
  }
  EXPECT_EQ(RawStatus(RawGet(port, "/contact/list", "org-a-token")), 429);
  // ...and B still has its own.
  const std::string b = RawGet(port, "/contact/list", "org-b-token");
  EXPECT_EQ(RawStatus(b), 200);
  EXPECT_NE(b.find("X-RateLimit-Remaining: 4"), std::string::npos) << b;
  EXPECT_EQ(RawStatus(RawGet(port, "/contact/list", "org-c-token")), 401);

  httplib::Client cw("127.0.0.1", port);
  for (const char* token : {"cw-a-token", "cw-b-token"}) {
    auto res = cw.Get("/api/v1/accounts/1/contacts", {{"api_access_token", token}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << token;
  }
  auto refused = cw.Get("/api/v1/accounts/1/contacts", {{"api_access_token", "cw-c-token"}});
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401);

  auto log = cw.Get("/__admin/requests");
  ASSERT_TRUE(log);
  const Json entries = Json::parse(log->body)["requests"];
  int a = 0, b_seen = 0, cw_b = 0;
  for (const Json& e : entries) {
    const Json& h = e["headers"];
    if (h.value("authorization", "") == "Bearer org-a-token") ++a;
    if (h.value("authorization", "") == "Bearer org-b-token") ++b_seen;
    if (h.value("api_access_token", "") == "cw-b-token") ++cw_b;
  }
  EXPECT_EQ(a, 6);
  EXPECT_EQ(b_seen, 1);
  EXPECT_EQ(cw_b, 1);
}

TEST_F(SandboxTest, RateLimit429) {
  StartServer(/*rate_limits=*/true);
  // GET /contact/list allows 5 requests per second.
  std::vector<int> remaining;
  for (int i = 0; i < 5; ++i) {
    auto res = Get("/contact/list");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200);
    EXPECT_EQ(res->get_header_value("X-RateLimit-Limit"), "5");
    remaining.push_back(std::stoi(res->get_header_value("X-RateLimit-Remaining")));
  }
  EXPECT_EQ(remaining, (std::vector<int>{4, 3, 2, 1, 0}));
  auto res = Get("/contact/list");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 429);
  EXPECT_EQ(Body(res)["code"], 429);
  ASSERT_TRUE(res->has_header("Retry-After"));
  EXPECT_GE(std::stoi(res->get_header_value("Retry-After")), 1);
  EXPECT_EQ(res->get_header_value("X-RateLimit-Limit"), "5");
  EXPECT_EQ(res->get_header_value("X-RateLimit-Remaining"), "0");

  // Other endpoints have their own window (get contact: 10/s).
  res = Get("/contact/id:12345");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("X-RateLimit-Limit"), "10");

  // The window slides: a second later the endpoint is available again.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  res = Get("/contact/list");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);

  // The 429 is in the request log.
  bool saw_429 = false;
  for (const Json& r : Requests("?endpoint=list_contacts")) {
    if (r["status"] == 429) saw_429 = true;
  }
  EXPECT_TRUE(saw_429);

  // Reset clears the windows.
  for (int i = 0; i < 5; ++i) Get("/contact/list");
  ASSERT_EQ(Get("/contact/list")->status, 429);
  ASSERT_EQ(AdminPost("/__admin/reset", "")->status, 200);
  EXPECT_EQ(Get("/contact/list")->status, 200);
}

TEST_F(SandboxTest, FaultStatus) {
  auto res = AdminPost("/__admin/faults",
                       R"({"method":"GET","path_regex":"^/contact/","count":2,"fault":"status","status":503,"retry_after":7})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_TRUE(Body(res)["id"].is_number_integer());

  // Not matching: other method.
  res = Post("/contact/id:12345/comment", R"({"text":"x"})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  for (int i = 0; i < 2; ++i) {
    res = Client(false)->Get("/contact/id:12345");  // before auth
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503);
    EXPECT_EQ(res->get_header_value("Retry-After"), "7");
  }
  res = Get("/contact/id:12345");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);

  // Custom JSON body, until cleared.
  res = AdminPost("/__admin/faults",
                  R"({"path_regex":"/space/","count":-1,"fault":"status","status":449,"body":{"code":449,"message":"queued"}})");
  ASSERT_TRUE(res);
  for (int i = 0; i < 3; ++i) {
    res = Get("/space/user");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 449);
    EXPECT_EQ(Body(res)["message"], "queued");
  }
  res = Client(false)->Delete("/__admin/faults");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  res = Get("/space/user");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);

  res = AdminPost("/__admin/faults", R"({"fault":"explode"})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = AdminPost("/__admin/faults", R"({"fault":"status"})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = AdminPost("/__admin/faults", R"({"fault":"drop","path_regex":"("})");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);

  Json log = Requests();
  int faulted = 0;
  for (const Json& r : log) {
    if (r["fault"] == "status") {
      ++faulted;
      EXPECT_TRUE(r["status"] == 503 || r["status"] == 449);
    }
  }
  EXPECT_EQ(faulted, 5);
}

TEST_F(SandboxTest, FaultDelay) {
  auto res = AdminPost("/__admin/faults", R"({"fault":"delay","delay_ms":300})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  auto start = std::chrono::steady_clock::now();
  res = Get("/contact/id:12345");
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);  // normal handling after the delay
  EXPECT_GE(elapsed, std::chrono::milliseconds(290));
  start = std::chrono::steady_clock::now();
  res = Get("/contact/id:12345");
  elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::milliseconds(250));
  Json log = Requests();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0]["fault"], "delay");
  EXPECT_EQ(log[0]["status"], 200);
  EXPECT_TRUE(log[1]["fault"].is_null());
}

TEST_F(SandboxTest, FaultDrop) {
  auto res = AdminPost("/__admin/faults", R"({"fault":"drop","path_regex":"^/contact/id:12345$"})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  res = Get("/contact/id:12345");
  EXPECT_FALSE(res);  // connection failure, no response
  res = Get("/contact/id:12345");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);

  ASSERT_EQ(AdminPost("/__admin/faults", R"({"fault":"drop"})")->status, 200);
  EXPECT_EQ(RawGet(port_, "/contact/id:67890"), "");
  // The server completes a request's record after it has answered (or, for a drop, shut the
  // socket), so the client may go on, and its next request be logged, first: wait (bounded)
  // for every record to be complete, in whatever order.
  auto count = [](const Json& log, const Json& fault, int status) {
    int n = 0;
    for (const Json& e : log) n += e["fault"] == fault && e["status"] == status;
    return n;
  };
  Json log = Requests();
  for (int i = 0; i < 200 && (count(log, "drop", 0) < 2 || count(log, nullptr, 200) < 1); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    log = Requests();
  }
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(count(log, "drop", 0), 2) << log.dump();
  EXPECT_EQ(count(log, nullptr, 200), 1) << log.dump();
}

TEST_F(SandboxTest, FaultMalformed) {
  auto res = AdminPost("/__admin/faults", R"({"fault":"malformed","endpoint":"list_contacts"})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  res = Get("/contact/id:12345");  // different endpoint: untouched
  ASSERT_TRUE(res);
  EXPECT_FALSE(Body(res).is_discarded());
  res = Get("/contact/list");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "{\"broken\": ");
  EXPECT_TRUE(Body(res).is_discarded());
}

TEST_F(SandboxTest, RequestLog) {
  Client(false)->Get("/contact/id:12345");                          // 401
  Get("/contact/id:1");                                             // 404
  Post("/contact/id:12345/tag?x=1&y=2", R"(["vip"])");              // 200
  Get("/contact/list?cursorId=1&limit=5");                          // 200
  Get("/nope");                                                     // 404
  Client(false)->Get("/__admin/state");                             // not logged

  Json log = Requests();
  ASSERT_EQ(log.size(), 5u) << log.dump(2);
  for (size_t i = 1; i < log.size(); ++i) {
    EXPECT_GT(log[i]["seq"].get<int64_t>(), log[i - 1]["seq"].get<int64_t>());
    EXPECT_GE(log[i]["time_ms"].get<double>(), log[i - 1]["time_ms"].get<double>());
  }
  EXPECT_EQ(log[0]["status"], 401);
  EXPECT_EQ(log[0]["endpoint"], "get_contact");
  EXPECT_FALSE(log[0]["headers"].contains("authorization"));
  EXPECT_EQ(log[1]["status"], 404);
  EXPECT_EQ(log[2]["method"], "POST");
  EXPECT_EQ(log[2]["path"], "/contact/id:12345/tag");
  EXPECT_EQ(log[2]["query"], "x=1&y=2");
  EXPECT_EQ(log[2]["body"], R"(["vip"])");
  EXPECT_EQ(log[2]["endpoint"], "contact_tag");
  EXPECT_EQ(log[2]["status"], 200);
  EXPECT_EQ(log[2]["headers"]["authorization"], "Bearer sandbox-token");
  EXPECT_EQ(log[2]["headers"]["content-type"], "application/json");
  EXPECT_EQ(log[3]["query"], "cursorId=1&limit=5");
  EXPECT_EQ(log[3]["endpoint"], "list_contacts");
  EXPECT_EQ(log[4]["endpoint"], "unknown");
  EXPECT_EQ(log[4]["status"], 404);

  Json filtered = Requests("?endpoint=contact_tag");
  ASSERT_EQ(filtered.size(), 1u);
  EXPECT_EQ(filtered[0]["seq"], log[2]["seq"]);

  ASSERT_EQ(Client(false)->Delete("/__admin/requests")->status, 200);
  EXPECT_TRUE(Requests().empty());

  // Reset restores the seed.
  Delete("/contact/id:12345");
  EXPECT_EQ(Get("/contact/id:12345")->status, 404);
  ASSERT_EQ(AdminPost("/__admin/reset", "")->status, 200);
  EXPECT_EQ(Get("/contact/id:12345")->status, 200);
  EXPECT_EQ(Requests().size(), 1u);
}

TEST_F(SandboxTest, KeepAliveRequestsAreNotDelayed) {
  // Without TCP_NODELAY every keep-alive response would wait ~40 ms for the
  // client's delayed ACK.
  auto cli = Client();
  cli->set_keep_alive(true);
  ASSERT_TRUE(cli->Get("/contact/id:12345"));
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i) {
    auto res = cli->Get("/contact/id:12345");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(200));
}

TEST_F(SandboxTest, ConcurrentRequests) {
  // 16 clients at once: every request is answered, none waits for a SYN
  // retransmit (the listen backlog is raised above httplib's 5).
  constexpr int kThreads = 16;
  constexpr int kPerThread = 10;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  std::atomic<int64_t> slowest_ms{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        httplib::Client cli("127.0.0.1", port_);
        cli.set_default_headers(
            {{"Authorization", std::string("Bearer ") + kToken}});
        std::string email = "c" + std::to_string(t) + "_" +
                            std::to_string(i) + "@example.com";
        auto start = std::chrono::steady_clock::now();
        auto res = cli.Post("/contact", Json{{"email", email}}.dump(),
                            "application/json");
        int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - start)
                         .count();
        int64_t prev = slowest_ms.load();
        while (ms > prev && !slowest_ms.compare_exchange_weak(prev, ms)) {
        }
        if (res && res->status == 200) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_LT(slowest_ms.load(), 900);
  auto res = Get("/contact/list?limit=100");
  ASSERT_TRUE(res);
  EXPECT_EQ(Body(res)["items"].size(), 100u);
  EXPECT_EQ(Requests("?endpoint=create_contact").size(),
            static_cast<size_t>(kThreads * kPerThread));
}

// A receiver on a free loopback port that the sandbox posts its webhooks to. Tests add the
// receiver's handlers, then StartSandbox(); SimulateInboundMessages() makes the sandbox emit a
// Chatwoot webhook, then a respond.io one (posted in that order by its one worker). Handlers
// may capture the test's locals: the test calls StopSandbox() before they go, so no webhook
// reaches a handler after that.
class SandboxWebhooksTest : public ::testing::Test {
 protected:
  void TearDown() override {
    sandbox_.reset();
    receiver_.stop();
    if (serving_.joinable()) serving_.join();
  }

  void StartSandbox() {
    const int receiver_port = receiver_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(receiver_port, 0);
    serving_ = std::thread([this] { receiver_.listen_after_bind(); });
    SandboxOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.respondio_token = kToken;
    options.rate_limits = false;
    options.webhook_url = "http://127.0.0.1:" + std::to_string(receiver_port);
    sandbox_ = std::make_unique<SandboxServer>(options);
    std::string error;
    ASSERT_TRUE(sandbox_->Start(&error)) << error;
  }

  void SimulateInboundMessages() {
    httplib::Client admin("127.0.0.1", sandbox_->port());
    auto cw = admin.Post("/__admin/chatwoot/inbound_message",
                         R"({"conversation_id": 1, "content": "hi"})", "application/json");
    ASSERT_TRUE(cw);
    EXPECT_EQ(cw->status / 100, 2) << cw->body;
    auto rio = admin.Post("/__admin/respondio/inbound_message",
                          R"({"identifier": "id:12345", "text": "hi"})", "application/json");
    ASSERT_TRUE(rio);
    EXPECT_EQ(rio->status, 202) << rio->body;
  }

  // Stops the sandbox: its worker ends, so no delivery (or retry) can come after this.
  void StopSandbox() { sandbox_.reset(); }

  httplib::Server receiver_;

 private:
  std::thread serving_;
  std::unique_ptr<SandboxServer> sandbox_;
};

// Webhooks are delivered the way Chatwoot delivers them (and the sandbox does so for both
// upstreams): one attempt, no retry, whatever the receiver answers. A receiver that answers 500
// gets each inbound message's webhook exactly once.
TEST_F(SandboxWebhooksTest, EachWebhookIsOneAttemptWithoutRetry) {
  std::atomic<int> chatwoot_posts{0}, respondio_posts{0};
  receiver_.Post("/webhooks/chatwoot", [&](const httplib::Request& req, httplib::Response& res) {
    EXPECT_FALSE(req.get_header_value("X-Chatwoot-Delivery").empty());
    ++chatwoot_posts;
    res.status = 500;
  });
  receiver_.Post("/webhooks/respondio", [&](const httplib::Request&, httplib::Response& res) {
    ++respondio_posts;
    res.status = 503;
  });
  ASSERT_NO_FATAL_FAILURE(StartSandbox());
  SimulateInboundMessages();
  for (int i = 0; i < 200 && (chatwoot_posts.load() < 1 || respondio_posts.load() < 1); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Posted in order by one worker: a retry of the first would come before or right after the
  // second; give it a moment to show up, then stop the sandbox.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  StopSandbox();
  EXPECT_EQ(chatwoot_posts.load(), 1);
  EXPECT_EQ(respondio_posts.load(), 1);
}

// Chatwoot's delivery, as in the live service: one attempt that gives up after 5 s without an
// answer (no retry), after which the next webhook goes out.
TEST_F(SandboxWebhooksTest, AnUnansweredWebhookIsAbandonedAfterFiveSecondsAndNotRetried) {
  std::mutex mu;
  std::condition_variable changed;
  bool release = false;
  int chatwoot_posts = 0;
  std::chrono::steady_clock::time_point chatwoot_at, respondio_at;
  bool respondio_seen = false;
  receiver_.Post("/webhooks/chatwoot", [&](const httplib::Request&, httplib::Response& res) {
    std::unique_lock<std::mutex> lock(mu);
    if (++chatwoot_posts == 1) chatwoot_at = std::chrono::steady_clock::now();
    changed.notify_all();
    // Never answers within the sandbox's timeout (released at the end of the test).
    changed.wait_for(lock, std::chrono::seconds(20), [&] { return release; });
    res.status = 200;
  });
  receiver_.Post("/webhooks/respondio", [&](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu);
    respondio_seen = true;
    respondio_at = std::chrono::steady_clock::now();
    changed.notify_all();
    res.status = 200;
  });
  ASSERT_NO_FATAL_FAILURE(StartSandbox());
  SimulateInboundMessages();
  {
    std::unique_lock<std::mutex> lock(mu);
    // Well before the receiver would answer (20 s): the sandbox gave up on its own.
    EXPECT_TRUE(changed.wait_for(lock, std::chrono::seconds(15), [&] { return respondio_seen; }));
    EXPECT_EQ(chatwoot_posts, 1);
    if (respondio_seen) {
      EXPECT_GE(respondio_at - chatwoot_at, std::chrono::milliseconds(4900));
      EXPECT_LT(respondio_at - chatwoot_at, std::chrono::milliseconds(9000));
    }
    release = true;
    changed.notify_all();
  }
  StopSandbox();
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(chatwoot_posts, 1);  // abandoned, never retried
}

}  // namespace
}  // namespace sandbox

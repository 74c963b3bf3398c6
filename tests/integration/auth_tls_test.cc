// Caller authentication (tokens from a callers file, RPC allowlists) and TLS / mutual TLS on the
// gRPC listener, on live gateways.
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "respondio/v2/contact_service.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/integration/production_helpers.h"

namespace gateway::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace rio = ::respondio::v2;

constexpr char kWriterToken[] = "writer-token-0123456789abcdef";
constexpr char kReaderToken[] = "reader-token-0123456789abcdef";

std::string CallersFile() {
  const std::string reader_token_file = WriteTempFile("reader.token", absl::StrCat(kReaderToken, "\n"));
  return WriteTempFile("callers.json", absl::StrCat(R"({"callers": [
    {"name": "crm-sync", "token": ")", kWriterToken, R"(", "allow": ["*"]},
    {"name": "reporting", "token_file": ")", reader_token_file, R"(", "allow": ["@read"]},
    {"name": "support-bot", "token": "support-token-0123456789", "allow": ["respondio.v2.ContactService/Get*"]}
  ]})"));
}

class AuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    sandbox_ = Sandbox::Start({"--rate_limits=false"}).release();
    ASSERT_NE(sandbox_, nullptr);
    gateway_ = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(),
                               "--callers_file=" + CallersFile()})
                   .release();
    ASSERT_NE(gateway_, nullptr);
  }
  static void TearDownTestSuite() {
    delete gateway_;
    delete sandbox_;
  }
  void SetUp() override {
    sandbox_->Reset();
    contacts_ = rio::ContactService::NewStub(gateway_->channel());
  }

  static std::unique_ptr<grpc::ClientContext> As(const std::string& authorization) {
    auto context = Context();
    if (!authorization.empty()) context->AddMetadata("authorization", authorization);
    return context;
  }
  grpc::Status Get(const std::string& authorization) {
    rio::GetContactRequest request;
    request.set_identifier("id:12345");
    rio::GetContactResponse reply;
    return contacts_->GetContact(As(authorization).get(), request, &reply);
  }
  grpc::Status Create(const std::string& authorization) {
    rio::CreateContactRequest request;
    request.set_first_name("Grace");
    request.set_email("grace@example.com");
    rio::CreateContactResponse reply;
    return contacts_->CreateContact(As(authorization).get(), request, &reply);
  }

  static Sandbox* sandbox_;
  static Gateway* gateway_;
  std::unique_ptr<rio::ContactService::Stub> contacts_;
};
Sandbox* AuthTest::sandbox_ = nullptr;
Gateway* AuthTest::gateway_ = nullptr;

TEST_F(AuthTest, MissingTokenIsUnauthenticatedBeforeAnyUpstreamCall) {
  grpc::Status status = Get("");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ErrorInfoOf(status).reason(), "MISSING_CREDENTIALS");
  EXPECT_EQ(ErrorInfoOf(status).domain(), "gateway");
  EXPECT_TRUE(sandbox_->Requests().empty());
}

TEST_F(AuthTest, UnknownOrMalformedTokenIsUnauthenticated) {
  for (const std::string authorization :
       {std::string("Bearer not-a-known-token-123456"), std::string(kWriterToken),
        absl::StrCat("Basic ", kWriterToken), std::string("Bearer ")}) {
    grpc::Status status = Get(authorization);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << authorization;
    EXPECT_EQ(ErrorInfoOf(status).reason(), "INVALID_TOKEN") << authorization;
    EXPECT_THAT(status.error_message(), Not(HasSubstr("token-0123")));
  }
  EXPECT_TRUE(sandbox_->Requests().empty());
}

TEST_F(AuthTest, ReadOnlyCallerMayReadButNotWrite) {
  EXPECT_TRUE(Get(absl::StrCat("Bearer ", kReaderToken)).ok());
  grpc::Status status = Create(absl::StrCat("bearer ", kReaderToken));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  const auto info = ErrorInfoOf(status);
  EXPECT_EQ(info.reason(), "RPC_NOT_ALLOWED");
  EXPECT_EQ(info.domain(), "gateway");
  EXPECT_EQ(info.metadata().at("caller"), "reporting");
  EXPECT_EQ(info.metadata().at("rpc"), "/respondio.v2.ContactService/CreateContact");
  // Only the allowed read reached the upstream.
  EXPECT_EQ(sandbox_->Requests().size(), 1u);
}

TEST_F(AuthTest, PatternAllowlistAndFullAccess) {
  EXPECT_TRUE(Get("Bearer support-token-0123456789").ok());
  EXPECT_EQ(Create("Bearer support-token-0123456789").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Create(absl::StrCat("Bearer ", kWriterToken)).ok());
}

TEST_F(AuthTest, TheLogNamesTheCallerNeverItsToken) {
  sandbox_->ClearRequests();
  ASSERT_TRUE(Get(absl::StrCat("Bearer ", kWriterToken)).ok());
  // x-caller cannot override an authenticated identity.
  auto context = As(absl::StrCat("Bearer ", kReaderToken));
  context->AddMetadata("x-caller", "someone-else");
  rio::GetContactRequest request;
  request.set_identifier("id:12345");
  rio::GetContactResponse reply;
  ASSERT_TRUE(contacts_->GetContact(context.get(), request, &reply).ok());
  absl::SleepFor(absl::Milliseconds(100));
  const std::string output = gateway_->process().output();
  auto lines = CallLogLines(output);
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines[lines.size() - 2]["caller"], "crm-sync");
  EXPECT_EQ(lines.back()["caller"], "reporting");
  EXPECT_THAT(output, Not(HasSubstr(kWriterToken)));
  EXPECT_THAT(output, Not(HasSubstr(kReaderToken)));
  EXPECT_THAT(output, Not(HasSubstr("support-token")));
}

TEST_F(AuthTest, HealthNeedsNoToken) {
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse reply;
  auto stub = grpc::health::v1::Health::NewStub(gateway_->channel());
  ASSERT_TRUE(stub->Check(Context().get(), request, &reply).ok());
  EXPECT_EQ(reply.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST(AuthConfigTest, BadCallersFilesFailStartUpNamingTheProblem) {
  struct Case {
    std::string content;
    std::string message;
  };
  const Case cases[] = {
      {"{", "not a JSON object"},
      {R"({"callers": []})", "non-empty array"},
      {R"({"callers": [{"name": "a", "token": "short", "allow": ["*"]}]})", "at least 16"},
      {R"({"callers": [{"name": "a", "token": "0123456789abcdef0", "allow": ["nope.Service/*"]}]})",
       "matches no RPC"},
      {R"({"callers": [{"name": "a", "token": "0123456789abcdef0", "allow": ["*"], "role": 1}]})",
       "unknown key \"role\""},
      {R"({"callers": [{"name": "a", "token": "0123456789abcdef0", "allow": ["*"]},
                       {"name": "b", "token": "0123456789abcdef0", "allow": ["*"]}]})",
       "same token"},
  };
  int i = 0;
  for (const Case& c : cases) {
    const std::string file = WriteTempFile(absl::StrCat("bad_callers_", i++, ".json"), c.content);
    CommandResult result = Gateway::RunExpectingExit({"--listen=127.0.0.1:0", "--callers_file=" + file});
    EXPECT_EQ(result.exit_code, 2) << c.content;
    EXPECT_THAT(result.output, HasSubstr(c.message)) << result.output;
    EXPECT_THAT(result.output, Not(HasSubstr("0123456789abcdef0")));
  }
  CommandResult missing = Gateway::RunExpectingExit({"--callers_file=/nonexistent/callers.json"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.output, HasSubstr("cannot read /nonexistent/callers.json"));
}

// TLS material made by openssl for this test: a CA, a server cert for 127.0.0.1 and a client
// cert, both signed by the CA.
class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = new std::string(absl::StrCat(tmp == nullptr ? "/tmp" : tmp, "/tls"));
    const std::string script = absl::StrCat(
        "set -e; mkdir -p ", *dir_, "; cd ", *dir_, "\n",
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
        "-subj /CN=test-ca 2>/dev/null\n",
        "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext\n",
        "for n in server client; do\n",
        "  openssl req -newkey rsa:2048 -nodes -keyout $n.key -out $n.csr -subj /CN=$n 2>/dev/null\n",
        "  openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $n.pem "
        "-days 2 -extfile san.ext 2>/dev/null\n",
        "done\n");
    CommandResult result = RunCommand({"sh", "-c", script});
    ASSERT_EQ(result.exit_code, 0) << result.output;
    sandbox_ = Sandbox::Start({"--rate_limits=false"}).release();
    ASSERT_NE(sandbox_, nullptr);
  }
  static void TearDownTestSuite() { delete sandbox_; }

  static std::string File(const std::string& name) {
    std::ifstream in(absl::StrCat(*dir_, "/", name));
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  static std::string Path(const std::string& name) { return absl::StrCat(*dir_, "/", name); }

  static grpc::Status Get(std::shared_ptr<grpc::Channel> channel) {
    rio::GetContactRequest request;
    request.set_identifier("id:12345");
    rio::GetContactResponse reply;
    return rio::ContactService::NewStub(channel)->GetContact(Context(absl::Seconds(3)).get(),
                                                             request, &reply);
  }
  static std::shared_ptr<grpc::Channel> Secure(const std::string& address, bool client_cert) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = File("ca.pem");
    if (client_cert) {
      options.pem_private_key = File("client.key");
      options.pem_cert_chain = File("client.pem");
    }
    return grpc::CreateChannel(address, grpc::SslCredentials(options));
  }

  static std::string* dir_;
  static Sandbox* sandbox_;
};
std::string* TlsTest::dir_ = nullptr;
Sandbox* TlsTest::sandbox_ = nullptr;

TEST_F(TlsTest, TlsListenerServesTlsClientsOnly) {
  auto gateway = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(),
                                 "--tls_cert_file=" + Path("server.pem"),
                                 "--tls_key_file=" + Path("server.key")});
  ASSERT_NE(gateway, nullptr);
  grpc::Status secure = Get(Secure(gateway->address(), /*client_cert=*/false));
  EXPECT_TRUE(secure.ok()) << secure.error_message();
  EXPECT_EQ(Get(gateway->channel()).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, MutualTlsRequiresAClientCertificateSignedByTheCa) {
  auto gateway = Gateway::Start({"--respondio_base_url=" + sandbox_->base_url(),
                                 "--tls_cert_file=" + Path("server.pem"),
                                 "--tls_key_file=" + Path("server.key"),
                                 "--tls_client_ca_file=" + Path("ca.pem")});
  ASSERT_NE(gateway, nullptr);
  grpc::Status with_cert = Get(Secure(gateway->address(), /*client_cert=*/true));
  EXPECT_TRUE(with_cert.ok()) << with_cert.error_message();
  EXPECT_EQ(Get(Secure(gateway->address(), /*client_cert=*/false)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Get(gateway->channel()).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, BadTlsFlagsFailStartUp) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const Case cases[] = {
      {{"--tls_cert_file=" + Path("server.pem")}, "--tls_cert_file and --tls_key_file go together"},
      {{"--tls_client_ca_file=" + Path("ca.pem")}, "needs --tls_cert_file"},
      {{"--tls_cert_file=" + Path("missing.pem"), "--tls_key_file=" + Path("server.key")},
       "--tls_cert_file: cannot read"},
      {{"--tls_cert_file=" + Path("san.ext"), "--tls_key_file=" + Path("server.key")},
       "is not PEM"},
      {{"--tls_cert_file=" + Path("server.pem"), "--tls_key_file=" + Path("client.key")},
       "do not match"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"--listen=127.0.0.1:0"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    CommandResult result = Gateway::RunExpectingExit(args);
    EXPECT_EQ(result.exit_code, 2) << c.message << "\n" << result.output;
    EXPECT_THAT(result.output, HasSubstr(c.message));
  }
}

}  // namespace
}  // namespace gateway::testing

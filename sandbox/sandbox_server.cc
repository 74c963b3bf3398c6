#include "sandbox/sandbox_server.h"

#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"

namespace sandbox {

SandboxServer::SandboxServer(SandboxOptions options)
    : options_(std::move(options)),
      limiter_(options_.rate_limits),
      respondio_state_(options_.respondio_dialect),
      respondio_api_(&respondio_state_, &limiter_, options_.respondio_token),
      chatwoot_state_(options_.chatwoot_dialect),
      chatwoot_api_(&chatwoot_state_, &limiter_, options_.chatwoot_token,
                    options_.chatwoot_rate_limit_per_minute),
      admin_(&log_, &faults_, &limiter_,
             AdminApi::Hooks{
                 [this] {
                   respondio_state_.Reset();
                   chatwoot_state_.Reset();
                 },
                 [this] {
                   return Json{{"respondio", respondio_state_.Dump()},
                               {"chatwoot", chatwoot_state_.Dump()}};
                 },
                 [this] {
                   Json list = Json::array();
                   for (const auto& e : respondio_api_.Endpoints()) {
                     list.push_back(Json{{"api", "respondio"},
                                         {"method", e.method},
                                         {"path", e.path},
                                         {"endpoint", e.endpoint},
                                         {"limit", e.limit}});
                   }
                   // Chatwoot's limit is per client IP per minute, shared by
                   // every endpoint.
                   for (const auto& e : chatwoot_api_.Endpoints()) {
                     list.push_back(Json{{"api", "chatwoot"},
                                         {"method", e.method},
                                         {"path", e.path},
                                         {"endpoint", e.endpoint},
                                         {"limit_per_minute_per_ip",
                                          chatwoot_api_.per_minute()}});
                   }
                   return list;
                 }}) {}

SandboxServer::~SandboxServer() { Stop(); }

bool SandboxServer::Server::RaiseListenBacklog(int backlog) {
  // listen(2) on a listening socket updates its backlog.
  return ::listen(svr_sock_, backlog) == 0;
}

std::string SandboxServer::url() const {
  return absl::StrCat("http://", host_port_);
}

bool SandboxServer::Start(std::string* error) {
  if (!options_.webhook_url.empty() && webhooks_ == nullptr) {
    webhooks_ = std::make_unique<WebhookEmitter>(
        WebhookEmitter::Options{.url = options_.webhook_url,
                                .path_suffix = options_.webhook_path_suffix,
                                .respondio_secret = options_.respondio_webhook_secret,
                                .chatwoot_secret = options_.chatwoot_webhook_secret});
    chatwoot_webhooks_ = std::make_unique<ChatwootWebhooks>(&chatwoot_state_, webhooks_.get());
    ChatwootWebhooks* cw = chatwoot_webhooks_.get();
    chatwoot_api_.SetChangeHooks(
        {.before = [cw](const std::string& endpoint,
                        const chatwoot::CwRequest& request) { return cw->Before(endpoint, request); },
         .after = [cw](const std::string& endpoint, const chatwoot::CwRequest& request,
                       const ApiResult& result,
                       const Json& before) { cw->After(endpoint, request, result, before); }});
  }
  // A client that goes away mid-response must not kill the process.
  signal(SIGPIPE, SIG_IGN);

  const int threads = options_.threads > 0 ? options_.threads : 64;
  server_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // httplib writes headers and body separately; without TCP_NODELAY the body
  // waits for the client's delayed ACK (~40 ms per keep-alive request).
  server_.set_tcp_nodelay(true);
  server_.set_keep_alive_max_count(1000);
  server_.set_keep_alive_timeout(5);
  server_.set_read_timeout(30);
  server_.set_write_timeout(30);
  server_.set_payload_max_length(64 << 20);

  httplib::Server::Handler handler = [this](const httplib::Request& req,
                                            httplib::Response& res) {
    HandleRequest(req, res);
  };
  server_.Get(".*", handler);
  server_.Post(".*", handler);
  server_.Put(".*", handler);
  server_.Patch(".*", handler);
  server_.Delete(".*", handler);
  server_.Options(".*", handler);
  // A POST/PUT/PATCH/DELETE without Content-Length or Transfer-Encoding has
  // an empty body (RFC 9112), but httplib rejects it with a bare 400 before
  // routing; serve it here (before httplib tries to read a body) instead.
  server_.set_pre_routing_handler(
      [this](const httplib::Request& req, httplib::Response& res) {
        const bool may_have_body = req.method == "POST" ||
                                   req.method == "PUT" ||
                                   req.method == "PATCH" ||
                                   req.method == "DELETE";
        if (may_have_body && !req.has_header("Content-Length") &&
            !req.has_header("Transfer-Encoding")) {
          HandleRequest(req, res);
          return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
      });
  // Errors produced by httplib itself (bad request line, payload too large...)
  // get the same JSON error shape; responses we built are left alone.
  server_.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        WriteJson(res, res.status,
                  ErrorBody(res.status, absl::StrCat("HTTP error ", res.status)));
        return httplib::Server::HandlerResponse::Handled;
      }));
  server_.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        WriteJson(res, 500, ErrorBody(500, "internal error"));
      });

  if (options_.port == 0) {
    port_ = server_.bind_to_any_port(options_.host);
  } else {
    port_ = server_.bind_to_port(options_.host, options_.port) ? options_.port
                                                                : -1;
  }
  if (port_ <= 0) {
    *error = absl::StrCat("cannot bind ", options_.host, ":", options_.port);
    return false;
  }
  server_.RaiseListenBacklog(1024);
  host_port_ = options_.host.find(':') != std::string::npos
                   ? absl::StrCat("[", options_.host, "]:", port_)
                   : absl::StrCat(options_.host, ":", port_);
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  // listen_after_bind flips is_running() once it is accepting.
  for (int i = 0; i < 2000 && !server_.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

void SandboxServer::Stop() {
  if (thread_.joinable()) {
    server_.stop();
    thread_.join();
  }
}

std::optional<Json> SandboxServer::RespondioContact(
    const std::string& identifier) const {
  respondio::Identifier ident;
  std::string error;
  if (!respondio::ParseIdentifier(identifier, &ident, &error)) return std::nullopt;
  ApiResult found = respondio_state_.GetContact(ident);
  if (found.status != 200) return std::nullopt;
  return found.body;
}

void SandboxServer::EmitForRespondioCall(const RequestContext& ctx,
                                         const std::string& endpoint,
                                         const httplib::Response& res) {
  const Json body = Json::parse(ctx.body(), nullptr, /*allow_exceptions=*/false);
  const std::string event = RespondioEventFor(endpoint, body);
  if (event.empty() || ctx.segments.size() < 2) return;
  std::optional<Json> contact = RespondioContact(ctx.segments[1]);
  if (!contact.has_value()) return;
  Json fields = {{"contact", *contact}};
  respondio::Identifier ident;
  std::string error;
  const bool parsed = respondio::ParseIdentifier(ctx.segments[1], &ident, &error);
  if (event == "message.sent" && parsed) {
    // The sent message, by the messageId the call answered.
    const Json reply = Json::parse(res.body, nullptr, /*allow_exceptions=*/false);
    if (reply.is_object() && reply.contains("messageId") && reply["messageId"].is_number_integer()) {
      ApiResult found = respondio_state_.GetMessage(ident, reply["messageId"].get<int64_t>());
      if (found.status == 200) fields["message"] = found.body;
    }
  }
  if (event == "conversation.opened" || event == "conversation.closed") {
    // respond.io's conversation object: {category, summary, openedTime, closedTime}.
    if (parsed) {
      ApiResult found = respondio_state_.GetConversation(ident);
      if (found.status == 200) {
        const Json& c = found.body;
        fields["conversation"] = Json{{"category", c.value("category", Json())},
                                      {"summary", c.value("summary", Json())},
                                      {"openedTime", c.value("opened", Json())},
                                      {"closedTime", c.value("closed", Json())}};
      }
    }
  }
  webhooks_->EmitRespondio(event, std::move(fields));
}

void SandboxServer::HandleRequest(const httplib::Request& req,
                                  httplib::Response& res) {
  RequestContext ctx = MakeRequestContext(req, host_port_);
  if (HandleInboundMessage(
          ctx, webhooks_.get(),
          [this](const std::string& id) { return RespondioContact(id); }, res)) {
    return;
  }
  if (chatwoot::ChatwootApi::IsAdminPath(ctx)) {
    chatwoot_api_.HandleAdmin(ctx, res);
    return;
  }
  if (AdminApi::IsAdminPath(ctx)) {
    admin_.Handle(ctx, res);
    return;
  }
  // Everything else is an emulated route: Chatwoot under /api/v1/, respond.io
  // at the root.
  const bool chatwoot = chatwoot::ChatwootApi::IsChatwootPath(ctx);
  const std::string endpoint = chatwoot ? chatwoot_api_.EndpointFor(ctx)
                                        : respondio_api_.EndpointFor(ctx);
  const int64_t seq = log_.Begin(ctx, endpoint);
  std::string fault_kind;
  // Faults come before auth and rate limits.
  if (std::optional<Fault> fault = faults_.Take(ctx.method, ctx.path, endpoint)) {
    fault_kind = fault->kind;
    if (fault->kind == "delay") {
      std::this_thread::sleep_for(std::chrono::milliseconds(fault->delay_ms));
    } else {
      int status = ApplyFault(*fault, req, res);
      log_.Finish(seq, status, fault_kind);
      return;
    }
  }
  if (chatwoot) {
    chatwoot_api_.Handle(ctx, res);
  } else {
    respondio_api_.Handle(ctx, res);
    if (webhooks_ != nullptr && res.status / 100 == 2 && ctx.method != "GET") {
      EmitForRespondioCall(ctx, endpoint, res);
    }
  }
  log_.Finish(seq, res.status, fault_kind);
}

}  // namespace sandbox

#include "service/gateway_service.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/byte_buffer.h"
#include "service/status_conversion.h"
#include "service/trace_context.h"
#include "upstream/errors.h"

namespace gateway::service {
namespace {

absl::Time DeadlineOf(const grpc::GenericCallbackServerContext* context, absl::Duration fallback) {
  const auto deadline = context->deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::Now() + fallback;
  return absl::FromChrono(deadline);
}

// What a call reads from its metadata, in one pass over it (gRPC builds the map on first use;
// each lookup after that is a tree walk with string compares). Views into the metadata, which
// lives as long as the call. A key given twice counts by its first value (`traceparent`: a
// second one makes it invalid; `tracestate`: the values form one list).
struct CallMetadata {
  absl::string_view authorization;
  absl::string_view caller;  // `x-caller`, unverified
  absl::string_view workspace;
  bool has_workspace = false;
  absl::string_view traceparent;
  int traceparents = 0;
  absl::string_view tracestate;  // the first value
  std::string tracestates;       // several values joined with ',' (rare)
  int tracestate_values = 0;
  bool no_cache = false;  // `cache-control: no-cache` (as in HTTP): a fresh upstream answer

  absl::string_view Tracestate() const {
    return tracestate_values > 1 ? absl::string_view(tracestates) : tracestate;
  }
};

CallMetadata ReadMetadata(const grpc::GenericCallbackServerContext* context) {
  CallMetadata m;
  for (const auto& [key_ref, value_ref] : context->client_metadata()) {
    const absl::string_view key(key_ref.data(), key_ref.size());
    const absl::string_view value(value_ref.data(), value_ref.size());
    // Keys arrive lower-case (HTTP/2); switch on the length before comparing.
    switch (key.size()) {
      case 8:
        if (key == "x-caller" && m.caller.data() == nullptr) m.caller = value;
        break;
      case 10:
        if (key == "tracestate") {
          if (++m.tracestate_values == 1) {
            m.tracestate = value;
          } else {
            if (m.tracestate_values == 2) m.tracestates = std::string(m.tracestate);
            m.tracestates.push_back(',');
            m.tracestates.append(value.data(), value.size());
          }
        }
        break;
      case 11:
        if (key == kWorkspaceMetadata) {
          if (!m.has_workspace) m.workspace = value;
          m.has_workspace = true;
        } else if (key == "traceparent") {
          m.traceparent = value;
          ++m.traceparents;
        }
        break;
      case 13:
        if (key == "authorization") {
          if (m.authorization.data() == nullptr) m.authorization = value;
        } else if (key == "cache-control" && !m.no_cache) {
          m.no_cache = absl::StrContains(absl::AsciiStrToLower(value), "no-cache");
        }
        break;
      default:
        break;
    }
  }
  return m;
}

// The caller's name from `x-caller` metadata (only used without caller authentication),
// bounded so a caller cannot flood logs and limiter state with huge names.
std::string UnverifiedCaller(absl::string_view value) {
  std::string caller(value.substr(0, 64));
  for (char& c : caller) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') c = '_';
  }
  return caller;
}

// The W3C trace context of the call: the caller's `traceparent` (exactly one, valid) continued,
// else a new trace. Several `tracestate` values form one list.
TraceContext TraceOf(const CallMetadata& m) {
  if (m.traceparents != 1) return TraceContext::ForCall("", "");
  return TraceContext::ForCall(m.traceparent, m.Tracestate());
}

// One unary call: check the caller, read one request message, dispatch it, write the reply and
// finish. When the caller goes away (OnCancel: it cancelled, its deadline passed, or the server
// is shutting down) the pipeline's Call is cancelled, so nothing of it is sent upstream later.
class UnaryCall : public grpc::ServerGenericBidiReactor {
 public:
  UnaryCall(grpc::GenericCallbackServerContext* context, const upstream::Route* route,
            const Workspaces* workspaces, const GatewayService::Options* options)
      : context_(context), route_(route), options_(options),
        start_(absl::Now()), deadline_(DeadlineOf(context, options->default_deadline)) {
    metadata_ = ReadMetadata(context);
    const CallMetadata& metadata = metadata_;
    bypass_cache_ = metadata.no_cache;
    // The record's text fields are views of what this call keeps (call_record.h).
    record_.rpc = context->method();
    record_.known_rpc = route_ != nullptr;
    if (route_ == nullptr) {
      Fail(upstream::GatewayError(
          absl::StatusCode::kUnimplemented,
          absl::StrCat("the gateway serves no RPC ", context->method()),
          {.reason = "UNKNOWN_RPC", .metadata = {{"rpc", context->method()}}}));
      return;
    }
    record_.upstream = route_->binding.upstream();
    record_.bucket = route_->policy.bucket();
    if (options_->auth != nullptr) {
      absl::StatusOr<std::string> caller = options_->auth->Check(metadata.authorization, *route_);
      if (!caller.ok()) {
        Fail(caller.status());
        return;
      }
      record_.caller = *std::move(caller);
    } else {
      record_.caller = UnverifiedCaller(metadata.caller);
    }
    // The workspace: selected once, and this call keeps the snapshot it selected from.
    workspaces_ = workspaces->Current();
    absl::StatusOr<const WorkspaceSet::Workspace*> workspace =
        workspaces_->Select(metadata.workspace.substr(0, 64), metadata.has_workspace);
    if (!workspace.ok()) {
      Fail(workspace.status());
      return;
    }
    if (options_->auth != nullptr) {
      if (absl::Status s = options_->auth->CheckWorkspace(record_.caller, (*workspace)->name);
          !s.ok()) {
        Fail(s);
        return;
      }
    }
    // The workspace's own dialects: the same RPC in that workspace's verb, path and shapes.
    if ((*workspace)->routes != nullptr) {
      if (const upstream::Route* own = (*workspace)->routes->Find(context->method())) {
        route_ = own;
        record_.bucket = route_->policy.bucket();
      }
    }
    record_.workspace = (*workspace)->name;
    record_.workspace_series = (*workspace)->metrics;
    dispatcher_ = (*workspace)->dispatcher.get();
    StartRead(&request_buffer_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // No request came because the caller reset the stream (or its deadline passed) first: a
      // cancellation, not a malformed call.
      if (cancelled_.load() || context_->IsCancelled()) {
        Record(grpc::StatusCode::CANCELLED, "CALLER_CANCELLED");
        Finish(grpc::Status::CANCELLED);
        return;
      }
      Fail(upstream::GatewayError(absl::StatusCode::kInvalidArgument,
                                  "the call carried no request message",
                                  {.reason = "MISSING_REQUEST"}));
      return;
    }
    // Nearly always one slice, read in place; else the slices joined.
    grpc::Slice single;
    std::string joined;
    absl::string_view bytes;
    if (request_buffer_.TrySingleSlice(&single).ok()) {
      bytes = absl::string_view(reinterpret_cast<const char*>(single.begin()), single.size());
    } else {
      std::vector<grpc::Slice> slices;
      if (request_buffer_.Dump(&slices).ok()) {
        for (const grpc::Slice& slice : slices) {
          joined.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
        }
      }
      bytes = joined;
    }
    // The hit fast path: the cache key from the request bytes, before parsing or anything
    // else only a miss needs; the stored reply is written without a copy.
    if (!bypass_cache_) {
      if (std::shared_ptr<const std::string> hit = dispatcher_->CachedReply(*route_, bytes)) {
        stats_.cache_hit = true;
        ReplyShared(std::move(hit));
        return;
      }
    }
    const google::protobuf::Message* prototype =
        google::protobuf::MessageFactory::generated_factory()->GetPrototype(
            route_->method->input_type());
    std::unique_ptr<google::protobuf::Message> request(prototype->New());
    if (!request->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      Fail(upstream::GatewayError(
          absl::StatusCode::kInvalidArgument,
          absl::StrCat("the request is not a valid ", route_->method->input_type()->full_name()),
          {.reason = "MALFORMED_REQUEST"}));
      return;
    }
    call_ = dispatcher_->Call(*route_, *request,
                              {.deadline = deadline_,
                               .caller = record_.caller,
                               .bypass_cache = bypass_cache_,
                               .stats = &stats_,
                               .trace_headers = Trace().Headers()},
                              [this](absl::StatusOr<std::string> reply) { Reply(std::move(reply)); });
    // OnCancel may run on another thread at any time: whichever of the two sees the other's
    // flag cancels (Call::Cancel is idempotent and a no-op once the call ended).
    published_.store(true);
    if (cancelled_.load()) call_->Cancel(upstream::Call::CancelReason::kCallerLeft);
  }

  void OnCancel() override {
    cancelled_.store(true);
    if (published_.load()) call_->Cancel(upstream::Call::CancelReason::kCallerLeft);
  }

  void OnDone() override { delete this; }

 private:
  void Reply(absl::StatusOr<std::string> reply) {
    if (!reply.ok()) {
      Fail(reply.status());
      return;
    }
    if (cancelled_.load()) {
      // The caller is gone (or the server cancelled the call): it never receives this OK.
      Record(grpc::StatusCode::CANCELLED, "CALLER_CANCELLED");
      Finish(grpc::Status::CANCELLED);
      return;
    }
    Record(grpc::StatusCode::OK, "");
    grpc::Slice slice(std::move(*reply));
    grpc::ByteBuffer buffer(&slice, 1);
    response_buffer_.Swap(&buffer);  // assigning would add a reference and drop one
    StartWriteAndFinish(&response_buffer_, grpc::WriteOptions(), grpc::Status::OK);
  }

  // Writes a cached reply: the gRPC slice refers to the cache's bytes (kept alive by a reference
  // the slice owns) instead of copying them.
  void ReplyShared(std::shared_ptr<const std::string> reply) {
    if (cancelled_.load()) {
      Record(grpc::StatusCode::CANCELLED, "CALLER_CANCELLED");
      Finish(grpc::Status::CANCELLED);
      return;
    }
    Record(grpc::StatusCode::OK, "");
    auto* keep = new std::shared_ptr<const std::string>(std::move(reply));
    grpc::Slice slice(
        const_cast<char*>((*keep)->data()), (*keep)->size(),
        [](void* p) { delete static_cast<std::shared_ptr<const std::string>*>(p); }, keep);
    grpc::ByteBuffer buffer(&slice, 1);
    response_buffer_.Swap(&buffer);
    StartWriteAndFinish(&response_buffer_, grpc::WriteOptions(), grpc::Status::OK);
  }

  // The call's trace context, made on first use: a call that sends nothing upstream and
  // whose record needs no trace ids (Options::record_trace_ids) makes no ids at all.
  const TraceContext& Trace() {
    if (!trace_.has_value()) {
      trace_ = TraceOf(metadata_);
      record_.trace_id = trace_->trace_id();
      record_.span_id = trace_->span_id();
    }
    return *trace_;
  }

  void Fail(const absl::Status& status) {
    grpc::Status grpc_status = ToGrpcStatus(status);
    Record(grpc_status.error_code(), upstream::ErrorReasonOf(status));
    Finish(grpc_status);
  }

  void Record(grpc::StatusCode code, std::string reason) {
    if (!options_->on_call_done) return;
    if (options_->record_trace_ids) Trace();
    record_.code = code;
    record_.reason = std::move(reason);
    record_.latency = absl::Now() - start_;
    record_.upstream_status = stats_.upstream_status;
    record_.cache_hit = stats_.cache_hit;
    record_.limited = stats_.limited;
    record_.queue_wait = stats_.queue_wait;
    record_.upstream_latency = stats_.upstream_latency;
    options_->on_call_done(record_);
  }

  grpc::GenericCallbackServerContext* context_;
  const upstream::Route* route_;
  std::shared_ptr<const WorkspaceSet> workspaces_;  // the snapshot this call selected from
  const upstream::Dispatcher* dispatcher_ = nullptr;  // its workspace's, owned by workspaces_
  const GatewayService::Options* options_;
  const absl::Time start_;
  const absl::Time deadline_;
  bool bypass_cache_ = false;
  CallMetadata metadata_;  // views into context_'s metadata
  CallRecord record_;  // its views refer to context_, route_, workspaces_ and trace_
  std::optional<TraceContext> trace_;  // Trace()
  upstream::CallStats stats_;
  grpc::ByteBuffer request_buffer_;
  grpc::ByteBuffer response_buffer_;
  std::shared_ptr<upstream::Call> call_;  // set once, before published_
  std::atomic<bool> published_{false};
  std::atomic<bool> cancelled_{false};
};

}  // namespace

GatewayService::GatewayService(const RouteTable* routes, const Workspaces* workspaces,
                               Options options)
    : routes_(routes), workspaces_(workspaces), options_(options) {}

grpc::ServerGenericBidiReactor* GatewayService::CreateReactor(
    grpc::GenericCallbackServerContext* context) {
  return new UnaryCall(context, routes_->Find(context->method()), workspaces_, &options_);
}

}  // namespace gateway::service

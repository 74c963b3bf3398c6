#include "events/event_service.h"

#include <algorithm>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "service/status_conversion.h"
#include "upstream/errors.h"

namespace gateway::events {
namespace {

constexpr char kSubscribe[] = "/gateway.v1.EventService/Subscribe";
constexpr char kAck[] = "/gateway.v1.EventService/Ack";

}  // namespace

// One Subscribe call: a reactor plus its delivery thread. The thread owns the read loop and
// calls Finish as its very last action; OnDone (after Finish) deletes the reactor.
class EventService::Stream final : public grpc::ServerWriteReactor<gateway::v1::EventEnvelope> {
 public:
  Stream(EventService* service, const gateway::v1::SubscribeRequest& request,
         const std::vector<std::string>& workspaces)
      : service_(service), request_(request) {
    upstreams_.insert(request.upstreams().begin(), request.upstreams().end());
    // Events of the default workspace are stored with workspace "".
    for (const std::string& w : workspaces) {
      workspaces_.insert(w == service->options_.default_workspace ? "" : w);
    }
    types_.insert(request.event_types().begin(), request.event_types().end());
    consumer_ = request.consumer().empty()
                    ? absl::StrCat("subscriber-", absl::Uniform<uint64_t>(absl::BitGen()))
                    : request.consumer();
    service_->StreamOpened(1);
  }

  void Start(absl::Status auth) {
    std::thread([this, auth] { Run(auth); }).detach();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) broken_ = true;
  }
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }
  void OnDone() override {
    service_->StreamOpened(-1);
    delete this;
  }

 private:
  bool Matches(const LogEntry& e) const {
    return (upstreams_.empty() || upstreams_.contains(e.upstream)) &&
           (types_.empty() || types_.contains(e.type)) &&
           (workspaces_.empty() || workspaces_.contains(e.workspace));
  }

  bool Stopped() {
    absl::MutexLock lock(&mu_);
    return cancelled_ || broken_;
  }

  // Writes one envelope and waits for OnWriteDone; false when the stream ended.
  bool Write(const gateway::v1::EventEnvelope& envelope) {
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_ || broken_) return false;
      writing_ = true;
    }
    StartWrite(&envelope);
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Stream* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) { return !s->writing_; }, this));
    return !broken_ && !cancelled_;
  }

  void Run(absl::Status auth) {
    Finish(service::ToGrpcStatus(Loop(std::move(auth))));
  }

  absl::Status Loop(absl::Status auth) {
    if (!auth.ok()) return auth;
    EventLog* log = service_->log_;
    const Options& options = service_->options_;
    const bool grouped = !request_.group().empty();
    const bool from_oldest = request_.start_position() == gateway::v1::START_POSITION_OLDEST;
    std::string position;
    if (grouped) {
      if (absl::Status s = log->EnsureGroup(request_.group(), from_oldest); !s.ok()) return s;
      // A group keeps its own position; a resume token only moves a group that fell behind
      // retention past its gap (the oldest_resume_token its OUT_OF_RANGE named).
      if (request_.start_case() == gateway::v1::SubscribeRequest::kResumeToken) {
        if (absl::Status s = log->SkipExpired(request_.group(), request_.resume_token());
            !s.ok()) {
          return s;
        }
      }
    } else if (request_.start_case() == gateway::v1::SubscribeRequest::kResumeToken) {
      position = request_.resume_token();
      std::pair<uint64_t, uint64_t> parsed;
      if (!ParseEventId(position, &parsed)) {
        return upstream::GatewayError(
            absl::StatusCode::kInvalidArgument,
            absl::StrCat("resume_token \"", position, "\" is not one this gateway issued"),
            {.reason = "INVALID_RESUME_TOKEN"});
      }
    } else {
      auto start = from_oldest ? log->OldestPosition() : log->NewestPosition();
      if (!start.ok()) return start.status();
      position = *start;
    }
    // Sends headers at once, so that a client knows the subscription is live before any event.
    StartSendInitialMetadata();
    int count = options.batch;
    while (!Stopped()) {
      auto batch = grouped ? log->ReadGroup(request_.group(), consumer_, count,
                                            options.visibility_timeout)
                           : log->ReadAfter(position, count);
      if (!batch.ok()) {
        // A Redis outage is retried (the stream stays open); anything else ends the stream.
        if (batch.status().code() != absl::StatusCode::kUnavailable) return batch.status();
        log->WaitForAppend(options.poll_interval);
        continue;
      }
      if (batch->empty()) {
        log->WaitForAppend(options.poll_interval);
        continue;
      }
      // Bound what this stream holds: a plain subscriber keeps events up to the byte budget
      // (at least one) and reads the rest again; the next count is sized from the largest.
      int64_t held = 0, largest = 0;
      size_t keep = batch->size();
      for (size_t i = 0; i < batch->size(); ++i) {
        const int64_t size = static_cast<int64_t>((*batch)[i].payload.size());
        if (!grouped && i > 0 && held + size > options.max_buffered_bytes) {
          keep = i;
          break;
        }
        held += size;
        largest = std::max(largest, size);
      }
      batch->resize(keep);
      count = static_cast<int>(std::clamp<int64_t>(
          options.max_buffered_bytes / std::max<int64_t>(1, largest), 1, options.batch));
      Holding holding(service_, held);
      std::vector<std::string> skipped;
      for (LogEntry& entry : *batch) {
        const int64_t entry_size = static_cast<int64_t>(entry.payload.size());
        if (!grouped) position = entry.id;
        if (!Matches(entry)) {
          if (grouped) skipped.push_back(entry.id);
          holding.Release(entry_size);
          continue;
        }
        gateway::v1::EventEnvelope envelope;
        if (!envelope.ParseFromString(entry.payload)) {
          return upstream::GatewayError(absl::StatusCode::kInternal,
                                        absl::StrCat("event ", entry.id, " is corrupt in the log"),
                                        {.reason = "EVENT_CORRUPT"});
        }
        envelope.set_id(entry.id);
        envelope.set_resume_token(entry.id);
        envelope.set_delivery_count(static_cast<int32_t>(grouped ? entry.delivery_count : 0));
        std::string().swap(entry.payload);  // the envelope holds it now
        if (!Write(envelope)) return absl::CancelledError("the subscriber went away");
        holding.Release(entry_size);
        service_->CountDelivered(request_.group());
      }
      if (!skipped.empty()) log->Ack(request_.group(), skipped).IgnoreError();
    }
    return absl::CancelledError("the subscriber went away");
  }

  // Payload bytes of one batch, counted in the service's gauges until written or dropped.
  class Holding {
   public:
    Holding(EventService* service, int64_t bytes) : service_(service), bytes_(bytes) {
      service_->Buffered(bytes_, bytes_);
    }
    ~Holding() { Release(bytes_); }
    void Release(int64_t bytes) {
      bytes = std::min(bytes, bytes_);
      bytes_ -= bytes;
      if (bytes > 0) service_->Buffered(-bytes, bytes_);
    }

   private:
    EventService* const service_;
    int64_t bytes_;
  };

  EventService* const service_;
  const gateway::v1::SubscribeRequest request_;
  absl::flat_hash_set<std::string> upstreams_;
  absl::flat_hash_set<std::string> types_;
  absl::flat_hash_set<std::string> workspaces_;  // "" is the default workspace; empty: all
  std::string consumer_;
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

EventService::EventService(EventLog* log, Options options)
    : log_(log), options_(std::move(options)) {}

grpc::ServerWriteReactor<gateway::v1::EventEnvelope>* EventService::Subscribe(
    grpc::CallbackServerContext* context, const gateway::v1::SubscribeRequest* request) {
  absl::Status auth =
      options_.authorize ? options_.authorize(context, kSubscribe) : absl::OkStatus();
  for (const std::string& upstream : request->upstreams()) {
    if (auth.ok() && upstream != "respondio" && upstream != "chatwoot") {
      auth = upstream::GatewayError(
          absl::StatusCode::kInvalidArgument,
          absl::StrCat("unknown upstream \"", upstream, "\" (respondio or chatwoot)"),
          {.reason = "INVALID_ARGUMENT", .field_violations = {{"upstreams", "unknown upstream"}}});
    }
  }
  std::vector<std::string> workspaces(request->workspaces().begin(),
                                      request->workspaces().end());
  if (workspaces.empty()) {
    // As on every other RPC (service/workspaces.h's kWorkspaceMetadata).
    auto it = context->client_metadata().find("x-workspace");
    if (it != context->client_metadata().end()) {
      workspaces.emplace_back(it->second.data(), it->second.size());
    }
  }
  if (auth.ok() && options_.workspaces) {
    absl::StatusOr<std::vector<std::string>> allowed = options_.workspaces(context, workspaces);
    if (allowed.ok()) {
      workspaces = *std::move(allowed);
    } else {
      auth = allowed.status();
    }
  }
  auto* stream = new Stream(this, *request, workspaces);
  stream->Start(std::move(auth));
  return stream;
}

grpc::ServerUnaryReactor* EventService::Ack(grpc::CallbackServerContext* context,
                                            const gateway::v1::AckRequest* request,
                                            gateway::v1::AckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = options_.authorize ? options_.authorize(context, kAck) : absl::OkStatus();
  if (status.ok() && request->group().empty()) {
    status = upstream::InvalidField("group", "Ack needs the consumer group");
  }
  if (status.ok()) {
    // One short Redis command (XACK); blocking here is bounded by the Redis command timeout.
    auto acked = log_->Ack(request->group(), {request->ids().begin(), request->ids().end()});
    if (acked.ok()) {
      response->set_acknowledged(*acked);
    } else {
      status = acked.status();
    }
  }
  reactor->Finish(service::ToGrpcStatus(status));
  return reactor;
}

void EventService::CountDelivered(const std::string& group) {
  absl::MutexLock lock(&mu_);
  ++counters_.delivered[group];
}

void EventService::Buffered(int64_t delta, int64_t now) {
  absl::MutexLock lock(&mu_);
  counters_.buffered_bytes += delta;
  counters_.peak_stream_buffered_bytes = std::max(counters_.peak_stream_buffered_bytes, now);
}

void EventService::StreamOpened(int delta) {
  absl::MutexLock lock(&mu_);
  counters_.streams += delta;
}

EventService::Counters EventService::counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

}  // namespace gateway::events

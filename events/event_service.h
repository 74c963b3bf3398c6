// gateway.v1.EventService: streams the event log to subscribers (see event_service.proto).
//
// Each Subscribe stream has one delivery thread: it reads a batch from the log, writes one
// envelope, and writes the next only after gRPC's OnWriteDone, so a subscriber that stops
// reading is held back by HTTP/2 flow control and costs one batch of memory, never more. A
// batch is at most Options::batch events and, for a subscriber without a group, at most
// Options::max_buffered_bytes of event payloads (always at least one event; the rest is read
// again later); the next read's count is sized from the largest event of the previous one, so a
// group member's batch (which the log has already marked delivered, and is kept whole) stays
// near that budget too. Counters::buffered_bytes and peak_stream_buffered_bytes show it. With a
// group, events are read through the log's consumer group and delivered with their
// delivery_count; an event outside the member's filter (upstreams, event types, workspaces) is
// acknowledged without delivery.
//
// Thread-safe. `log` must outlive the service and every stream (shut the gRPC server down
// first); delivery threads end within Options::poll_interval of a cancellation.
#ifndef GATEWAY_EVENTS_EVENT_SERVICE_H_
#define GATEWAY_EVENTS_EVENT_SERVICE_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "events/event_log.h"
#include "gateway/v1/event_service.grpc.pb.h"

namespace gateway::events {

class EventService final : public gateway::v1::EventService::CallbackService {
 public:
  struct Options {
    // Authorizes a call: `rpc` is "/gateway.v1.EventService/Subscribe" or ".../Ack". Empty:
    // every call is allowed.
    std::function<absl::Status(grpc::CallbackServerContext*, const std::string& rpc)> authorize;
    // The workspaces a Subscribe call receives, after `authorize` passed: `requested` is the
    // request's `workspaces`, or its `x-workspace` metadata (one name) when that is empty.
    // Returns the names to deliver (empty: every workspace) or the error to end the call with
    // (PERMISSION_DENIED WORKSPACE_NOT_ALLOWED, NOT_FOUND UNKNOWN_WORKSPACE). main.cc checks
    // them against the configured workspaces and the caller's allowlist. Unset: `requested`.
    std::function<absl::StatusOr<std::vector<std::string>>(
        grpc::CallbackServerContext*, const std::vector<std::string>& requested)>
        workspaces;
    // The name that selects events of the default workspace (stored with workspace "").
    std::string default_workspace = "default";
    // How long a group member has to Ack an event before it goes to another member.
    absl::Duration visibility_timeout = absl::Seconds(30);
    // Events read from the log at a time per stream.
    int batch = 64;
    // Payload bytes a stream holds at once (read from the log, not yet written), see above.
    int64_t max_buffered_bytes = 1 << 20;
    // How often an idle stream looks for events appended on other replicas.
    absl::Duration poll_interval = absl::Milliseconds(50);
  };

  struct Counters {
    std::map<std::string, int64_t> delivered;  // by group ("" without a group)
    int64_t streams = 0;                       // open Subscribe streams
    int64_t buffered_bytes = 0;  // event payload bytes streams hold now, summed over streams
    int64_t peak_stream_buffered_bytes = 0;  // the most one stream held at once, since start
  };

  EventService(EventLog* log, Options options);

  grpc::ServerWriteReactor<gateway::v1::EventEnvelope>* Subscribe(
      grpc::CallbackServerContext* context, const gateway::v1::SubscribeRequest* request) override;
  grpc::ServerUnaryReactor* Ack(grpc::CallbackServerContext* context,
                                const gateway::v1::AckRequest* request,
                                gateway::v1::AckResponse* response) override;

  Counters counters() const;

 private:
  class Stream;
  void CountDelivered(const std::string& group);
  void StreamOpened(int delta);
  // A stream's buffered payload bytes changed by `delta`, to `now`.
  void Buffered(int64_t delta, int64_t now);

  EventLog* const log_;
  const Options options_;
  mutable absl::Mutex mu_;
  Counters counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gateway::events

#endif  // GATEWAY_EVENTS_EVENT_SERVICE_H_

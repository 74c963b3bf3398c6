// Decodes an upstream's webhook JSON into its typed Event message (respondio.v2.Event,
// chatwoot.v1.Event), driven by the protos' options alone (gateway/v1/event_options.proto):
// the Event message's `event_source` says where the type name and delivery id are, and each
// field of its `payload` oneof says which event types it receives (`event.type`), which of its
// fields takes the whole JSON object (`payload_field`), and which cache tags the event makes
// stale (`invalidates`, `aliases`, templates over the typed message).
//
//   auto decoder = EventDecoder::Create(respondio::v2::Event::descriptor());
//   absl::StatusOr<DecodedEvent> event = decoder->Decode(json, /*header_delivery_id=*/"");
//
// Events of unknown types, and known types whose JSON does not fit the typed message, are kept
// in the oneof's unknown field (type name, raw JSON as google.protobuf.Struct, decode error),
// never dropped; DecodedEvent::unknown says so, for the drift counters.
// Immutable after Create; thread-safe.
#ifndef GATEWAY_EVENTS_EVENT_DECODER_H_
#define GATEWAY_EVENTS_EVENT_DECODER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"

namespace gateway::events {

struct DecodedEvent {
  std::string upstream;     // from event_source.upstream
  std::string type;         // the upstream's event type name
  std::string delivery_id;  // the upstream's delivery id ("" when the webhook carries none)
  std::unique_ptr<google::protobuf::Message> event;  // the upstream's Event message
  bool unknown = false;      // kept in the unknown field (unknown type or undecodable)
  std::string decode_error;  // why a known type was not decodable
  std::vector<std::string> invalidates;  // expanded cache tags this event makes stale
  std::vector<std::string> aliases;      // expanded aliases of those tags
};

class EventDecoder {
 public:
  // `event_message` must carry the gateway.v1.event_source option and a `payload` oneof.
  // Errors: INVALID_ARGUMENT naming what is missing or inconsistent in the proto.
  static absl::StatusOr<EventDecoder> Create(const google::protobuf::Descriptor* event_message);

  const std::string& upstream() const { return upstream_; }
  // The delivery id header ("" when the id is in the JSON).
  const std::string& id_header() const { return id_header_; }
  // Event type names with a typed field.
  std::vector<std::string> KnownTypes() const;

  // Decodes `json` (a JSON object). `header_delivery_id` is the value of id_header().
  // Errors: INVALID_ARGUMENT (reason MALFORMED_EVENT) when `json` is not an object or has no
  // event type name.
  absl::StatusOr<DecodedEvent> Decode(const nlohmann::json& json,
                                      const std::string& header_delivery_id) const;

 private:
  struct Binding {
    const google::protobuf::FieldDescriptor* field = nullptr;
    const google::protobuf::FieldDescriptor* payload_field = nullptr;  // may be null
    std::vector<std::string> invalidates;
    std::vector<std::string> aliases;
  };
  const google::protobuf::Descriptor* descriptor_ = nullptr;
  std::string upstream_;
  std::string type_key_;
  std::string id_key_;
  std::string id_header_;
  const google::protobuf::FieldDescriptor* id_field_ = nullptr;
  const google::protobuf::FieldDescriptor* type_field_ = nullptr;
  const google::protobuf::FieldDescriptor* unknown_field_ = nullptr;
  absl::flat_hash_map<std::string, Binding> bindings_;  // by event type name
};

// Expands cache-tag templates over `message`, skipping those with a placeholder that is empty
// or 0 (an unset id would name no resource).
std::vector<std::string> ExpandTags(const std::vector<std::string>& templates,
                                    const google::protobuf::Message& message);

}  // namespace gateway::events

#endif  // GATEWAY_EVENTS_EVENT_DECODER_H_

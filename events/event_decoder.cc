#include "events/event_decoder.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "gateway/v1/event_options.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "upstream/binding/json_codec.h"
#include "upstream/binding/route.h"
#include "upstream/errors.h"

namespace gateway::events {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

absl::Status ProtoError(const Descriptor* d, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(d->full_name(), ": ", what));
}

std::unique_ptr<Message> NewMessage(const Descriptor* d) {
  const Message* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(d);
  return std::unique_ptr<Message>(prototype->New());
}

std::string ScalarText(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_integer()) return std::to_string(value.get<int64_t>());
  return "";
}

}  // namespace

std::vector<std::string> ExpandTags(const std::vector<std::string>& templates,
                                    const Message& message) {
  std::vector<std::string> out;
  for (const std::string& templ : templates) {
    bool empty = false;
    for (size_t open = templ.find('{'); open != std::string::npos;
         open = templ.find('{', open + 1)) {
      const size_t close = templ.find('}', open);
      if (close == std::string::npos) break;
      const std::string value =
          upstream::ExpandTemplate(templ.substr(open, close - open + 1), message);
      if (value.empty() || value == "0") empty = true;
    }
    if (!empty) out.push_back(upstream::ExpandTemplate(templ, message));
  }
  return out;
}

absl::StatusOr<EventDecoder> EventDecoder::Create(const Descriptor* d) {
  if (d == nullptr) return absl::InvalidArgumentError("no event message");
  if (!d->options().HasExtension(gateway::v1::event_source)) {
    return ProtoError(d, "has no gateway.v1.event_source option");
  }
  const gateway::v1::EventSource& source = d->options().GetExtension(gateway::v1::event_source);
  EventDecoder decoder;
  decoder.descriptor_ = d;
  decoder.upstream_ = source.upstream();
  decoder.type_key_ = source.type_key();
  decoder.id_key_ = source.id_key();
  decoder.id_header_ = source.id_header();
  if (decoder.upstream_.empty() || decoder.type_key_.empty()) {
    return ProtoError(d, "event_source needs upstream and type_key");
  }
  decoder.id_field_ = d->FindFieldByName(source.id_field());
  decoder.type_field_ = d->FindFieldByName(source.type_field());
  decoder.unknown_field_ = d->FindFieldByName(source.unknown_field());
  for (const FieldDescriptor* f : {decoder.id_field_, decoder.type_field_}) {
    if (f == nullptr || f->type() != FieldDescriptor::TYPE_STRING) {
      return ProtoError(d, "event_source id_field and type_field must name string fields");
    }
  }
  if (decoder.unknown_field_ == nullptr || decoder.unknown_field_->message_type() == nullptr ||
      decoder.unknown_field_->containing_oneof() == nullptr) {
    return ProtoError(d, "event_source unknown_field must name a message field of the oneof");
  }
  const google::protobuf::OneofDescriptor* oneof = decoder.unknown_field_->containing_oneof();
  for (int i = 0; i < oneof->field_count(); ++i) {
    const FieldDescriptor* field = oneof->field(i);
    if (field == decoder.unknown_field_) continue;
    if (!field->options().HasExtension(gateway::v1::event)) {
      return ProtoError(d, absl::StrCat(field->name(), " has no gateway.v1.event option"));
    }
    const gateway::v1::EventBinding& b = field->options().GetExtension(gateway::v1::event);
    Binding binding;
    binding.field = field;
    if (field->message_type() == nullptr) {
      return ProtoError(d, absl::StrCat(field->name(), " must be a message field"));
    }
    if (!b.payload_field().empty()) {
      binding.payload_field = field->message_type()->FindFieldByName(b.payload_field());
      if (binding.payload_field == nullptr || binding.payload_field->message_type() == nullptr) {
        return ProtoError(d, absl::StrCat(field->name(), ": payload_field \"", b.payload_field(),
                                          "\" is not a message field of ",
                                          field->message_type()->full_name()));
      }
    }
    binding.invalidates.assign(b.invalidates().begin(), b.invalidates().end());
    binding.aliases.assign(b.aliases().begin(), b.aliases().end());
    if (b.type().empty()) return ProtoError(d, absl::StrCat(field->name(), " names no type"));
    for (const std::string& type : b.type()) {
      if (!decoder.bindings_.emplace(type, binding).second) {
        return ProtoError(d, absl::StrCat("event type \"", type, "\" is bound twice"));
      }
    }
  }
  return decoder;
}

std::vector<std::string> EventDecoder::KnownTypes() const {
  std::vector<std::string> types;
  for (const auto& [type, binding] : bindings_) types.push_back(type);
  std::sort(types.begin(), types.end());
  return types;
}

absl::StatusOr<DecodedEvent> EventDecoder::Decode(const nlohmann::json& json,
                                                  const std::string& header_delivery_id) const {
  if (!json.is_object()) {
    return upstream::GatewayError(absl::StatusCode::kInvalidArgument,
                                  "the webhook body is not a JSON object",
                                  {.reason = "MALFORMED_EVENT"});
  }
  auto type_it = json.find(type_key_);
  if (type_it == json.end() || !type_it->is_string() || type_it->get<std::string>().empty()) {
    return upstream::GatewayError(
        absl::StatusCode::kInvalidArgument,
        absl::StrCat("the webhook has no \"", type_key_, "\" (the event type)"),
        {.reason = "MALFORMED_EVENT"});
  }
  DecodedEvent out;
  out.upstream = upstream_;
  out.type = type_it->get<std::string>();
  if (!id_key_.empty()) {
    if (auto id = json.find(id_key_); id != json.end()) out.delivery_id = ScalarText(*id);
  } else {
    out.delivery_id = header_delivery_id;
  }
  out.event = NewMessage(descriptor_);
  const google::protobuf::Reflection* r = out.event->GetReflection();
  r->SetString(out.event.get(), type_field_, out.type);
  r->SetString(out.event.get(), id_field_, out.delivery_id);

  auto binding = bindings_.find(out.type);
  if (binding != bindings_.end()) {
    std::unique_ptr<Message> typed = NewMessage(binding->second.field->message_type());
    absl::Status decoded = upstream::DecodeMessage(json, typed.get());
    if (decoded.ok() && binding->second.payload_field != nullptr) {
      decoded = upstream::DecodeMessage(
          json, typed->GetReflection()->MutableMessage(typed.get(), binding->second.payload_field));
    }
    if (decoded.ok()) {
      out.invalidates = ExpandTags(binding->second.invalidates, *typed);
      out.aliases = ExpandTags(binding->second.aliases, *typed);
      r->SetAllocatedMessage(out.event.get(), typed.release(), binding->second.field);
      return out;
    }
    out.decode_error = std::string(decoded.message());
  }
  // Unknown type, or a known one that does not fit: keep it whole.
  out.unknown = true;
  Message* unknown = r->MutableMessage(out.event.get(), unknown_field_);
  const Descriptor* ud = unknown->GetDescriptor();
  const FieldDescriptor* type_field = ud->FindFieldByName("type");
  const FieldDescriptor* raw_field = ud->FindFieldByName("raw");
  const FieldDescriptor* error_field = ud->FindFieldByName("decode_error");
  if (type_field != nullptr) unknown->GetReflection()->SetString(unknown, type_field, out.type);
  if (error_field != nullptr) {
    unknown->GetReflection()->SetString(unknown, error_field, out.decode_error);
  }
  if (raw_field != nullptr) {
    // A JSON object always fits google.protobuf.Struct.
    upstream::DecodeField(json, unknown, raw_field, "").IgnoreError();
  }
  return out;
}

}  // namespace gateway::events

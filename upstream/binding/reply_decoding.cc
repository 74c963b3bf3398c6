#include "upstream/binding/reply_decoding.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "upstream/binding/json_codec.h"
#include "upstream/errors.h"

namespace gateway::upstream {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using nlohmann::json;

// The value at `path` in `j`, or nullptr.
const json* At(const json& j, const std::vector<std::string>& path) {
  const json* cur = &j;
  for (const std::string& key : path) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(key);
    if (it == cur->end()) return nullptr;
    cur = &*it;
  }
  return cur;
}

// How many keys of `object` a message of type `d` reads.
int KnownKeys(const json& object, const Descriptor* d) {
  int known = 0;
  for (auto it = object.begin(); it != object.end(); ++it) known += ReadsJsonKey(d, it.key());
  return known;
}

// How well `shape` fits `j`: -1 when it cannot take it, else a score (higher fits better).
int Score(const ReplyShape& shape, const json& j, const Descriptor* reply_type) {
  if (!shape.reply_fields.empty()) {
    int present = 0;
    for (const auto& [path, field] : shape.reply_fields) present += At(j, path) != nullptr;
    return present == 0 ? -1 : 1000 + present;  // named paths are the most specific evidence
  }
  const FieldDescriptor* f = shape.response_field;
  if (j.is_array()) return f != nullptr && f->is_repeated() ? 1000 : -1;
  if (!j.is_object()) return -1;
  if (f == nullptr) return KnownKeys(j, reply_type);
  if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) return -1;
  return KnownKeys(j, f->message_type());
}

std::string ShapeSample(const json& j) {
  if (j.is_array()) return absl::StrCat("array of ", j.size());
  if (!j.is_object()) return j.type_name();
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  return absl::StrCat("{", absl::StrJoin(keys, ","), "}");
}

}  // namespace

absl::Status DecodeReplyJson(const Route& route, const json& j, google::protobuf::Message* reply,
                             DriftReport* drift) {
  DecodeOptions options{.tolerant = true, .drift = drift, .rpc = route.rpc};
  const Descriptor* reply_type = reply->GetDescriptor();
  const ReplyShape* best = nullptr;
  int best_score = -1;
  for (const ReplyShape& shape : route.reply_shapes) {
    const int score = Score(shape, j, reply_type);
    if (score > best_score) {
      best = &shape;
      best_score = score;
    }
  }
  if (best == nullptr && j.is_array()) {
    // A bare list nobody declared: the reply's only repeated message field takes it.
    const FieldDescriptor* list = nullptr;
    for (int i = 0; i < reply_type->field_count(); ++i) {
      const FieldDescriptor* f = reply_type->field(i);
      if (f->is_repeated() && !f->is_map()) {
        if (list != nullptr) {
          list = nullptr;
          break;
        }
        list = f;
      }
    }
    if (list != nullptr) {
      if (drift != nullptr) drift->Record(route.rpc, "(reply)", DriftKind::kEnvelope, ShapeSample(j));
      return DecodeField(j, reply, list, list->json_name(), options);
    }
  }
  if (best == nullptr) {
    if (drift != nullptr) drift->Record(route.rpc, "(reply)", DriftKind::kEnvelope, ShapeSample(j));
    if (j.is_object() && route.reply_shapes.empty()) return DecodeMessage(j, reply, options);
    return GatewayError(
        absl::StatusCode::kInternal,
        absl::StrCat("upstream reply does not match the API: the reply of ", route.rpc,
                     " is ", ShapeSample(j)),
        {.reason = "UPSTREAM_RESPONSE_MISMATCH", .metadata = {{"field", "(reply)"}}});
  }
  if (best != &route.reply_shapes.front() && drift != nullptr) {
    // The reply came in another dialect's shape than the one spoken.
    drift->Record(route.rpc, "(reply)", DriftKind::kEnvelope,
                  absl::StrCat(best->dialect, ": ", ShapeSample(j)));
  }
  if (!best->reply_fields.empty()) {
    for (const auto& [path, field] : best->reply_fields) {
      const json* value = At(j, path);
      if (value == nullptr) continue;
      if (absl::Status s = DecodeField(*value, reply, field, absl::StrJoin(path, "."), options);
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }
  if (best->response_field != nullptr) {
    return DecodeField(j, reply, best->response_field, best->response_field->json_name(), options);
  }
  return DecodeMessage(j, reply, options);
}

}  // namespace gateway::upstream

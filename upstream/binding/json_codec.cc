#include "upstream/binding/json_codec.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gateway/v1/annotations.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/struct.pb.h"
#include "upstream/binding/drift_report.h"
#include "upstream/errors.h"

namespace gateway::upstream {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using nlohmann::json;

bool IsWellKnown(const Descriptor* d, absl::string_view name) {
  return d->full_name() == name;
}

// ---- google.protobuf.Struct / Value / ListValue <-> JSON ----

json ValueToJson(const google::protobuf::Value& value);

json StructToJson(const google::protobuf::Struct& s) {
  json out = json::object();
  for (const auto& [key, value] : s.fields()) out[key] = ValueToJson(value);
  return out;
}

json ValueToJson(const google::protobuf::Value& value) {
  switch (value.kind_case()) {
    case google::protobuf::Value::kNullValue:
    case google::protobuf::Value::KIND_NOT_SET:
      return nullptr;
    case google::protobuf::Value::kNumberValue: {
      const double d = value.number_value();
      // Whole numbers go out as integers, as an upstream would have sent them.
      if (std::trunc(d) == d && std::abs(d) < 9.007199254740992e15) {
        return static_cast<int64_t>(d);
      }
      return d;
    }
    case google::protobuf::Value::kStringValue:
      return value.string_value();
    case google::protobuf::Value::kBoolValue:
      return value.bool_value();
    case google::protobuf::Value::kStructValue:
      return StructToJson(value.struct_value());
    case google::protobuf::Value::kListValue: {
      json list = json::array();
      for (const auto& v : value.list_value().values()) list.push_back(ValueToJson(v));
      return list;
    }
  }
  return nullptr;
}

void JsonToValue(const json& j, google::protobuf::Value* out);

void JsonToStruct(const json& j, google::protobuf::Struct* out) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    JsonToValue(it.value(), &(*out->mutable_fields())[it.key()]);
  }
}

void JsonToValue(const json& j, google::protobuf::Value* out) {
  if (j.is_null()) {
    out->set_null_value(google::protobuf::NULL_VALUE);
  } else if (j.is_boolean()) {
    out->set_bool_value(j.get<bool>());
  } else if (j.is_number()) {
    out->set_number_value(j.get<double>());
  } else if (j.is_string()) {
    out->set_string_value(j.get<std::string>());
  } else if (j.is_array()) {
    auto* list = out->mutable_list_value();
    for (const auto& item : j) JsonToValue(item, list->add_values());
  } else {
    JsonToStruct(j, out->mutable_struct_value());
  }
}

// ---- encoding ----

json EncodeSingular(const Message& message, const FieldDescriptor* field, int index);

json EncodeMessageValue(const Message& sub) {
  const Descriptor* d = sub.GetDescriptor();
  if (IsWellKnown(d, "google.protobuf.Struct")) {
    return StructToJson(static_cast<const google::protobuf::Struct&>(sub));
  }
  if (IsWellKnown(d, "google.protobuf.Value")) {
    return ValueToJson(static_cast<const google::protobuf::Value&>(sub));
  }
  if (IsWellKnown(d, "google.protobuf.ListValue")) {
    google::protobuf::Value v;
    *v.mutable_list_value() = static_cast<const google::protobuf::ListValue&>(sub);
    return ValueToJson(v);
  }
  return EncodeMessage(sub);
}

json EncodeSingular(const Message& message, const FieldDescriptor* field, int index) {
  const Reflection* r = message.GetReflection();
  const bool rep = field->is_repeated();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return rep ? r->GetRepeatedInt32(message, field, index) : r->GetInt32(message, field);
    case FieldDescriptor::CPPTYPE_INT64:
      return rep ? r->GetRepeatedInt64(message, field, index) : r->GetInt64(message, field);
    case FieldDescriptor::CPPTYPE_UINT32:
      return rep ? r->GetRepeatedUInt32(message, field, index) : r->GetUInt32(message, field);
    case FieldDescriptor::CPPTYPE_UINT64:
      return rep ? r->GetRepeatedUInt64(message, field, index) : r->GetUInt64(message, field);
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return rep ? r->GetRepeatedDouble(message, field, index) : r->GetDouble(message, field);
    case FieldDescriptor::CPPTYPE_FLOAT:
      return rep ? r->GetRepeatedFloat(message, field, index) : r->GetFloat(message, field);
    case FieldDescriptor::CPPTYPE_BOOL:
      return rep ? r->GetRepeatedBool(message, field, index) : r->GetBool(message, field);
    case FieldDescriptor::CPPTYPE_STRING:
      return rep ? r->GetRepeatedString(message, field, index) : r->GetString(message, field);
    case FieldDescriptor::CPPTYPE_ENUM:
      return EnumRestValue(rep ? r->GetRepeatedEnum(message, field, index)
                               : r->GetEnum(message, field));
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return EncodeMessageValue(rep ? r->GetRepeatedMessage(message, field, index)
                                    : r->GetMessage(message, field));
  }
  return nullptr;
}

bool IsDefaultScalar(const json& j) {
  if (j.is_string()) return j.get_ref<const std::string&>().empty();
  if (j.is_boolean()) return !j.get<bool>();
  if (j.is_number_integer()) return j.get<int64_t>() == 0;
  if (j.is_number_unsigned()) return j.get<uint64_t>() == 0;
  if (j.is_number_float()) return j.get<double>() == 0;
  return false;
}

// ---- decoding ----

const DecodeOptions& StrictOptions() {
  static const DecodeOptions* const kStrict = new DecodeOptions();
  return *kStrict;
}

// Where a value sits in the reply ("items[2].firstName"), as links from the value up to the root
// on the decoder's stack. Only an error or a drift record spells it out, so decoding a reply that
// fits formats no path at all.
struct JsonPath {
  const JsonPath* parent = nullptr;
  absl::string_view key;  // an object member's key, or the root's text
  int64_t index = -1;     // >= 0: an array element
  JsonPath Member(absl::string_view k) const { return {this, k, -1}; }
  JsonPath Element(int64_t i) const { return {this, {}, i}; }
  std::string ToString() const {
    std::vector<const JsonPath*> chain;
    for (const JsonPath* p = this; p != nullptr; p = p->parent) chain.push_back(p);
    std::string out;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      const JsonPath& p = **it;
      if (p.parent == nullptr) {
        out = std::string(p.key);
      } else if (p.index >= 0) {
        absl::StrAppend(&out, "[", p.index, "]");
      } else {
        // A member's key follows a dot, even an empty key ("a." as before), except at the root.
        absl::StrAppend(&out, out.empty() ? "" : ".", p.key);
      }
    }
    return out;
  }
};

// "items[3].tags[0]" -> "items[].tags[]": drift is counted per field, not per element.
std::string FoldIndices(absl::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (size_t i = 0; i < path.size(); ++i) {
    out.push_back(path[i]);
    if (path[i] == '[') {
      while (i + 1 < path.size() && absl::ascii_isdigit(path[i + 1])) ++i;
    }
  }
  return out;
}

std::string Sample(const json& j) {
  if (j.is_string()) {
    return TruncateSample(j.get_ref<const std::string&>(), DriftReport::kMaxSampleChars);
  }
  return TruncateSample(j.dump(-1, ' ', false, json::error_handler_t::replace),
                        DriftReport::kMaxSampleChars);
}

void RecordDrift(const DecodeOptions& opts, const JsonPath& at, DriftKind kind, const json& j) {
  if (opts.drift == nullptr) return;
  const std::string path = at.ToString();
  opts.drift->Record(opts.rpc, FoldIndices(path.empty() ? "(reply)" : path), kind, Sample(j));
}

absl::Status Mismatch(const JsonPath& at, absl::string_view expected, const json& got) {
  const std::string path = at.ToString();
  return GatewayError(
      absl::StatusCode::kInternal,
      absl::StrCat("upstream reply does not match the API: field '", path, "' expects ", expected,
                   ", got ", got.type_name()),
      {.reason = "UPSTREAM_RESPONSE_MISMATCH", .metadata = {{"field", std::string(path)}}});
}

// Whether a mismatch error came from Mismatch() and may be tolerated. A number where an integer
// field cannot hold it (out of range, fractional) is never tolerated: skipping it would hide a
// corrupt value (an id of 0), so it stays UPSTREAM_RESPONSE_MISMATCH naming the field.
bool IsMismatch(const absl::Status& s) {
  return !s.ok() && s.code() == absl::StatusCode::kInternal &&
         absl::StartsWith(s.message(), "upstream reply does not match the API") &&
         !absl::StrContains(s.message(), "expects an integer in range");
}

template <typename Int>
absl::StatusOr<Int> JsonToInt(const json& j, const JsonPath& path) {
  if (j.is_number_integer() || j.is_number_unsigned()) {
    if (j.is_number_unsigned()) {
      const uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<Int>::max())) {
        return Mismatch(path, "an integer in range", j);
      }
      return static_cast<Int>(u);
    }
    const int64_t v = j.get<int64_t>();
    if (v < static_cast<int64_t>(std::numeric_limits<Int>::min()) ||
        (v > 0 && static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<Int>::max()))) {
      return Mismatch(path, "an integer in range", j);
    }
    return static_cast<Int>(v);
  }
  if (j.is_number_float()) {
    const double d = j.get<double>();
    // In range means [min, 2^digits): max itself is not a double (INT64_MAX rounds up to 2^63),
    // so `d <= max` let 9.223372036854775807e18 through to an undefined cast.
    const double upper = std::ldexp(1.0, std::numeric_limits<Int>::digits);
    if (std::trunc(d) == d && d >= static_cast<double>(std::numeric_limits<Int>::min()) &&
        d < upper) {
      return static_cast<Int>(d);
    }
    return Mismatch(path, "an integer in range", j);
  }
  if (j.is_string()) {
    // proto3 JSON writes 64-bit integers as strings; accept them.
    Int v;
    if (absl::SimpleAtoi(j.get_ref<const std::string&>(), &v)) return v;
    return Mismatch(path, "an integer", j);
  }
  return Mismatch(path, "an integer", j);
}

absl::StatusOr<double> JsonToDouble(const json& j, const JsonPath& path) {
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) {
    double d;
    if (absl::SimpleAtod(j.get_ref<const std::string&>(), &d)) return d;
  }
  return Mismatch(path, "a number", j);
}

// The enum value `j` names, or nullptr when no value declares it (the upstream added one).
const EnumValueDescriptor* EnumFromJson(const google::protobuf::EnumDescriptor* e, const json& j) {
  if (j.is_number_integer()) {
    // Values with `gateway.v1.rest_number` are matched by that code, not by their proto number.
    bool has_codes = false;
    for (int i = 1; i < e->value_count(); ++i) {
      const auto& options = e->value(i)->options();
      if (!options.HasExtension(gateway::v1::rest_number)) continue;
      has_codes = true;
      if (options.GetExtension(gateway::v1::rest_number) == j.get<int64_t>()) return e->value(i);
    }
    if (has_codes) return nullptr;
    return e->FindValueByNumber(j.get<int>());
  }
  if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    for (int i = 1; i < e->value_count(); ++i) {
      if (EnumRestValue(e->value(i)) == s || e->value(i)->name() == s) return e->value(i);
    }
  }
  return nullptr;
}

// Whether `j` has a JSON type `field` can take (null fits everything: it means unset).
bool Fits(const json& j, const FieldDescriptor* field) {
  if (j.is_null()) return true;
  if (field->is_map()) return j.is_object();
  if (field->is_repeated() && j.is_array()) return true;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      return j.is_number_integer() || j.is_number_unsigned() ||
             (j.is_number_float() && std::trunc(j.get<double>()) == j.get<double>()) ||
             (j.is_string() && !j.get_ref<const std::string&>().empty() &&
              (absl::ascii_isdigit(j.get_ref<const std::string&>()[0]) ||
               j.get_ref<const std::string&>()[0] == '-'));
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      return j.is_number();
    case FieldDescriptor::CPPTYPE_BOOL:
      return j.is_boolean();
    case FieldDescriptor::CPPTYPE_STRING:
      return j.is_string();
    case FieldDescriptor::CPPTYPE_ENUM:
      return j.is_string() || j.is_number_integer();
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      const std::string& name = field->message_type()->full_name();
      if (name == "google.protobuf.Value") return true;
      if (name == "google.protobuf.ListValue") return j.is_array();
      return j.is_object();
    }
  }
  return false;
}

absl::Status DecodeFieldImpl(const json& j, Message* message, const FieldDescriptor* field,
                             const JsonPath& path, const DecodeOptions& opts);
absl::Status DecodeMessageImpl(const json& j, Message* message, const JsonPath& path,
                               const DecodeOptions& opts);

absl::Status DecodeOne(const json& j, Message* message, const FieldDescriptor* field,
                       const JsonPath& path, const DecodeOptions& opts) {
  const Reflection* r = message->GetReflection();
  const bool rep = field->is_repeated();
  switch (field->cpp_type()) {
#define GATEWAY_DECODE_INT(CPPTYPE, Type, Setter)                             \
  case FieldDescriptor::CPPTYPE: {                                            \
    auto v = JsonToInt<Type>(j, path);                                        \
    if (!v.ok()) return v.status();                                           \
    rep ? r->Add##Setter(message, field, *v) : r->Set##Setter(message, field, *v); \
    return absl::OkStatus();                                                  \
  }
    GATEWAY_DECODE_INT(CPPTYPE_INT32, int32_t, Int32)
    GATEWAY_DECODE_INT(CPPTYPE_INT64, int64_t, Int64)
    GATEWAY_DECODE_INT(CPPTYPE_UINT32, uint32_t, UInt32)
    GATEWAY_DECODE_INT(CPPTYPE_UINT64, uint64_t, UInt64)
#undef GATEWAY_DECODE_INT
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      auto v = JsonToDouble(j, path);
      if (!v.ok()) return v.status();
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
        rep ? r->AddDouble(message, field, *v) : r->SetDouble(message, field, *v);
      } else {
        rep ? r->AddFloat(message, field, static_cast<float>(*v))
            : r->SetFloat(message, field, static_cast<float>(*v));
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      if (!j.is_boolean()) return Mismatch(path, "a boolean", j);
      rep ? r->AddBool(message, field, j.get<bool>()) : r->SetBool(message, field, j.get<bool>());
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      if (!j.is_string()) return Mismatch(path, "a string", j);
      rep ? r->AddString(message, field, j.get<std::string>())
          : r->SetString(message, field, j.get<std::string>());
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      if (!j.is_string() && !j.is_number_integer()) return Mismatch(path, "a string", j);
      const EnumValueDescriptor* v = EnumFromJson(field->enum_type(), j);
      if (v == nullptr) {
        // A value the upstream added later: unspecified in the enum, counted as drift, and
        // kept verbatim in the `<field>_raw` companion when the message has one.
        RecordDrift(opts, path, DriftKind::kUnknownEnum, j);
        v = field->enum_type()->value(0);
      }
      rep ? r->AddEnum(message, field, v) : r->SetEnum(message, field, v);
      if (!rep) {
        const FieldDescriptor* raw =
            message->GetDescriptor()->FindFieldByName(absl::StrCat(field->name(), "_raw"));
        if (raw != nullptr && !raw->is_repeated() &&
            raw->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
          r->SetString(message, raw, j.is_string() ? j.get<std::string>() : j.dump());
        }
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      Message* sub = rep ? r->AddMessage(message, field) : r->MutableMessage(message, field);
      const Descriptor* d = sub->GetDescriptor();
      if (IsWellKnown(d, "google.protobuf.Value")) {
        JsonToValue(j, static_cast<google::protobuf::Value*>(sub));
        return absl::OkStatus();
      }
      if (IsWellKnown(d, "google.protobuf.ListValue")) {
        if (!j.is_array()) return Mismatch(path, "an array", j);
        google::protobuf::Value v;
        JsonToValue(j, &v);
        *static_cast<google::protobuf::ListValue*>(sub) = v.list_value();
        return absl::OkStatus();
      }
      if (!j.is_object()) return Mismatch(path, "an object", j);
      if (IsWellKnown(d, "google.protobuf.Struct")) {
        JsonToStruct(j, static_cast<google::protobuf::Struct*>(sub));
        return absl::OkStatus();
      }
      return DecodeMessageImpl(j, sub, path, opts);
    }
  }
  return absl::OkStatus();
}

// In tolerant mode a mismatch is recorded and the value skipped; otherwise it is the error.
absl::Status Tolerate(absl::Status s, const json& j, const JsonPath& path,
                      const DecodeOptions& opts) {
  if (!opts.tolerant || !IsMismatch(s)) return s;
  RecordDrift(opts, path, DriftKind::kTypeMismatch, j);
  return absl::OkStatus();
}

absl::Status DecodeFieldImpl(const json& j, Message* message, const FieldDescriptor* field,
                             const JsonPath& path, const DecodeOptions& opts) {
  if (j.is_null()) return absl::OkStatus();
  if (field->is_map()) {
    if (!j.is_object()) return Tolerate(Mismatch(path, "an object", j), j, path, opts);
    const Reflection* r = message->GetReflection();
    for (auto it = j.begin(); it != j.end(); ++it) {
      Message* entry = r->AddMessage(message, field);
      const FieldDescriptor* key = entry->GetDescriptor()->map_key();
      const FieldDescriptor* val = entry->GetDescriptor()->map_value();
      const JsonPath sub_path = path.Member(it.key());
      json key_json = it.key();
      if (key->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
        // Integer-keyed maps arrive with string keys in JSON.
        if (absl::Status s = DecodeOne(key_json, entry, key, sub_path, opts); !s.ok()) {
          r->RemoveLast(message, field);
          if (absl::Status t = Tolerate(s, key_json, sub_path, opts); !t.ok()) return t;
          continue;
        }
      } else {
        entry->GetReflection()->SetString(entry, key, it.key());
      }
      if (it.value().is_null()) continue;
      if (absl::Status s = DecodeOne(it.value(), entry, val, sub_path, opts); !s.ok()) {
        if (absl::Status t = Tolerate(s, it.value(), sub_path, opts); !t.ok()) return t;
      }
    }
    return absl::OkStatus();
  }
  if (field->is_repeated()) {
    if (!j.is_array()) {
      // One object where a list of messages was expected ({payload: contact} for a list of
      // contacts): a known dialect shape, decoded as a list of one.
      if (j.is_object() && field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
          !IsWellKnown(field->message_type(), "google.protobuf.Value")) {
        absl::Status s = DecodeOne(j, message, field, path, opts);
        return Tolerate(std::move(s), j, path, opts);
      }
      return Tolerate(Mismatch(path, "an array", j), j, path, opts);
    }
    for (size_t i = 0; i < j.size(); ++i) {
      if (j[i].is_null()) continue;
      const JsonPath item_path = path.Element(static_cast<int64_t>(i));
      if (absl::Status s = DecodeOne(j[i], message, field, item_path, opts); !s.ok()) {
        if (absl::Status t = Tolerate(s, j[i], item_path, opts); !t.ok()) return t;
        // A scalar that did not decode added nothing; a message added a partial element,
        // which stays (its other fields decoded).
      }
    }
    return absl::OkStatus();
  }
  return Tolerate(DecodeOne(j, message, field, path, opts), j, path, opts);
}

// The fields that read JSON key `key`: the one named so (JSON or proto name) first, then those
// listing it in `gateway.v1.field.json_aliases`.
std::vector<const FieldDescriptor*> FieldsForKey(const Descriptor* d, const std::string& key) {
  std::vector<const FieldDescriptor*> out;
  const FieldDescriptor* named = d->FindFieldByCamelcaseName(key);
  if (named == nullptr || named->json_name() != key) named = d->FindFieldByName(key);
  if (named == nullptr) {
    for (int i = 0; i < d->field_count(); ++i) {
      if (d->field(i)->json_name() == key) named = d->field(i);
    }
  }
  if (named != nullptr) out.push_back(named);
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f == named || !f->options().HasExtension(gateway::v1::field)) continue;
    for (const std::string& alias : f->options().GetExtension(gateway::v1::field).json_aliases()) {
      if (alias == key) {
        out.push_back(f);
        break;
      }
    }
  }
  return out;
}

// FieldsForKey of every key a message type can read (its fields' JSON and proto names and
// their aliases; any other key reads no field), computed once per type. Decoding asks it for
// every key of every reply, and the answer depends on the descriptor alone (the field
// options it reads are part of it).
using KeyTable = absl::flat_hash_map<std::string, std::vector<const FieldDescriptor*>>;

KeyTable BuildKeyTable(const Descriptor* d) {
  KeyTable table;
  auto add = [&](const std::string& key) {
    if (!table.contains(key)) table.emplace(key, FieldsForKey(d, key));
  };
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    add(f->json_name());
    add(f->name());
    if (f->options().HasExtension(gateway::v1::field)) {
      for (const std::string& alias : f->options().GetExtension(gateway::v1::field).json_aliases()) {
        add(alias);
      }
    }
  }
  return table;
}

// The table of `d`, or null for a type outside the generated pool (a dynamic pool may be
// freed, and its descriptors' addresses reused: those are looked up each time).
const KeyTable* KeyTableFor(const Descriptor* d) {
  if (d->file()->pool() != google::protobuf::DescriptorPool::generated_pool()) return nullptr;
  static absl::Mutex mu(absl::kConstInit);
  static auto* tables = new absl::flat_hash_map<const Descriptor*, std::unique_ptr<KeyTable>>();
  {
    absl::ReaderMutexLock lock(&mu);
    auto it = tables->find(d);
    if (it != tables->end()) return it->second.get();
  }
  auto table = std::make_unique<KeyTable>(BuildKeyTable(d));  // outside the lock
  absl::MutexLock lock(&mu);
  return tables->emplace(d, std::move(table)).first->second.get();
}

absl::Status DecodeMessageImpl(const json& j, Message* message, const JsonPath& path,
                               const DecodeOptions& opts) {
  if (!j.is_object()) {
    return Mismatch(path.parent == nullptr && path.key.empty() ? JsonPath{nullptr, "(reply)"} : path,
                    "an object", j);
  }
  const Descriptor* d = message->GetDescriptor();
  static const std::vector<const FieldDescriptor*> kNoFields;
  const KeyTable* table = KeyTableFor(d);
  std::vector<const FieldDescriptor*> looked_up;  // without a table
  for (auto it = j.begin(); it != j.end(); ++it) {
    const JsonPath sub_path = path.Member(it.key());
    const std::vector<const FieldDescriptor*>* found = &kNoFields;
    if (table != nullptr) {
      if (auto row = table->find(it.key()); row != table->end()) found = &row->second;
    } else {
      looked_up = FieldsForKey(d, it.key());
      found = &looked_up;
    }
    const std::vector<const FieldDescriptor*>& fields = *found;
    if (fields.empty()) {
      // The upstream added a field: ignore it, but count it.
      RecordDrift(opts, sub_path, DriftKind::kUnknownField, it.value());
      continue;
    }
    // Several fields read one key in different shapes (assignee as a string or as a user):
    // the first whose type fits the value takes it.
    const FieldDescriptor* field = fields.front();
    for (const FieldDescriptor* f : fields) {
      if (Fits(it.value(), f)) {
        field = f;
        break;
      }
    }
    if (absl::Status s = DecodeFieldImpl(it.value(), message, field, sub_path, opts); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string EnumRestValue(const EnumValueDescriptor* value) {
  const auto& options = value->options();
  if (options.HasExtension(gateway::v1::rest_value)) {
    return options.GetExtension(gateway::v1::rest_value);
  }
  // COLOR_DARK_RED of enum Color -> "dark_red": drop the UPPER_SNAKE enum-name prefix.
  std::string prefix;
  for (char c : value->type()->name()) {
    if (absl::ascii_isupper(c) && !prefix.empty()) prefix.push_back('_');
    prefix.push_back(absl::ascii_toupper(c));
  }
  prefix.push_back('_');
  absl::string_view name = value->name();
  if (absl::StartsWith(name, prefix)) name.remove_prefix(prefix.size());
  return absl::AsciiStrToLower(name);
}

EncodedField EncodeField(const Message& message, const FieldDescriptor* field) {
  const Reflection* r = message.GetReflection();
  EncodedField out;
  if (field->is_map()) {
    // Maps are repeated entry messages with key = 1, value = 2.
    const int n = r->FieldSize(message, field);
    if (n == 0) return out;
    json object = json::object();
    for (int i = 0; i < n; ++i) {
      const Message& entry = r->GetRepeatedMessage(message, field, i);
      const FieldDescriptor* key = entry.GetDescriptor()->map_key();
      const FieldDescriptor* val = entry.GetDescriptor()->map_value();
      json k = EncodeSingular(entry, key, 0);
      object[k.is_string() ? k.get<std::string>() : k.dump()] = EncodeSingular(entry, val, 0);
    }
    out.present = true;
    out.value = std::move(object);
    return out;
  }
  if (field->is_repeated()) {
    const int n = r->FieldSize(message, field);
    if (n == 0) return out;
    json array = json::array();
    for (int i = 0; i < n; ++i) array.push_back(EncodeSingular(message, field, i));
    out.present = true;
    out.value = std::move(array);
    return out;
  }
  if (field->has_presence()) {
    if (!r->HasField(message, field)) {
      if (field->options().GetExtension(gateway::v1::field).null_when_unset()) {
        out.present = true;
        out.value = nullptr;
      }
      return out;
    }
    out.present = true;
    out.value = EncodeSingular(message, field, 0);
    return out;
  }
  json value = EncodeSingular(message, field, 0);
  if (field->cpp_type() == FieldDescriptor::CPPTYPE_ENUM) {
    if (r->GetEnumValue(message, field) == 0) return out;
  } else if (IsDefaultScalar(value)) {
    return out;
  }
  out.present = true;
  out.value = std::move(value);
  return out;
}

json EncodeMessage(const Message& message,
                   const absl::flat_hash_set<const FieldDescriptor*>& skip) {
  json out = json::object();
  const Descriptor* d = message.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* field = d->field(i);
    if (skip.contains(field)) continue;
    EncodedField encoded = EncodeField(message, field);
    if (encoded.present) out[field->json_name()] = std::move(encoded.value);
  }
  return out;
}

bool ReadsJsonKey(const Descriptor* d, const std::string& key) {
  if (const KeyTable* table = KeyTableFor(d); table != nullptr) return table->contains(key);
  return !FieldsForKey(d, key).empty();
}

absl::Status DecodeField(const json& j, Message* message, const FieldDescriptor* field,
                         absl::string_view path) {
  return DecodeFieldImpl(j, message, field, JsonPath{nullptr, path}, StrictOptions());
}

absl::Status DecodeField(const json& j, Message* message, const FieldDescriptor* field,
                         absl::string_view path, const DecodeOptions& options) {
  return DecodeFieldImpl(j, message, field, JsonPath{nullptr, path}, options);
}

absl::Status DecodeMessage(const json& j, Message* message, absl::string_view path) {
  return DecodeMessageImpl(j, message, JsonPath{nullptr, path}, StrictOptions());
}

absl::Status DecodeMessage(const json& j, Message* message, const DecodeOptions& options,
                           absl::string_view path) {
  return DecodeMessageImpl(j, message, JsonPath{nullptr, path}, options);
}

}  // namespace gateway::upstream

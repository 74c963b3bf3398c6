#include "upstream/binding/validation.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "upstream/errors.h"

namespace gateway::upstream {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

bool AllDigits(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(c)) return false;
  }
  return true;
}

// Deliberately simple: one '@', a non-empty local part, a dotted domain, no spaces or controls.
bool IsEmail(absl::string_view s) {
  const size_t at = s.find('@');
  if (at == absl::string_view::npos || at == 0 || s.find('@', at + 1) != absl::string_view::npos) {
    return false;
  }
  const absl::string_view domain = s.substr(at + 1);
  if (domain.size() < 3 || domain.find('.') == absl::string_view::npos || domain.front() == '.' ||
      domain.back() == '.') {
    return false;
  }
  for (unsigned char c : s) {
    if (c <= ' ' || c == 0x7f) return false;
  }
  return s.size() <= 254;
}

bool IsE164Digits(absl::string_view s) { return AllDigits(s) && s.size() >= 8 && s.size() <= 15 && s[0] != '0'; }

bool IsUuid(absl::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !absl::ascii_isxdigit(s[i])) return false;
  }
  return true;
}

size_t Utf8Length(absl::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string Join(absl::string_view prefix, absl::string_view name) {
  return prefix.empty() ? std::string(name) : absl::StrCat(prefix, ".", name);
}

absl::Status ValidateMessage(const Message& m, absl::string_view prefix);

absl::Status CheckString(const gateway::v1::FieldRules& rules, absl::string_view path,
                         absl::string_view value) {
  if (rules.max_length() > 0 && Utf8Length(value) > static_cast<size_t>(rules.max_length())) {
    return InvalidField(path, absl::StrCat("must be at most ", rules.max_length(),
                                           " characters (got ", Utf8Length(value), ")"));
  }
  if (!value.empty()) {
    if (std::string problem = CheckFormat(rules.format(), value); !problem.empty()) {
      return InvalidField(path, problem);
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateField(const Message& m, const FieldDescriptor* f, absl::string_view prefix) {
  const Reflection* r = m.GetReflection();
  const gateway::v1::FieldRules& rules = f->options().GetExtension(gateway::v1::field);
  const std::string path = Join(prefix, f->name());

  if (f->is_repeated()) {
    const int n = r->FieldSize(m, f);
    if (rules.required() && n == 0) return InvalidField(path, "is required");
    if (rules.min_items() > 0 && n < rules.min_items()) {
      return InvalidField(path, absl::StrCat("must have at least ", rules.min_items(), " item",
                                             rules.min_items() == 1 ? "" : "s"));
    }
    if (rules.max_items() > 0 && n > rules.max_items()) {
      return InvalidField(path, absl::StrCat("must have at most ", rules.max_items(),
                                             " items (got ", n, ")"));
    }
    if (f->is_map()) return absl::OkStatus();
    for (int i = 0; i < n; ++i) {
      const std::string item = absl::StrCat(path, "[", i, "]");
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_STRING: {
          const std::string v = r->GetRepeatedString(m, f, i);
          if (v.empty() && (rules.max_length() > 0 || rules.format() != 0)) {
            return InvalidField(item, "must not be empty");
          }
          if (absl::Status s = CheckString(rules, item, v); !s.ok()) return s;
          break;
        }
        case FieldDescriptor::CPPTYPE_ENUM:
          if (f->enum_type()->FindValueByNumber(r->GetRepeatedEnumValue(m, f, i)) == nullptr ||
              r->GetRepeatedEnumValue(m, f, i) == 0) {
            return InvalidField(item, "must be a known value");
          }
          break;
        case FieldDescriptor::CPPTYPE_MESSAGE:
          if (absl::Status s = ValidateMessage(r->GetRepeatedMessage(m, f, i), item); !s.ok()) {
            return s;
          }
          break;
        default:
          break;
      }
    }
    return absl::OkStatus();
  }

  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING: {
      const std::string v = r->GetString(m, f);
      if (rules.required() && v.empty()) return InvalidField(path, "is required");
      return CheckString(rules, path, v);
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const int v = r->GetEnumValue(m, f);
      if (f->enum_type()->FindValueByNumber(v) == nullptr) {
        return InvalidField(path, absl::StrCat("unknown value ", v));
      }
      if (rules.required() && v == 0) {
        return InvalidField(path, absl::StrCat("is required (", f->enum_type()->value(0)->name(),
                                               " is not a valid choice)"));
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      if (!r->HasField(m, f)) {
        return rules.required() ? InvalidField(path, "is required") : absl::OkStatus();
      }
      const std::string& type = f->message_type()->full_name();
      if (absl::StartsWith(type, "google.protobuf.")) return absl::OkStatus();
      return ValidateMessage(r->GetMessage(m, f), path);
    }
    case FieldDescriptor::CPPTYPE_BOOL:
      // `required` on an `optional bool` means "must be set" (false is a valid choice); a plain
      // bool cannot tell false from unset, so it is never checked.
      if (rules.required() && f->has_presence() && !r->HasField(m, f)) {
        return InvalidField(path, "is required (true or false)");
      }
      return absl::OkStatus();
    default: {
      // Integers: read as int64 / uint64 through their reflection getters.
      int64_t v = 0;
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32: v = r->GetInt32(m, f); break;
        case FieldDescriptor::CPPTYPE_INT64: v = r->GetInt64(m, f); break;
        case FieldDescriptor::CPPTYPE_UINT32: v = r->GetUInt32(m, f); break;
        case FieldDescriptor::CPPTYPE_UINT64: v = static_cast<int64_t>(r->GetUInt64(m, f)); break;
        default: return absl::OkStatus();  // floating point: no rules yet
      }
      const bool has = f->has_presence() ? r->HasField(m, f) : v != 0;
      if (rules.required() && !has) return InvalidField(path, "is required");
      if (f->name() == "page_size" && v < 0) return InvalidField(path, "must not be negative");
      if (rules.required() && v < 0) return InvalidField(path, "must be positive");
      if (rules.max_value() > 0 && v > rules.max_value()) {
        return InvalidField(path, absl::StrCat("must be at most ", rules.max_value(), " (got ", v, ")"));
      }
      return absl::OkStatus();
    }
  }
}

absl::Status ValidateMessage(const Message& m, absl::string_view prefix) {
  const Descriptor* d = m.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    if (absl::Status s = ValidateField(m, d->field(i), prefix); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

std::string CheckFormat(gateway::v1::Format format, absl::string_view value) {
  switch (format) {
    case gateway::v1::FORMAT_CONTACT_IDENTIFIER:
      if (absl::StartsWith(value, "id:") && AllDigits(value.substr(3)) && value.size() <= 22) return "";
      if (absl::StartsWith(value, "email:") && IsEmail(value.substr(6))) return "";
      if (absl::StartsWith(value, "phone:+") && IsE164Digits(value.substr(7))) return "";
      return "must be id:<digits>, email:<address> or phone:+<digits>";
    case gateway::v1::FORMAT_EMAIL:
      return IsEmail(value) ? "" : "must be an e-mail address";
    case gateway::v1::FORMAT_PHONE_E164:
      return absl::StartsWith(value, "+") && IsE164Digits(value.substr(1))
                 ? ""
                 : "must be an E.164 phone number with a leading + (e.g. +60123456789)";
    case gateway::v1::FORMAT_PHONE_E164_NO_PLUS:
      return IsE164Digits(value) ? ""
                                 : "must be an E.164 phone number without + (8 to 15 digits, e.g. "
                                   "60123456789)";
    case gateway::v1::FORMAT_UUID:
      return IsUuid(value) ? "" : "must be a UUID such as 123e4567-e89b-12d3-a456-426614174000";
    case gateway::v1::FORMAT_URL:
      return (absl::StartsWith(value, "http://") || absl::StartsWith(value, "https://")) &&
                     value.find(' ') == absl::string_view::npos
                 ? ""
                 : "must be an http:// or https:// URL";
    default:
      return "";
  }
}

absl::Status ValidateRequest(const Message& request) { return ValidateMessage(request, ""); }

}  // namespace gateway::upstream

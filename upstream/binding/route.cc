#include "upstream/binding/route.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "upstream/errors.h"
#include "upstream/binding/json_codec.h"
#include "upstream/binding/pagination.h"

namespace gateway::upstream {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

absl::Status RouteError(const google::protobuf::MethodDescriptor* method,
                        absl::string_view problem) {
  return GatewayError(absl::StatusCode::kInvalidArgument,
                      absl::StrCat("route of ", method->full_name(), ": ", problem),
                      {.reason = "INVALID_ROUTE", .metadata = {{"rpc", method->full_name()}}});
}

bool IsPathScalar(const FieldDescriptor* f) {
  return !f->is_repeated() && f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE;
}

// The text of a scalar field as it appears in a path or query string.
std::string ScalarText(const Message& m, const FieldDescriptor* f) {
  EncodedField e = EncodeField(m, f);
  if (!e.present || e.value.is_null()) return "";
  if (e.value.is_string()) return e.value.get<std::string>();
  return e.value.dump();
}

std::string Encode(absl::string_view value, bool keep_colon_at) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (unsigned char c : value) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
        (keep_colon_at && (c == ':' || c == '@'))) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// Resolves "a.b" against the request and returns the leaf's text, or "" when unset.
std::string FieldPathText(const Message& request,
                          const std::vector<const FieldDescriptor*>& field_path) {
  const Message* m = &request;
  for (size_t i = 0; i + 1 < field_path.size(); ++i) {
    if (!m->GetReflection()->HasField(*m, field_path[i])) return "";
    m = &m->GetReflection()->GetMessage(*m, field_path[i]);
  }
  return ScalarText(*m, field_path.back());
}

absl::StatusOr<std::vector<const FieldDescriptor*>> ResolveFieldPath(const Descriptor* d,
                                                                    absl::string_view dotted) {
  std::vector<const FieldDescriptor*> out;
  for (absl::string_view name : absl::StrSplit(dotted, '.')) {
    if (d == nullptr) return absl::NotFoundError("not a message");
    const FieldDescriptor* f = d->FindFieldByName(std::string(name));
    if (f == nullptr) return absl::NotFoundError(absl::StrCat("no field ", name));
    out.push_back(f);
    d = f->message_type();
  }
  return out;
}

// Compiles one tag template over `d`; `what` names the policy field for errors.
absl::StatusOr<TagTemplate> CompileTag(const google::protobuf::MethodDescriptor* method,
                                       const Descriptor* d, const std::string& text,
                                       absl::string_view what) {
  TagTemplate tag;
  tag.text = text;
  absl::string_view rest = text;
  while (!rest.empty()) {
    const size_t open = rest.find('{');
    if (open == absl::string_view::npos) {
      tag.parts.push_back({std::string(rest), "", {}});
      break;
    }
    if (open > 0) tag.parts.push_back({std::string(rest.substr(0, open)), "", {}});
    const size_t close = rest.find('}', open);
    if (close == absl::string_view::npos) {
      return RouteError(method, absl::StrCat(what, " template '", text, "': unclosed '{'"));
    }
    const std::string name(rest.substr(open + 1, close - open - 1));
    auto resolved = ResolveFieldPath(d, name);
    if (!resolved.ok() || !IsPathScalar(resolved->back())) {
      return RouteError(method, absl::StrCat(what, " template '", text, "': {", name,
                                             "} names no scalar field of ", d->full_name()));
    }
    tag.parts.push_back({"", name, *std::move(resolved)});
    rest.remove_prefix(close + 1);
  }
  return tag;
}

absl::StatusOr<ValueHook> ParseValueHook(absl::string_view name) {
  if (name == "strip_identifier_prefix") return ValueHook::kStripIdentifierPrefix;
  if (name == "id_prefix") return ValueHook::kIdPrefix;
  if (name == "email_prefix") return ValueHook::kEmailPrefix;
  return absl::NotFoundError(name);
}

nlohmann::json ApplyValueHook(ValueHook hook, nlohmann::json value) {
  switch (hook) {
    case ValueHook::kNone:
      return value;
    case ValueHook::kStripIdentifierPrefix: {
      if (!value.is_string()) return value;
      absl::string_view s = value.get_ref<const std::string&>();
      if (absl::ConsumePrefix(&s, "id:")) {
        int64_t id;
        if (absl::SimpleAtoi(s, &id)) return id;
        return std::string(s);
      }
      if (absl::ConsumePrefix(&s, "email:")) return std::string(s);
      return value;
    }
    case ValueHook::kIdPrefix:
      if (value.is_null()) return value;
      return absl::StrCat("id:", value.is_string() ? value.get<std::string>() : value.dump());
    case ValueHook::kEmailPrefix:
      if (!value.is_string()) return value;
      return absl::StrCat("email:", value.get<std::string>());
  }
  return value;
}

// The JSON of one request field as this route's dialect sends it.
EncodedField EncodeRequestField(const Route& route, const Message& request,
                                const FieldDescriptor* f) {
  EncodedField e = EncodeField(request, f);
  if (!e.present && route.send_empty.contains(f)) {
    e.present = true;
    if (f->is_repeated()) {
      e.value = nlohmann::json::array();
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      e.value = "";
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_BOOL) {
      e.value = false;
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      e.value = nlohmann::json::object();
    } else {
      e.value = 0;
    }
  }
  if (e.present) {
    if (auto it = route.value_hooks.find(f); it != route.value_hooks.end()) {
      e.value = ApplyValueHook(it->second, std::move(e.value));
    }
  }
  return e;
}

std::string WireName(const Route& route, const FieldDescriptor* f) {
  auto it = route.wire_names.find(f);
  return it == route.wire_names.end() ? f->json_name() : it->second;
}

// Sets `key` of `object` unless a non-null value is already there: several fields may be
// alternatives for one key (assignee by identifier, user id or e-mail); the first field set, in
// declaration order, wins, and an unset one (null) never hides a set one.
void PutAlternative(nlohmann::json& object, const std::string& key, nlohmann::json value) {
  auto it = object.find(key);
  if (it != object.end() && !it->is_null()) return;
  object[key] = std::move(value);
}

}  // namespace

std::string ExpandTag(const TagTemplate& tag, const Message& message) {
  std::string out;
  for (const PathPart& part : tag.parts) {
    if (part.field_path.empty()) {
      out.append(part.literal);
      continue;
    }
    std::string value = FieldPathText(message, part.field_path);
    if (value.empty()) return "";
    out.append(value);
  }
  return out;
}

absl::StatusOr<ReplyShape> CompileReplyShape(const google::protobuf::MethodDescriptor* method,
                                             const gateway::v1::Binding& binding,
                                             absl::string_view dialect) {
  ReplyShape shape;
  shape.dialect = std::string(dialect);
  const Descriptor* out = method->output_type();
  if (!binding.response_body().empty()) {
    shape.response_field = out->FindFieldByName(binding.response_body());
    if (shape.response_field == nullptr) {
      return RouteError(method, absl::StrCat("response_body field '", binding.response_body(),
                                             "' does not exist in ", out->full_name()));
    }
  }
  std::vector<std::pair<std::string, std::string>> sorted(binding.reply_fields().begin(),
                                                          binding.reply_fields().end());
  std::sort(sorted.begin(), sorted.end());
  for (const auto& [json_path, field_name] : sorted) {
    const FieldDescriptor* f = out->FindFieldByName(field_name);
    if (f == nullptr) {
      return RouteError(method, absl::StrCat("reply_fields names no field '", field_name,
                                             "' of ", out->full_name()));
    }
    std::vector<std::string> path = absl::StrSplit(json_path, '.');
    shape.reply_fields.emplace_back(std::move(path), f);
  }
  return shape;
}

std::string PercentEncodePathSegment(absl::string_view value) { return Encode(value, true); }
std::string PercentEncodeQuery(absl::string_view value) { return Encode(value, false); }

absl::StatusOr<Route> CompileRoute(const google::protobuf::MethodDescriptor* method,
                                   const gateway::v1::Binding& binding,
                                   const gateway::v1::Policy& policy,
                                   absl::string_view dialect) {
  Route route;
  route.rpc = absl::StrCat("/", method->service()->full_name(), "/", method->name());
  route.dialect = std::string(dialect);
  route.method = method;
  route.binding = binding;
  route.policy = policy;
  const std::string verb = absl::AsciiStrToUpper(binding.method());
  route.binding.set_method(verb);
  if (binding.upstream().empty()) return RouteError(method, "binding names no upstream");
  if (verb != "GET" && verb != "POST" && verb != "PUT" && verb != "PATCH" && verb != "DELETE") {
    return RouteError(method, absl::StrCat("unsupported HTTP method '", binding.method(), "'"));
  }
  if (binding.path().empty() || binding.path()[0] != '/') {
    return RouteError(method, "path must start with '/'");
  }
  if (method->client_streaming() || method->server_streaming()) {
    return RouteError(method, "streaming RPCs cannot be bound to REST calls");
  }
  const Descriptor* in = method->input_type();
  const Descriptor* out = method->output_type();

  // Path template: literals and {field} placeholders.
  absl::string_view rest = binding.path();
  while (!rest.empty()) {
    const size_t open = rest.find('{');
    if (open == absl::string_view::npos) {
      route.path.push_back({std::string(rest), "", {}});
      break;
    }
    if (open > 0) route.path.push_back({std::string(rest.substr(0, open)), "", {}});
    const size_t close = rest.find('}', open);
    if (close == absl::string_view::npos) return RouteError(method, "unclosed '{' in path");
    const std::string name(rest.substr(open + 1, close - open - 1));
    auto resolved = ResolveFieldPath(in, name);
    if (!resolved.ok()) {
      return RouteError(method, absl::StrCat("path placeholder {", name, "} names no field of ",
                                             in->full_name()));
    }
    if (!IsPathScalar(resolved->back())) {
      return RouteError(method, absl::StrCat("path placeholder {", name, "} is not a scalar"));
    }
    route.path_fields.insert(resolved->front());
    route.path.push_back({"", name, *std::move(resolved)});
    rest.remove_prefix(close + 1);
  }

  if (!binding.body().empty() && binding.body() != "*") {
    route.body_field = in->FindFieldByName(binding.body());
    if (route.body_field == nullptr) {
      return RouteError(method, absl::StrCat("body field '", binding.body(), "' does not exist"));
    }
  }
  auto shape = CompileReplyShape(method, binding, dialect);
  if (!shape.ok()) return shape.status();
  route.response_field = shape->response_field;
  route.reply_shapes.push_back(*std::move(shape));
  // Dialect data: request fields by name.
  auto request_field = [&](const std::string& name,
                           absl::string_view what) -> absl::StatusOr<const FieldDescriptor*> {
    const FieldDescriptor* f = in->FindFieldByName(name);
    if (f == nullptr) {
      return RouteError(method, absl::StrCat(what, " names no field '", name, "' of ",
                                             in->full_name()));
    }
    return f;
  };
  for (const std::string& name : binding.omit()) {
    auto f = request_field(name, "omit");
    if (!f.ok()) return f.status();
    route.omit.insert(*f);
  }
  for (const std::string& name : binding.send_empty()) {
    auto f = request_field(name, "send_empty");
    if (!f.ok()) return f.status();
    route.send_empty.insert(*f);
  }
  for (const auto& [name, key] : binding.wire_names()) {
    auto f = request_field(name, "wire_names");
    if (!f.ok()) return f.status();
    if (key.empty()) return RouteError(method, absl::StrCat("wire_names: empty key for ", name));
    route.wire_names[*f] = key;
  }
  for (const auto& [name, hook] : binding.value_hooks()) {
    auto f = request_field(name, "value_hooks");
    if (!f.ok()) return f.status();
    auto h = ParseValueHook(hook);
    if (!h.ok()) return RouteError(method, absl::StrCat("unknown value hook '", hook, "'"));
    route.value_hooks[*f] = *h;
  }
  if (binding.query_style() == "brackets") {
    route.query_brackets = true;
  } else if (!binding.query_style().empty() && binding.query_style() != "repeat") {
    return RouteError(method, absl::StrCat("unknown query_style '", binding.query_style(),
                                           "' (repeat or brackets)"));
  }
  route.page_size_field = in->FindFieldByName("page_size");
  route.page_token_field = in->FindFieldByName("page_token");
  route.next_page_token_field = out->FindFieldByName("next_page_token");
  route.request_id_field = in->FindFieldByName("request_id");
  if (!binding.pagination().empty()) {
    route.pagination = FindPagination(binding.pagination());
    if (route.pagination == nullptr) {
      return RouteError(method, absl::StrCat("unknown pagination hook '", binding.pagination(), "'"));
    }
    if (route.page_size_field == nullptr || route.page_token_field == nullptr ||
        route.next_page_token_field == nullptr) {
      return RouteError(method, "a paginated RPC needs page_size, page_token and next_page_token");
    }
  }
  route.read = verb == "GET" || policy.retry_safe();
  const struct {
    const google::protobuf::RepeatedPtrField<std::string>& texts;
    const Descriptor* over;
    std::vector<TagTemplate>* into;
    const char* what;
  } tag_sets[] = {{policy.cache_tags(), in, &route.cache_tags, "cache_tags"},
                  {policy.invalidates(), in, &route.invalidates, "invalidates"},
                  {policy.aliases(), out, &route.aliases, "aliases"}};
  for (const auto& set : tag_sets) {
    for (const std::string& text : set.texts) {
      auto tag = CompileTag(method, set.over, text, set.what);
      if (!tag.ok()) return tag.status();
      set.into->push_back(*std::move(tag));
    }
  }
  // Fields that become query parameters must be scalars (or repeated scalars).
  if (binding.body() != "*") {
    for (int i = 0; i < in->field_count(); ++i) {
      const FieldDescriptor* f = in->field(i);
      if (route.path_fields.contains(f) || f == route.body_field || f == route.page_size_field ||
          f == route.page_token_field || f == route.request_id_field || route.omit.contains(f)) {
        continue;
      }
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        return RouteError(method, absl::StrCat("field ", f->name(),
                                               " would be a query parameter but is a message"));
      }
    }
  }
  return route;
}

absl::StatusOr<UpstreamRequestParts> BuildUpstreamRequest(
    const Route& route, const Message& request, const PathDefaults& defaults,
    const std::vector<std::pair<std::string, std::string>>& extra_query) {
  UpstreamRequestParts parts;
  for (const PathPart& part : route.path) {
    if (part.field_path.empty()) {
      absl::StrAppend(&parts.path_and_query, part.literal);
      continue;
    }
    std::string value = FieldPathText(request, part.field_path);
    if (value.empty()) {
      auto it = defaults.find(part.placeholder);
      if (it != defaults.end()) {
        value = it->second;
      } else {
        return InvalidField(part.placeholder, "must be set (it is part of the upstream path)");
      }
    }
    absl::StrAppend(&parts.path_and_query, PercentEncodePathSegment(value));
  }

  const Descriptor* in = request.GetDescriptor();
  auto is_meta = [&](const FieldDescriptor* f) {
    return route.path_fields.contains(f) || f == route.page_size_field ||
           f == route.page_token_field || f == route.request_id_field || route.omit.contains(f);
  };
  std::vector<std::pair<std::string, std::string>> query;
  if (route.binding.body() == "*") {
    nlohmann::json body = nlohmann::json::object();
    for (int i = 0; i < in->field_count(); ++i) {
      const FieldDescriptor* f = in->field(i);
      if (is_meta(f)) continue;
      EncodedField e = EncodeRequestField(route, request, f);
      if (e.present) PutAlternative(body, WireName(route, f), std::move(e.value));
    }
    parts.body = body.dump();
    parts.has_body = true;
  } else {
    if (route.body_field != nullptr) {
      EncodedField e = EncodeField(request, route.body_field);
      nlohmann::json body = e.present ? e.value
                            : route.body_field->is_repeated() ? nlohmann::json::array()
                                                              : nlohmann::json::object();
      parts.body = body.dump();
      parts.has_body = true;
    }
    for (int i = 0; i < in->field_count(); ++i) {
      const FieldDescriptor* f = in->field(i);
      if (is_meta(f) || f == route.body_field) continue;
      EncodedField e = EncodeRequestField(route, request, f);
      if (!e.present || e.value.is_null()) continue;
      const std::string key = WireName(route, f);
      if (e.value.is_array()) {
        const std::string item_key = route.query_brackets ? absl::StrCat(key, "[]") : key;
        for (const auto& item : e.value) {
          query.emplace_back(item_key, item.is_string() ? item.get<std::string>() : item.dump());
        }
      } else {
        query.emplace_back(key, e.value.is_string() ? e.value.get<std::string>() : e.value.dump());
      }
    }
  }
  query.insert(query.end(), extra_query.begin(), extra_query.end());
  for (size_t i = 0; i < query.size(); ++i) {
    // Rails' array suffix stays literal: labels[]=a, as Rails' own clients write it.
    absl::string_view key = query[i].first;
    const bool brackets = absl::ConsumeSuffix(&key, "[]");
    absl::StrAppend(&parts.path_and_query, i == 0 ? "?" : "&", PercentEncodeQuery(key),
                    brackets ? "[]" : "", "=", PercentEncodeQuery(query[i].second));
  }
  return parts;
}

std::string ExpandTemplate(absl::string_view templ, const Message& request) {
  std::string out;
  absl::string_view rest = templ;
  while (!rest.empty()) {
    const size_t open = rest.find('{');
    const size_t close = open == absl::string_view::npos ? open : rest.find('}', open);
    if (close == absl::string_view::npos) {
      absl::StrAppend(&out, rest);
      break;
    }
    absl::StrAppend(&out, rest.substr(0, open));
    const absl::string_view name = rest.substr(open + 1, close - open - 1);
    auto resolved = ResolveFieldPath(request.GetDescriptor(), name);
    if (resolved.ok() && IsPathScalar(resolved->back())) {
      absl::StrAppend(&out, FieldPathText(request, *resolved));
    } else {
      absl::StrAppend(&out, rest.substr(open, close - open + 1));
    }
    rest.remove_prefix(close + 1);
  }
  return out;
}

}  // namespace gateway::upstream

#include "tests/fuzz/fuzz_methods.h"

#include <cstdlib>
#include <iostream>

#include "chatwoot/v1/contact_service.pb.h"
#include "chatwoot/v1/conversation_service.pb.h"
#include "chatwoot/v1/group_service.pb.h"
#include "chatwoot/v1/message_service.pb.h"
#include "gateway/v1/annotations.pb.h"
#include "respondio/v2/comment_service.pb.h"
#include "respondio/v2/contact_service.pb.h"
#include "respondio/v2/conversation_service.pb.h"
#include "respondio/v2/custom_field_service.pb.h"
#include "respondio/v2/message_service.pb.h"
#include "respondio/v2/space_service.pb.h"
#include "respondio/v2/tag_service.pb.h"

namespace gateway::fuzz {

const std::vector<FuzzMethod>& AllMethods() {
  static const std::vector<FuzzMethod>* const methods = [] {
    // One message per file links (and registers) that file's descriptors.
    const google::protobuf::FileDescriptor* files[] = {
        respondio::v2::CreateCommentRequest::descriptor()->file(),
        respondio::v2::CreateContactRequest::descriptor()->file(),
        respondio::v2::UpdateConversationStatusRequest::descriptor()->file(),
        respondio::v2::ListCustomFieldsRequest::descriptor()->file(),
        respondio::v2::SendMessageRequest::descriptor()->file(),
        respondio::v2::ListSpaceChannelsRequest::descriptor()->file(),
        respondio::v2::AddContactTagsRequest::descriptor()->file(),
        chatwoot::v1::ListContactsRequest::descriptor()->file(),
        chatwoot::v1::GetConversationCountsRequest::descriptor()->file(),
        chatwoot::v1::ListGroupMembersRequest::descriptor()->file(),
        chatwoot::v1::ListMessagesRequest::descriptor()->file(),
    };
    auto* out = new std::vector<FuzzMethod>();
    for (const auto* file : files) {
      const char* upstream = file->package() == "chatwoot.v1" ? "chatwoot" : "respondio";
      for (int s = 0; s < file->service_count(); ++s) {
        const auto* service = file->service(s);
        for (int m = 0; m < service->method_count(); ++m) {
          const auto* method = service->method(m);
          auto route = upstream::CompileRoute(
              method, method->options().GetExtension(gateway::v1::binding),
              method->options().GetExtension(gateway::v1::policy));
          if (!route.ok()) {
            // A declared route that does not compile is a bug outside the fuzzer's input.
            std::cerr << method->full_name() << ": " << route.status() << "\n";
            std::abort();
          }
          out->push_back({method, upstream, *std::move(route)});
        }
      }
    }
    return out;
  }();
  return *methods;
}

}  // namespace gateway::fuzz

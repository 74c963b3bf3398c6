#!/usr/bin/env python3
"""A short tour of the gateway from Python (grpcio + stubs from generate.sh).

    clients/python/generate.sh
    PYTHONPATH=clients/python/gen /usr/bin/python3 clients/python/example.py 127.0.0.1:8080

Creates a contact, sends it a message, reads the message back, pages through the contact list,
and handles NOT_FOUND by reading the google.rpc.ErrorInfo in the status details. With caller
authentication on, pass the token in GATEWAY_TOKEN. Exits non-zero if anything is not as
expected.
"""
import os
import sys
import uuid

import grpc

from google.rpc import error_details_pb2, status_pb2
from respondio.v2 import contact_service_pb2 as contacts_pb2
from respondio.v2 import contact_service_pb2_grpc as contacts_grpc
from respondio.v2 import message_service_pb2 as messages_pb2
from respondio.v2 import message_service_pb2_grpc as messages_grpc
from respondio.v2 import resources_pb2

WHATSAPP_CHANNEL = 123  # a channel of the sandbox's seed data


def error_info(error: grpc.RpcError):
    """The google.rpc.ErrorInfo carried in the grpc-status-details-bin trailer, or None."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    return info
    return None


def main(address: str) -> int:
    metadata = []
    if os.environ.get("GATEWAY_TOKEN"):
        metadata.append(("authorization", "Bearer " + os.environ["GATEWAY_TOKEN"]))
    channel = grpc.insecure_channel(address)
    contacts = contacts_grpc.ContactServiceStub(channel)
    messages = messages_grpc.MessageServiceStub(channel)
    timeout = 10

    # 1. Create a contact. request_id makes a retry of this write safe.
    email = f"py-{uuid.uuid4().hex[:8]}@example.com"
    created = contacts.CreateContact(
        contacts_pb2.CreateContactRequest(identifier=f"email:{email}", first_name="Py",
                                          last_name="Client", email=email,
                                          phone="+60199990001", request_id=str(uuid.uuid4())),
        timeout=timeout, metadata=metadata)
    # The live API answers a create with {code, message}, not the contact (the OpenAPI dialect
    # sends the contact): read it back by e-mail, which works in both.
    identifier = f"email:{email}"
    contact = contacts.GetContact(contacts_pb2.GetContactRequest(identifier=identifier),
                                  timeout=timeout, metadata=metadata).contact
    assert contact.email == email, contact
    print(f"created contact {contact.id} ({email}; upstream said {created.message!r})")

    # 2. Send it a message, 3. read the message back.
    sent = messages.SendMessage(
        messages_pb2.SendMessageRequest(
            identifier=identifier, channel_id=WHATSAPP_CHANNEL,
            message=resources_pb2.MessageContent(type=resources_pb2.MESSAGE_TYPE_TEXT,
                                                 text="Hello from Python")),
        timeout=timeout, metadata=metadata)
    got = messages.GetMessage(
        messages_pb2.GetMessageRequest(identifier=identifier, message_id=sent.message_id),
        timeout=timeout, metadata=metadata)
    assert got.message.message.text == "Hello from Python", got
    print(f"sent and read back message {sent.message_id}: {got.message.message.text!r}")

    # 4. Page through the contact list, two at a time.
    page_token, pages, seen = "", 0, 0
    while True:
        page = contacts.ListContacts(
            contacts_pb2.ListContactsRequest(page_size=2, page_token=page_token),
            timeout=timeout, metadata=metadata)
        pages += 1
        seen += len(page.items)
        page_token = page.next_page_token
        if not page_token:
            break
    assert pages >= 2 and seen >= 3, (pages, seen)
    print(f"listed {seen} contacts in {pages} pages")

    # 5. NOT_FOUND, with its ErrorInfo.
    try:
        contacts.GetContact(contacts_pb2.GetContactRequest(identifier="id:999999999"),
                            timeout=timeout, metadata=metadata)
        print("expected NOT_FOUND")
        return 1
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND, error
        info = error_info(error)
        assert info is not None and info.reason == "UPSTREAM_NOT_FOUND", info
        print(f"NOT_FOUND: reason={info.reason} domain={info.domain}")
    print("python example: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8080"))

#!/usr/bin/env python3
"""Subscribing to the gateway's webhook events from Python (grpcio + stubs from generate.sh).

    clients/python/generate.sh
    PYTHONPATH=clients/python/gen /usr/bin/python3 clients/python/subscriber.py 127.0.0.1:8080 \
        [--selftest WEBHOOK_HOST:PORT SECRET]

Streams respond.io events from the newest on, keeping the last resume token so that a reconnect
continues exactly where it stopped, and prints each typed event. With --selftest it POSTs one
signed contact.updated webhook to the gateway's webhook listener itself, checks that it arrives
on the stream as the typed event, and exits (non-zero if anything is not as expected). With
caller authentication on, pass the token in GATEWAY_TOKEN.
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
import urllib.request
import uuid

import grpc

from gateway.v1 import event_service_pb2 as events_pb2
from gateway.v1 import event_service_pb2_grpc as events_grpc
from respondio.v2 import events_pb2 as respondio_events_pb2


def post_signed_webhook(webhook, secret, body):
    """POSTs `body` the way respond.io does: x-webhook-signature = base64(HMAC-SHA256(body))."""
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    request = urllib.request.Request(
        f"http://{webhook}/webhooks/respondio", data=body, method="POST",
        headers={"Content-Type": "application/json", "x-webhook-signature": signature})
    with urllib.request.urlopen(request, timeout=5) as reply:
        return reply.status


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8080"
    selftest = None
    if len(sys.argv) >= 5 and sys.argv[2] == "--selftest":
        selftest = (sys.argv[3], sys.argv[4])
    token = os.environ.get("GATEWAY_TOKEN")
    metadata = [("authorization", f"Bearer {token}")] if token else []
    stub = events_grpc.EventServiceStub(grpc.insecure_channel(target))

    resume_token = None  # keep this durably in a real consumer
    request = events_pb2.SubscribeRequest(upstreams=["respondio"])
    if resume_token:
        request.resume_token = resume_token
    else:
        request.start_position = events_pb2.START_POSITION_NEWEST
    stream = stub.Subscribe(request, metadata=metadata, timeout=30 if selftest else None)
    stream.initial_metadata()  # the subscription is live from here on

    event_id = str(uuid.uuid4())
    if selftest:
        body = json.dumps({"event_id": event_id, "event_type": "contact.updated",
                           "contact": {"id": 12345, "firstName": "Ada"}}).encode()
        threading.Thread(target=lambda: post_signed_webhook(*selftest, body), daemon=True).start()

    for envelope in stream:
        resume_token = envelope.resume_token
        event = respondio_events_pb2.Event()
        if not envelope.event.Unpack(event):
            print(f"not a respond.io event: {envelope.event.type_url}", file=sys.stderr)
            return 1
        kind = event.WhichOneof("payload")
        print(f"{envelope.id} {envelope.upstream} {event.type} ({kind})")
        if not selftest:
            continue
        if event.event_id != event_id:
            continue  # someone else's event
        if kind != "contact_updated" or event.contact_updated.contact.first_name != "Ada":
            print(f"unexpected event: {event}", file=sys.stderr)
            return 1
        print("subscriber selftest: the signed webhook arrived as the typed event")
        stream.cancel()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env node
// Subscribing to the gateway's webhook events from Node.js (@grpc/grpc-js + @grpc/proto-loader,
// protos loaded at run time).
//
//   node clients/node/subscriber.js 127.0.0.1:8080 [--selftest WEBHOOK_HOST:PORT SECRET]
//
// Streams respond.io events from the newest on, keeping the last resume token (a reconnect with
// it continues exactly where it stopped), and decodes each EventEnvelope.event (an Any) into
// respondio.v2.Event with protobufjs. With --selftest it POSTs one signed contact.updated webhook
// to the gateway's webhook listener itself and exits 0 once it arrived typed (non-zero on any
// surprise). With caller authentication on, pass the token in GATEWAY_TOKEN.
'use strict';
const path = require('path');
const fs = require('fs');
const http = require('http');
const crypto = require('crypto');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const repo = path.resolve(__dirname, '..', '..');
const PROTO_DIRS = [path.join(repo, 'proto'), path.join(repo, 'third_party', 'googleapis')];

const definition = protoLoader.loadSync(['gateway/v1/event_service.proto'],
  { includeDirs: PROTO_DIRS, longs: String, enums: String, defaults: true, oneofs: true });
const gw = grpc.loadPackageDefinition(definition).gateway.v1;

// respondio.v2.Event, to decode the Any in each envelope.
const root = new protobuf.Root();
root.resolvePath = (origin, target) => {
  for (const dir of PROTO_DIRS) {
    const candidate = path.join(dir, target);
    if (fs.existsSync(candidate)) return candidate;
  }
  return protobuf.util.path.resolve(origin, target);
};
root.loadSync(['respondio/v2/events.proto']);
const RespondioEvent = root.lookupType('respondio.v2.Event');

function postSignedWebhook(webhook, secret, body) {
  // As respond.io signs: x-webhook-signature = base64(HMAC-SHA256(secret, body)).
  const signature = crypto.createHmac('sha256', secret).update(body).digest('base64');
  const [host, port] = webhook.split(':');
  const request = http.request({ host, port, method: 'POST', path: '/webhooks/respondio',
    headers: { 'content-type': 'application/json', 'x-webhook-signature': signature } });
  request.on('error', (e) => { console.error(`webhook POST failed: ${e.message}`); process.exit(1); });
  request.end(body);
}

function main() {
  const target = process.argv[2] || '127.0.0.1:8080';
  const selftest = process.argv[3] === '--selftest' ? [process.argv[4], process.argv[5]] : null;
  const metadata = new grpc.Metadata();
  if (process.env.GATEWAY_TOKEN) metadata.set('authorization', `Bearer ${process.env.GATEWAY_TOKEN}`);
  const client = new gw.EventService(target, grpc.credentials.createInsecure());

  let resumeToken = null; // keep this durably in a real consumer
  const request = resumeToken ? { upstreams: ['respondio'], resume_token: resumeToken }
    : { upstreams: ['respondio'], start_position: 'START_POSITION_NEWEST' };
  const options = selftest ? { deadline: Date.now() + 30000 } : {};
  const stream = client.Subscribe(request, metadata, options);
  const eventId = crypto.randomUUID();
  stream.on('metadata', () => {  // the subscription is live
    if (selftest) {
      postSignedWebhook(selftest[0], selftest[1], JSON.stringify({
        event_id: eventId, event_type: 'contact.updated', contact: { id: 12345, firstName: 'Ada' } }));
    }
  });
  stream.on('data', (envelope) => {
    resumeToken = envelope.resume_token;
    if (envelope.event.type_url !== 'type.googleapis.com/respondio.v2.Event') {
      console.error(`not a respond.io event: ${envelope.event.type_url}`);
      process.exit(1);
    }
    const event = RespondioEvent.toObject(RespondioEvent.decode(envelope.event.value),
      { longs: String, oneofs: true });
    console.log(`${envelope.id} ${envelope.upstream} ${event.type} (${event.payload})`);
    if (!selftest || event.eventId !== eventId) return;
    if (event.payload !== 'contactUpdated' || event.contactUpdated.contact.firstName !== 'Ada') {
      console.error(`unexpected event: ${JSON.stringify(event)}`);
      process.exit(1);
    }
    console.log('subscriber selftest: the signed webhook arrived as the typed event');
    stream.cancel();
    process.exit(0);
  });
  stream.on('error', (e) => {
    if (e.code === grpc.status.CANCELLED) return;
    console.error(`stream failed: ${e.message}`);
    process.exit(1);
  });
}

main();

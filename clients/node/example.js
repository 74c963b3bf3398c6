#!/usr/bin/env node
// A short tour of the gateway from Node.js: @grpc/grpc-js with @grpc/proto-loader, loading the
// gateway's .proto files at run time (no code generation).
//
//   (cd clients/node && npm ci)
//   node clients/node/example.js 127.0.0.1:8080
//
// Creates a contact, sends it a message, reads the message back, pages through the contact
// list, and handles NOT_FOUND by reading the google.rpc.ErrorInfo in the status details. With
// caller authentication on, pass the token in GATEWAY_TOKEN. Exits non-zero on any surprise.
'use strict';
const path = require('path');
const crypto = require('crypto');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const repo = path.resolve(__dirname, '..', '..');
const PROTO_DIRS = [path.join(repo, 'proto'), path.join(repo, 'third_party', 'googleapis')];
const WHATSAPP_CHANNEL = 123; // a channel of the sandbox's seed data

const definition = protoLoader.loadSync(
  ['respondio/v2/contact_service.proto', 'respondio/v2/message_service.proto'],
  { includeDirs: PROTO_DIRS, longs: String, enums: String, defaults: true, oneofs: true });
const rio = grpc.loadPackageDefinition(definition).respondio.v2;

// google.rpc.Status and ErrorInfo, to decode the grpc-status-details-bin trailer.
const rpcRoot = new protobuf.Root();
rpcRoot.resolvePath = (origin, target) => {
  for (const dir of PROTO_DIRS) {
    const candidate = path.join(dir, target);
    if (require('fs').existsSync(candidate)) return candidate;
  }
  return protobuf.util.path.resolve(origin, target);
};
rpcRoot.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto']);
const Status = rpcRoot.lookupType('google.rpc.Status');
const ErrorInfo = rpcRoot.lookupType('google.rpc.ErrorInfo');

function errorInfo(error) {
  const [bytes] = (error.metadata && error.metadata.get('grpc-status-details-bin')) || [];
  if (!bytes) return null;
  const status = Status.decode(bytes);
  const any = status.details.find((d) => d.type_url === 'type.googleapis.com/google.rpc.ErrorInfo');
  return any ? ErrorInfo.decode(any.value) : null;
}

function call(client, method, request) {
  const metadata = new grpc.Metadata();
  if (process.env.GATEWAY_TOKEN) metadata.set('authorization', `Bearer ${process.env.GATEWAY_TOKEN}`);
  const deadline = new Date(Date.now() + 10000);
  return new Promise((resolve, reject) => {
    client[method](request, metadata, { deadline }, (err, reply) => (err ? reject(err) : resolve(reply)));
  });
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function main(address) {
  const contacts = new rio.ContactService(address, grpc.credentials.createInsecure());
  const messages = new rio.MessageService(address, grpc.credentials.createInsecure());

  // 1. Create a contact; request_id makes a retry of this write safe.
  const email = `node-${crypto.randomBytes(4).toString('hex')}@example.com`;
  const created = await call(contacts, 'CreateContact', {
    identifier: `email:${email}`, firstName: 'Node', lastName: 'Client', email,
    phone: '+60199990002',
    requestId: crypto.randomUUID(),
  });
  // The live API answers a create with {code, message}, not the contact (the OpenAPI dialect
  // sends the contact): read it back by e-mail, which works in both.
  const identifier = `email:${email}`;
  const { contact } = await call(contacts, 'GetContact', { identifier });
  check(contact.email === email, JSON.stringify(contact));
  console.log(`created contact ${contact.id} (${email}; upstream said "${created.message}")`);

  // 2. Send it a message, 3. read the message back.
  const sent = await call(messages, 'SendMessage', {
    identifier, channelId: WHATSAPP_CHANNEL,
    message: { type: 'MESSAGE_TYPE_TEXT', text: 'Hello from Node' },
  });
  const got = await call(messages, 'GetMessage', { identifier, messageId: sent.messageId });
  check(got.message.message.text === 'Hello from Node', JSON.stringify(got));
  console.log(`sent and read back message ${sent.messageId}: "${got.message.message.text}"`);

  // 4. Page through the contact list, two at a time.
  let pageToken = '';
  let pages = 0;
  let seen = 0;
  do {
    const page = await call(contacts, 'ListContacts', { pageSize: 2, pageToken });
    pages += 1;
    seen += page.items.length;
    pageToken = page.nextPageToken;
  } while (pageToken);
  check(pages >= 2 && seen >= 3, `pages ${pages}, contacts ${seen}`);
  console.log(`listed ${seen} contacts in ${pages} pages`);

  // 5. NOT_FOUND, with its ErrorInfo.
  try {
    await call(contacts, 'GetContact', { identifier: 'id:999999999' });
    throw new Error('expected NOT_FOUND');
  } catch (error) {
    check(error.code === grpc.status.NOT_FOUND, `code ${error.code}: ${error.message}`);
    const info = errorInfo(error);
    check(info && info.reason === 'UPSTREAM_NOT_FOUND', `ErrorInfo ${JSON.stringify(info)}`);
    console.log(`NOT_FOUND: reason=${info.reason} domain=${info.domain}`);
  }
  contacts.close();
  messages.close();
  console.log('node example: ok');
}

main(process.argv[2] || '127.0.0.1:8080').catch((e) => {
  console.error(`node example failed: ${e.message}`);
  process.exit(1);
});

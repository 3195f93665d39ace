'use strict';
/*
 * Drives ditto-compat's /ws/2 with the official Eclipse Ditto JavaScript client (Node.js WebSocket client 3.9.1), the
 * way an existing Ditto application would. Used by tests/system/test_js_websocket.py, which asserts on the output.
 *
 * Usage: node ws-client.cjs <base-url>        e.g. node ws-client.cjs http://127.0.0.1:8080
 *   Optional env: DITTO_USER/DITTO_PASSWORD (default ditto/ditto), DITTO_THING_ID (default: a random id in
 *   org.eclipse.ditto.js), DITTO_STEP_TIMEOUT_MS.
 *
 * Two clients, as the library builds one per channel: a twin client (Thing commands and twin events over the
 * socket) and a live client (messages). HTTP writes that cause events and messages are made with Node's fetch,
 * straight to the server (no client library involved).
 *
 * Output: one JSON line per step, {"step": <name>, "ok": true|false, ...what the client got}. Exit code 0 only when
 * every step did what a real Ditto does; 1 when any step failed; 2 on bad usage or the overall watchdog.
 */

const crypto = require('node:crypto');
const ditto = require('@eclipse-ditto/ditto-javascript-client-node');

const { DittoNodeClient, NodeWebSocketBasicAuth, Thing } = ditto;

const baseUrl = process.argv[2] || process.env.DITTO_BASE_URL;
if (!baseUrl) {
  console.error('usage: node ws-client.cjs <base-url> (or DITTO_BASE_URL)');
  process.exit(2);
}
const url = new URL(baseUrl);
if (url.protocol !== 'http:') {
  console.error(`only plain http/ws is exercised here, got ${url.protocol}`);
  process.exit(2);
}
const user = process.env.DITTO_USER || 'ditto';
const password = process.env.DITTO_PASSWORD || 'ditto';
const random = () => crypto.randomUUID().slice(0, 8);
const thingId = process.env.DITTO_THING_ID || `org.eclipse.ditto.js:ws-${random()}`;
const [namespace, name] = [thingId.slice(0, thingId.indexOf(':')), thingId.slice(thingId.indexOf(':') + 1)];
const authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
// The client has no request timeout of its own: without one a request the server never answers hangs the run.
const stepTimeoutMs = Number(process.env.DITTO_STEP_TIMEOUT_MS || 10000);
const watchdog = setTimeout(() => {
  emit({ step: 'watchdog', ok: false, error: 'the whole run took too long' });
  process.exit(2);
}, stepTimeoutMs * 12);

function newClient(channel) {
  // ignoreProxyFromEnv: the client would otherwise route through http_proxy; this run talks to loopback only.
  // withReconnect(false): a socket the server closes must show up as a failure here, not as a silent reconnect.
  const builder = DittoNodeClient.newWebSocketClient({ ignoreProxyFromEnv: true })
    .withoutTls()
    .withDomain(url.host)
    .withAuthProvider(NodeWebSocketBasicAuth.newInstance(user, password))
    .withReconnect(false)
    .withBuffer(100);
  return (channel === 'live' ? builder.liveChannel() : builder.twinChannel()).build();
}

let failures = 0;

function emit(record) {
  process.stdout.write(`${JSON.stringify(record)}\n`);
}

function withTimeout(promise, name) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name}: no answer within ${stepTimeoutMs} ms`)), stepTimeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Over the WebSocket a failed command rejects with the `value` of the error frame (Ditto's error JSON: status, error,
// message, description); PUTs reject with a plain string on an unexpected 2xx; transport problems with an object
// {status: 0..3, error: 'connection.*'} or an Error.
function describeError(error) {
  if (error && typeof error === 'object' && 'status' in error) {
    return { status: error.status, errorCode: error.error, message: error.message };
  }
  if (error instanceof Error) {
    return { error: error.message };
  }
  return { error: String(error) };
}

function putResult(response) {
  return {
    status: response.status,
    created: response.wasCreated(),
    updated: response.wasUpdated(),
    body: response.body && typeof response.body.toObject === 'function' ? response.body.toObject() : response.body,
  };
}

/** A step that must succeed; `fn` returns the facts to report. */
async function step(name, fn) {
  try {
    const result = await withTimeout(fn(), name);
    emit({ step: name, ok: true, ...result });
    return result;
  } catch (error) {
    failures += 1;
    emit({ step: name, ok: false, ...describeError(error) });
    return undefined;
  }
}

/** A step whose command must be rejected with `status`. */
async function expectStatus(name, status, fn) {
  try {
    const value = await withTimeout(fn(), name);
    failures += 1;
    emit({ step: name, ok: false, error: `expected status ${status}, but the request succeeded`, value });
  } catch (error) {
    const described = describeError(error);
    const ok = described.status === status;
    if (!ok) failures += 1;
    emit({ step: name, ok, ...described });
  }
}

/** Collects what a subscription callback receives; `next(predicate)` waits for the first matching one. */
class Inbox {
  constructor() {
    this.items = [];
    this.waiters = [];
  }

  push(item) {
    this.items.push(item);
    this.waiters = this.waiters.filter(({ predicate, resolve }) => {
      if (predicate(item)) {
        resolve(item);
        return false;
      }
      return true;
    });
  }

  next(predicate) {
    const found = this.items.find(predicate);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => this.waiters.push({ predicate, resolve }));
  }
}

function eventFacts(event) {
  return {
    action: event.action,
    topic: event.topic,
    path: event.path,
    value: event.value,
    correlationId: event.headers && event.headers['correlation-id'],
  };
}

async function http(method, path, body, headers = {}) {
  const response = await fetch(`${url.origin}${path}`, {
    method,
    headers: { Authorization: authorization, ...headers },
    body,
  });
  const text = await response.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch (_) {
    // not JSON: keep the text
  }
  return { status: response.status, body: parsed, contentType: response.headers.get('content-type') };
}

async function main() {
  emit({ step: 'config', ok: true, host: url.host, thingId });
  const twin = newClient('twin');
  const things = twin.getThingsHandle();
  const events = twin.getEventsHandle();

  // ---------------------------------------------------------------- connect and subscribe (START-SEND-EVENTS:ACK)
  const thingEvents = new Inbox();
  const allEvents = new Inbox();
  const attributeEvents = new Inbox();
  await step('requestEvents', async () => {
    await events.requestEvents();
    return {};
  });
  events.subscribeToThing(thingId, (event) => thingEvents.push(event));
  events.subscribeToAllEvents((event) => allEvents.push(event));
  events.subscribeToAttribute(thingId, 'fromHttp', (event) => attributeEvents.push(event), undefined, false);

  // ---------------------------------------------------------------- Thing commands over the socket
  const initial = Thing.fromObject({
    thingId,
    attributes: { manufacturer: 'ACME' },
    features: { lamp: { properties: { on: false } } },
  });
  await step('putThing.create', async () => putResult(await things.putThing(initial)));
  await step('event.created', async () =>
    eventFacts(await thingEvents.next((e) => e.action === 'created' && e.path === '/')),
  );
  await step('putThing.modify', async () => putResult(await things.putThing(initial)));
  await step('putAttribute.create', async () => putResult(await things.putAttribute(thingId, 'serial', 'SN-1')));
  await step('putAttribute.modify', async () => putResult(await things.putAttribute(thingId, 'serial', 'SN-2')));
  await step('getAttribute', async () => ({ value: await things.getAttribute(thingId, 'serial') }));
  await step('getAttributes', async () => ({ value: await things.getAttributes(thingId) }));
  await step('getThing', async () => ({ thing: (await things.getThing(thingId)).toObject() }));
  await expectStatus('getAttribute.missing', 404, () => things.getAttribute(thingId, 'nope'));
  await step('event.attributeModified', async () =>
    eventFacts(await thingEvents.next((e) => e.action === 'modified' && e.path === '/attributes/serial')),
  );

  // ---------------------------------------------------------------- an event caused by an HTTP write
  await step('http.putAttribute', async () =>
    http('PUT', `/api/2/things/${thingId}/attributes/fromHttp`, JSON.stringify({ n: 1 }), {
      'Content-Type': 'application/json',
      'correlation-id': 'js-ws-http-1',
    }),
  );
  await step('event.fromHttp', async () =>
    eventFacts(await attributeEvents.next((e) => e.path === '/attributes/fromHttp')),
  );
  await step('event.all', async () => ({
    actions: allEvents.items.filter((e) => e.topic.startsWith(`${namespace}/${name}/`)).map((e) => e.action),
    paths: allEvents.items.filter((e) => e.topic.startsWith(`${namespace}/${name}/`)).map((e) => e.path),
  }));
  await step('stopEvents', async () => {
    await events.stopEvents();
    return {};
  });

  // ---------------------------------------------------------------- messages on the live channel
  const live = newClient('live');
  const messages = live.getMessagesHandle();
  const received = new Inbox();
  await step('requestMessages', async () => {
    await messages.requestMessages();
    return {};
  });
  messages.subscribeToAllMessages((message) => received.push(message));
  const asking = http(
    'POST',
    `/api/2/things/${thingId}/inbox/messages/ask?timeout=10`,
    JSON.stringify({ question: 'temperature?' }),
    { 'Content-Type': 'application/json', 'correlation-id': 'js-ws-msg-1' },
  );
  const message = await step('message.received', async () => {
    const got = await received.next((m) => m.topic.endsWith('/messages/ask'));
    return {
      action: got.action,
      topic: got.topic,
      path: got.path,
      value: got.value,
      correlationId: got.headers['correlation-id'],
      contentType: got.headers['content-type'],
    };
  });
  // The 3.9.1 client has no API to answer a message: its send methods build envelopes without `status`, which Ditto
  // reads as a new message, not a reply. A device answers by sending a response envelope (with `status`) over the
  // same socket, here through the client's own connection (a private field of the handle).
  await step('message.reply', async () => {
    const reply = {
      topic: `${namespace}/${name}/things/live/messages/ask`,
      headers: { 'correlation-id': message ? message.correlationId : 'js-ws-msg-1', 'content-type': 'application/json' },
      path: '/outbox/messages/ask',
      value: { temperature: 21.5 },
      status: 200,
    };
    await messages.requester.resilienceHandler.send(JSON.stringify(reply));
    return {};
  });
  await step('http.messageAnswered', async () => asking);

  twin.close();
  live.close();
}

main()
  .catch((error) => {
    failures += 1;
    emit({ step: 'main', ok: false, ...describeError(error) });
  })
  .finally(() => {
    clearTimeout(watchdog);
    emit({ step: 'done', ok: failures === 0, failures });
    process.exit(failures === 0 ? 0 : 1);
  });

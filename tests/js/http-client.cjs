'use strict';
/*
 * Drives ditto-compat with the official Eclipse Ditto JavaScript client (Node.js HTTP client 3.9.1), the way an
 * existing Ditto application would. Used by tests/system/test_js_client.py, which asserts on the output.
 *
 * Usage: node http-client.cjs <base-url>        e.g. node http-client.cjs http://127.0.0.1:8080
 *   (or DITTO_BASE_URL). Optional env: DITTO_USER/DITTO_PASSWORD (default ditto/ditto), DITTO_THING_ID and
 *   DITTO_THING_ID_2 (default: random ids in org.eclipse.ditto.js), DITTO_STEP_TIMEOUT_MS.
 *
 * Output: one JSON line per step, {"step": <name>, "ok": true|false, ...what the client returned}. Exit code 0 only
 * when every step did what a real Ditto does; 1 when any step failed; 2 on bad usage or the overall watchdog.
 *
 * CommonJS on purpose: the package is published as CommonJS ("type": "commonjs", main ./dist/index.js).
 */

const crypto = require('node:crypto');
const ditto = require('@eclipse-ditto/ditto-javascript-client-node');

const { DittoNodeClient, NodeHttpBasicAuth, DefaultFieldsOptions, Thing, Feature } = ditto;

const baseUrl = process.argv[2] || process.env.DITTO_BASE_URL;
if (!baseUrl) {
  console.error('usage: node http-client.cjs <base-url> (or DITTO_BASE_URL)');
  process.exit(2);
}
const url = new URL(baseUrl);
if (url.protocol !== 'http:') {
  console.error(`only plain http is exercised here, got ${url.protocol}`);
  process.exit(2);
}
const user = process.env.DITTO_USER || 'ditto';
const password = process.env.DITTO_PASSWORD || 'ditto';
const random = () => crypto.randomUUID().slice(0, 8);
const thingId = process.env.DITTO_THING_ID || `org.eclipse.ditto.js:thing-${random()}`;
const thingId2 = process.env.DITTO_THING_ID_2 || `org.eclipse.ditto.js:thing-${random()}`;
// The client has no request timeout of its own (inventory section 11): without one a hung request hangs the run.
const stepTimeoutMs = Number(process.env.DITTO_STEP_TIMEOUT_MS || 10000);
const watchdog = setTimeout(() => {
  emit({ step: 'watchdog', ok: false, error: 'the whole run took too long' });
  process.exit(2);
}, stepTimeoutMs * 10);

// ignoreProxyFromEnv: the client would otherwise route through http_proxy; this run talks to loopback only.
const client = DittoNodeClient.newHttpClient({ ignoreProxyFromEnv: true })
  .withoutTls()
  .withDomain(url.host)
  .withAuthProvider(NodeHttpBasicAuth.newInstance(user, password))
  .build();
const things = client.getThingsHandle();
const features = client.getFeaturesHandle(thingId);

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

// What the client rejects with: BasicErrorResponse {status, body} for a non-2xx answer, a plain string such as
// "Received unknown status code: 200" from PUT/PATCH, or an Error for transport problems.
function describeError(error) {
  if (error && typeof error === 'object' && 'status' in error) {
    return { status: error.status, body: error.body };
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
  } catch (error) {
    failures += 1;
    emit({ step: name, ok: false, ...describeError(error) });
  }
}

/** A step whose request must be rejected with `status` (e.g. reading what was just deleted). */
async function expectStatus(name, status, fn) {
  try {
    const value = await withTimeout(fn(), name);
    failures += 1;
    emit({ step: name, ok: false, error: `expected status ${status}, but the request succeeded`, value });
  } catch (error) {
    const described = describeError(error);
    const ok = described.status === status;
    if (!ok) failures += 1;
    emit({
      step: name,
      ok,
      status: described.status,
      errorCode: described.body && described.body.error,
      ...(ok ? {} : described),
    });
  }
}

async function main() {
  emit({ step: 'config', ok: true, host: url.host, thingId, thingId2 });

  // ---------------------------------------------------------------- things
  const initial = Thing.fromObject({
    thingId,
    attributes: { manufacturer: 'ACME', location: { lat: 1.5, lon: 2 } },
    features: { lamp: { properties: { on: false } } },
  });
  await step('putThing.create', async () => putResult(await things.putThing(initial)));
  await step('putThing.modify', async () => putResult(await things.putThing(initial)));
  await step('getThing', async () => ({ thing: (await things.getThing(thingId)).toObject() }));
  await step('getThing.fields', async () => {
    const options = DefaultFieldsOptions.getInstance().withFields('thingId', '_revision', 'attributes/manufacturer');
    const thing = await things.getThing(thingId, options);
    return { thingId: thing.thingId, revision: thing._revision, attributes: thing.attributes };
  });
  await step('putThing.second', async () =>
    putResult(await things.putThing(Thing.fromObject({ thingId: thingId2, attributes: { second: true } }))),
  );
  await step('getThings', async () => {
    const found = await things.getThings([thingId, thingId2]);
    return { ids: found.map((t) => t.thingId), attributes: found.map((t) => t.attributes) };
  });
  await step('patchThing', async () =>
    putResult(
      await things.patchThing(
        Thing.fromObject({ thingId, attributes: { location: { lat: 2.5, lon: null }, color: 'red' } }),
      ),
    ),
  );
  await step('getThing.afterPatch', async () => ({ attributes: (await things.getThing(thingId)).attributes }));

  // ---------------------------------------------------------------- attributes
  await step('putAttribute.create', async () => putResult(await things.putAttribute(thingId, 'serial', 'SN-1')));
  await step('putAttribute.modify', async () => putResult(await things.putAttribute(thingId, 'serial', 'SN-2')));
  await step('putAttribute.nested', async () => putResult(await things.putAttribute(thingId, 'nested/a/b', 42)));
  await step('getAttribute', async () => ({ value: await things.getAttribute(thingId, 'serial') }));
  await step('getAttribute.nested', async () => ({ value: await things.getAttribute(thingId, 'nested/a') }));
  await step('getAttributes', async () => ({ value: await things.getAttributes(thingId) }));
  await step('deleteAttribute', async () => ({ status: (await things.deleteAttribute(thingId, 'serial')).status }));
  await expectStatus('getAttribute.deleted', 404, () => things.getAttribute(thingId, 'serial'));
  await step('putAttributes', async () =>
    putResult(await things.putAttributes(thingId, { manufacturer: 'Bosch', model: 'X1' })),
  );
  await step('getAttributes.replaced', async () => ({ value: await things.getAttributes(thingId) }));
  await step('deleteAttributes', async () => ({ status: (await things.deleteAttributes(thingId)).status }));
  await expectStatus('getAttributes.deleted', 404, () => things.getAttributes(thingId));

  // ---------------------------------------------------------------- features
  const temperature = new Feature('temperature', ['org.eclipse.ditto.js:temperature:1.0.0'], {
    value: 21.5,
    unit: 'C',
  });
  await step('putFeature.create', async () => putResult(await features.putFeature(temperature)));
  await step('putFeature.modify', async () => putResult(await features.putFeature(temperature)));
  await step('getFeature', async () => {
    const feature = await features.getFeature('temperature');
    return { id: feature.id, definition: feature.definition, properties: feature.properties };
  });
  await step('getFeatures', async () => {
    const all = await features.getFeatures();
    return { ids: Object.keys(all).sort() };
  });

  // ---------------------------------------------------------------- feature properties
  await step('putProperty.modify', async () => putResult(await features.putProperty('temperature', 'value', 22)));
  await step('putProperty.create', async () =>
    putResult(await features.putProperty('temperature', 'nested/x', 1)),
  );
  await step('getProperty', async () => ({ value: await features.getProperty('temperature', 'value') }));
  await step('patchProperty', async () =>
    putResult(await features.patchProperty('temperature', 'nested', { x: null, y: 2 })),
  );
  await step('getProperties', async () => ({ value: await features.getProperties('temperature') }));
  await step('deleteProperty', async () => ({
    status: (await features.deleteProperty('temperature', 'unit')).status,
  }));
  await expectStatus('getProperty.deleted', 404, () => features.getProperty('temperature', 'unit'));
  await step('getProperties.afterDelete', async () => ({ value: await features.getProperties('temperature') }));

  // ---------------------------------------------------------------- delete
  await step('deleteThing', async () => ({ status: (await things.deleteThing(thingId)).status }));
  await expectStatus('getThing.deleted', 404, () => things.getThing(thingId));
  await step('getThings.afterDelete', async () => ({
    ids: (await things.getThings([thingId, thingId2])).map((t) => t.thingId),
  }));
}

main()
  .catch((error) => {
    failures += 1;
    emit({ step: 'main', ok: false, ...describeError(error) });
  })
  .finally(() => {
    clearTimeout(watchdog);
    emit({ step: 'done', ok: failures === 0, failures });
    // exit explicitly: keep-alive sockets of Node's global agent must not keep the process around.
    process.exit(failures === 0 ? 0 : 1);
  });

"""The ``JavaScript`` mapper (``connectivity-mapping`` "JavaScript mapping engine"): mapping scripts written for
Ditto run unchanged, in V8 (``mini-racer``) instead of Ditto's Rhino.

The script contract is Ditto's: ``mapToDittoProtocolMsg(headers, textPayload, bytePayload, contentType)`` returns a
Ditto Protocol message, an array of them, or ``null`` to drop the message; ``mapFromDittoProtocolMsg(namespace,
name, group, channel, criterion, action, path, dittoHeaders, value, status, extra)`` returns an external message
``{headers, textPayload, bytePayload, contentType}``, an array of them, or ``null``. Scripts may instead define
``mapToDittoProtocolMsgWrapper(externalMsg)`` / ``mapFromDittoProtocolMsgWrapper(dittoProtocolMsg)``. The
``Ditto`` scope offers ``buildDittoProtocolMsg``, ``buildExternalMsg``, ``arrayBufferToString``,
``stringToArrayBuffer`` and ``asByteBuffer``, as Ditto's ``ditto-scope.js`` does, and Ditto's default
``incoming-mapping.js`` / ``outgoing-mapping.js`` functions are defined before the user's scripts, which override
them. A direction without a script maps Ditto Protocol JSON (Ditto's ``DefaultIncomingMapping`` /
``DefaultOutgoingMapping``).

Bytes cross as ``ArrayBuffer`` (inbound ``bytePayload``); a script may return an ``ArrayBuffer``, a typed array, a
``DataView`` or an array of numbers as ``bytePayload``, which wins over ``textPayload``.

Limits: each call runs with a time limit (default 250 ms) and a heap limit (default 64 MiB); a script that throws,
runs too long or exceeds the heap fails that message with ``connectivity:message.mapping.failed`` and never the
connection (after a heap overflow the V8 context is rebuilt). Scripts are limited to 50,000 characters, as in
Ditto. The options ``loadLongJS`` and ``loadBytebufferJS`` load long.js 3.2.0 and bytebuffer.js 5.0.1, the
versions Ditto loads (``js/``), as ``dcodeIO.Long`` and ``dcodeIO.ByteBuffer``, before the scripts; without
them ``dcodeIO`` is undefined, as in Ditto.

One V8 context per mapper, created once. Calls are synchronous and short (bounded by the time limit), so they
are made directly from the event loop; a lock makes them safe from worker threads too.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
import weakref
from collections.abc import Mapping
from importlib import resources
from typing import Any

import orjson
from py_mini_racer import JSEvalException, JSOOMException, JSTimeoutException, MiniRacer

from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.mapping.common import (
    envelope_from_payload,
    envelope_to_message,
    option_bool,
    option_str,
)
from ditto_compat.connectivity.mapping.errors import MappingConfigurationInvalid, mapping_failed
from ditto_compat.errors import DittoError
from ditto_compat.protocol.envelope import Envelope, parse_envelope

DEFAULT_TIMEOUT_MS = 250.0
DEFAULT_MAX_MEMORY = 64 * 1024 * 1024
MAX_SCRIPT_SIZE = 50_000  # Ditto's connectivity.mapping.javascript.maxScriptSizeBytes default

# Ditto's "ditto-scope.js" helper functions, as connectivity-mapping documents them
DITTO_SCOPE_JS = r"""
var Ditto = (function () {
  function buildTopic(namespace, name, group, channel, criterion, action) {
    const topicChannel = 'none' === channel ? '' : '/' + channel;
    return namespace + "/" + name + "/" + group + topicChannel + "/" + criterion + "/" + action;
  }
  function buildDittoProtocolMsg(namespace, name, group, channel, criterion, action, path, dittoHeaders, value,
                                 status, extra) {
    return {
      topic: buildTopic(namespace, name, group, channel, criterion, action),
      path: path,
      headers: dittoHeaders,
      value: value,
      status: status,
      extra: extra,
    };
  }
  function buildExternalMsg(headers, textPayload, bytePayload, contentType) {
    return { headers: headers, textPayload: textPayload, bytePayload: bytePayload, contentType: contentType };
  }
  function arrayBufferToString(arrayBuffer) {
    return String.fromCharCode.apply(null, new Uint8Array(arrayBuffer));
  }
  function stringToArrayBuffer(string) {
    let buf = new ArrayBuffer(string.length);
    let bufView = new Uint8Array(buf);
    for (let i = 0, strLen = string.length; i < strLen; i++) {
      bufView[i] = string.charCodeAt(i);
    }
    return buf;
  }
  function asByteBuffer(arrayBuffer) {
    let byteBuffer = new ArrayBuffer(arrayBuffer.byteLength);
    new Uint8Array(byteBuffer).set(new Uint8Array(arrayBuffer));
    return dcodeIO.ByteBuffer.wrap(byteBuffer);
  }
  return {
    buildDittoProtocolMsg: buildDittoProtocolMsg,
    buildExternalMsg: buildExternalMsg,
    arrayBufferToString: arrayBufferToString,
    stringToArrayBuffer: stringToArrayBuffer,
    asByteBuffer: asByteBuffer
  };
})();
"""

# Ditto's default "incoming-mapping.js" and "outgoing-mapping.js": what a user script overrides
DEFAULT_MAPPING_JS = r"""
function mapToDittoProtocolMsg(headers, textPayload, bytePayload, contentType) {
  if (contentType === 'application/vnd.eclipse.ditto+json') {
    return JSON.parse(textPayload);
  } else if (contentType === 'application/octet-stream') {
    try {
      return JSON.parse(Ditto.arrayBufferToString(bytePayload));
    } catch (e) {
      return null;
    }
  }
  return null;
}
function mapToDittoProtocolMsgWrapper(externalMsg) {
  return mapToDittoProtocolMsg(externalMsg.headers, externalMsg.textPayload, externalMsg.bytePayload,
    externalMsg.contentType);
}
function mapFromDittoProtocolMsg(namespace, name, group, channel, criterion, action, path, dittoHeaders, value,
                                 status, extra) {
  let textPayload = JSON.stringify(Ditto.buildDittoProtocolMsg(namespace, name, group, channel, criterion, action,
    path, dittoHeaders, value, status, extra));
  return Ditto.buildExternalMsg(dittoHeaders, textPayload, null, 'application/vnd.eclipse.ditto+json');
}
function hasChannel(group) {
  return 'things' === group;
}
function mapFromDittoProtocolMsgWrapper(dittoProtocolMsg) {
  let splitTopic = dittoProtocolMsg.topic.split("/");
  let namespace = splitTopic[0];
  let name = splitTopic[1];
  let group = splitTopic[2];
  let channel;
  let criterion;
  let action;
  if (hasChannel(group)) {
    channel = splitTopic[3];
    criterion = splitTopic[4];
    action = splitTopic.slice(5).join("/");
  } else {
    channel = 'none';
    criterion = splitTopic[3];
    action = splitTopic.slice(4).join("/");
  }
  return mapFromDittoProtocolMsg(namespace, name, group, channel, criterion, action, dittoProtocolMsg.path,
    dittoProtocolMsg.headers, dittoProtocolMsg.value, dittoProtocolMsg.status, dittoProtocolMsg.extra);
}
"""

# the bridge between Python and the script: JSON strings in and out, bytes as arrays of numbers
BRIDGE_JS = r"""
function __dittoBytesOf(value) {
  if (value === null || value === undefined) return null;
  if (value instanceof ArrayBuffer) return Array.from(new Uint8Array(value));
  if (ArrayBuffer.isView(value)) return Array.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  if (Array.isArray(value)) return value.map(function (b) { return b & 0xff; });
  if (typeof value.toArrayBuffer === 'function') return __dittoBytesOf(value.toArrayBuffer());
  throw new TypeError('bytePayload must be an ArrayBuffer, a typed array, a DataView or an array of numbers');
}
function __dittoHeaderText(value) {
  return typeof value === 'string' ? value : JSON.stringify(value);
}
function __dittoAsList(result) {
  if (result === null || result === undefined) return [];
  return Array.isArray(result) ? result : [result];
}
function __dittoIncoming(json) {
  const m = JSON.parse(json);
  const externalMsg = {
    headers: m.headers,
    textPayload: m.textPayload,
    bytePayload: m.bytePayload === null ? null : new Uint8Array(m.bytePayload).buffer,
    contentType: m.contentType
  };
  return JSON.stringify(__dittoAsList(mapToDittoProtocolMsgWrapper(externalMsg)));
}
function __dittoOutgoing(json) {
  const out = __dittoAsList(mapFromDittoProtocolMsgWrapper(JSON.parse(json))).map(function (msg) {
    if (msg === null || typeof msg !== 'object') throw new TypeError('an external message must be an object');
    const headers = {};
    if (msg.headers !== null && typeof msg.headers === 'object') {
      Object.keys(msg.headers).forEach(function (key) {
        const v = msg.headers[key];
        if (v !== null && v !== undefined) headers[key] = __dittoHeaderText(v);
      });
    }
    const text = msg.textPayload;
    return {
      headers: headers,
      textPayload: text === null || text === undefined ? null : String(text),
      bytePayload: __dittoBytesOf(msg.bytePayload),
      contentType: msg.contentType === null || msg.contentType === undefined ? null : String(msg.contentType)
    };
  });
  return JSON.stringify(out);
}
"""


@functools.cache
def _library(file_name: str) -> str:
    """A bundled JavaScript library (``js/``), read once."""
    return resources.files(__package__).joinpath("js", file_name).read_text(encoding="utf-8")


def _script_option(options: Mapping[str, Any], name: str) -> str:
    script = option_str(options, name) or ""
    if len(script) > MAX_SCRIPT_SIZE:
        raise MappingConfigurationInvalid(
            f"The mapping option '{name}' is too large: {len(script)} characters.",
            f"A mapping script may have at most {MAX_SCRIPT_SIZE} characters.",
        )
    return script


class JavaScriptMapper:
    alias = "JavaScript"

    def __init__(
        self,
        options: Mapping[str, Any],
        *,
        connection_id: str,
        timeout_ms: float = DEFAULT_TIMEOUT_MS,
        max_memory: int = DEFAULT_MAX_MEMORY,
    ) -> None:
        self.connection_id = connection_id
        self.timeout_ms = timeout_ms
        self.max_memory = max_memory
        self.incoming_script = _script_option(options, "incomingScript")
        self.outgoing_script = _script_option(options, "outgoingScript")
        self.load_bytebuffer_js = option_bool(options, "loadBytebufferJS", False)
        self.load_long_js = option_bool(options, "loadLongJS", False)
        self._lock = threading.Lock()
        self._context = self._new_context()

    def _new_context(self) -> MiniRacer:
        context = _new_isolate(self)
        for name, source in (
            # long.js first: bytebuffer.js takes dcodeIO.Long when it is there, as Ditto loads them
            ("long.js", _library("long.min.js") if self.load_long_js else ""),
            ("bytebuffer.js", _library("bytebuffer.min.js") if self.load_bytebuffer_js else ""),
            ("ditto-scope.js", DITTO_SCOPE_JS),
            ("default mapping", DEFAULT_MAPPING_JS),
            ("bridge", BRIDGE_JS),
            ("incomingScript", self.incoming_script),
            ("outgoingScript", self.outgoing_script),
        ):
            if not source:
                continue
            try:
                context.eval(source, timeout=self.timeout_ms * 4, max_memory=self.max_memory)
            except JSEvalException as error:
                _release_isolate(context)
                raise MappingConfigurationInvalid(
                    f"The mapping script '{name}' could not be loaded.", _first_line(error)
                ) from None
        return context

    def close(self) -> None:
        with self._lock:
            _release_isolate(self._context)

    def _call(self, function: str, argument: str, content_type: str | None) -> Any:
        with self._lock:
            try:
                raw = self._context.call(
                    function, argument, timeout=self.timeout_ms, max_memory=self.max_memory
                )
            except JSTimeoutException:
                raise mapping_failed(
                    f"The mapping script ran longer than {self.timeout_ms:g} ms and was stopped.",
                    content_type=content_type,
                ) from None
            except JSOOMException:
                # the heap may stay full of what the script left behind: start over with a fresh context
                _release_isolate(self._context)
                self._context = self._new_context()
                raise mapping_failed(
                    "The mapping script exceeded its memory limit and was stopped.", content_type=content_type
                ) from None
            except JSEvalException as error:
                raise mapping_failed(
                    f"The mapping script failed: {_first_line(error)}", content_type=content_type
                ) from None
        if not isinstance(raw, str):
            raise mapping_failed("The mapping script returned no JSON.", content_type=content_type)
        return orjson.loads(raw)

    def map_incoming(self, message: ExternalMessage) -> list[Envelope]:
        if not self.incoming_script:
            return [envelope_from_payload(message)]
        content_type = message.header("content-type")
        data = message.bytes_payload
        argument = orjson.dumps(
            {
                "headers": message.headers,
                "textPayload": message.text_payload,
                "bytePayload": None if data is None else list(data),
                "contentType": content_type,
            }
        ).decode()
        results = self._call("__dittoIncoming", argument, content_type)
        envelopes: list[Envelope] = []
        for result in results:
            if not isinstance(result, dict):
                raise mapping_failed(
                    "The mapping script returned something that is not a Ditto Protocol message.",
                    content_type=content_type,
                )
            # Ditto's protocol adapter treats missing headers as empty ones
            body = {"headers": {}, **result} if result.get("headers") is None else result
            try:
                envelopes.append(parse_envelope(body))
            except DittoError as error:
                raise mapping_failed(
                    f"The mapping script returned an invalid Ditto Protocol message: {error.message}",
                    content_type=content_type,
                ) from None
        return envelopes

    def map_outgoing(self, envelope: Envelope) -> list[ExternalMessage]:
        if not self.outgoing_script:
            return [envelope_to_message(envelope)]
        content_type = envelope.header("content-type")
        argument = orjson.dumps(envelope.to_json()).decode()
        results = self._call(
            "__dittoOutgoing", argument, content_type if isinstance(content_type, str) else None
        )
        messages: list[ExternalMessage] = []
        for result in results:
            headers: dict[str, str] = dict(result["headers"])
            if result["contentType"] is not None:
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                headers["content-type"] = result["contentType"]
            if result["bytePayload"] is not None:
                messages.append(ExternalMessage(headers=headers, payload=bytes(result["bytePayload"])))
            elif result["textPayload"] is not None:
                messages.append(ExternalMessage(headers=headers, text=result["textPayload"]))
            else:
                raise mapping_failed(
                    "Neither <bytePayload> nor <textPayload> were defined in the outgoing script"
                )
        return messages


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


_v8_loop: asyncio.AbstractEventLoop | None = None
_v8_loop_lock = threading.Lock()
# Every live isolate, held here so that Python's garbage collector never frees one: the collector may run on
# any thread, also the isolates' loop in the middle of a V8 call, and freeing an isolate there crashes V8.
# Isolates are freed only by _release_isolate, on their loop, between calls.
_isolates: dict[int, MiniRacer] = {}  # by a key never reused (unlike id())
_isolate_keys: dict[int, int] = {}  # id() of a live isolate -> its key
_next_key = itertools.count()


def _isolate_loop() -> asyncio.AbstractEventLoop:
    """The one asyncio loop, on a thread of its own, that every V8 isolate of this process belongs to."""
    global _v8_loop
    with _v8_loop_lock:
        if _v8_loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="v8-mappers", daemon=True).start()
            _v8_loop = loop
        return _v8_loop


def _new_isolate(owner: object) -> MiniRacer:
    """A V8 isolate bound to :func:`_isolate_loop`, released when ``owner`` is collected (or explicitly).

    MiniRacer runs a call with a time limit by scheduling it on the isolate's loop and waiting: on the
    server's own loop it would refuse the time limit. Calls block their caller for at most the time limit."""

    async def create() -> MiniRacer:
        return MiniRacer()

    racer = asyncio.run_coroutine_threadsafe(create(), _isolate_loop()).result()
    with _v8_loop_lock:
        key = next(_next_key)
        _isolates[key] = racer
        _isolate_keys[id(racer)] = key
    weakref.finalize(owner, _release_isolate_by_key, key)
    return racer


def _release_isolate(racer: MiniRacer) -> None:
    with _v8_loop_lock:
        key = _isolate_keys.get(id(racer))
    if key is not None:
        _release_isolate_by_key(key)


def _release_isolate_by_key(key: int) -> None:
    """Free an isolate on its loop thread, after the call it may be running; safe from any thread, and to
    call twice."""

    def close() -> None:
        with _v8_loop_lock:
            racer = _isolates.pop(key, None)
            if racer is not None:
                _isolate_keys.pop(id(racer), None)
        if racer is not None:
            racer.close()

    loop = _v8_loop
    if loop is not None and not loop.is_closed():
        loop.call_soon_threadsafe(close)

// Server-sent events over fetch(): EventSource cannot send an Authorization header,
// so the stream is read with a ReadableStream and parsed here (WHATWG SSE rules).

import { errorFrom, getKey } from "./api.js";

/** Incremental parser: feed() text chunks, onEvent({type, data, id}) per dispatched event. */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.type = "";
    this.data = [];
    this.lastEventId = "";
  }

  feed(chunk) {
    this.buffer += chunk;
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) return;
      // A lone \r at the end may be the first half of \r\n split across chunks.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) return;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      this.line(line);
    }
  }

  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return; // comment / keep-alive
    const colon = line.indexOf(":");
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") this.type = value;
    else if (name === "data") this.data.push(value);
    else if (name === "id" && !value.includes("\0")) this.lastEventId = value;
  }

  dispatch() {
    if (this.data.length > 0) {
      this.onEvent({ type: this.type || "message", data: this.data.join("\n"), id: this.lastEventId });
    }
    this.type = "";
    this.data = [];
  }
}

/**
 * Read one SSE response to its end; resolves when the server closes the stream.
 * lastEventId (when reconnecting) asks the server to skip the events up to it.
 */
export async function readEvents(path, { onEvent, signal, lastEventId = "" }) {
  const headers = { Authorization: `Bearer ${getKey()}`, Accept: "text/event-stream" };
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  const response = await fetch(`/v1${path}`, {
    headers,
    cache: "no-store",
    signal,
  });
  if (!response.ok) throw await errorFrom(response);
  const parser = new SseParser(onEvent);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      parser.feed(value);
    }
  } finally {
    reader.releaseLock();
  }
}

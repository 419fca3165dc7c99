// ChatGateway browser client: one dependency-free ES module, served by the gateway at
// GET /client.js (types at GET /client.d.ts). Wire protocol: docs/PROTOCOL.md; what a client
// must do on each close code, error and gap: docs/CLIENTS.md.
//
//   import { ChatClient } from "/client.js";
//   const chat = new ChatClient({ url: location.origin, token, getToken: refresh });
//   chat.on("message", (m) => show(m));
//   chat.on("state", (s) => badge(s.state, s.transport));
//   await chat.connect();
//   const ack = await chat.send("bob", { text: "hi" });
//
// What it does for you: WebSocket, or long-poll when a WebSocket cannot open (or when asked);
// reconnects with exponential backoff and full jitter; keeps unacked sends and resends them
// with the same client_msg_id (the gateway dedupes); tracks cur_max_seq (persisted through
// `storage`, localStorage by default) and syncs on (re)connect and on a seq gap, paging with
// `more`; reports `delivered` once messages were handed to your handlers; refreshes the token
// through `getToken` when the gateway says it is invalid or expired.

const DEFAULTS = {
  transport: "auto",
  backoffBaseMs: 500,
  backoffMaxMs: 30000,
  requestTimeoutMs: 15000,
  ackTimeoutMs: 15000,
  pollTimeoutMs: 25000,
  syncLimit: 500,
  maxPendingSends: 1000,
  deliveredDelayMs: 200,
  discover: false,
};

/** An error from the gateway (`code` from PROTOCOL.md section 3) or from the client itself. */
export class ChatError extends Error {
  constructor(code, message, extra = {}) {
    super(message || code);
    this.name = "ChatError";
    this.code = code;
    this.status = extra.status;
    this.retryAfterMs = extra.retryAfterMs;
    this.ref = extra.ref;
  }
}

/** Full jitter: a random delay in [0, min(max, base * 2^attempt)). */
export function backoffDelay(attempt, baseMs = DEFAULTS.backoffBaseMs, maxMs = DEFAULTS.backoffMaxMs) {
  const cap = Math.min(maxMs, baseMs * Math.pow(2, Math.min(attempt, 30)));
  return Math.floor(Math.random() * cap);
}

function randomId() {
  if (globalThis.crypto && typeof globalThis.crypto.randomUUID === "function") return globalThis.crypto.randomUUID();
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function localStorageHook() {
  try {
    const store = globalThis.localStorage;
    if (!store) return memoryStorage();
    return { get: (key) => store.getItem(key), set: (key, value) => store.setItem(key, value) };
  } catch (_) {
    return memoryStorage();
  }
}

function memoryStorage() {
  const map = new Map();
  return { get: (key) => (map.has(key) ? map.get(key) : null), set: (key, value) => map.set(key, value) };
}

/** `"bob"`, `"user:bob"`, `"group:g1"` or an address object → `{user}` / `{group}`. */
export function toAddress(to) {
  if (to && typeof to === "object") return to.group ? { group: String(to.group) } : { user: String(to.user) };
  const text = String(to);
  if (text.startsWith("group:")) return { group: text.slice(6) };
  if (text.startsWith("user:")) return { user: text.slice(5) };
  return { user: text };
}

/** Compares two decimal id strings (Snowflakes exceed 2^53) numerically. */
export function compareIds(a, b) {
  a = String(a); b = String(b);
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class ChatClient {
  /**
   * @param {object} options
   * @param {string} [options.url] the gateway's base URL (http(s)://host:port); default: this page's origin
   * @param {string} [options.token] a JWT
   * @param {() => Promise<string>|string} [options.getToken] returns a fresh JWT (called at connect without `token`, and when the gateway refuses the current one)
   * @param {"auto"|"websocket"|"longpoll"} [options.transport]
   * @param {boolean} [options.discover] in a cluster: before each (re)connect, ask `url` (the entry point) for `GET /v1/discover` and connect to the node it names; `url` itself when that fails
   * @param {string} [options.device] this device's id; default: one random id kept in `storage`
   * @param {{get(key: string): string|null, set(key: string, value: string): void}} [options.storage]
   */
  constructor(options = {}) {
    this.options = { ...DEFAULTS, ...options };
    const base = options.url || (globalThis.location ? globalThis.location.origin : "");
    this.baseURL = base.replace(/\/+$/, "").replace(/^ws(s?):/, "http$1:");
    this.entryURL = this.baseURL;
    this.token = options.token || null;
    this.storage = options.storage || localStorageHook();
    this.device = options.device || this._storedDevice();
    this.handlers = new Map();
    this.state = "idle";
    this.transport = null;
    this.user = null;
    this.hello = null;
    this.curMaxSeq = 0;
    this.pending = new Map(); // client_msg_id → {frame, resolve, reject, sentAt}, in send order
    this.requests = new Map(); // ref → {resolve, reject, timer}
    this.ackedSeqs = new Set(); // own sends' seqs above cur_max_seq (no message frame comes for them)
    this.presenceUsers = new Set();
    this.unsentReads = new Map();
    this.deliveredSupported = true;
    this.deliveredSent = 0;
    this.attempt = 0;
    this.refCounter = 0;
    this.connection = null;
    this.websocketRefused = false;
    this.syncing = null;
    this.resyncWanted = false;
    this.closedByUser = false;
  }

  // MARK: Events

  /** Adds a handler for `message`, `ack`, `presence`, `typing`, `receipt`, `state`, `error`, `sync`, `hello`. Returns a function that removes it. */
  on(event, handler) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event).add(handler);
    return () => this.off(event, handler);
  }

  off(event, handler) {
    const set = this.handlers.get(event);
    if (set) set.delete(handler);
  }

  _emit(event, value) {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        handler(value);
      } catch (error) {
        if (event !== "error") this._emit("error", error);
        else setTimeout(() => { throw error; });
      }
    }
  }

  _setState(state, extra = {}) {
    this.state = state;
    this._emit("state", { state, transport: this.transport, ...extra });
  }

  // MARK: Lifecycle

  /** Connects (and keeps reconnecting until `close()`); resolves with the `hello` frame of the first session. */
  connect() {
    if (this.closedByUser) return Promise.reject(new ChatError("closed", "the client was closed"));
    if (this._connected) return this._connected;
    this._connected = new Promise((resolve, reject) => {
      this._firstHello = { resolve, reject };
    });
    this._run();
    return this._connected;
  }

  /** Ends the session and stops reconnecting; unacked sends are rejected with `closed`. */
  close() {
    this.closedByUser = true;
    if (this._wake) this._wake();
    this._teardown(1000, "client closed");
    for (const [, entry] of this.pending) entry.reject(new ChatError("closed", "the client was closed"));
    this.pending.clear();
    this._failRequests(new ChatError("closed", "the client was closed"));
    if (this._firstHello) this._firstHello.reject(new ChatError("closed", "the client was closed"));
    this._setState("closed");
  }

  async _run() {
    while (!this.closedByUser) {
      let outcome;
      try {
        if (!this.token && this.options.getToken) this.token = await this.options.getToken();
        outcome = await this._session();
      } catch (error) {
        outcome = { retryAfterMs: error.retryAfterMs, reason: String(error.message || error), tokenRefused: error.code === "unauthorized" || error.code === "token_expired" };
      }
      if (this.closedByUser) break;
      if (outcome.fatal) {
        this._setState("closed", { reason: outcome.reason, code: outcome.code });
        this._emit("error", new ChatError(outcome.errorCode || "closed", outcome.reason));
        if (this._firstHello) this._firstHello.reject(new ChatError(outcome.errorCode || "closed", outcome.reason));
        this.closedByUser = true;
        break;
      }
      if (outcome.tokenRefused) {
        if (!this.options.getToken) {
          this._setState("closed", { reason: "token refused and no getToken to refresh it", code: 4001 });
          const error = new ChatError("unauthorized", "the gateway refused the token");
          this._emit("error", error);
          if (this._firstHello) this._firstHello.reject(error);
          this.closedByUser = true;
          break;
        }
        try {
          this.token = await this.options.getToken();
        } catch (error) {
          this._emit("error", error);
        }
      }
      let delay = outcome.immediate ? backoffDelay(0, this.options.backoffBaseMs, this.options.backoffMaxMs)
        : backoffDelay(this.attempt, this.options.backoffBaseMs, this.options.backoffMaxMs);
      if (outcome.retryAfterMs) delay = Math.max(delay, outcome.retryAfterMs);
      this.attempt += 1;
      this._setState("reconnecting", { delayMs: delay, attempt: this.attempt, reason: outcome.reason, code: outcome.code });
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, delay);
        this._wake = () => { clearTimeout(timer); resolve(); };
      });
      this._wake = null;
    }
  }

  /** Reconnects now (skipping the backoff wait), e.g. when the page comes back online. */
  reconnectNow() {
    if (this._wake) this._wake();
    else if (this.connection) this.connection.abort("reconnect requested");
  }

  /** One session on one transport; resolves with how it ended. */
  async _session() {
    if (this.options.discover) this.baseURL = await this._discover();
    const mode = this.options.transport;
    const useWebSocket = mode === "websocket" || (mode === "auto" && !this.websocketRefused && typeof WebSocket === "function");
    this._setState("connecting", { transport: useWebSocket ? "websocket" : "longpoll" });
    if (useWebSocket) {
      const result = await this._webSocketSession();
      if (result.neverOpened && mode === "auto") {
        // The WebSocket could not open: try long-poll; if that works, stay on it until close().
        const fallback = await this._longPollSession(true);
        if (!fallback.neverOpened) this.websocketRefused = true;
        return fallback;
      }
      return result;
    }
    return this._longPollSession(false);
  }

  /** The base URL of the node `GET /v1/discover` at the entry point names; the entry point when it cannot tell. */
  async _discover() {
    let timer = null;
    try {
      const controller = typeof AbortController === "function" ? new AbortController() : null;
      if (controller) timer = setTimeout(() => controller.abort(), this.options.requestTimeoutMs);
      const response = await fetch(this.entryURL + "/v1/discover", { cache: "no-store", signal: controller ? controller.signal : undefined });
      if (!response.ok) return this.entryURL;
      const node = await response.json();
      const named = typeof node.longpoll_url === "string" ? node.longpoll_url.replace(/\/v1\/lp\/?$/, "")
        : typeof node.ws_url === "string" ? node.ws_url.replace(/\/v1\/ws\/?$/, "").replace(/^ws(s?):/, "http$1:") : "";
      return /^https?:\/\/[^/]+$/.test(named) ? named : this.entryURL;
    } catch (_) {
      return this.entryURL;
    } finally {
      clearTimeout(timer);
    }
  }

  _teardown(code, reason) {
    const connection = this.connection;
    this.connection = null;
    if (connection) connection.stop(code, reason);
    clearTimeout(this._heartbeatTimer);
    clearTimeout(this._ackTimer);
  }

  // MARK: WebSocket

  _webSocketSession() {
    return new Promise((resolve) => {
      const url = this.baseURL.replace(/^http/, "ws") + "/v1/ws";
      let socket;
      try {
        socket = new WebSocket(url);
      } catch (error) {
        resolve({ neverOpened: true, reason: String(error) });
        return;
      }
      let opened = false;
      let greeted = false;
      let done = false;
      const finish = (outcome) => {
        if (done) return;
        done = true;
        if (this.connection === connection) this.connection = null;
        clearTimeout(this._heartbeatTimer);
        clearTimeout(this._ackTimer);
        clearTimeout(helloTimer);
        this._failRequests(new ChatError("unavailable", "connection lost"));
        resolve(outcome);
      };
      const connection = {
        kind: "websocket",
        send: (frame) => {
          if (socket.readyState !== WebSocket.OPEN) return false;
          socket.send(JSON.stringify(frame));
          this._lastSentAt = Date.now();
          return true;
        },
        stop: (code, reason) => {
          try { socket.close(code || 1000, reason || ""); } catch (_) { /* already closing */ }
          finish({ reason: reason || "closed", code });
        },
        abort: (reason) => {
          try { socket.close(1000, reason); } catch (_) { /* already closing */ }
          finish({ reason, immediate: true });
        },
      };
      this.connection = connection;
      const helloTimer = setTimeout(() => {
        if (!greeted) connection.abort("no hello from the gateway");
      }, this.options.requestTimeoutMs);
      socket.onopen = () => {
        opened = true;
        socket.send(JSON.stringify({ type: "auth", token: this.token, device: this.device }));
      };
      socket.onmessage = (event) => {
        let frame;
        try {
          frame = JSON.parse(event.data);
        } catch (_) {
          return;
        }
        if (frame.type === "hello") {
          greeted = true;
          clearTimeout(helloTimer);
          this._onHello(frame, "websocket");
          return;
        }
        if (!greeted && frame.type === "error") {
          this._authError = frame;
          return;
        }
        this._onFrame(frame);
      };
      socket.onclose = (event) => {
        if (!opened) {
          finish({ neverOpened: true, reason: "the WebSocket could not open" });
          return;
        }
        finish(this._closeOutcome(event.code, event.reason, greeted));
      };
      socket.onerror = () => { /* onclose follows with the code */ };
    });
  }

  /** What to do after a close code (docs/CLIENTS.md). */
  _closeOutcome(code, reason, greeted) {
    const auth = this._authError;
    this._authError = null;
    switch (code) {
      case 1000:
        return { reason: reason || "closed by the gateway", code };
      case 1001: // going away: reconnect at once (jittered), sync on the new session
        return { reason: reason || "the gateway is going away", code, immediate: true };
      case 1008: // policy (origin refused or repeated rate limits): back off
        return { reason: reason || "policy violation", code, retryAfterMs: 5000 };
      case 1009: // a frame too large: the offending send was refused at send(); reconnect
        return { reason: reason || "frame too large", code };
      case 4000: // repeated bad frames: a bug in this client; back off
        return { reason: reason || "bad frames", code, retryAfterMs: 5000 };
      case 4001: // unauthorized: refresh the token (getToken) and reconnect
        return { reason: (auth && auth.message) || reason || "unauthorized", code, tokenRefused: true };
      case 4008: // slow consumer: nothing is lost (inbox); reconnect at once and sync
        return { reason: reason || "slow consumer", code, immediate: true };
      default:
        if (!greeted && auth) return { reason: auth.message, code, tokenRefused: auth.code === "unauthorized" || auth.code === "token_expired" };
        return { reason: reason || "connection lost", code };
    }
  }

  // MARK: Long-poll

  async _longPollSession(isFallback) {
    let opened;
    try {
      opened = await this._http("POST", "/v1/lp/open", { body: { device: this.device }, retryToken: false });
    } catch (error) {
      if (error.code === "unauthorized" || error.code === "token_expired") return { tokenRefused: true, reason: error.message };
      return { neverOpened: isFallback, reason: error.message, retryAfterMs: error.retryAfterMs };
    }
    const session = opened.session;
    let done = false;
    let abort = null;
    let finishResolve;
    const finished = new Promise((resolve) => { finishResolve = resolve; });
    const finish = (outcome) => {
      if (done) return;
      done = true;
      if (this.connection === connection) this.connection = null;
      clearTimeout(this._heartbeatTimer);
      clearTimeout(this._ackTimer);
      if (abort) abort.abort();
      this._failRequests(new ChatError("unavailable", "connection lost"));
      finishResolve(outcome);
    };
    const query = "?session=" + encodeURIComponent(session);
    // Sends go out one request at a time, in order; frames queued meanwhile travel together.
    let outbox = [];
    let flushing = false;
    const flush = async () => {
      if (flushing || done) return;
      flushing = true;
      try {
        while (outbox.length && !done) {
          const batch = outbox.splice(0, 100);
          let reply;
          try {
            reply = await this._http("POST", "/v1/lp/send" + query, { body: batch, retryToken: false });
          } catch (error) {
            outbox = batch.concat(outbox);
            finish(this._httpOutcome(error));
            return;
          }
          for (const frame of reply.frames || []) this._onFrame(frame);
        }
      } finally {
        flushing = false;
      }
    };
    const connection = {
      kind: "longpoll",
      send: (frame) => {
        if (done) return false;
        outbox.push(frame);
        this._lastSentAt = Date.now();
        flush();
        return true;
      },
      stop: (_code, reason) => {
        if (done) return;
        this._http("POST", "/v1/lp/close" + query, { retryToken: false, expectEmpty: true }).catch(() => {});
        finish({ reason: reason || "closed" });
      },
      abort: (reason) => finish({ reason, immediate: true }),
    };
    this.connection = connection;
    this._onHello(opened.hello, "longpoll");
    (async () => {
      let unavailable = 0;
      while (!done) {
        abort = typeof AbortController === "function" ? new AbortController() : null;
        let reply;
        try {
          // `ack`: what this client holds, so a node that takes the session over (its node died)
          // delivers from there on.
          reply = await this._http("GET", "/v1/lp/poll" + query + "&timeout_ms=" + this.options.pollTimeoutMs + "&ack=" + this.curMaxSeq, {
            retryToken: false, signal: abort ? abort.signal : undefined, timeoutMs: this.options.pollTimeoutMs + 10000,
          });
        } catch (error) {
          // 503 on a poll: in a cluster, the node holding the session died and another takes it
          // over once its lease ran out; keep the session (a few tries), then start over.
          if (!done && error.status === 503 && unavailable < 10) {
            unavailable += 1;
            await sleep(Math.min(error.retryAfterMs || 1000, 5000));
            continue;
          }
          if (!done) finish(this._httpOutcome(error));
          return;
        }
        unavailable = 0;
        if (done) return;
        for (const frame of reply.frames || []) this._onFrame(frame);
      }
    })();
    return finished;
  }

  _httpOutcome(error) {
    if (error.code === "unauthorized" || error.code === "token_expired") return { tokenRefused: true, reason: error.message };
    if (error.status === 404) return { reason: "long-poll session expired", immediate: true };
    return { reason: error.message, retryAfterMs: error.retryAfterMs };
  }

  // MARK: Session start

  _onHello(hello, transport) {
    this.hello = hello;
    this.transport = transport;
    this.user = hello.user;
    this.attempt = 0;
    const stored = Number(this.storage.get(this._seqKey()) || 0);
    this.curMaxSeq = Number.isFinite(stored) ? stored : 0;
    if (typeof hello.inbox_seq === "number" && hello.inbox_seq < this.curMaxSeq) {
      // The gateway's inbox is behind what we saw (a store reset): start over.
      this.curMaxSeq = 0;
      this._storeSeq();
    }
    this._emit("hello", hello);
    this._setState("open", { transport });
    if (this._firstHello) {
      this._firstHello.resolve(hello);
      this._firstHello = null;
    }
    this._scheduleHeartbeat();
    // Resend what was never acked, in order, with the same client_msg_id: the gateway dedupes.
    for (const [, entry] of this.pending) this._transmit(entry);
    for (const [key, upTo] of this.unsentReads) this._sendFrame({ type: "read", with: JSON.parse(key), up_to: upTo });
    this.unsentReads.clear();
    if (this.presenceUsers.size) this._request({ type: "presence.subscribe", users: [...this.presenceUsers] }).catch(() => {});
    this.sync().catch(() => {});
  }

  _seqKey() {
    return "chatgateway.cur_max_seq." + this.user;
  }

  _storedDevice() {
    const key = "chatgateway.device";
    let device = this.storage.get(key);
    if (!device) {
      device = "web-" + randomId().replace(/-/g, "").slice(0, 16);
      this.storage.set(key, device);
    }
    return device;
  }

  _storeSeq() {
    try {
      this.storage.set(this._seqKey(), String(this.curMaxSeq));
    } catch (_) { /* storage full: the next sync starts earlier, which is harmless */ }
  }

  _scheduleHeartbeat() {
    clearTimeout(this._heartbeatTimer);
    const every = Math.max(1000, Math.floor(((this.hello && this.hello.heartbeat_ms) || 5000) * 0.8));
    const tick = () => {
      if (!this.connection) return;
      // Long-poll's open poll keeps the session alive; a WebSocket needs a frame.
      if (this.connection.kind === "websocket" && Date.now() - (this._lastSentAt || 0) >= every) this._sendFrame({ type: "ping" });
      this._checkAcks();
      this._heartbeatTimer = setTimeout(tick, every);
    };
    this._heartbeatTimer = setTimeout(tick, every);
  }

  /** A send unacked for ackTimeoutMs on an open connection means a dead connection: start over. */
  _checkAcks() {
    const now = Date.now();
    for (const [, entry] of this.pending) {
      if (entry.sentAt && now - entry.sentAt > this.options.ackTimeoutMs && this.connection) {
        this.connection.abort("no ack within " + this.options.ackTimeoutMs + " ms");
        return;
      }
    }
  }

  // MARK: Frames in

  _onFrame(frame) {
    switch (frame.type) {
      case "message":
        this._onMessages([frame], false);
        break;
      case "ack":
        this._onAck(frame);
        break;
      case "error":
        this._onError(frame);
        break;
      case "presence":
      case "typing":
      case "receipt":
        if (frame.ref && this.requests.has(frame.ref)) this._resolveRequest(frame);
        this._emit(frame.type, frame);
        break;
      case "sync":
      case "history":
      case "pong":
        this._resolveRequest(frame);
        break;
      default:
        break;
    }
  }

  _resolveRequest(frame) {
    const request = frame.ref && this.requests.get(frame.ref);
    if (!request) return;
    this.requests.delete(frame.ref);
    clearTimeout(request.timer);
    request.resolve(frame);
  }

  _onAck(ack) {
    const entry = this.pending.get(ack.client_msg_id);
    if (typeof ack.seq === "number" && ack.seq > this.curMaxSeq) {
      this.ackedSeqs.add(ack.seq);
      if (this.ackedSeqs.size > 10000) this.ackedSeqs.clear(); // bounded; a later sync repairs
      this._advance();
      if (ack.seq > this.curMaxSeq + 1 && !this.ackedSeqs.has(this.curMaxSeq + 1)) this._gap();
    }
    if (entry) {
      this.pending.delete(ack.client_msg_id);
      entry.resolve(ack);
    }
    this._emit("ack", ack);
  }

  _onError(frame) {
    const error = new ChatError(frame.code, frame.message, { retryAfterMs: frame.retry_after_ms, ref: frame.ref });
    if (frame.ref && frame.ref.startsWith("dlv-")) {
      // A gateway that does not know `delivered` answers bad_frame: stop sending it.
      if (frame.code === "bad_frame") this.deliveredSupported = false;
      return;
    }
    const entry = frame.ref && this.pending.get(frame.ref);
    if (entry) {
      if (frame.code === "rate_limited" || frame.code === "unavailable") {
        // Kept: resent with the same client_msg_id after the hint.
        entry.sentAt = 0;
        setTimeout(() => { if (this.pending.get(frame.ref) === entry) this._transmit(entry); }, frame.retry_after_ms || 1000);
        return;
      }
      this.pending.delete(frame.ref);
      entry.reject(error);
      return;
    }
    const request = frame.ref && this.requests.get(frame.ref);
    if (request) {
      this.requests.delete(frame.ref);
      clearTimeout(request.timer);
      request.reject(error);
      return;
    }
    if (frame.code === "token_expired" && this.connection && this.connection.kind === "websocket" && this.options.getToken) {
      // The session stays open for auth_timeout_ms: authenticate again in place (a new hello follows).
      const connection = this.connection;
      Promise.resolve(this.options.getToken()).then((token) => {
        this.token = token;
        if (this.connection === connection) this._sendFrame({ type: "auth", token, device: this.device });
      }, (error) => this._emit("error", error));
    } else if (frame.code === "token_expired" || frame.code === "unauthorized") {
      this.token = null;
      if (this.connection) this.connection.abort(frame.message);
    }
    this._emit("error", error);
  }

  /** Hands messages in seq order to the app; a gap starts a sync. */
  _onMessages(messages, fromSync) {
    let handed = false;
    for (const message of messages) {
      const seq = message.seq;
      if (typeof seq !== "number") {
        this._emit("message", message);
        continue;
      }
      if (seq <= this.curMaxSeq) continue; // seen already
      if (seq !== this.curMaxSeq + 1) {
        if (!fromSync) this._gap();
        break;
      }
      this.curMaxSeq = seq;
      if (!this.ackedSeqs.delete(seq)) {
        this._emit("message", message);
        handed = true;
      }
      this._advance();
    }
    this._storeSeq();
    if (handed) this._scheduleDelivered();
  }

  _advance() {
    while (this.ackedSeqs.delete(this.curMaxSeq + 1)) this.curMaxSeq += 1;
    this._storeSeq();
  }

  _gap() {
    if (this.syncing) this.resyncWanted = true;
    else this.sync().catch(() => {});
  }

  _scheduleDelivered() {
    if (!this.deliveredSupported || this._deliveredTimer) return;
    this._deliveredTimer = setTimeout(() => {
      this._deliveredTimer = null;
      if (this.curMaxSeq > this.deliveredSent && this.deliveredSupported) {
        if (this._sendFrame({ type: "delivered", seq: this.curMaxSeq, ref: "dlv-" + ++this.refCounter })) this.deliveredSent = this.curMaxSeq;
      }
    }, this.options.deliveredDelayMs);
  }

  // MARK: Frames out

  _sendFrame(frame) {
    return this.connection ? this.connection.send(frame) : false;
  }

  _request(frame, timeoutMs = this.options.requestTimeoutMs) {
    const ref = frame.ref || "r" + ++this.refCounter;
    return new Promise((resolve, reject) => {
      if (!this.connection) {
        reject(new ChatError("unavailable", "not connected"));
        return;
      }
      const timer = setTimeout(() => {
        this.requests.delete(ref);
        reject(new ChatError("unavailable", "no reply within " + timeoutMs + " ms"));
      }, timeoutMs);
      this.requests.set(ref, { resolve, reject, timer });
      if (!this._sendFrame({ ...frame, ref })) {
        clearTimeout(timer);
        this.requests.delete(ref);
        reject(new ChatError("unavailable", "not connected"));
      }
    });
  }

  _failRequests(error) {
    for (const [, request] of this.requests) {
      clearTimeout(request.timer);
      request.reject(error);
    }
    this.requests.clear();
  }

  _transmit(entry) {
    entry.sentAt = Date.now();
    if (!this._sendFrame(entry.frame)) entry.sentAt = 0;
  }

  // MARK: API

  /**
   * Sends a message; resolves with its `ack` once it is durable. Kept across reconnects and
   * resent with the same `client_msg_id` until acked; rejects on a refusal (`forbidden`,
   * `too_large`, ...) or `close()`.
   */
  send(to, body, options = {}) {
    if (this.closedByUser) return Promise.reject(new ChatError("closed", "the client was closed"));
    if (this.pending.size >= this.options.maxPendingSends) {
      return Promise.reject(new ChatError("rate_limited", "too many unacked sends (" + this.pending.size + ")"));
    }
    const clientMsgId = options.clientMsgId || randomId();
    const frame = { type: "send", ref: clientMsgId, to: toAddress(to), body, client_msg_id: clientMsgId };
    if (options.attachments) frame.attachments = options.attachments;
    const limit = this.hello && this.hello.max_frame_bytes;
    if (limit && new TextEncoder().encode(JSON.stringify(frame)).length > limit) {
      return Promise.reject(new ChatError("too_large", "the frame is larger than the gateway's " + limit + " bytes"));
    }
    return new Promise((resolve, reject) => {
      const entry = { frame, resolve, reject, sentAt: 0 };
      this.pending.set(clientMsgId, entry);
      this._transmit(entry);
    });
  }

  /** Catches up from cur_max_seq, page by page; message events fire for what was missed. */
  sync() {
    if (this.syncing) {
      this.resyncWanted = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      try {
        do {
          this.resyncWanted = false;
          for (;;) {
            const reply = await this._request({ type: "sync", since: this.curMaxSeq, limit: this.options.syncLimit });
            this._onMessages(reply.messages || [], true);
            if (!reply.more) break;
          }
        } while (this.resyncWanted && this.connection);
        this._emit("sync", { curMaxSeq: this.curMaxSeq });
        return this.curMaxSeq;
      } finally {
        this.syncing = null;
      }
    })();
    return this.syncing;
  }

  /** A page of a conversation's history, newest first: `{messages, more}`. */
  history(withAddress, { before, limit } = {}) {
    const frame = { type: "history", with: toAddress(withAddress) };
    if (before) frame.before = String(before);
    if (limit) frame.limit = limit;
    return this._request(frame);
  }

  /** Marks a conversation read up to a message id; the other members get a `receipt`. */
  read(withAddress, upTo) {
    const address = toAddress(withAddress);
    if (!this._sendFrame({ type: "read", with: address, up_to: String(upTo) })) this.unsentReads.set(JSON.stringify(address), String(upTo));
  }

  /** Tells the conversation this user is typing (ephemeral; send it at most every few seconds). */
  typing(to) {
    this._sendFrame({ type: "typing", to: toAddress(to) });
  }

  /** Subscribes to presence (kept across reconnects); resolves with the current states. */
  subscribePresence(users) {
    for (const user of users) this.presenceUsers.add(user);
    return this._request({ type: "presence.subscribe", users });
  }

  unsubscribePresence(users) {
    for (const user of users) this.presenceUsers.delete(user);
    this._sendFrame({ type: "presence.unsubscribe", users });
  }

  /** Uploads a Blob/File (`POST /v1/media`): `{media_id, size, content_type, thumbnail?, ...}`. */
  upload(blob, { name, contentType } = {}) {
    const type = contentType || blob.type || "application/octet-stream";
    const path = "/v1/media" + (name ? "?name=" + encodeURIComponent(name) : "");
    return this._http("POST", path, { raw: blob, contentType: type });
  }

  /** Downloads media (an attachment's `url` or `thumbnail_url`, or a media id) as a Blob. */
  async download(urlOrId) {
    const path = /^(https?:)?\//.test(urlOrId) ? urlOrId : "/v1/media/" + encodeURIComponent(urlOrId);
    return this._http("GET", path, { blob: true });
  }

  /** Calls the HTTP API (PROTOCOL.md section 5) with the token; resolves with the JSON body. */
  api(method, path, body) {
    return this._http(method, path, body === undefined ? {} : { body });
  }

  createGroup({ id, name, members }) {
    return this.api("POST", "/v1/groups", { id, name, members });
  }

  async groups() {
    return (await this.api("GET", "/v1/groups")).groups || [];
  }

  async _http(method, path, { body, raw, contentType, blob, retryToken = true, signal, timeoutMs, expectEmpty } = {}) {
    const url = /^https?:/.test(path) ? path : this.baseURL + path;
    for (let tries = 0; ; tries++) {
      const headers = { Authorization: "Bearer " + this.token };
      let payload;
      if (raw !== undefined) {
        payload = raw;
        headers["Content-Type"] = contentType;
      } else if (body !== undefined) {
        payload = JSON.stringify(body);
        headers["Content-Type"] = "application/json";
      }
      let timer = null;
      let controller = null;
      if (!signal && typeof AbortController === "function") {
        controller = new AbortController();
        timer = setTimeout(() => controller.abort(), timeoutMs || this.options.requestTimeoutMs);
      }
      let response;
      try {
        response = await fetch(url, { method, headers, body: payload, signal: signal || (controller && controller.signal), cache: "no-store" });
      } catch (error) {
        throw new ChatError("unavailable", "the gateway cannot be reached (" + (error.message || error) + ")");
      } finally {
        clearTimeout(timer);
      }
      if (response.ok) {
        if (blob) return response.blob();
        if (expectEmpty || response.status === 204) return null;
        return response.json();
      }
      let detail = {};
      try {
        detail = (await response.json()).error || {};
      } catch (_) { /* not JSON */ }
      const retryAfter = Number(response.headers.get("Retry-After"));
      const error = new ChatError(detail.code || "http_" + response.status, detail.message || response.statusText, {
        status: response.status, retryAfterMs: retryAfter > 0 ? retryAfter * 1000 : detail.retry_after_ms,
      });
      if (response.status === 401 && retryToken && tries === 0 && this.options.getToken) {
        this.token = await this.options.getToken();
        continue;
      }
      throw error;
    }
  }
}

export default ChatClient;

/*!
 * switchboard.js — the browser client for Switchboard. No dependencies.
 *
 * One file for every way of loading it:
 *   <script src="/switchboard.js"></script>          → window.Switchboard
 *   <script type="module">
 *     import "/switchboard.js";                       // runs it for its side effect…
 *     const { Switchboard } = globalThis;             // …which defines globalThis.Switchboard
 *   </script>
 *   const { Switchboard } = require("./switchboard.js")   (CommonJS, for tests and bundlers)
 * (A file with `export` statements is a syntax error as a classic script, so it has none.)
 *
 *   const client = new Switchboard();                 // same origin; {url, token} for others
 *   client.on("state", (s) => console.log(s));
 *   const sub = client.subscribe("chat:lobby", (data, msg) => console.log(msg.offset, data));
 *   await client.publish("chat:lobby", { text: "hi" });  // → {epoch, offset}
 *   client.collection("stocks").live((records, change) => render(records));
 *
 * Transport: a WebSocket to /v1/ws; when it cannot connect (never welcomed after
 * `fallbackAfter` attempts while the HTTP server answers) it falls back to Server-Sent
 * Events (/v1/sse) for receiving and REST for publish, history and presence.
 * Delivery: every channel resumes from the last message seen (`since`), on every
 * reconnect, and duplicates are dropped by offset, so a reconnect loses nothing.
 */
(function (root) {
  "use strict";

  /** @typedef {{epoch: string, offset: number}} Position */
  /** @typedef {{type: "message", channel: string, epoch: string, offset: number, data: any}} ChannelMessage */
  /** @typedef {{client: string, user: (string|null), info: any}} Member */
  /** @typedef {"connecting"|"connected"|"reconnecting"|"disconnected"} ConnectionState */
  /** @typedef {{id: string, version: number, created_at: string, updated_at: string, data: Object<string, any>}} RecordJSON */
  /**
   * @typedef {Object} ClientOptions
   * @property {string} [url] Base http(s) URL of the server; default: this page's origin.
   * @property {string|(() => (string|null|Promise<string|null>))|null} [token] API key or JWT, or a function giving one before each connect.
   * @property {number} [timeout] Milliseconds before a command's promise rejects with code "timeout" (default 10000).
   * @property {Array<"websocket"|"sse">} [transports] Default ["websocket", "sse"].
   * @property {number} [fallbackAfter] Failed WebSocket attempts (never welcomed) before trying SSE (default 3).
   * @property {number} [minBackoff] First reconnect delay in ms (default 500).
   * @property {number} [maxBackoff] Largest reconnect delay in ms (default 15000).
   * @property {number} [maxMessageBytes] Frames larger than this are refused locally (default 65536).
   * @property {number} [connectTimeout] A WebSocket not welcomed within this many ms counts as failed (default 10000).
   * @property {boolean} [autoConnect] Connect on construction (default true).
   */
  /**
   * @typedef {Object} SubscribeOptions
   * @property {boolean} [presence] Ask for join/leave pushes (namespaces with presence).
   * @property {Position} [since] Resume after this position (e.g. a history result's).
   * @property {(member: Member) => void} [onJoin]
   * @property {(member: Member) => void} [onLeave]
   * @property {(info: {channel: string, epoch: string, offset: number, recovered: boolean}) => void} [onSubscribed] After every (re)subscribe the server confirms.
   * @property {(info: {channel: string, epoch: string, offset: number}) => void} [onReset] When the server could not resume (history pruned or reset): reload state.
   * @property {(error: SwitchboardError) => void} [onError]
   */

  var hasWindow = typeof window !== "undefined" && typeof window.addEventListener === "function";

  /** An error with a machine-readable `code` (a server error code, "timeout", "closed", "network", "http_NNN"). */
  class SwitchboardError extends Error {
    /**
     * @param {string} code
     * @param {string} message
     * @param {{temporary?: boolean, status?: number, closeCode?: number}} [extra]
     */
    constructor(code, message, extra) {
      super(message || code);
      this.name = "SwitchboardError";
      /** @type {string} */ this.code = code;
      /** @type {boolean} */ this.temporary = !!(extra && extra.temporary);
      /** @type {number|undefined} */ this.status = extra && extra.status;
      /** @type {number|undefined} */ this.closeCode = extra && extra.closeCode;
    }
  }

  /** Minimal event emitter whose listeners can never throw into the caller. */
  class Emitter {
    constructor() {
      /** @type {Map<string, Set<Function>>} */
      this._listeners = new Map();
    }
    /**
     * @param {string} event
     * @param {Function} fn
     * @returns {() => void} a function that removes the listener
     */
    on(event, fn) {
      if (!this._listeners.has(event)) this._listeners.set(event, new Set());
      this._listeners.get(event).add(fn);
      return () => this.off(event, fn);
    }
    /** @param {string} event @param {Function} fn */
    off(event, fn) {
      var set = this._listeners.get(event);
      if (set) set.delete(fn);
    }
    /** @param {string} event @param {...any} args */
    emit(event) {
      var args = Array.prototype.slice.call(arguments, 1);
      var set = this._listeners.get(event);
      if (!set || set.size === 0) return false;
      for (var fn of Array.from(set)) {
        try {
          fn.apply(null, args);
        } catch (e) {
          if (event !== "error") this._reportError(e);
          else if (typeof console !== "undefined") console.warn("switchboard: an error listener threw", e);
        }
      }
      return true;
    }
    /** @param {any} e */
    _reportError(e) {
      if (!this.emit("error", e) && typeof console !== "undefined") console.warn("switchboard:", e);
    }
  }

  function randomKey() {
    var bytes = new Uint8Array(12);
    if (root.crypto && root.crypto.getRandomValues) root.crypto.getRandomValues(bytes);
    else for (var i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  /** @param {Position} p */
  function positionText(p) {
    return p.epoch + ":" + p.offset;
  }

  /** @param {any} body */
  function problemError(body, status) {
    var code = (body && body.code) || "http_" + status;
    var detail = (body && (body.detail || body.title)) || "HTTP " + status;
    return new SwitchboardError(code, detail, { status: status, temporary: status === 429 || status >= 500 });
  }

  /**
   * One subscriber's handle on a channel. Several handles on one channel share one
   * server subscription.
   */
  class Subscription extends Emitter {
    /**
     * @param {Switchboard} client
     * @param {string} channel
     * @param {(data: any, message: ChannelMessage) => void} onMessage
     * @param {SubscribeOptions} options
     */
    constructor(client, channel, onMessage, options) {
      super();
      this.client = client;
      this.channel = channel;
      this.onMessage = onMessage;
      this.options = options || {};
      this.active = true;
      /** @type {SwitchboardError|null} */ this.error = null;
      var self = this;
      /** Resolves with the first confirmed subscribe, rejects if the server refuses it. @type {Promise<{channel: string, epoch: string, offset: number, recovered: boolean}>} */
      this.ready = new Promise(function (resolve, reject) {
        self._resolveReady = resolve;
        self._rejectReady = reject;
      });
      this.ready.catch(function () {}); // a refusal is reported through "error", never unhandled
    }
    /** The last position delivered on this channel. @returns {Position|null} */
    get position() {
      var entry = this.client._channels.get(this.channel);
      return entry && entry.position ? { epoch: entry.position.epoch, offset: entry.position.offset } : null;
    }
    /** Stops delivery to this handle (the server subscription ends with its last handle). */
    unsubscribe() {
      if (!this.active) return;
      this.active = false;
      this.client._removeSubscription(this);
    }
    /** @param {{since?: Position, limit?: number}} [options] */
    history(options) {
      return this.client.history(this.channel, options);
    }
    /** @returns {Promise<Member[]>} */
    presence() {
      return this.client.presence(this.channel);
    }
  }

  /**
   * The client. Events: "state" (ConnectionState, detail), "error" (SwitchboardError),
   * "welcome" ({client, heartbeat, version}), "transport" ("websocket"|"sse").
   */
  class Switchboard extends Emitter {
    /** @param {ClientOptions} [options] */
    constructor(options) {
      super();
      options = options || {};
      var base = options.url || (root.location ? root.location.origin : null);
      if (!base) throw new SwitchboardError("bad_request", "Switchboard needs {url} outside a page");
      /** Base http(s) URL, without a trailing slash. */
      this.url = String(base).replace(/\/+$/, "");
      this.token = options.token || null;
      this.timeout = options.timeout || 10000;
      this.transports = options.transports || ["websocket", "sse"];
      this.fallbackAfter = options.fallbackAfter || 3;
      this.minBackoff = options.minBackoff || 500;
      this.maxBackoff = options.maxBackoff || 15000;
      this.maxMessageBytes = options.maxMessageBytes || 65536;
      this.connectTimeout = options.connectTimeout || 10000;
      /** @type {ConnectionState} */ this.state = "disconnected";
      /** The server's id for this connection (the welcome's `client`), or null. @type {string|null} */
      this.clientId = null;
      /** @type {"websocket"|"sse"|null} */
      this.transport = this.transports[0] === "sse" ? "sse" : "websocket";
      this.heartbeat = 25;

      /** @type {Map<string, any>} channel → shared state */
      this._channels = new Map();
      /** @type {Map<number, any>} command id → pending command */
      this._pending = new Map();
      this._nextId = 1;
      /** @type {WebSocket|null} */ this._ws = null;
      /** @type {EventSource|null} */ this._es = null;
      this._welcomed = false;
      this._everWelcomed = false;
      this._failures = 0; // consecutive WebSocket attempts that were never welcomed
      this._attempt = 0; // for the backoff
      this._timer = null;
      this._watchdog = null;
      this._lastFrame = 0;
      this._openedAt = 0;
      this._closed = true;
      this._stopped = false;
      this._sseReopen = null;
      this._opening = false;

      var self = this;
      if (hasWindow) {
        window.addEventListener("online", function () {
          if (!self._closed && self.state === "reconnecting" && self._timer) self._reconnectNow();
        });
      }
      if (options.autoConnect !== false) {
        Promise.resolve().then(function () {
          if (self._closed && !self._stopped) self.connect();
        });
      }
    }

    // MARK: public API

    /** Opens the connection (done automatically unless autoConnect is false). */
    connect() {
      this._closed = false;
      this._stopped = false;
      if (this._ws || this._es || this._timer || this._opening) return;
      this._setState(this._everWelcomed ? "reconnecting" : "connecting");
      this._open();
    }

    /** Closes the connection for good; pending commands reject with code "closed". */
    close() {
      this._closed = true;
      this._stopped = true;
      this._clearTimer();
      this._teardownSocket(1000, "client closed");
      this._teardownSSE();
      for (var [id, cmd] of Array.from(this._pending)) {
        this._pending.delete(id);
        this._settle(cmd, new SwitchboardError("closed", "the client was closed"));
      }
      this._setState("disconnected");
    }

    /**
     * Subscribes to a channel. Messages arrive in order, exactly once, across reconnects.
     * @param {string} channel
     * @param {(data: any, message: ChannelMessage) => void} onMessage
     * @param {SubscribeOptions} [options]
     * @returns {Subscription}
     */
    subscribe(channel, onMessage, options) {
      options = options || {};
      var sub = new Subscription(this, channel, onMessage, options);
      var entry = this._channels.get(channel);
      if (!entry) {
        entry = {
          channel: channel,
          subs: new Set(),
          presence: !!options.presence,
          position: options.since ? { epoch: options.since.epoch, offset: Number(options.since.offset) } : null,
          confirmed: false,
          wanted: false, // a subscribe command is in flight for the current connection
          buffer: null, // messages held while an SSE gap is filled from history
          generation: 0,
        };
        this._channels.set(channel, entry);
        entry.subs.add(sub);
        this._sendSubscribe(entry);
        if (this.transport === "sse" && !this._closed) this._scheduleSSEReopen();
      } else {
        entry.subs.add(sub);
        if (options.presence && !entry.presence) {
          entry.presence = true;
          if (this._wsReady()) {
            // Resubscribe with presence on, resuming where this channel is.
            entry.confirmed = false;
            this._send({ op: "unsubscribe", channel: channel }, true);
            this._sendSubscribe(entry);
          }
        } else if (entry.confirmed && entry.lastInfo) {
          var info = entry.lastInfo;
          sub._resolveReady(info);
          Promise.resolve().then(function () {
            if (sub.active && sub.options.onSubscribed) sub.client._safe(sub.options.onSubscribed, info);
          });
        }
      }
      return sub;
    }

    /**
     * Publishes on a channel. Retried across reconnects with an idempotency key, so it
     * is published at most once. Resolves with the message's position.
     * @param {string} channel
     * @param {any} data
     * @param {{timeout?: number, idempotencyKey?: string}} [options]
     * @returns {Promise<Position>}
     */
    publish(channel, data, options) {
      options = options || {};
      return this._command("publish", { channel: channel, data: data, idempotency_key: options.idempotencyKey || randomKey() }, options);
    }

    /**
     * A channel's history: without `since` the latest `limit` messages, with it the first
     * `limit` after it.
     * @param {string} channel
     * @param {{since?: Position, limit?: number, timeout?: number}} [options]
     * @returns {Promise<{messages: ChannelMessage[], epoch: string, offset: number, recovered?: boolean}>}
     */
    history(channel, options) {
      options = options || {};
      var fields = { channel: channel };
      if (options.since) fields.since = { epoch: options.since.epoch, offset: Number(options.since.offset) };
      if (options.limit) fields.limit = options.limit;
      return this._command("history", fields, options);
    }

    /**
     * Who is subscribed to a channel (namespaces with presence).
     * @param {string} channel
     * @returns {Promise<Member[]>}
     */
    presence(channel) {
      return this._command("presence", { channel: channel }, {}).then(function (r) {
        return r.members || [];
      });
    }

    /** @returns {Promise<{}>} */
    ping() {
      return this._command("ping", {}, {});
    }

    /**
     * Sends any protocol command and resolves with its result.
     * @param {string} op
     * @param {Object<string, any>} [fields]
     * @param {{timeout?: number}} [options]
     */
    request(op, fields, options) {
      return this._command(op, fields || {}, options || {});
    }

    /**
     * Replaces the token: sent as `refresh` on an open WebSocket (same user), used by
     * every later connect and REST call.
     * @param {string|null} token
     */
    setToken(token) {
      this.token = token;
      if (this._wsReady() && token) {
        var self = this;
        this._command("refresh", { token: token }, {}).catch(function (e) {
          self._reportError(e);
        });
      } else if (this._es) {
        this._reopenSSE();
      }
    }

    /**
     * A REST call to the server with this client's credential. Resolves with the JSON
     * body (null for 204), rejects with a SwitchboardError carrying the problem's `code`.
     * @param {string} method
     * @param {string} path e.g. "/v1/collections/stocks"
     * @param {any} [body]
     * @param {{headers?: Object<string, string>, timeout?: number}} [options]
     */
    async rest(method, path, body, options) {
      options = options || {};
      var headers = Object.assign({ Accept: "application/json" }, options.headers || {});
      var token = await this._token();
      if (token && !headers.Authorization) headers.Authorization = "Bearer " + token;
      var init = { method: method, headers: headers, cache: "no-store" };
      if (body !== undefined) {
        if (!headers["Content-Type"]) headers["Content-Type"] = "application/json";
        init.body = typeof body === "string" ? body : JSON.stringify(body);
      }
      var controller = typeof AbortController !== "undefined" ? new AbortController() : null;
      if (controller) init.signal = controller.signal;
      var timer = controller ? setTimeout(function () { controller.abort(); }, options.timeout || this.timeout) : null;
      var response;
      try {
        response = await fetch(this.url + path, init);
      } catch (e) {
        throw new SwitchboardError(e && e.name === "AbortError" ? "timeout" : "network", "request to " + path + " failed: " + (e && e.message), { temporary: true });
      } finally {
        if (timer) clearTimeout(timer);
      }
      var text;
      try {
        text = await response.text();
      } catch (e) {
        throw new SwitchboardError("network", "reading the answer to " + path + " failed: " + (e && e.message), { temporary: true });
      }
      var json = null;
      if (text) {
        try {
          json = JSON.parse(text);
        } catch (e) {
          json = null;
        }
      }
      if (!response.ok) throw problemError(json, response.status);
      return json;
    }

    /**
     * A collection of records.
     * @param {string} name
     * @returns {Collection}
     */
    collection(name) {
      return new Collection(this, name);
    }

    // MARK: connection

    _open() {
      this._clearTimer();
      if (this._closed) return;
      if (this.transport === "sse") {
        this._openSSE().catch((e) => this._reportError(e));
        return;
      }
      var self = this;
      this._opening = true;
      this._token().then(
        function (token) {
          self._opening = false;
          if (self._closed || self._ws || self.transport !== "websocket") return;
          self._openSocket(token);
        },
        function (e) {
          self._opening = false;
          self._reportError(e);
          self._scheduleReconnect(self._backoff());
        }
      );
    }

    /** @param {string|null} token */
    _openSocket(token) {
      var url = this.url.replace(/^http/i, "ws") + "/v1/ws" + (token ? "?token=" + encodeURIComponent(token) : "");
      var ws;
      try {
        ws = new WebSocket(url);
      } catch (e) {
        this._reportError(new SwitchboardError("network", "cannot open a WebSocket: " + (e && e.message)));
        this._onSocketGone(null, 1006, "");
        return;
      }
      this._ws = ws;
      this._welcomed = false;
      this._openedAt = Date.now();
      var self = this;
      // A handshake that hangs (some proxies) counts as a failed attempt.
      setTimeout(function () {
        if (ws === self._ws && !self._welcomed) {
          self._teardownSocket(4000, "no welcome");
          self._onSocketGone(ws, 1006, "no welcome within " + self.connectTimeout + " ms");
        }
      }, this.connectTimeout);
      ws.onmessage = function (event) {
        if (ws !== self._ws) return;
        self._lastFrame = Date.now();
        var frame;
        try {
          frame = JSON.parse(event.data);
        } catch (e) {
          self._reportError(new SwitchboardError("bad_frame", "the server sent a frame that is not JSON"));
          return;
        }
        try {
          self._onFrame(frame);
        } catch (e) {
          self._reportError(e);
        }
      };
      ws.onclose = function (event) {
        if (ws !== self._ws) return;
        self._onSocketGone(ws, event.code, event.reason);
      };
      ws.onerror = function () {
        // Always followed by onclose; the browser has already logged the reason.
      };
    }

    /** @param {any} frame */
    _onFrame(frame) {
      switch (frame.type) {
        case "welcome":
          this._onWelcome(frame);
          break;
        case "reply":
          this._onReply(frame);
          break;
        case "message":
          this._deliver(frame);
          break;
        case "join":
        case "leave":
          this._onPresence(frame);
          break;
        case "error":
          this._reportError(new SwitchboardError((frame.error && frame.error.code) || "error", (frame.error && frame.error.message) || "server error", { temporary: frame.error && frame.error.temporary }));
          break;
        default:
          break; // unknown frames are ignored, for forward compatibility
      }
    }

    _onWelcome(frame) {
      this._welcomed = true;
      this._everWelcomed = true;
      this._failures = 0;
      this.clientId = frame.client;
      this.heartbeat = frame.heartbeat || 25;
      this._startWatchdog();
      this.emit("welcome", frame);
      // Resubscribe everything first (each from its last position), then the commands
      // that were waiting or lost their reply with the previous connection.
      for (var entry of this._channels.values()) {
        entry.confirmed = false;
        entry.wanted = false;
        this._sendSubscribe(entry);
      }
      var waiting = Array.from(this._pending.values()).filter(function (c) { return !c.sent; });
      waiting.sort(function (a, b) { return a.id - b.id; });
      for (var cmd of waiting) this._transmit(cmd);
      this._setState("connected");
    }

    _onReply(frame) {
      var cmd = this._pending.get(frame.id);
      if (!cmd) return; // timed out or internal
      this._pending.delete(frame.id);
      if (frame.error) {
        var e = frame.error;
        this._settle(cmd, new SwitchboardError(e.code || "error", e.message || e.code, { temporary: e.temporary }));
      } else {
        this._settle(cmd, null, frame.result || {});
      }
    }

    /** @param {WebSocket|null} ws @param {number} code @param {string} reason */
    _onSocketGone(ws, code, reason) {
      var lived = this._openedAt ? Date.now() - this._openedAt : 0;
      var welcomed = this._welcomed;
      this._ws = null;
      this._welcomed = false;
      this.clientId = null;
      this._stopWatchdog();
      // Commands sent on the lost connection go again on the next one (publish carries an
      // idempotency key); a frame that broke the protocol is not sent again.
      var fatalFrame = code === 1009 || code === 1007;
      for (var [id, cmd] of Array.from(this._pending)) {
        if (!cmd.sent) continue;
        cmd.sent = false;
        if (cmd.once || fatalFrame) {
          this._pending.delete(id);
          this._settle(cmd, new SwitchboardError(code === 1009 ? "too_large" : "closed", "the connection closed (" + code + ")", { closeCode: code }));
        }
      }
      for (var entry of this._channels.values()) {
        entry.confirmed = false;
        entry.wanted = false;
      }
      if (this._closed) return;
      if (code >= 4000 && code <= 4099) {
        this._stopped = true;
        this._closed = true;
        this._setState("disconnected", { code: code, reason: reason });
        this._reportError(new SwitchboardError(code === 4001 ? "unauthorized" : code === 4003 ? "forbidden" : "closed", reason || "the server closed the connection (" + code + ")", { closeCode: code }));
        for (var [pid, pcmd] of Array.from(this._pending)) {
          this._pending.delete(pid);
          this._settle(pcmd, new SwitchboardError("closed", "the connection was closed (" + code + ")", { closeCode: code }));
        }
        return;
      }
      if (!welcomed) this._failures += 1;
      if (!this._everWelcomed && this._failures >= this.fallbackAfter && this.transports.indexOf("sse") >= 0) {
        this._considerFallback();
        return;
      }
      this._setState(this._everWelcomed ? "reconnecting" : "connecting", { code: code, reason: reason });
      if (welcomed && lived > 10000) this._attempt = 0;
      if ((code === 1001 || code === 1012) && welcomed) {
        this._scheduleReconnect(Math.random() * 100);
      } else {
        this._scheduleReconnect(this._backoff());
      }
    }

    /** The WebSocket never worked: if the HTTP server answers, try once more, then use SSE. */
    _considerFallback() {
      var self = this;
      this._setState("connecting");
      this._clearTimer();
      var retried = this._failures > this.fallbackAfter;
      this._timer = setTimeout(function () {
        self._timer = null;
        if (self._closed) return;
        self.rest("GET", "/healthz").then(
          function () {
            if (self._closed) return;
            if (retried) {
              self._switchToSSE();
            } else {
              self._open(); // one more WebSocket attempt now that HTTP is known to work
            }
          },
          function () {
            if (self._closed) return;
            self._failures = self.fallbackAfter - 1; // the server is down, not the WebSocket
            self._scheduleReconnect(self._backoff());
          }
        );
      }, retried ? 0 : this._backoff());
    }

    _switchToSSE() {
      this.transport = "sse";
      this.emit("transport", "sse");
      this._failures = 0;
      this._attempt = 0;
      // Unsent commands now go over REST.
      for (var cmd of Array.from(this._pending.values())) if (!cmd.sent) this._transmit(cmd);
      this._open();
    }

    _backoff() {
      var base = Math.min(this.maxBackoff, this.minBackoff * Math.pow(2, this._attempt));
      this._attempt = Math.min(this._attempt + 1, 30);
      return base / 2 + Math.random() * (base / 2); // "equal jitter"
    }

    /** @param {number} delay */
    _scheduleReconnect(delay) {
      this._clearTimer();
      var self = this;
      this._timer = setTimeout(function () {
        self._timer = null;
        self._open();
      }, delay);
    }

    _reconnectNow() {
      this._clearTimer();
      this._open();
    }

    _clearTimer() {
      if (this._timer) clearTimeout(this._timer);
      this._timer = null;
    }

    _teardownSocket(code, reason) {
      var ws = this._ws;
      this._ws = null;
      this._welcomed = false;
      this._stopWatchdog();
      if (ws) {
        ws.onmessage = ws.onclose = ws.onerror = null;
        try {
          ws.close(code, reason);
        } catch (e) {
          /* already closing */
        }
      }
    }

    /** Pings when the connection has been quiet for a heartbeat; no answer → reconnect. */
    _startWatchdog() {
      this._stopWatchdog();
      var self = this;
      var interval = Math.max(1, this.heartbeat) * 1000;
      this._lastFrame = Date.now();
      this._watchdog = setInterval(function () {
        var ws = self._ws;
        if (!ws || !self._welcomed || Date.now() - self._lastFrame < interval) return;
        self._command("ping", {}, { timeout: interval, once: true }).catch(function () {
          if (ws === self._ws) {
            self._teardownSocket(4000, "no answer to ping");
            self._onSocketGone(ws, 1006, "no answer to ping");
          }
        });
      }, interval);
    }

    _stopWatchdog() {
      if (this._watchdog) clearInterval(this._watchdog);
      this._watchdog = null;
    }

    _wsReady() {
      return !!(this._ws && this._welcomed && this._ws.readyState === 1);
    }

    /** @param {ConnectionState} state @param {any} [detail] */
    _setState(state, detail) {
      if (this.state === state) return;
      this.state = state;
      this.emit("state", state, detail || {});
    }

    async _token() {
      var t = this.token;
      if (typeof t === "function") t = await t();
      return t || null;
    }

    /** Calls a user callback; whatever it throws becomes an "error" event. */
    _safe(fn) {
      var args = Array.prototype.slice.call(arguments, 1);
      try {
        return fn.apply(null, args);
      } catch (e) {
        this._reportError(e);
        return undefined;
      }
    }

    // MARK: commands

    /**
     * @param {string} op
     * @param {Object<string, any>} fields
     * @param {{timeout?: number, once?: boolean}} options
     */
    _command(op, fields, options) {
      var self = this;
      return new Promise(function (resolve, reject) {
        if (self._stopped && self._closed) {
          reject(new SwitchboardError("closed", "the client is closed"));
          return;
        }
        var id = self._nextId++;
        var cmd = { id: id, op: op, fields: fields, resolve: resolve, reject: reject, sent: false, once: !!options.once, timer: null, done: false };
        cmd.timer = setTimeout(function () {
          self._pending.delete(id);
          self._settle(cmd, new SwitchboardError("timeout", op + " got no answer within " + (options.timeout || self.timeout) + " ms", { temporary: true }));
        }, options.timeout || self.timeout);
        self._pending.set(id, cmd);
        self._transmit(cmd);
      });
    }

    _settle(cmd, error, result) {
      if (cmd.done) return;
      cmd.done = true;
      if (cmd.timer) clearTimeout(cmd.timer);
      if (error) cmd.reject(error);
      else cmd.resolve(result);
    }

    /** Sends a pending command now if the transport is up; otherwise it waits. */
    _transmit(cmd) {
      if (this.transport === "sse") {
        if (!cmd.sent) this._restCommand(cmd);
        return;
      }
      if (!this._wsReady()) return;
      var frame = Object.assign({ id: cmd.id, op: cmd.op }, cmd.fields);
      var text = JSON.stringify(frame);
      if (text.length * 3 > this.maxMessageBytes && new Blob([text]).size > this.maxMessageBytes) {
        this._pending.delete(cmd.id);
        this._settle(cmd, new SwitchboardError("too_large", "the command is over " + this.maxMessageBytes + " bytes"));
        return;
      }
      cmd.sent = true;
      try {
        this._ws.send(text);
      } catch (e) {
        cmd.sent = false;
      }
    }

    /** Fire-and-forget frame with a fresh id whose reply is ignored. */
    _send(fields, ignoreReply) {
      if (!this._wsReady()) return;
      var frame = Object.assign({ id: this._nextId++ }, fields);
      try {
        this._ws.send(JSON.stringify(frame));
      } catch (e) {
        /* the close handler deals with it */
      }
      return ignoreReply;
    }

    /** The REST form of a command, for the SSE transport. */
    async _restCommand(cmd) {
      cmd.sent = true;
      var f = cmd.fields;
      var path = f.channel ? "/v1/channels/" + encodeURIComponent(f.channel) : "";
      var attempt = 0;
      while (!cmd.done) {
        try {
          var result;
          switch (cmd.op) {
            case "publish": {
              var body = { data: f.data };
              if (f.idempotency_key) body.idempotency_key = f.idempotency_key;
              var r = await this.rest("POST", path + "/messages", body);
              result = { epoch: r.epoch, offset: r.offset };
              break;
            }
            case "history": {
              var q = [];
              if (f.since) q.push("since=" + encodeURIComponent(positionText(f.since)));
              if (f.limit) q.push("limit=" + f.limit);
              result = await this.rest("GET", path + "/messages" + (q.length ? "?" + q.join("&") : ""));
              break;
            }
            case "presence":
              result = await this.rest("GET", path + "/presence");
              break;
            case "ping":
              await this.rest("GET", "/healthz");
              result = {};
              break;
            case "auth":
            case "refresh":
              this.token = f.token;
              this._reopenSSE();
              result = {};
              break;
            default:
              throw new SwitchboardError("unsupported", "\"" + cmd.op + "\" needs the WebSocket transport");
          }
          this._pending.delete(cmd.id);
          this._settle(cmd, null, result);
          return;
        } catch (e) {
          if (!(e instanceof SwitchboardError) || !e.temporary || cmd.once) {
            this._pending.delete(cmd.id);
            this._settle(cmd, e);
            return;
          }
          attempt += 1;
          await new Promise(function (r) { setTimeout(r, Math.min(4000, 250 * Math.pow(2, attempt))); });
        }
      }
    }

    // MARK: channels

    _sendSubscribe(entry) {
      if (this.transport !== "websocket" || !this._wsReady() || entry.wanted) return;
      entry.wanted = true;
      var self = this;
      var fields = { channel: entry.channel };
      var since = entry.position;
      if (since) fields.since = { epoch: since.epoch, offset: since.offset };
      if (entry.presence) fields.presence = true;
      var ws = this._ws;
      this._command("subscribe", fields, { once: true }).then(
        function (result) {
          if (self._channels.get(entry.channel) !== entry || ws !== self._ws) return;
          self._onSubscribed(entry, since, result);
        },
        function (error) {
          if (self._channels.get(entry.channel) !== entry) return;
          entry.wanted = false;
          if (error.code === "closed" || ws !== self._ws) return; // resubscribed on the next welcome
          if (error.code === "conflict") {
            // A subscribe whose reply was lost to a timeout took effect: start it again.
            self._send({ op: "unsubscribe", channel: entry.channel }, true);
            self._sendSubscribe(entry);
            return;
          }
          if (error.temporary || error.code === "timeout") {
            setTimeout(function () { self._sendSubscribe(entry); }, self._backoff());
            return;
          }
          self._channels.delete(entry.channel);
          for (var sub of Array.from(entry.subs)) {
            sub.active = false;
            sub.error = error;
            sub._rejectReady(error);
            if (sub.options.onError) self._safe(sub.options.onError, error);
          }
          self._reportError(error);
        }
      );
    }

    /**
     * A confirmed (re)subscription: keep the position when the server resumed from it,
     * otherwise take the server's and tell the subscribers to reload.
     */
    _onSubscribed(entry, since, result) {
      var info = { channel: entry.channel, epoch: result.epoch, offset: result.offset, recovered: !!result.recovered };
      entry.confirmed = true;
      entry.lastInfo = info;
      var reset = false;
      if (!since) {
        if (!entry.position) entry.position = { epoch: result.epoch, offset: result.offset };
      } else if (!result.recovered) {
        reset = true;
        entry.position = { epoch: result.epoch, offset: result.offset };
      }
      for (var sub of Array.from(entry.subs)) {
        sub._resolveReady(info);
        if (reset && sub.options.onReset) this._safe(sub.options.onReset, info);
        if (sub.options.onSubscribed) this._safe(sub.options.onSubscribed, info);
      }
    }

    /** @param {ChannelMessage} msg */
    _deliver(msg) {
      var entry = this._channels.get(msg.channel);
      if (!entry) return;
      if (entry.buffer) {
        entry.buffer.push(msg);
        return;
      }
      var p = entry.position;
      if (p && p.epoch === msg.epoch && msg.offset <= p.offset) return; // seen already
      entry.position = { epoch: msg.epoch, offset: msg.offset };
      for (var sub of Array.from(entry.subs)) {
        if (sub.active && sub.onMessage) this._safe(sub.onMessage, msg.data, msg);
      }
    }

    _onPresence(frame) {
      var entry = this._channels.get(frame.channel);
      if (!entry) return;
      for (var sub of Array.from(entry.subs)) {
        var fn = frame.type === "join" ? sub.options.onJoin : sub.options.onLeave;
        if (fn) this._safe(fn, frame.member);
        sub.emit(frame.type, frame.member);
      }
    }

    /** @param {Subscription} sub */
    _removeSubscription(sub) {
      var entry = this._channels.get(sub.channel);
      if (!entry) return;
      entry.subs.delete(sub);
      if (entry.subs.size > 0) return;
      this._channels.delete(sub.channel);
      if (this.transport === "websocket") this._send({ op: "unsubscribe", channel: sub.channel }, true);
      else this._scheduleSSEReopen();
    }

    // MARK: Server-Sent Events

    _scheduleSSEReopen() {
      if (this._sseReopen) return;
      var self = this;
      this._sseReopen = Promise.resolve().then(function () {
        self._sseReopen = null;
        if (self.transport === "sse" && !self._closed) self._reopenSSE();
      });
    }

    _reopenSSE() {
      this._teardownSSE();
      this._openSSE().catch((e) => this._reportError(e));
    }

    _teardownSSE() {
      if (this._es) {
        this._es.close();
        this._es = null;
      }
    }

    async _openSSE() {
      if (this._closed || this._es) return;
      var token = await this._token();
      if (this._closed || this._es || this.transport !== "sse") return;
      var channels = Array.from(this._channels.keys());
      if (channels.length === 0) {
        this._setState("connected");
        return;
      }
      var url = this.url + "/v1/sse?channels=" + channels.join(",") + (token ? "&token=" + encodeURIComponent(token) : "");
      var es = new EventSource(url);
      this._es = es;
      var self = this;
      for (var entry of this._channels.values()) entry.confirmed = false;
      es.onopen = function () {
        if (es !== self._es) return;
        self._attempt = 0;
        self._everWelcomed = true;
        self._setState("connected");
      };
      es.addEventListener("subscribed", function (event) {
        if (es !== self._es) return;
        try {
          self._onSSESubscribed(JSON.parse(event.data));
        } catch (e) {
          self._reportError(e);
        }
      });
      es.addEventListener("message", function (event) {
        if (es !== self._es) return;
        try {
          self._deliver(JSON.parse(event.data));
        } catch (e) {
          self._reportError(e);
        }
      });
      es.addEventListener("close", function (event) {
        // The server ends the stream (1012 drain, 4100 slow consumer); EventSource
        // reconnects by itself with Last-Event-ID.
        if (es !== self._es) return;
        var info = {};
        try {
          info = JSON.parse(event.data);
        } catch (e) {
          /* keep {} */
        }
        self._setState("reconnecting", info);
      });
      es.onerror = function () {
        if (es !== self._es) return;
        if (es.readyState === 2) {
          // Refused for good (an HTTP error): find out why, then retry or stop.
          self._es = null;
          self._setState("reconnecting");
          self._diagnoseSSE(channels[0]);
        } else {
          self._setState("reconnecting");
        }
      };
    }

    async _diagnoseSSE(channel) {
      try {
        await this.rest("GET", "/v1/channels/" + encodeURIComponent(channel) + "/messages?limit=1");
      } catch (e) {
        if (e.status === 401 || e.status === 403) {
          this._closed = true;
          this._stopped = true;
          this._setState("disconnected", { code: e.status });
          this._reportError(e);
          return;
        }
      }
      if (!this._closed) this._scheduleReconnect(this._backoff());
    }

    /** SSE `subscribed`: when the stream could not resume a channel we know, fill the gap over REST. */
    _onSSESubscribed(info) {
      var entry = this._channels.get(info.channel);
      if (!entry) return;
      var known = entry.position;
      var done = (reset) => {
        entry.confirmed = true;
        entry.lastInfo = info;
        for (var sub of Array.from(entry.subs)) {
          sub._resolveReady(info);
          if (reset && sub.options.onReset) this._safe(sub.options.onReset, info);
          if (sub.options.onSubscribed) this._safe(sub.options.onSubscribed, info);
        }
      };
      if (!known) {
        entry.position = { epoch: info.epoch, offset: info.offset };
        done(false);
        return;
      }
      if (info.recovered || (known.epoch === info.epoch && known.offset >= info.offset)) {
        done(false);
        return;
      }
      if (known.epoch !== info.epoch) {
        entry.position = { epoch: info.epoch, offset: info.offset };
        done(true);
        return;
      }
      // Same epoch, behind: hold live messages while history from `known` is read.
      entry.buffer = entry.buffer || [];
      var generation = ++entry.generation;
      this._fillGap(entry, info, generation).then(done, (e) => {
        this._reportError(e);
        done(false);
      });
    }

    async _fillGap(entry, info, generation) {
      var reset = false;
      try {
        while (entry.position.offset < info.offset) {
          var page = await this.rest("GET", "/v1/channels/" + encodeURIComponent(entry.channel) + "/messages?since=" + encodeURIComponent(positionText(entry.position)) + "&limit=1000");
          if (entry.generation !== generation || this._channels.get(entry.channel) !== entry) return reset;
          if (page.recovered === false) {
            entry.position = { epoch: info.epoch, offset: info.offset };
            reset = true;
            break;
          }
          if (!page.messages || page.messages.length === 0) break;
          var held = entry.buffer;
          entry.buffer = null;
          for (var m of page.messages) this._deliver(m);
          entry.buffer = held;
        }
      } finally {
        if (entry.generation === generation) {
          var buffered = entry.buffer || [];
          entry.buffer = null;
          for (var msg of buffered) this._deliver(msg);
        }
      }
      return reset;
    }
  }

  /** Records of one collection over REST, and a live view of them. */
  class Collection {
    /** @param {Switchboard} client @param {string} name */
    constructor(client, name) {
      this.client = client;
      this.name = name;
      this.path = "/v1/collections/" + encodeURIComponent(name);
    }
    /**
     * One page of records in id order.
     * @param {{limit?: number, after?: string, filter?: Object<string, any>}} [options]
     * @returns {Promise<{items: RecordJSON[], next: string|null, epoch: string, offset: number}>}
     */
    list(options) {
      options = options || {};
      var q = ["limit=" + (options.limit || 100)];
      if (options.after) q.push("after=" + encodeURIComponent(options.after));
      var filter = options.filter || {};
      for (var k of Object.keys(filter)) q.push("filter%5B" + encodeURIComponent(k) + "%5D=" + encodeURIComponent(String(filter[k])));
      return this.client.rest("GET", this.path + "?" + q.join("&"));
    }
    /**
     * Every record (following `next`), and the position of `collection:NAME` read with
     * the first page: subscribing from it misses no change.
     * @returns {Promise<{items: RecordJSON[], epoch: string, offset: number}>}
     */
    async all() {
      var first = await this.list({ limit: 1000 });
      var items = first.items.slice();
      var next = first.next;
      while (next) {
        var page = await this.list({ limit: 1000, after: next });
        items.push.apply(items, page.items);
        next = page.next;
      }
      return { items: items, epoch: first.epoch, offset: first.offset };
    }
    /** @param {string} id @returns {Promise<RecordJSON>} */
    get(id) {
      return this.client.rest("GET", this.path + "/" + encodeURIComponent(id));
    }
    /** @param {Object<string, any>} data @returns {Promise<RecordJSON>} */
    create(data) {
      return this.client.rest("POST", this.path, data);
    }
    /** @param {string} id @param {Object<string, any>} data @param {{ifMatch?: number}} [options] */
    put(id, data, options) {
      var headers = options && options.ifMatch ? { "If-Match": '"' + options.ifMatch + '"' } : {};
      return this.client.rest("PUT", this.path + "/" + encodeURIComponent(id), data, { headers: headers });
    }
    /** JSON Merge Patch. @param {string} id @param {Object<string, any>} patch */
    patch(id, patch) {
      return this.client.rest("PATCH", this.path + "/" + encodeURIComponent(id), patch, { headers: { "Content-Type": "application/merge-patch+json" } });
    }
    /** @param {string} id */
    delete(id) {
      return this.client.rest("DELETE", this.path + "/" + encodeURIComponent(id));
    }

    /**
     * Snapshot, then stream: every record in `records`, kept current from
     * `collection:NAME`. `onChange(records, change)` runs after the snapshot
     * (change.type "snapshot") and after each created/updated/deleted change.
     * @param {(records: Map<string, RecordJSON>, change: {type: string, id?: string, record?: RecordJSON, previous?: RecordJSON, message?: ChannelMessage}) => void} onChange
     * @param {{onError?: (e: any) => void}} [options]
     */
    live(onChange, options) {
      options = options || {};
      var client = this.client;
      var collection = this;
      /** @type {Map<string, RecordJSON>} */
      var records = new Map();
      var loading = null; // messages held while a snapshot loads
      var loadedAt = null; // the snapshot's position
      var sub = null;
      var stopped = false;
      var notify = function (change) {
        if (!stopped && onChange) client._safe(onChange, records, change);
      };
      var fail = function (e) {
        if (options.onError) client._safe(options.onError, e);
        client._reportError(e);
      };
      var apply = function (event, msg) {
        if (!event || !event.record || typeof event.record.id !== "string") return;
        var rec = event.record;
        var local = records.get(rec.id);
        var change = { type: event.action, id: rec.id, record: rec, previous: local, message: msg };
        if (event.action === "deleted") {
          // A deleted event carries the record's last version.
          if (!local || local.version > rec.version) return;
          records.delete(rec.id);
        } else if (event.action === "created" || event.action === "updated") {
          if (local && rec.version <= local.version) return;
          records.set(rec.id, rec);
        } else {
          return;
        }
        notify(change);
      };
      var onMessage = function (data, msg) {
        if (loading) {
          loading.push(msg);
          return;
        }
        apply(data, msg);
      };
      var load = async function () {
        loading = loading || [];
        var attempt = 0;
        for (;;) {
          try {
            var snapshot = await collection.all();
            break;
          } catch (e) {
            if (stopped) return;
            if (!e.temporary || attempt >= 5) {
              loading = null;
              fail(e);
              throw e;
            }
            attempt += 1;
            await new Promise(function (r) { setTimeout(r, 300 * Math.pow(2, attempt)); });
          }
        }
        if (stopped) return;
        records.clear();
        for (var item of snapshot.items) records.set(item.id, item);
        loadedAt = { epoch: snapshot.epoch, offset: snapshot.offset };
        var held = loading;
        loading = null;
        notify({ type: "snapshot" });
        for (var msg of held) {
          if (msg.epoch === loadedAt.epoch && msg.offset <= loadedAt.offset) continue;
          apply(msg.data, msg);
        }
        if (!sub) {
          sub = client.subscribe("collection:" + collection.name, onMessage, {
            since: loadedAt,
            onReset: function () {
              // History no longer reaches back to what we hold: take a new snapshot; the
              // subscription goes on from the server's position meanwhile.
              if (!stopped) load().catch(function () {});
            },
            onError: fail,
          });
          view.subscription = sub;
        }
        return records;
      };
      var view = {
        /** @type {Map<string, RecordJSON>} */
        records: records,
        /** @type {Subscription|null} */
        subscription: null,
        /** Resolves with the records after the first snapshot. */
        ready: null,
        /** Stops the live view. */
        stop: function () {
          stopped = true;
          if (sub) sub.unsubscribe();
        },
        /** Loads the snapshot again. */
        reload: function () {
          return load();
        },
      };
      view.ready = load();
      view.ready.catch(function () {});
      return view;
    }
  }

  var api = Switchboard;
  Switchboard.Switchboard = Switchboard;
  Switchboard.SwitchboardError = SwitchboardError;
  Switchboard.Subscription = Subscription;
  Switchboard.Collection = Collection;
  root.Switchboard = api;
  root.SwitchboardError = SwitchboardError;
  if (typeof module === "object" && module && module.exports) module.exports = api;
})(typeof globalThis !== "undefined" ? globalThis : typeof self !== "undefined" ? self : this);

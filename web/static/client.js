// The Parley protocol client, without a page: one WebSocket at /ws for a
// session, said hello on and resumed after every drop with session, token
// and last_event, so that nothing is shown twice and nothing is lost; and
// the reconnect policy. The page gives it hooks and sends through it.

// Waits before reconnecting after a refusal: exponential from 0.5 s to
// 10 s, with full jitter.
export const BACKOFF_MIN_MS = 500;
export const BACKOFF_MAX_MS = 10000;

// backoffDelay is the wait before a reconnect after `failures` attempts in
// a row that did not reach a session: a random time up to 0.5 s × 2^n,
// capped at 10 s. The whole range (full jitter) keeps clients refused
// together, as after a restart, from coming back together.
export function backoffDelay(failures, random = Math.random) {
  const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.max(0, failures));
  return Math.floor(random() * cap);
}

// newerId says whether event id a ("<ms>-<seq>") comes after b: ids
// increase within a session.
export function newerId(a, b) {
  if (!b) return true;
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am !== bm ? am > bm : as > bs;
}

export class Client {
  // hooks: hello() the audio to ask for in hello ({transport, codec} or
  // null); event(m) for each message, deduplicated; audio(buf) for a
  // binary frame; open() once hello is sent on a new socket; close() when
  // it drops; session(m, {restart}) on the session message;
  // waiting({delay, refused}) when a reconnect is planned; refused(text)
  // with the server's reason when an attempt was refused.
  constructor(hooks) {
    this.hooks = hooks;
    // A server with authentication on wants a token: the page passes on
    // the one it was opened with (/?access_token=…), as a browser cannot
    // set headers on a WebSocket.
    const token = new URLSearchParams(location.search).get('access_token');
    const query = token ? '?access_token=' + encodeURIComponent(token) : '';
    this.url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws' + query;
    this.probeUrl = '/ws' + query;
    this.ws = null;
    this.session = null;
    this.token = null;
    this.lastEvent = '';
    this.failures = 0;       // attempts in a row that did not reach a session
    this.retryAfter = null;  // ms, from the server's reconnect event
    this.reconnects = 0;
    this.restarting = false; // the next session is ours (a call starting or ending), not a drop
    this.timer = null;
  }

  get open() { return !!this.ws && this.ws.readyState === WebSocket.OPEN; }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    const ws = new WebSocket(this.url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    let greeted = false; // the session message came on this socket
    // Handlers first: messages may arrive before any await finishes.
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      if (typeof ev.data !== 'string') { this.hooks.audio?.(ev.data); return; }
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { console.error('bad message from the server', e); return; }
      if (m.type === 'session') greeted = true;
      this.receive(m);
    };
    ws.onopen = () => {
      const hello = { type: 'hello' };
      if (this.session) Object.assign(hello, { session: this.session, token: this.token, last_event: this.lastEvent });
      const audio = this.hooks.hello?.();
      if (audio) hello.audio = audio;
      ws.send(JSON.stringify(hello));
      this.hooks.open?.();
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (ev.code === 4401) this.forget(); // the resume was refused: start afresh
      this.hooks.close?.(ev);
      this.reconnects++;
      this.schedule(!greeted);
    };
  }

  // schedule plans the next attempt: after the server's retry_after_ms
  // when it said reconnect, else after a jittered backoff that grows with
  // each attempt that did not reach a session.
  schedule(refused) {
    let delay;
    if (this.retryAfter != null) {
      delay = this.retryAfter; // already jittered by the server
      this.retryAfter = null;
    } else {
      delay = backoffDelay(this.failures++);
    }
    this.timer = setTimeout(() => this.connect(), delay);
    this.hooks.waiting?.({ delay, refused });
    if (refused) this.probe();
  }

  // probe asks the server why an attempt was refused: a refused upgrade
  // tells the browser nothing, a plain request gets the reason ("401
  // unauthorized: a token is required…", "429 ip_rate: …").
  async probe() {
    try {
      const r = await fetch(this.probeUrl);
      const text = (await r.text()).trim();
      // Said only while no newer attempt is under way: it would be stale.
      if ([401, 403, 429, 503].includes(r.status) && !this.ws) this.hooks.refused?.(text);
    } catch (e) { /* unreachable: the status says so already */ }
  }

  receive(m) {
    if (m.id) {
      if (!newerId(m.id, this.lastEvent)) return; // shown already
      this.lastEvent = m.id;
    }
    switch (m.type) {
      case 'session': {
        if (this.session && this.session !== m.session) this.lastEvent = '';
        this.session = m.session;
        this.token = m.token;
        this.failures = 0;
        const restart = this.restarting;
        this.restarting = false;
        this.hooks.session?.(m, { restart });
        return;
      }
      case 'reconnect':
        // The replica is going away; the close frame follows. Absent, the
        // default backoff's first step (up to 0.5 s) applies.
        if (m.retry_after_ms != null) this.retryAfter = Math.max(0, Number(m.retry_after_ms) || 0);
        break;
      case 'error':
        if (m.code === 'session_expired') this.forget();
        break;
    }
    this.hooks.event?.(m);
  }

  forget() {
    this.session = null;
    this.token = null;
    this.lastEvent = '';
  }

  send(obj) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }

  sendBinary(buf) {
    if (this.open) this.ws.send(buf);
  }

  // restart says hello again on a new socket at once (a call is a hello
  // with audio), resuming the session: nothing is shown twice.
  restart() {
    this.restarting = true;
    if (this.ws) {
      const old = this.ws;
      this.ws = null;
      old.onclose = null;
      old.close();
      this.hooks.close?.();
    }
    this.connect();
  }

  // drop breaks the socket as a network drop would (for tests).
  drop() { this.ws?.close(); }
}

// Text chat over /ws with resume: on a dropped socket the page reconnects
// with session, token and last_event, so nothing is shown twice or lost.
const log = document.getElementById('log');
const statusEl = document.getElementById('status');
const form = document.getElementById('form');
const input = document.getElementById('text');

let ws = null;
let session = null, token = null, lastEvent = '';
let backoff = 250;
const replies = new Map(); // turn -> element

function add(cls, text) {
  const el = document.createElement('div');
  el.className = 'msg ' + cls;
  el.textContent = text;
  log.appendChild(el);
  log.scrollTop = log.scrollHeight;
  return el;
}

function setStatus(text, ok) {
  statusEl.textContent = text;
  statusEl.classList.toggle('ok', !!ok);
}

function explain(e) {
  switch (e.code) {
    case 'rate_limited': return `Too many messages; try again in ${Math.ceil((e.retry_after_ms || 1000) / 1000)} s.`;
    case 'busy': return 'The assistant is busy right now; try again in a moment.';
    case 'upstream': return 'The language model failed: ' + e.message;
    default: return e.message || e.code;
  }
}

function onEvent(m) {
  if (m.id) lastEvent = m.id;
  switch (m.type) {
    case 'session':
      session = m.session; token = m.token; backoff = 250;
      setStatus(m.resumed ? 'reconnected' : 'connected', true);
      if (m.resumed) add('sys', 'Reconnected; the conversation continues.');
      break;
    case 'transcript':
      if (m.final) add('user', m.text);
      break;
    case 'reply.delta': {
      let el = replies.get(m.turn);
      if (!el) { el = add('bot', ''); replies.set(m.turn, el); }
      if (m.reset) el.textContent = '';
      el.textContent += m.text;
      log.scrollTop = log.scrollHeight;
      break;
    }
    case 'reply.done': {
      let el = replies.get(m.turn);
      if (!el) { el = add('bot', ''); replies.set(m.turn, el); }
      el.textContent = m.text;
      if (m.interrupted) el.classList.add('cut');
      break;
    }
    case 'error':
      add('err', explain(m));
      break;
  }
}

function connect() {
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  ws = new WebSocket(url);
  ws.onmessage = (ev) => { try { onEvent(JSON.parse(ev.data)); } catch (e) { console.error(e); } };
  ws.onopen = () => {
    const hello = { type: 'hello' };
    if (session) Object.assign(hello, { session, token, last_event: lastEvent });
    ws.send(JSON.stringify(hello));
  };
  ws.onclose = (ev) => {
    if (ev.code === 4401) { session = null; token = null; lastEvent = ''; }
    setStatus('reconnecting…');
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 5000);
  };
}

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = input.value.trim();
  if (!text || !ws || ws.readyState !== WebSocket.OPEN) return;
  ws.send(JSON.stringify({ type: 'text', text }));
  input.value = '';
});

connect();

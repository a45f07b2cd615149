// The Parley page: one WebSocket for the session (text, events, and the
// audio of a WebSocket call), resumed after a drop with session, token
// and last_event, so nothing is shown twice and nothing is lost.
import { Call } from './call.js';

const $ = (id) => document.getElementById(id);
const log = $('log'), statusEl = $('status'), stateEl = $('state'), partialEl = $('partial');
const callBtn = $('call'), transportSel = $('transport');

const page = {
  ws: null, session: null, token: null, lastEvent: '',
  seen: new Set(),        // event ids already shown
  turns: new Map(),       // turn -> {user, bot} elements
  call: null,             // the active Call, if any
  botLevel: 0, micLevel: 0, // peak levels, for the meters and for tests
  reconnects: 0,
  quietResume: false,     // the next resume is ours (a call starting or ending), not a drop
};
window.parley = page; // for tests and curious people

function add(cls, text) {
  const el = document.createElement('div');
  el.className = 'msg ' + cls;
  el.textContent = text;
  log.appendChild(el);
  log.scrollTop = log.scrollHeight;
  return el;
}

function turnOf(n) {
  let t = page.turns.get(n);
  if (!t) { t = {}; page.turns.set(n, t); }
  return t;
}

function botEl(n) {
  const t = turnOf(n);
  if (!t.bot) { t.bot = add('bot', ''); t.text = document.createTextNode(''); t.bot.appendChild(t.text); }
  return t;
}

function setStatus(text, cls) {
  statusEl.textContent = text;
  statusEl.className = 'pill ' + (cls || '');
}

function setState(s) {
  stateEl.textContent = { listening: 'listening', thinking: 'thinking…', speaking: 'speaking' }[s] || s;
  stateEl.className = 'state ' + s;
}

export function explain(e) {
  switch (e.code) {
    case 'rate_limited': return `Too many messages; try again in ${Math.max(1, Math.ceil((e.retry_after_ms || 1000) / 1000))} s.`;
    case 'busy': return 'The assistant is busy right now; try again in a moment.';
    case 'upstream': return 'The assistant could not answer: ' + e.message;
    case 'session_expired': return 'The conversation expired; starting a new one.';
    case 'unsupported': return 'Voice is not available here: ' + e.message;
    default: return e.message || e.code;
  }
}

function onEvent(m) {
  if (m.id) {
    if (page.seen.has(m.id)) return; // never show an event twice
    page.seen.add(m.id);
    page.lastEvent = m.id;
  }
  switch (m.type) {
    case 'session':
      if (page.session && page.session !== m.session) { page.seen.clear(); }
      page.session = m.session; page.token = m.token;
      if (m.resumed && !page.quietResume) {
        setStatus('reconnected', 'ok');
        add('sys', 'Reconnected; the conversation continues.');
      } else {
        setStatus(page.call ? 'in a call' : 'connected', 'ok');
      }
      page.quietResume = false;
      break;
    case 'transcript':
      if (!m.final) { partialEl.textContent = m.text ? '“' + m.text + '…”' : ''; break; }
      partialEl.textContent = '';
      turnOf(m.turn).user = add('user', m.text);
      break;
    case 'reply.delta': {
      const t = botEl(m.turn);
      if (m.reset) t.text.data = '';
      t.text.data += m.text;
      log.scrollTop = log.scrollHeight;
      break;
    }
    case 'reply.done': {
      const t = botEl(m.turn);
      t.text.data = m.text;
      if (m.interrupted) t.bot.classList.add('cut');
      break;
    }
    case 'interrupted':
      page.call?.dropAudio();
      break;
    case 'latency': {
      const t = botEl(m.turn);
      const parts = [];
      if (m.voice_to_voice_ms != null) parts.push(`voice-to-voice ${m.voice_to_voice_ms} ms`);
      if (m.asr_ms != null) parts.push(`ASR ${m.asr_ms} ms`);
      parts.push(`LLM first token ${m.llm_first_token_ms} ms`, `TTS first audio ${m.tts_first_audio_ms} ms`);
      const lat = document.createElement('span');
      lat.className = 'lat';
      lat.textContent = parts.join(' · ');
      t.bot.appendChild(lat);
      break;
    }
    case 'state':
      setState(m.state);
      break;
    case 'answer': case 'candidate':
      page.call?.signal(m);
      break;
    case 'error':
      add('err', explain(m));
      if (m.code === 'session_expired') { page.session = null; page.token = null; page.lastEvent = ''; }
      break;
  }
}

function send(obj) {
  if (page.ws && page.ws.readyState === WebSocket.OPEN) page.ws.send(JSON.stringify(obj));
}

let backoff = 250;
function connect() {
  // A server with authentication on wants a token: the page passes on the
  // one it was opened with (/?access_token=…), as a browser cannot set
  // headers on a WebSocket.
  const token = new URLSearchParams(location.search).get('access_token');
  const query = token ? '?access_token=' + encodeURIComponent(token) : '';
  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws' + query);
  ws.binaryType = 'arraybuffer';
  let opened = false;
  page.ws = ws;
  // Handlers first: messages may arrive before any await finishes.
  ws.onmessage = (ev) => {
    if (typeof ev.data !== 'string') { page.call?.audioIn(ev.data); return; }
    try { onEvent(JSON.parse(ev.data)); } catch (e) { console.error(e); }
  };
  ws.onopen = () => {
    opened = true;
    backoff = 250;
    const hello = { type: 'hello' };
    if (page.session) Object.assign(hello, { session: page.session, token: page.token, last_event: page.lastEvent });
    if (page.call) hello.audio = { transport: page.call.transport, codec: 'opus' };
    ws.send(JSON.stringify(hello));
    if (page.call) page.call.attach(send, ws); // renegotiate on the new socket
  };
  ws.onclose = (ev) => {
    if (page.ws !== ws) return;
    if (ev.code === 4401) { page.session = null; page.token = null; page.lastEvent = ''; }
    page.call?.detach();
    page.reconnects++;
    setStatus('server unreachable; reconnecting…', 'bad');
    if (!opened) {
      // A refused upgrade tells the browser nothing: ask the server why
      // (it answers a plain request with the reason, e.g. "unauthorized:
      // a token is required…", "ip_rate: …").
      fetch('/ws' + query).then(async (r) => {
        if ([401, 403, 429, 503].includes(r.status) && page.ws === ws) {
          setStatus((await r.text()).trim() + ' (retrying)', 'bad');
        }
      }).catch(() => {});
    }
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 5000);
  };
}

// For tests: break the socket as a network drop would.
page.dropSocket = () => page.ws?.close();

$('form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('text');
  const text = input.value.trim();
  if (!text) return;
  if (!page.ws || page.ws.readyState !== WebSocket.OPEN) { add('err', 'Not connected to the server; your message was not sent.'); return; }
  send({ type: 'text', text });
  input.value = '';
});

callBtn.addEventListener('click', async () => {
  if (page.call) { hangUp(); return; }
  const call = new Call(transportSel.value, {
    level: (who, v) => {
      page[who + 'Level'] = Math.max(page[who + 'Level'], v);
      $(who + 'Level').style.width = Math.min(100, v * 300) + '%';
    },
    error: (msg) => add('err', msg),
  });
  try {
    await call.start();
  } catch (e) {
    add('err', e.name === 'NotAllowedError' ? 'The microphone was not allowed; you can still type.' : 'The call could not start: ' + e.message);
    return;
  }
  page.call = call;
  callBtn.textContent = 'Hang up';
  callBtn.className = 'hangup';
  transportSel.disabled = true;
  // A call is a hello with audio: reconnect the socket with it.
  page.quietResume = true;
  page.ws.onclose = null;
  page.ws.close();
  connect();
});

function hangUp() {
  page.call.stop();
  page.call = null;
  callBtn.textContent = 'Call';
  callBtn.className = 'primary';
  transportSel.disabled = false;
  setState('ready');
  page.quietResume = true;
  page.ws.onclose = null;
  page.ws.close();
  connect();
}

connect();

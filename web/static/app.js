// The Parley page: the transcript, the buttons, the call's state. The
// protocol (the socket, resume, reconnects) is client.js's; the call's
// media is call.js's.
import { Client } from './client.js';
import { Call } from './call.js';

const $ = (id) => document.getElementById(id);
const log = $('log'), statusEl = $('status'), stateEl = $('state'), partialEl = $('partial');
const callBtn = $('call'), transportSel = $('transport');

export const FALLBACK_LINE = 'WebRTC could not connect; the call goes on over the WebSocket.';

const page = {
  client: null,
  turns: new Map(),         // turn -> {user, bot, text} elements
  call: null,               // the live Call, if any
  botLevel: 0, micLevel: 0, // peak levels, for the meters and for tests
  get reconnects() { return this.client.reconnects; },
  dropSocket() { this.client.drop(); }, // for tests: break the socket as a network drop would
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

const stateNames = { listening: 'listening', thinking: 'thinking…', speaking: 'speaking', calling: 'calling…', failed: 'call failed', ready: 'ready' };

function setState(s) {
  stateEl.textContent = stateNames[s] || s;
  stateEl.className = 'state ' + s;
}

export function explain(e) {
  switch (e.code) {
    case 'rate_limited': return `Too many messages; try again in ${Math.max(1, Math.ceil((e.retry_after_ms || 1000) / 1000))} s.`;
    case 'busy': return 'The assistant is busy right now; try again in a moment.';
    case 'upstream': return 'The assistant could not answer: ' + e.message;
    case 'session_expired': return 'The conversation expired; starting a new one.';
    case 'unsupported': return 'Voice is not available here: ' + e.message;
    case 'call_failed': return 'The call failed: ' + e.message;
    default: return e.message || e.code;
  }
}

function callStatus() {
  return page.call.transport === 'ws' && transportSel.value === 'webrtc' ? 'in a call (over the WebSocket)' : 'in a call';
}

// callError handles an error about the call; it says whether it was one.
function callError(m) {
  const call = page.call;
  if (!call) return false;
  switch (m.code) {
    case 'webrtc_failed':
      // The server's side of WebRTC failed: the same fallback as ours.
      call.fallBack();
      return true;
    case 'call_failed': case 'unsupported':
      endCall(explain(m));
      return true;
    case 'bad_request':
      if (!call.moving) return false;
      endCall('WebRTC could not connect, and the call could not move to the WebSocket: ' + m.message);
      return true;
  }
  return false;
}

function onEvent(m) {
  switch (m.type) {
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
    case 'tool.call': {
      // Collapsed by default: the name in the bubble, the arguments and
      // the result inside.
      const t = botEl(m.turn);
      const d = document.createElement('details');
      d.className = 'tool';
      const sum = document.createElement('summary');
      sum.textContent = `tool: ${m.name}` + (m.by === 'client' ? ' (run by this client)' : '');
      const args = document.createElement('pre');
      args.textContent = 'arguments: ' + m.arguments;
      const out = document.createElement('pre');
      out.className = 'out';
      out.textContent = 'result: …';
      d.append(sum, args, out);
      t.bot.appendChild(d);
      (t.tools ||= new Map()).set(m.call_id, out);
      break;
    }
    case 'tool.done': {
      const out = turnOf(m.turn).tools?.get(m.call_id);
      if (out) out.textContent = 'result: ' + m.output;
      break;
    }
    case 'interrupted':
      page.call?.dropAudio();
      break;
    case 'latency': {
      const t = botEl(m.turn);
      const parts = [];
      // Voice-to-voice is what the caller waited: the end-of-turn silence
      // (endpoint) and the server's part.
      if (m.voice_to_voice_ms != null) parts.push(`voice-to-voice ${m.voice_to_voice_ms} ms (end of turn ${m.endpoint_ms} ms + server ${m.server_ms} ms)`);
      else parts.push(`server ${m.server_ms} ms`);
      if (m.asr_ms != null) parts.push(`ASR ${m.asr_ms} ms`);
      parts.push(`LLM first token ${m.llm_first_token_ms} ms`, `TTS first audio ${m.tts_first_audio_ms} ms`);
      const lat = document.createElement('span');
      lat.className = 'lat';
      lat.textContent = parts.join(' · ');
      t.bot.appendChild(lat);
      break;
    }
    case 'state':
      // Only a live call has a state: never "listening" for a dead one.
      if (page.call && !page.call.dead) setState(m.state);
      break;
    case 'answer': case 'candidate':
      page.call?.signal(m);
      break;
    case 'audio':
      page.call?.moved(m);
      break;
    case 'reconnect':
      setStatus('the server is restarting; reconnecting…', 'bad');
      break;
    case 'error':
      if (!callError(m)) add('err', explain(m));
      break;
  }
}

page.client = new Client({
  hello: () => page.call && { transport: page.call.transport, codec: 'opus' },
  event: onEvent,
  audio: (buf) => page.call?.audioIn(buf),
  open: () => page.call?.attach(page.client),
  close: () => page.call?.detach(),
  session: (m, { restart }) => {
    if (m.resumed && !restart) {
      setStatus('reconnected', 'ok');
      add('sys', 'Reconnected; the conversation continues.');
    } else {
      setStatus(page.call ? callStatus() : 'connected', 'ok');
    }
  },
  waiting: ({ delay }) => setStatus(`server unreachable; reconnecting${delay >= 1000 ? ` in ${Math.round(delay / 1000)} s` : ''}…`, 'bad'),
  refused: (text) => setStatus(text + ' (retrying)', 'bad'),
});

$('form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('text');
  const text = input.value.trim();
  if (!text) return;
  if (!page.client.send({ type: 'text', text })) { add('err', 'Not connected to the server; your message was not sent.'); return; }
  input.value = '';
});

callBtn.addEventListener('click', () => (page.call ? endCall() : startCall()));

function callButton(inCall) {
  callBtn.textContent = inCall ? 'Hang up' : 'Call';
  callBtn.className = inCall ? 'hangup' : 'primary';
  transportSel.disabled = inCall;
}

async function startCall() {
  const call = new Call(transportSel.value, {
    level: (who, v) => {
      page[who + 'Level'] = Math.max(page[who + 'Level'], v);
      $(who + 'Level').style.width = Math.min(100, v * 300) + '%';
    },
    error: (msg) => add('err', msg),
    moved: () => {
      add('sys', FALLBACK_LINE);
      if (page.call === call) setStatus(callStatus(), 'ok');
    },
    failed: (msg) => { if (page.call === call) endCall(msg); },
  });
  callBtn.disabled = true;
  setState('calling');
  try {
    await call.start();
  } catch (e) {
    add('err', e.name === 'NotAllowedError' ? 'The microphone was not allowed; you can still type.' : 'The call could not start: ' + e.message);
    call.stop();
    setState('failed');
    return;
  } finally {
    callBtn.disabled = false;
  }
  page.call = call;
  callButton(true);
  // A call is a hello with audio: say it on a new socket.
  page.client.restart();
}

// endCall hangs up; with a failure, the page says why and shows the call
// as failed. Either way the socket says hello again without audio, so the
// server ends its side of the call.
function endCall(failure) {
  const call = page.call;
  if (!call) return;
  page.call = null;
  call.stop();
  callButton(false);
  if (failure) {
    add('err', failure);
    setState('failed');
  } else {
    setState('ready');
  }
  page.client.restart();
}

page.client.connect();

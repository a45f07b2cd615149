// The stock openai package's OpenAIRealtimeWS against a Parley server over
// TLS (it dials wss:// only): a text response, then an audio one, printing
// what it saw as JSON lines for the Go test to assert.
//
//   node openai_ws.cjs <https base URL, e.g. https://127.0.0.1:8443/v1>
'use strict';
const { OpenAI } = require('openai');
const { OpenAIRealtimeWS } = require('openai/realtime/ws');

const [baseURL] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const deadline = setTimeout(() => { out({ t: 'timeout' }); process.exit(2); }, 60000);

const client = new OpenAI({ apiKey: 'sk-test', baseURL });
const rt = new OpenAIRealtimeWS({ model: 'gpt-realtime' }, client);
const user = (text) => rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });

let phase = 'text', text = '', audio = [];
rt.on('error', (e) => out({ t: 'error', error: String(e && e.message || e) }));
rt.on('session.created', (ev) => out({ t: 'session.created', model: ev.session.model }));
rt.on('response.output_text.delta', (ev) => { text += ev.delta; });
rt.on('response.output_audio.delta', (ev) => { audio.push(Buffer.from(ev.delta, 'base64')); });
rt.on('response.done', (ev) => {
  if (phase === 'text') {
    out({ t: 'text', text, status: ev.response.status });
    phase = 'audio';
    rt.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['audio'] } });
    user('what time is it');
    rt.send({ type: 'response.create' });
    return;
  }
  const pcm = Buffer.concat(audio);
  let sum = 0;
  for (let i = 0; i + 1 < pcm.length; i += 2) { const s = pcm.readInt16LE(i); sum += s * s; }
  const rms = pcm.length ? Math.sqrt(sum / (pcm.length / 2)) : 0;
  out({ t: 'audio', bytes: pcm.length, deltas: audio.length, rms, status: ev.response.status });
  clearTimeout(deadline);
  rt.close();
  out({ t: 'done' });
});
rt.socket.on('open', () => {
  out({ t: 'open' });
  rt.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'] } });
  user('hello');
  rt.send({ type: 'response.create' });
});

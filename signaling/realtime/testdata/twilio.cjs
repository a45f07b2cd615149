// A Twilio bridge on the agents SDK's TwilioRealtimeTransportLayer
// (@openai/agents-extensions), unchanged, as its docs have it: a
// WebSocket server that Twilio's Media Stream connects to, each call a
// RealtimeSession on the transport, pointed at Parley's /v1/realtime.
//
// Usage: node twilio.cjs REALTIME_URL. It prints JSON lines: listening
// (its port, on 127.0.0.1), the Realtime events it got (an audio delta's
// payload as its length in bytes), the truncates the transport sent, and
// errors. A line "prompt TEXT" on stdin has the bot answer TEXT (as an
// app greets its caller); stdin closed ends it.
'use strict';
const readline = require('readline');
const { WebSocketServer } = require('ws');
const { RealtimeAgent, RealtimeSession } = require('@openai/agents/realtime');
const { TwilioRealtimeTransportLayer } = require('@openai/agents-extensions');

const [url] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const deadline = setTimeout(() => { out({ t: 'timeout' }); process.exit(2); }, 120000);
let session = null;

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
wss.on('listening', () => out({ t: 'listening', port: wss.address().port }));
wss.on('connection', async (twilioWebSocket) => {
  const transport = new TwilioRealtimeTransportLayer({ twilioWebSocket });
  const send = transport.sendEvent.bind(transport);
  transport.sendEvent = (ev) => {
    if (ev.type === 'conversation.item.truncate') out({ t: 'truncate', item_id: ev.item_id, audio_end_ms: ev.audio_end_ms });
    send(ev);
  };
  const agent = new RealtimeAgent({ name: 'Phone', instructions: 'You are a helpful phone assistant.' });
  session = new RealtimeSession(agent, {
    transport,
    model: 'gpt-realtime',
    config: { audio: { input: { turnDetection: { type: 'server_vad' }, transcription: { model: 'gpt-4o-mini-transcribe' } } } },
  });
  session.on('transport_event', (ev) => {
    if (ev.type === 'twilio_message') return;
    const e = { ...ev };
    if (typeof e.delta === 'string' && /audio\.delta$/.test(e.type)) { e.bytes = Buffer.from(e.delta, 'base64').length; delete e.delta; }
    out({ t: 'event', event: e });
  });
  session.on('audio_interrupted', () => out({ t: 'audio_interrupted' }));
  session.on('error', (e) => out({ t: 'error', error: JSON.stringify(e.error && e.error.error ? e.error.error : String(e.error)) }));
  try {
    await session.connect({ apiKey: 'sk-test', url });
    out({ t: 'connected' });
  } catch (err) {
    out({ t: 'fatal', error: String(err) });
  }
});

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (l) => {
  if (!session) return;
  if (l.startsWith('prompt ')) session.sendMessage(l.slice(7));
  if (l.startsWith('send ')) session.transport.sendEvent(JSON.parse(l.slice(5)));
});
rl.on('close', () => {
  clearTimeout(deadline);
  if (session) session.close();
  wss.close();
  out({ t: 'done' });
  process.exit(0);
});

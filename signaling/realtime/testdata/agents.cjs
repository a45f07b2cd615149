// The stock @openai/agents-realtime client (RealtimeSession over its
// WebSocket transport) against a Parley server, in one scenario, printing
// what it saw as JSON lines for the Go test to assert.
//
//   node agents.cjs <url> <scenario> [speech.pcm]
//
// scenario: text, voice, tool, interrupt. speech.pcm is PCM16 at 24 kHz.
'use strict';
const fs = require('fs');
const { RealtimeAgent, RealtimeSession, tool } = require('@openai/agents-realtime');
const { z } = require('zod');

const [url, scenario, speechFile] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const deadline = setTimeout(() => { out({ t: 'timeout' }); process.exit(2); }, 60000);

// Streams the speech file at real time in 40 ms chunks, then silence.
async function speak(session, file) {
  const pcm = fs.readFileSync(file);
  const chunk = 24000 * 2 * 40 / 1000;
  for (let off = 0; off < pcm.length; off += chunk) {
    const b = pcm.subarray(off, Math.min(off + chunk, pcm.length));
    session.sendAudio(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    await sleep(40);
  }
  const quiet = new ArrayBuffer(chunk);
  for (let i = 0; i < 40; i++) { session.sendAudio(quiet); await sleep(40); }
}

const weather = tool({
  name: 'weather',
  description: 'The weather in a city',
  parameters: z.object({ city: z.string() }),
  async execute({ city }) { out({ t: 'tool_ran', city }); return `sunny and 21 degrees in ${city}`; },
});

async function main() {
  const text = scenario === 'text' || scenario === 'tool';
  const agent = new RealtimeAgent({
    name: 'Assistant',
    instructions: 'You are a test assistant.',
    tools: scenario === 'tool' ? [weather] : [],
  });
  const session = new RealtimeSession(agent, {
    transport: 'websocket',
    model: 'gpt-realtime',
    config: text ? { outputModalities: ['text'] } : {},
  });
  let audioBytes = 0, audioEvents = 0;
  const seen = [], statuses = [];
  session.on('transport_event', (ev) => {
    if (!ev || !ev.type) return;
    seen.push(ev.type);
    if (ev.type === 'response.done') statuses.push(ev.response.status + (ev.response.status_details && ev.response.status_details.reason ? ':' + ev.response.status_details.reason : ''));
  });
  session.on('audio', (ev) => { audioBytes += ev.data.byteLength; audioEvents++; });
  session.on('audio_interrupted', () => out({ t: 'audio_interrupted', audioBytes }));
  session.on('agent_tool_start', (_c, _a, t) => out({ t: 'tool_start', name: t.name }));
  session.on('agent_tool_end', (_c, _a, t, result) => out({ t: 'tool_end', name: t.name, result }));
  session.on('error', (e) => out({ t: 'error', error: JSON.stringify(e.error && e.error.error ? e.error.error : String(e.error)) }));
  let ends = 0;
  const ended = [];
  session.on('agent_end', (_c, _a, output) => { ends++; ended.push(output); out({ t: 'agent_end', output }); });

  await session.connect({ apiKey: 'sk-test', url });
  out({ t: 'connected' });
  const waitFor = async (cond, ms) => { const until = Date.now() + ms; while (!cond() && Date.now() < until) await sleep(20); return cond(); };

  switch (scenario) {
    case 'text':
      session.sendMessage('hello');
      await waitFor(() => ends >= 1, 20000);
      break;
    case 'tool':
      session.sendMessage('what is the weather in Paris');
      await waitFor(() => ended.some((o) => /sunny/.test(o)), 30000);
      break;
    case 'voice':
      await speak(session, speechFile);
      await waitFor(() => ends >= 1 && seen.includes('response.done'), 30000);
      break;
    case 'interrupt':
      session.sendMessage('echo one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty');
      await waitFor(() => audioBytes > 24000 * 2, 20000); // a second of the reply has come
      await speak(session, speechFile);
      await waitFor(() => seen.filter((t) => t === 'response.done').length >= 2, 30000);
      break;
  }
  await sleep(500); // late events (a retrieve's answer) land before the history is read
  const history = session.history.map((it) => ({
    type: it.type, role: it.role, status: it.status, name: it.name, output: it.output,
    content: (it.content || []).map((c) => ({ type: c.type, text: c.text, transcript: c.transcript })),
  }));
  out({ t: 'history', history });
  out({ t: 'summary', audioBytes, audioEvents, ends, events: seen, statuses });
  session.close();
  clearTimeout(deadline);
  out({ t: 'done' });
}

main().catch((e) => { out({ t: 'fatal', error: String(e && e.stack || e) }); process.exit(1); });

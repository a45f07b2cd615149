// A call's audio: the microphone (echo cancellation and noise suppression
// on) out, the bot's voice in, over WebRTC or as Opus frames on the
// WebSocket (WebCodecs). A WebRTC call that does not connect moves to the
// WebSocket by itself, on the same socket.

// How long WebRTC may take to connect before the call moves to the
// WebSocket; on one host it takes well under a second.
export const CONNECT_TIMEOUT_MS = 6000;
// How long the server may take to confirm the move.
const MOVE_TIMEOUT_MS = 5000;

export class Call {
  // hooks: level(who, v) for the meters; error(msg) for a problem that
  // does not end the call; moved() once the call is on the WebSocket
  // after WebRTC failed; failed(msg) when the call is dead.
  constructor(transport, hooks) {
    this.transport = transport; // what the next hello says
    this.hooks = hooks;
    this.ctx = null;
    this.mic = null;
    this.pc = null;
    this.client = null;  // the protocol client, while a socket with this call is open
    this.moving = false; // a move to the WebSocket is asked, not yet confirmed
    this.timers = [];
    this.sources = [];   // scheduled bot audio (WebSocket transport)
    this.playAt = 0;
    this.dead = false;
  }

  async start() {
    this.mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
    this.ctx = new AudioContext({ sampleRate: 48000 });
    this.meter('mic', this.ctx.createMediaStreamSource(this.mic));
    if (this.transport === 'ws') await this.startEncoder();
  }

  // meter measures a node's level for the page's meters.
  meter(who, node) {
    const an = this.ctx.createAnalyser();
    an.fftSize = 1024;
    node.connect(an);
    const buf = new Float32Array(an.fftSize);
    const tick = () => {
      if (!this.ctx) return;
      an.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const v of buf) sum += v * v;
      this.hooks.level(who, Math.sqrt(sum / buf.length));
      requestAnimationFrame(tick);
    };
    tick();
    return an;
  }

  // attach starts the call on a (new) socket that said hello with audio.
  async attach(client) {
    this.client = client;
    if (this.moving) {
      // The socket dropped during a move: this hello said ws already.
      this.settle();
    } else if (this.transport === 'webrtc') {
      try {
        await this.negotiate();
      } catch (e) {
        console.warn('WebRTC negotiation failed', e);
        this.fallBack();
      }
    }
  }

  detach() {
    this.client = null;
    this.clearTimers();
    this.closePeer();
  }

  closePeer() {
    if (this.pc) { this.pc.onconnectionstatechange = null; this.pc.close(); this.pc = null; }
    this.audioEl?.remove();
    this.audioEl = null;
  }

  clearTimers() {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }

  async negotiate() {
    const pc = new RTCPeerConnection();
    this.pc = pc;
    for (const t of this.mic.getAudioTracks()) pc.addTrack(t, this.mic);
    pc.onicecandidate = (e) => { if (e.candidate && this.pc === pc) this.client?.send({ type: 'candidate', candidate: e.candidate.toJSON() }); };
    pc.ontrack = (e) => {
      // A remote stream reaches an AnalyserNode only if an unmuted
      // <audio> element plays it too.
      const audio = document.createElement('audio');
      audio.autoplay = true;
      audio.srcObject = e.streams[0] || new MediaStream([e.track]);
      document.body.appendChild(audio);
      this.audioEl = audio;
      this.meter('bot', this.ctx.createMediaStreamSource(audio.srcObject));
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed') this.fallBack();
    };
    // Connected within a few seconds, or the call goes on over the socket.
    this.timers.push(setTimeout(() => {
      if (this.pc === pc && pc.connectionState !== 'connected') this.fallBack();
    }, CONNECT_TIMEOUT_MS));
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.client?.send({ type: 'offer', sdp: { type: 'offer', sdp: offer.sdp } });
  }

  async signal(m) {
    if (!this.pc) return;
    if (m.type === 'answer') {
      try {
        await this.pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
      } catch (e) {
        console.warn('the WebRTC answer was refused', e);
        this.fallBack();
      }
    } else if (m.type === 'candidate' && m.candidate) {
      // One candidate this browser cannot use is no reason to give up.
      await this.pc.addIceCandidate(m.candidate).catch((e) => console.warn('candidate refused', e));
    }
  }

  // fallBack moves a WebRTC call that does not connect (or carries no
  // audio) to the WebSocket: the server closes its peer and the call goes
  // on, the same call, on the same socket.
  async fallBack() {
    if (this.transport !== 'webrtc' || this.moving || this.dead || !this.client) return;
    this.moving = true;
    this.transport = 'ws'; // a reconnect from now on says hello with ws
    this.clearTimers();
    this.closePeer();
    this.client.send({ type: 'audio', transport: 'ws', codec: 'opus' });
    this.timers.push(setTimeout(() => {
      if (this.moving) this.fail('WebRTC could not connect, and the server did not move the call to the WebSocket.');
    }, MOVE_TIMEOUT_MS));
    try {
      await this.startEncoder();
    } catch (e) {
      this.fail('WebRTC could not connect, and this browser cannot send audio over the WebSocket: ' + e.message);
    }
  }

  // moved is the server's word that the call's audio is on the WebSocket.
  moved(m) {
    if (m.transport !== 'ws' || !this.moving) return;
    this.clearTimers();
    this.settle();
  }

  settle() {
    this.moving = false;
    this.hooks.moved();
  }

  fail(msg) {
    if (this.dead) return;
    this.dead = true;
    this.hooks.failed(msg);
  }

  // sending says whether the microphone's Opus goes on the socket: only
  // once the server has a WebSocket audio channel for it.
  get sending() { return this.transport === 'ws' && !this.moving && !!this.client; }

  // WebSocket transport: the microphone through WebCodecs' AudioEncoder,
  // one 20 ms Opus packet per binary message.
  async startEncoder() {
    if (!('AudioEncoder' in window) || !('MediaStreamTrackProcessor' in window)) {
      throw new Error('this browser has no WebCodecs audio; use WebRTC');
    }
    if (this.decoder) return;
    this.decoder = new AudioDecoder({
      output: (data) => this.play(data),
      error: (e) => this.hooks.error('Audio decoding failed: ' + e.message),
    });
    this.decoder.configure({ codec: 'opus', sampleRate: 48000, numberOfChannels: 1 });
    this.botOut = this.ctx.createGain();
    this.botOut.connect(this.ctx.destination);
    this.meter('bot', this.botOut);
    const track = this.mic.getAudioTracks()[0];
    const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
    let enc = null;
    const pump = async () => {
      for (;;) {
        const { value: data, done } = await reader.read();
        if (done || !this.mic) return;
        if (!enc) {
          // Configured from the first frame: a fake or real microphone may
          // give 44.1 kHz stereo.
          enc = new AudioEncoder({
            output: (chunk) => {
              if (!this.sending) return;
              const b = new Uint8Array(chunk.byteLength);
              chunk.copyTo(b);
              this.client.sendBinary(b);
            },
            error: (e) => this.hooks.error('Audio encoding failed: ' + e.message),
          });
          enc.configure({ codec: 'opus', sampleRate: data.sampleRate, numberOfChannels: data.numberOfChannels,
            bitrate: 32000, opus: { frameDuration: 20000 } });
          this.encoder = enc;
        }
        enc.encode(data);
        data.close();
      }
    };
    pump();
  }

  audioIn(buf) {
    if (!this.decoder || this.decoder.state !== 'configured') return;
    this.decoder.decode(new EncodedAudioChunk({ type: 'key', timestamp: 0, data: buf }));
  }

  play(data) {
    const n = data.numberOfFrames;
    const ab = this.ctx.createBuffer(1, n, data.sampleRate);
    const ch = new Float32Array(n);
    data.copyTo(ch, { planeIndex: 0, format: 'f32-planar' });
    data.close();
    ab.copyToChannel(ch, 0);
    const src = this.ctx.createBufferSource();
    src.buffer = ab;
    src.connect(this.botOut);
    const now = this.ctx.currentTime;
    if (this.playAt < now + 0.02) this.playAt = now + 0.06; // a small jitter buffer
    src.start(this.playAt);
    this.playAt += ab.duration;
    this.sources.push(src);
    src.onended = () => { this.sources = this.sources.filter((s) => s !== src); };
  }

  // dropAudio discards the bot's queued audio (after an interruption).
  dropAudio() {
    for (const s of this.sources) { try { s.stop(); } catch (e) { /* already stopped */ } }
    this.sources = [];
    this.playAt = 0;
  }

  stop() {
    this.dead = true;
    this.detach();
    this.dropAudio();
    this.mic?.getTracks().forEach((t) => t.stop());
    this.mic = null;
    this.encoder?.close?.();
    if (this.decoder?.state !== 'closed') this.decoder?.close?.();
    this.ctx?.close();
    this.ctx = null;
  }
}

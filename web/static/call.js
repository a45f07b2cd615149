// A call's audio: the microphone (echo cancellation and noise suppression
// on) out, the bot's voice in, over WebRTC or as Opus frames on the
// WebSocket (WebCodecs).
export class Call {
  constructor(transport, hooks) {
    this.transport = transport;
    this.hooks = hooks;
    this.ctx = null;
    this.mic = null;
    this.pc = null;
    this.send = null;
    this.sources = []; // scheduled bot audio (WebSocket transport)
    this.playAt = 0;
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
  async attach(send, ws) {
    this.send = send;
    this.ws = ws;
    if (this.transport === 'webrtc') await this.negotiate();
  }

  detach() {
    this.send = null;
    this.ws = null;
    if (this.pc) { this.pc.close(); this.pc = null; }
  }

  async negotiate() {
    const pc = new RTCPeerConnection();
    this.pc = pc;
    for (const t of this.mic.getAudioTracks()) pc.addTrack(t, this.mic);
    pc.onicecandidate = (e) => { if (e.candidate) this.send?.({ type: 'candidate', candidate: e.candidate.toJSON() }); };
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
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.send?.({ type: 'offer', sdp: { type: 'offer', sdp: offer.sdp } });
  }

  async signal(m) {
    if (!this.pc) return;
    if (m.type === 'answer') await this.pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
    else if (m.type === 'candidate' && m.candidate) await this.pc.addIceCandidate(m.candidate);
  }

  // WebSocket transport: the microphone through WebCodecs' AudioEncoder,
  // one 20 ms Opus packet per binary message.
  async startEncoder() {
    if (!('AudioEncoder' in window) || !('MediaStreamTrackProcessor' in window)) {
      throw new Error('this browser has no WebCodecs audio; use WebRTC');
    }
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
              if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
              const b = new Uint8Array(chunk.byteLength);
              chunk.copyTo(b);
              this.ws.send(b);
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
    this.decoder = new AudioDecoder({
      output: (data) => this.play(data),
      error: (e) => this.hooks.error('Audio decoding failed: ' + e.message),
    });
    this.decoder.configure({ codec: 'opus', sampleRate: 48000, numberOfChannels: 1 });
    this.botOut = this.ctx.createGain();
    this.botOut.connect(this.ctx.destination);
    this.meter('bot', this.botOut);
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
    this.detach();
    this.dropAudio();
    this.mic?.getTracks().forEach((t) => t.stop());
    this.mic = null;
    this.encoder?.close?.();
    this.decoder?.close?.();
    this.audioEl?.remove();
    this.ctx?.close();
    this.ctx = null;
  }
}

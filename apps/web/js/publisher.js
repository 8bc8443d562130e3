/* XdnPublisher: publishes a camera and microphone to a node over WHIP.
 *
 *   const publisher = new XdnPublisher(previewVideo, { whipUrl, token });
 *   publisher.onupdate = (status) => { ... };
 *   await publisher.start();     // asks for the camera, then publishes
 *   ...
 *   publisher.stop();            // ends the session on the node (DELETE)
 *
 * sendonly transceivers, non-trickle. Video prefers H.264 constrained
 * baseline (packetization-mode 1), then VP8; audio is Opus: the codecs a node
 * forwards without transcoding.
 *
 * publisher.status is kept up to date in place:
 *   { state, framesSent, error, httpStatus, connectionState, width, height,
 *     fps, bitrate, codec, session }
 * state is one of idle, starting (camera), connecting, publishing, stopped,
 * failed.
 *
 * Needs js/webrtc.js. Plain script: defines window.XdnPublisher. */
(function () {
  "use strict";

  const STATS_INTERVAL_MS = 1000;

  /* H.264 constrained baseline first (profile_idc 0x42 with the
   * constraint_set1 flag, e.g. 42e01f), then other baseline with
   * packetization-mode 1, then VP8; rtx follows so retransmission stays
   * possible. Everything else is left out: the node would refuse it. */
  function preferredVideoCodecs(capabilities) {
    const rank = (c) => {
      const mime = c.mimeType.toLowerCase();
      const fmtp = (c.sdpFmtpLine || "").toLowerCase();
      if (mime === "video/h264") {
        if (!/packetization-mode=1/.test(fmtp))
          return -1;
        const m = /profile-level-id=([0-9a-f]{6})/.exec(fmtp);
        const profile = m ? m[1] : "42001f";
        if (profile.startsWith("42e0") || profile.startsWith("42c0"))
          return 0;
        if (profile.startsWith("4200"))
          return 1;
        return -1;
      }
      if (mime === "video/vp8")
        return 2;
      if (mime === "video/rtx")
        return 3;
      return -1;
    };
    return capabilities.codecs
      .map((c, i) => ({ c, r: rank(c), i }))
      .filter((x) => x.r >= 0)
      .sort((a, b) => a.r - b.r || a.i - b.i)
      .map((x) => x.c);
  }

  function preferredAudioCodecs(capabilities) {
    return capabilities.codecs.filter((c) => c.mimeType.toLowerCase() === "audio/opus");
  }

  /* Sets the preference when the browser supports it; codecs the browser
   * cannot send are dropped first. Never throws: without a preference the
   * node picks from the browser's default offer. */
  function setPreferences(transceiver, kind, choose) {
    if (typeof transceiver.setCodecPreferences !== "function" || !window.RTCRtpReceiver ||
        !RTCRtpReceiver.getCapabilities)
      return;
    try {
      const receive = RTCRtpReceiver.getCapabilities(kind);
      const send = RTCRtpSender.getCapabilities ? RTCRtpSender.getCapabilities(kind) : null;
      let codecs = choose(receive);
      if (send) {
        const key = (c) => c.mimeType.toLowerCase() + " " + (c.sdpFmtpLine || "");
        const sendable = new Set(send.codecs.map(key));
        const filtered = codecs.filter((c) => c.mimeType.toLowerCase() === "video/rtx" || sendable.has(key(c)));
        if (filtered.some((c) => c.mimeType.toLowerCase() !== "video/rtx"))
          codecs = filtered;
      }
      if (codecs.length)
        transceiver.setCodecPreferences(codecs);
    } catch (e) {
      console.warn("XdnPublisher: codec preferences not applied:", e);
    }
  }

  class XdnPublisher {
    /* options: whipUrl (required), token, constraints (getUserMedia). */
    constructor(preview, options) {
      const opts = options || {};
      if (!opts.whipUrl)
        throw new Error("XdnPublisher needs a whipUrl");
      this.preview = preview;
      this.whipUrl = opts.whipUrl;
      this.token = opts.token || null;
      this.constraints = opts.constraints || {
        video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
        audio: true,
      };
      this.onupdate = null;
      this.status = {
        state: "idle",
        framesSent: 0,
        error: null,
        httpStatus: null,
        connectionState: "new",
        width: 0,
        height: 0,
        fps: 0,
        bitrate: 0,
        codec: null,
        session: null,
      };
      this.media = null;     /* the camera and microphone MediaStream */
      this.pc = null;
      this.session = null;
      this.statsTimer = null;
      this.lastStats = null;
      this.generation = 0;   /* bumped by every start and stop */
    }

    async start() {
      const generation = ++this.generation;
      this.status.error = null;
      this.status.httpStatus = null;
      this.status.framesSent = 0;
      this.setState("starting");
      try {
        if (!this.media) {
          if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia)
            throw new Error("camera access needs a secure context (https or localhost)");
          this.media = await navigator.mediaDevices.getUserMedia(this.constraints);
          this.preview.srcObject = this.media;
          this.preview.muted = true;
          this.preview.play().catch(() => {});
        }
        if (generation !== this.generation)
          return;

        this.setState("connecting");
        const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
        this.pc = pc;
        pc.addEventListener("connectionstatechange", () => this.onConnectionState(pc));
        for (const track of this.media.getTracks()) {
          const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [this.media] });
          if (track.kind === "video")
            setPreferences(transceiver, "video", preferredVideoCodecs);
          else
            setPreferences(transceiver, "audio", preferredAudioCodecs);
        }

        const session = await XdnWebRtc.exchange(pc, this.whipUrl, { token: this.token });
        if (generation !== this.generation) {
          session.close();
          return;
        }
        this.session = session;
        this.status.session = session.resourceUrl;
        this.status.httpStatus = 201;
        this.lastStats = null;
        clearInterval(this.statsTimer);
        this.statsTimer = setInterval(() => this.tick(), STATS_INTERVAL_MS);
        this.setState("publishing");
      } catch (e) {
        if (generation !== this.generation)
          return;
        this.status.httpStatus = e.status || null;
        this.fail(e.message || String(e));
      }
    }

    /* Ends the session and releases the camera. */
    stop() {
      this.generation++;
      this.teardown();
      if (this.media) {
        this.media.getTracks().forEach((t) => t.stop());
        this.media = null;
        this.preview.srcObject = null;
      }
      this.setState("stopped");
    }

    teardown() {
      clearInterval(this.statsTimer);
      this.statsTimer = null;
      if (this.session) {
        this.session.close();
        this.session = null;
      }
      if (this.pc) {
        this.pc.close();
        this.pc = null;
      }
      this.status.session = null;
      this.status.bitrate = 0;
    }

    fail(message) {
      this.teardown();
      this.status.error = message;
      this.setState("failed");
    }

    onConnectionState(pc) {
      if (pc !== this.pc)
        return;
      this.status.connectionState = pc.connectionState;
      if (pc.connectionState === "failed")
        this.fail("connection to the node failed");
      else
        this.update();
    }

    async tick() {
      const pc = this.pc;
      if (!pc)
        return;
      let report;
      try {
        report = await pc.getStats();
      } catch (e) {
        return;
      }
      if (pc !== this.pc)
        return;
      const now = performance.now();
      let bytes = 0;
      let video = null;
      report.forEach((s) => {
        if (s.type !== "outbound-rtp")
          return;
        bytes += s.bytesSent || 0;
        if (s.kind === "video" || s.mediaType === "video")
          video = s;
      });
      const st = this.status;
      if (video) {
        st.framesSent = video.framesSent || video.framesEncoded || 0;
        st.width = video.frameWidth || 0;
        st.height = video.frameHeight || 0;
        st.fps = video.framesPerSecond || 0;
        const codec = video.codecId ? report.get(video.codecId) : null;
        st.codec = codec ? codec.mimeType.replace(/^video\//, "") : null;
      }
      st.bitrate = this.lastStats ? XdnWebRtc.bitrate(bytes, this.lastStats.bytes, now, this.lastStats.t) : 0;
      this.lastStats = { t: now, bytes: bytes };
      this.update();
    }

    setState(state) {
      this.status.state = state;
      this.update();
    }

    update() {
      if (typeof this.onupdate !== "function")
        return;
      try {
        this.onupdate(this.status);
      } catch (e) {
        console.error("XdnPublisher onupdate:", e);
      }
    }
  }

  XdnPublisher.preferredVideoCodecs = preferredVideoCodecs;
  window.XdnPublisher = XdnPublisher;
})();

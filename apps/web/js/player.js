/* XdnPlayer: a WHEP player that keeps playing.
 *
 *   const player = new XdnPlayer(videoElement, { whepUrl, token });
 *   player.onupdate = (status) => { ... };   // at most a few times a second
 *   player.start();
 *   ...
 *   player.stop();                            // also ends the session on the node
 *
 * It offers recvonly video and audio, non-trickle, and plays what the node
 * answers. It reconnects with backoff (1 s, 2 s, 4 s, ... at most 10 s) when
 * the offer is refused (404: not live yet) or fails, when the connection stays
 * failed or disconnected for more than 3 s, and when no frame arrives for 5 s.
 * It reads the glass-to-glass latency stamped into the picture with
 * window.XdnLatency (js/latency.js) when that is loaded.
 *
 * player.status is one object kept up to date in place:
 *   { state, framesDecoded, latency: { last, p50, p95, count, unreadable },
 *     reconnects, error, httpStatus, connectionState, width, height, fps,
 *     bitrate, packetsLost, jitterMs, session }
 * state is one of idle, connecting, waiting (stream not live yet),
 * reconnecting, connected (no frame yet), playing, stopped.
 *
 * Needs js/webrtc.js. Plain script: defines window.XdnPlayer. */
(function () {
  "use strict";

  const BACKOFF_FIRST_MS = 1000;
  const BACKOFF_MAX_MS = 10000;
  const BAD_CONNECTION_MS = 3000;
  const NO_FRAMES_MS = 5000;
  const STATS_INTERVAL_MS = 1000;
  const LATENCY_POLL_MS = 100;
  const UPDATE_INTERVAL_MS = 250;

  function percentile(sorted, p) {
    if (sorted.length === 0)
      return null;
    const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1));
    return sorted[rank];
  }

  class XdnPlayer {
    /* options: whepUrl (required), token, canvas (for the latency reader;
     * one is made when absent), latencyWindow (readings kept for p50/p95). */
    constructor(video, options) {
      const opts = options || {};
      if (!opts.whepUrl)
        throw new Error("XdnPlayer needs a whepUrl");
      this.video = video;
      this.whepUrl = opts.whepUrl;
      this.token = opts.token || null;
      this.canvas = opts.canvas || document.createElement("canvas");
      this.latencyWindow = opts.latencyWindow || 300;
      this.onupdate = null;

      this.status = {
        state: "idle",
        framesDecoded: 0,
        latency: { last: null, p50: null, p95: null, count: 0, unreadable: 0 },
        reconnects: 0,
        error: null,
        httpStatus: null,
        connectionState: "new",
        width: 0,
        height: 0,
        fps: 0,
        bitrate: 0,
        packetsLost: 0,
        jitterMs: 0,
        session: null,
      };

      this.running = false;
      this.generation = 0;      /* bumped by every connect and stop */
      this.pc = null;
      this.session = null;
      this.backoffMs = BACKOFF_FIRST_MS;
      this.retryTimer = null;
      this.statsTimer = null;
      this.latencyTimer = null;
      this.frameRequest = null; /* pending requestVideoFrameCallback */
      this.lastFrameCallbackAt = 0;
      this.latencies = [];      /* last latencyWindow readings, oldest first */
      this.lastStats = null;    /* { t, bytes } of the previous getStats */
      this.lastProgressAt = 0;  /* when framesDecoded last grew */
      this.badSince = 0;        /* when the connection turned failed/disconnected */
      this.lastUpdateAt = 0;
      this.updatePending = null;
    }

    start() {
      if (this.running)
        return;
      this.running = true;
      this.status.reconnects = 0;
      this.backoffMs = BACKOFF_FIRST_MS;
      this.statsTimer = setInterval(() => this.tick(), STATS_INTERVAL_MS);
      this.startLatencyLoop();
      this.connect();
    }

    stop() {
      this.running = false;
      this.generation++;
      clearTimeout(this.retryTimer);
      clearInterval(this.statsTimer);
      clearInterval(this.latencyTimer);
      this.retryTimer = this.statsTimer = this.latencyTimer = null;
      if (this.frameRequest !== null && this.video.cancelVideoFrameCallback)
        this.video.cancelVideoFrameCallback(this.frameRequest);
      this.frameRequest = null;
      this.teardown();
      this.setState("stopped");
    }

    /* Unmutes; returns false when the browser refuses to play with sound. */
    async unmute() {
      this.video.muted = false;
      try {
        await this.video.play();
        return true;
      } catch (e) {
        this.video.muted = true;
        this.video.play().catch(() => {});
        return false;
      }
    }

    /* --- session ------------------------------------------------------- */

    async connect() {
      const generation = ++this.generation;
      this.teardown();
      this.setState(this.status.reconnects > 0 ? "reconnecting" : "connecting");

      const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
      this.pc = pc;
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.addTransceiver("audio", { direction: "recvonly" });
      pc.addEventListener("connectionstatechange", () => {
        if (pc === this.pc) {
          this.status.connectionState = pc.connectionState;
          this.update();
        }
      });
      /* The receivers' tracks exist before any media: play them now and the
       * element starts as soon as frames arrive. */
      this.attach(new MediaStream(pc.getReceivers().map((r) => r.track)));

      let session;
      try {
        session = await XdnWebRtc.exchange(pc, this.whepUrl, { token: this.token });
      } catch (e) {
        if (generation !== this.generation)
          return;
        this.status.httpStatus = e.status || null;
        this.retry(e.status === 404 ? "waiting" : "reconnecting", e.message || String(e));
        return;
      }
      if (generation !== this.generation) {
        session.close();
        return;
      }
      this.session = session;
      this.status.session = session.resourceUrl;
      this.status.httpStatus = 201;
      this.status.error = null;
      this.status.framesDecoded = 0;
      this.lastStats = null;
      this.lastProgressAt = performance.now();
      this.badSince = 0;
      this.setState("connected");
    }

    /* Ends the current session (DELETE) and closes its peer connection. */
    teardown() {
      if (this.session) {
        this.session.close();
        this.session = null;
      }
      if (this.pc) {
        this.pc.close();
        this.pc = null;
      }
      this.status.session = null;
      this.status.connectionState = "closed";
    }

    /* Drops the session and tries again after the current backoff. */
    retry(state, reason) {
      if (!this.running)
        return;
      this.generation++;
      this.teardown();
      this.status.error = reason;
      this.status.reconnects++;
      this.setState(state);
      const delay = this.backoffMs;
      this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        if (this.running)
          this.connect();
      }, delay);
    }

    attach(stream) {
      const video = this.video;
      video.srcObject = stream;
      video.playsInline = true;
      video.autoplay = true;
      video.play().catch((e) => {
        /* Autoplay with sound refused: play muted, the page offers unmute. */
        if (e && e.name === "NotAllowedError" && !video.muted) {
          video.muted = true;
          video.play().catch(() => {});
          this.update();
        }
      });
    }

    /* --- watchdog and statistics, once a second ------------------------- */

    async tick() {
      const pc = this.pc;
      if (!pc || !this.session)
        return;
      const now = performance.now();

      const cs = pc.connectionState;
      if (cs === "failed" || cs === "disconnected" || cs === "closed") {
        if (!this.badSince)
          this.badSince = now;
        else if (now - this.badSince > BAD_CONNECTION_MS)
          return this.retry("reconnecting", "connection " + cs + " for more than 3 s");
      } else {
        this.badSince = 0;
      }

      let report;
      try {
        report = await pc.getStats();
      } catch (e) {
        return;
      }
      if (pc !== this.pc)
        return;

      let video = null;
      let bytes = 0;
      let lost = 0;
      report.forEach((s) => {
        if (s.type !== "inbound-rtp")
          return;
        bytes += s.bytesReceived || 0;
        lost += s.packetsLost || 0;
        if (s.kind === "video" || s.mediaType === "video")
          video = s;
      });

      let frames = video && typeof video.framesDecoded === "number" ? video.framesDecoded : null;
      if (frames === null && this.video.getVideoPlaybackQuality)
        frames = this.video.getVideoPlaybackQuality().totalVideoFrames;
      frames = frames || 0;

      const st = this.status;
      if (frames > st.framesDecoded) {
        this.lastProgressAt = now;
        if (st.state !== "playing") {
          this.backoffMs = BACKOFF_FIRST_MS;
          st.error = null;
          this.setState("playing");
        }
      }
      st.framesDecoded = frames;
      st.width = (video && video.frameWidth) || this.video.videoWidth || 0;
      st.height = (video && video.frameHeight) || this.video.videoHeight || 0;
      st.fps = (video && video.framesPerSecond) || 0;
      st.jitterMs = video && video.jitter ? Math.round(video.jitter * 1000) : 0;
      st.packetsLost = lost;
      st.bitrate = this.lastStats ? XdnWebRtc.bitrate(bytes, this.lastStats.bytes, now, this.lastStats.t) : 0;
      this.lastStats = { t: now, bytes: bytes };

      if (now - this.lastProgressAt > NO_FRAMES_MS)
        return this.retry("reconnecting", "no video frames for 5 s");
      this.update();
    }

    /* --- latency read from the picture ----------------------------------- */

    /* Reads every presented frame (requestVideoFrameCallback), else polls.
     * There is one frame callback pending at most: re-arming cancels the
     * previous one. */
    startLatencyLoop() {
      const video = this.video;
      if (typeof video.requestVideoFrameCallback !== "function") {
        this.latencyTimer = setInterval(() => this.measureLatency(), LATENCY_POLL_MS);
        return;
      }
      const onFrame = () => {
        this.frameRequest = null;
        if (!this.running)
          return;
        this.lastFrameCallbackAt = performance.now();
        this.measureLatency();
        this.armFrameCallback(onFrame);
      };
      this.armFrameCallback(onFrame);
      /* A source change may drop the pending callback: re-arm when frames
       * play but no callback came for a while. */
      this.latencyTimer = setInterval(() => {
        if (this.running && this.status.state === "playing" &&
            performance.now() - (this.lastFrameCallbackAt || 0) > 1500)
          this.armFrameCallback(onFrame);
      }, 1000);
    }

    armFrameCallback(onFrame) {
      if (this.frameRequest !== null && this.frameRequest !== undefined)
        this.video.cancelVideoFrameCallback(this.frameRequest);
      this.frameRequest = this.video.requestVideoFrameCallback(onFrame);
    }

    measureLatency() {
      const reader = window.XdnLatency;
      if (!reader || typeof reader.measure !== "function")
        return;
      if (!this.session || !this.video.videoWidth || this.video.readyState < 2)
        return;
      const lat = this.status.latency;
      let reading = null;
      try {
        reading = reader.measure(this.video, this.canvas);
      } catch (e) {
        reading = null;
      }
      if (!reading || typeof reading.latencyMs !== "number" || !isFinite(reading.latencyMs)) {
        lat.unreadable++;
        return;
      }
      lat.last = Math.round(reading.latencyMs);
      lat.count++;
      this.latencies.push(reading.latencyMs);
      if (this.latencies.length > this.latencyWindow)
        this.latencies.shift();
      const sorted = this.latencies.slice().sort((a, b) => a - b);
      lat.p50 = Math.round(percentile(sorted, 50));
      lat.p95 = Math.round(percentile(sorted, 95));
      this.update();
    }

    /* --- notifications ---------------------------------------------------- */

    setState(state) {
      if (this.status.state !== state) {
        this.status.state = state;
        this.update(true);
      }
    }

    /* Calls onupdate, at most every UPDATE_INTERVAL_MS unless forced. */
    update(force) {
      if (typeof this.onupdate !== "function")
        return;
      const now = performance.now();
      if (!force && now - this.lastUpdateAt < UPDATE_INTERVAL_MS) {
        if (!this.updatePending)
          this.updatePending = setTimeout(() => {
            this.updatePending = null;
            this.update(true);
          }, UPDATE_INTERVAL_MS);
        return;
      }
      this.lastUpdateAt = now;
      try {
        this.onupdate(this.status);
      } catch (e) {
        console.error("XdnPlayer onupdate:", e);
      }
    }
  }

  XdnPlayer.percentile = percentile;
  window.XdnPlayer = XdnPlayer;
})();

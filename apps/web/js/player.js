/* XdnPlayer: a WHEP player that keeps playing.
 *
 *   const player = new XdnPlayer(videoElement, { whepUrl, token });
 *   // or, through a stream manager that picks the node:
 *   const player = new XdnPlayer(videoElement, { manager, stream, region, token });
 *   player.onupdate = (status) => { ... };   // at most a few times a second
 *   player.start();
 *   ...
 *   player.stop();                            // also ends the session on the node
 *
 * It offers recvonly video and audio, non-trickle, and plays what the node
 * answers.
 *
 * Direct mode (whepUrl): it reconnects with backoff (1 s, 2 s, 4 s, ... at
 * most 10 s) when the offer is refused (404: not live yet) or fails, when the
 * connection stays failed or disconnected for more than 3 s, and when no frame
 * arrives for 5 s.
 *
 * Manager mode (manager + stream): before every connection it asks the
 * manager which node to play from (GET {manager}/api/v1/streams/{stream}/
 * subscribe?region=R -> { node, whep }) and plays that node's WHEP URL. It
 * asks again, with backoff 250 ms doubling to 2 s, when the manager or the
 * node refuses or fails, at once when ICE fails, when the connection stays
 * disconnected for 1 s, when no frame arrives for 3 s, and when frames stop
 * for 500 ms and the session's node no longer answers (or answers 404 for the
 * session). The backoff starts again at 250 ms once frames play.
 *
 * It reads the glass-to-glass latency stamped into the picture with
 * window.XdnLatency (js/latency.js) when that is loaded.
 *
 * player.status is one object kept up to date in place:
 *   { state, playing, playingSince, framesDecoded, framesPresented, lastFrameAt,
 *     latency: { last, p50, p95, count, unreadable },
 *     reconnects, reconnectReason, error, httpStatus, connectionState, width, height, fps,
 *     bitrate, packetsLost, jitterMs, session, mode, manager, node, whepUrl }
 * state is one of idle, connecting, waiting (stream not live yet),
 * reconnecting, connected (no frame yet), playing, stopped; playing is
 * state === "playing". mode is "direct" or "manager"; node is the id of the
 * node the manager chose (null in direct mode); whepUrl the endpoint in use.
 * framesPresented counts frames shown (requestVideoFrameCallback, where the
 * browser has it), lastFrameAt is the Date.now() of the last one;
 * playingSince is the Date.now() when the current session began to play;
 * reconnectReason why the last session was given up (kept after success).
 *
 * Needs js/webrtc.js. Plain script: defines window.XdnPlayer. */
(function () {
  "use strict";

  /* When to give up on a session and how long to wait before the next one.
   * failedConnectionMs: how long ICE may stay "failed" (0: give up at once);
   * badConnectionMs: the same for "disconnected"; stallProbeMs: after this
   * long without a frame, ask the node whether the session still exists
   * (0: never). */
  const DIRECT_TIMING = {
    backoffFirstMs: 1000,
    backoffMaxMs: 10000,
    badConnectionMs: 3000,
    failedConnectionMs: 3000,
    noFramesMs: 5000,
    stallProbeMs: 0,
  };
  const MANAGER_TIMING = {
    backoffFirstMs: 250,
    backoffMaxMs: 2000,
    badConnectionMs: 1000,
    failedConnectionMs: 0,
    noFramesMs: 3000,
    stallProbeMs: 500,
  };
  const WATCH_INTERVAL_MS = 250;
  const PROBE_TIMEOUT_MS = 1000;
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
    /* options: whepUrl (direct mode), or manager (URL) and stream (manager
     * mode, with an optional region); token (bearer token for the WHEP
     * requests), canvas (for the latency reader; one is made when absent),
     * latencyWindow (readings kept for p50/p95). */
    constructor(video, options) {
      const opts = options || {};
      if (!opts.whepUrl && !(opts.manager && opts.stream))
        throw new Error("XdnPlayer needs a whepUrl, or a manager and a stream");
      this.video = video;
      this.manager = opts.whepUrl ? null : String(opts.manager).replace(/\/+$/, "");
      this.stream = opts.stream || null;
      this.region = opts.region || null;
      this.whepUrl = opts.whepUrl || null;
      this.timing = this.manager ? MANAGER_TIMING : DIRECT_TIMING;
      this.token = opts.token || null;
      this.canvas = opts.canvas || document.createElement("canvas");
      this.latencyWindow = opts.latencyWindow || 300;
      this.onupdate = null;

      this.status = {
        state: "idle",
        playing: false,
        framesDecoded: 0,
        framesPresented: 0,
        lastFrameAt: null,
        playingSince: null,
        latency: { last: null, p50: null, p95: null, count: 0, unreadable: 0 },
        reconnects: 0,
        reconnectReason: null,
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
        mode: this.manager ? "manager" : "direct",
        manager: this.manager,
        node: null,
        whepUrl: this.whepUrl,
      };

      this.running = false;
      this.generation = 0;      /* bumped by every connect and stop */
      this.pc = null;
      this.session = null;
      this.backoffMs = this.timing.backoffFirstMs;
      this.retryTimer = null;
      this.statsTimer = null;
      this.watchTimer = null;   /* manager mode: the fast watchdog */
      this.latencyTimer = null;
      this.frameRequest = null; /* pending requestVideoFrameCallback */
      this.onFrame = null;      /* the frame callback while the loop runs */
      this.lastFrameCallbackAt = 0;
      this.lastShownFrames = 0; /* getVideoPlaybackQuality().totalVideoFrames */
      this.probing = false;     /* a session probe is under way */
      this.lastProbeAt = 0;
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
      this.backoffMs = this.timing.backoffFirstMs;
      this.statsTimer = setInterval(() => this.tick(), STATS_INTERVAL_MS);
      if (this.manager)
        this.watchTimer = setInterval(() => this.watch(), WATCH_INTERVAL_MS);
      this.startLatencyLoop();
      this.connect();
    }

    stop() {
      this.running = false;
      this.generation++;
      clearTimeout(this.retryTimer);
      clearInterval(this.statsTimer);
      clearInterval(this.watchTimer);
      clearInterval(this.latencyTimer);
      this.retryTimer = this.statsTimer = this.watchTimer = this.latencyTimer = null;
      if (this.frameRequest !== null && this.video.cancelVideoFrameCallback)
        this.video.cancelVideoFrameCallback(this.frameRequest);
      this.frameRequest = null;
      this.onFrame = null;
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

      let whepUrl = this.whepUrl;
      if (this.manager) {
        let placement;
        try {
          placement = await XdnWebRtc.subscribe(this.manager, this.stream, { region: this.region });
        } catch (e) {
          if (generation !== this.generation)
            return;
          this.status.httpStatus = e.status || null;
          this.retry(e.status === 404 ? "waiting" : "reconnecting", e.message || String(e));
          return;
        }
        if (generation !== this.generation)
          return;
        whepUrl = placement.whep;
        this.status.node = placement.node;
        this.status.whepUrl = whepUrl;
        this.update();
      }

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
        session = await XdnWebRtc.exchange(pc, whepUrl, { token: this.token });
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
      this.lastProbeAt = 0;
      this.badSince = 0;
      this.setState("connected");
    }

    /* The first frame of a session: playing, and the backoff starts over. */
    markPlaying() {
      if (this.status.state === "playing" || !this.session)
        return;
      this.backoffMs = this.timing.backoffFirstMs;
      this.status.error = null;
      this.status.playingSince = Date.now();
      this.setState("playing");
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
      this.status.reconnectReason = reason;
      this.status.reconnects++;
      this.setState(state);
      const delay = this.backoffMs;
      this.backoffMs = Math.min(this.backoffMs * 2, this.timing.backoffMaxMs);
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
      /* A new source may drop the pending frame callback. */
      if (this.onFrame)
        this.armFrameCallback(this.onFrame);
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

    /* Gives up on the session when ICE stayed failed or disconnected for
     * longer than the mode allows; returns true when it did. */
    checkConnection(now) {
      const cs = this.pc.connectionState;
      const failed = cs === "failed" || cs === "closed";
      if (!failed && cs !== "disconnected") {
        this.badSince = 0;
        return false;
      }
      if (!this.badSince)
        this.badSince = now;
      const allowed = failed ? this.timing.failedConnectionMs : this.timing.badConnectionMs;
      if (now - this.badSince < allowed)
        return false;
      this.retry("reconnecting", allowed > 0
        ? "connection " + cs + " for more than " + allowed / 1000 + " s" : "connection " + cs);
      return true;
    }

    /* Manager mode, every 250 ms: notices a lost node quickly so that the
     * manager can hand out another one. */
    watch() {
      const pc = this.pc;
      if (!pc || !this.session)
        return;
      const now = performance.now();
      if (this.checkConnection(now))
        return;
      /* Frames shown, also where requestVideoFrameCallback does not run. */
      const quality = this.video.getVideoPlaybackQuality ? this.video.getVideoPlaybackQuality() : null;
      if (quality && quality.totalVideoFrames !== this.lastShownFrames) {
        this.lastShownFrames = quality.totalVideoFrames;
        this.lastProgressAt = now;
      }
      const lastFrame = Math.max(this.lastProgressAt, this.lastFrameCallbackAt);
      if (now - lastFrame > this.timing.noFramesMs)
        return this.retry("reconnecting", "no video frames for " + this.timing.noFramesMs / 1000 + " s");
      if (this.timing.stallProbeMs && !this.probing &&
          now - lastFrame > this.timing.stallProbeMs && now - this.lastProbeAt > this.timing.stallProbeMs)
        this.probe();
    }

    /* Asks the node whether the session still exists; gives up on it when
     * the node does not answer or says it is gone. */
    async probe() {
      const session = this.session;
      const generation = this.generation;
      this.probing = true;
      this.lastProbeAt = performance.now();
      let verdict;
      try {
        verdict = await session.probe(PROBE_TIMEOUT_MS);
      } finally {
        this.probing = false;
      }
      if (generation !== this.generation || session !== this.session)
        return;
      if (verdict === "gone")
        this.retry("reconnecting", "the node ended the session");
      else if (verdict === "unreachable")
        this.retry("reconnecting", "the node does not answer");
    }

    async tick() {
      const pc = this.pc;
      if (!pc || !this.session)
        return;
      const now = performance.now();

      if (this.checkConnection(now))
        return;

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
        this.markPlaying();
      }
      st.framesDecoded = frames;
      st.width = (video && video.frameWidth) || this.video.videoWidth || 0;
      st.height = (video && video.frameHeight) || this.video.videoHeight || 0;
      st.fps = (video && video.framesPerSecond) || 0;
      st.jitterMs = video && video.jitter ? Math.round(video.jitter * 1000) : 0;
      st.packetsLost = lost;
      st.bitrate = this.lastStats ? XdnWebRtc.bitrate(bytes, this.lastStats.bytes, now, this.lastStats.t) : 0;
      this.lastStats = { t: now, bytes: bytes };

      if (now - Math.max(this.lastProgressAt, this.lastFrameCallbackAt) > this.timing.noFramesMs)
        return this.retry("reconnecting", "no video frames for " + this.timing.noFramesMs / 1000 + " s");
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
        if (this.session) {
          this.lastFrameCallbackAt = performance.now();
          this.status.framesPresented++;
          this.status.lastFrameAt = Date.now();
          this.markPlaying();
        }
        this.measureLatency();
        this.armFrameCallback(onFrame);
      };
      this.onFrame = onFrame;
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
        this.status.playing = state === "playing";
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

/* WHIP and WHEP signalling for the OpenXDN pages (RFC 9725 and WHEP).
 *
 * Non-trickle: the offer is sent once ICE gathering is complete (or after a
 * bounded wait), with every candidate in it; the answer carries the node's
 * candidates. The session is the resource named by the answer's Location and
 * ends with a DELETE on it.
 *
 *   const session = await XdnWebRtc.exchange(pc, "https://node/whep/demo", { token });
 *   ...
 *   session.close();  // DELETE, also safe from pagehide
 *
 * With a stream manager, the node to play from comes first:
 *
 *   const { node, whep } = await XdnWebRtc.subscribe("https://manager", "demo", { region });
 *
 * Plain script, no modules, no dependencies: it defines window.XdnWebRtc. */
(function () {
  "use strict";

  const GATHERING_TIMEOUT_MS = 2000;
  const REQUEST_TIMEOUT_MS = 10000;
  const MANAGER_TIMEOUT_MS = 5000;

  /* What a manager's refusal of a subscribe means (contract: 404 when no
   * origin publishes the stream, 503 when no edge can take a viewer). */
  const MANAGER_MEANINGS = {
    404: "stream not live",
    503: "no node available",
  };

  /* An HTTP answer other than 201 from a WHIP/WHEP endpoint (or other than
   * 200 from a manager). meanings overrides the text shown per status. */
  class HttpError extends Error {
    constructor(status, body, url, meanings) {
      super(HttpError.describe(status, body, meanings));
      this.name = "HttpError";
      this.status = status;
      this.body = body;
      this.url = url;
    }

    static describe(status, body, meanings) {
      let detail = (body || "").trim();
      if (detail.startsWith("{")) {
        try {
          detail = String(JSON.parse(detail).error || detail);
        } catch (e) {
          /* not JSON after all: show it as it is */
        }
      }
      detail = detail.split("\n")[0].slice(0, 200);
      let meaning = {
        400: "bad request",
        401: "not authorized",
        403: "forbidden",
        404: "stream is not live",
        409: "stream is already being published",
        413: "offer too large",
        415: "unsupported content type",
        503: "node is busy",
      }[status] || "HTTP " + status;
      if (meanings && meanings[status])
        meaning = meanings[status];
      if (detail === meaning)
        detail = "";
      return detail ? meaning + " (" + status + ": " + detail + ")" : meaning + " (" + status + ")";
    }
  }

  /* Resolves when ICE gathering is complete or after timeoutMs, whichever
   * comes first; the offer then holds the candidates gathered so far. */
  function waitForIceGathering(pc, timeoutMs) {
    if (pc.iceGatheringState === "complete")
      return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", onChange);
        resolve();
      };
      const onChange = () => {
        if (pc.iceGatheringState === "complete")
          done();
      };
      const timer = setTimeout(done, timeoutMs === undefined ? GATHERING_TIMEOUT_MS : timeoutMs);
      pc.addEventListener("icegatheringstatechange", onChange);
    });
  }

  function authHeaders(token) {
    return token ? { "Authorization": "Bearer " + token } : {};
  }

  /* One signalled session: the resource to DELETE when it ends. */
  class Session {
    constructor(resourceUrl, token) {
      this.resourceUrl = resourceUrl;
      this.token = token;
      this.closed = false;
    }

    /* Ends the session on the node. keepalive lets the request outlive the
     * page, so this is also what pagehide calls. Never throws. */
    close() {
      if (this.closed || !this.resourceUrl)
        return Promise.resolve();
      this.closed = true;
      return fetch(this.resourceUrl, {
        method: "DELETE",
        headers: authHeaders(this.token),
        keepalive: true,
        mode: "cors",
      }).then(() => undefined, () => undefined);
    }

    /* Asks the node whether the session still exists, without changing it:
     * resolves "gone" (404 or 410), "unreachable" (no answer within
     * timeoutMs, or a network error) or "alive" (any other answer, such as
     * 405 from a node that has no GET on sessions). Never throws. */
    async probe(timeoutMs) {
      if (this.closed || !this.resourceUrl)
        return "gone";
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), timeoutMs || 1000);
      try {
        const response = await fetch(this.resourceUrl, {
          method: "GET",
          mode: "cors",
          cache: "no-store",
          signal: abort.signal,
        });
        response.body && response.body.cancel().catch(() => {});
        return response.status === 404 || response.status === 410 ? "gone" : "alive";
      } catch (e) {
        return "unreachable";
      } finally {
        clearTimeout(timer);
      }
    }
  }

  /* Asks a stream manager which node to play stream from:
   * GET {manager}/api/v1/streams/{stream}/subscribe[?region=R] ->
   * { node, whep }. Resolves { node, whep } with whep made absolute; throws
   * HttpError (status 404: stream not live, 503: no node available) or an
   * Error when the manager cannot be reached or answers nonsense. */
  async function subscribe(manager, stream, options) {
    const opts = options || {};
    const url = new URL(manager.replace(/\/+$/, "") + "/api/v1/streams/" +
                        encodeStreamPath(stream) + "/subscribe", window.location.href);
    if (opts.region)
      url.searchParams.set("region", opts.region);
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), opts.timeoutMs || MANAGER_TIMEOUT_MS);
    let response, body;
    try {
      response = await fetch(url.href, { method: "GET", mode: "cors", cache: "no-store", signal: abort.signal });
      body = await response.text();
    } catch (e) {
      throw new Error("manager unreachable (" + (e.name === "AbortError" ? "no answer" : e.message) + ")");
    } finally {
      clearTimeout(timer);
    }
    if (response.status !== 200)
      throw new HttpError(response.status, body, url.href, MANAGER_MEANINGS);
    let placement;
    try {
      placement = JSON.parse(body);
    } catch (e) {
      placement = null;
    }
    if (!placement || typeof placement.whep !== "string" || !placement.whep)
      throw new Error("manager answered without a WHEP URL: " + String(body).slice(0, 200));
    return {
      node: typeof placement.node === "string" ? placement.node : null,
      whep: new URL(placement.whep, url.href).href,
    };
  }

  /* True when the page was served by a stream manager: its origin answers
   * GET /api/v1/config with {"role": "manager"} (a node answers 404). */
  async function servedByManager(timeoutMs) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs || 2000);
    try {
      const response = await fetch(new URL("/api/v1/config", window.location.origin).href,
                                   { cache: "no-store", signal: abort.signal });
      if (response.status !== 200)
        return false;
      const config = JSON.parse(await response.text());
      return !!config && config.role === "manager";
    } catch (e) {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /* Creates the offer on pc, waits for gathering, POSTs it to endpoint,
   * applies the answer and returns the Session. Throws HttpError on a non-201
   * answer, TypeError/AbortError on network failures. */
  async function exchange(pc, endpoint, options) {
    const opts = options || {};
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await waitForIceGathering(pc, opts.gatheringTimeoutMs);

    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), opts.requestTimeoutMs || REQUEST_TIMEOUT_MS);
    let response, body;
    try {
      response = await fetch(endpoint, {
        method: "POST",
        mode: "cors",
        headers: Object.assign({ "Content-Type": "application/sdp" }, authHeaders(opts.token)),
        body: pc.localDescription.sdp,
        signal: abort.signal,
      });
      body = await response.text();
    } finally {
      clearTimeout(timer);
    }

    if (response.status !== 201 && response.status !== 200)
      throw new HttpError(response.status, body, endpoint);

    /* The Location is relative to the endpoint (/sessions/{id}); a node on
     * another origin must expose it (Access-Control-Expose-Headers). */
    const location = response.headers.get("Location");
    const session = new Session(location ? new URL(location, endpoint).href : null, opts.token);
    try {
      await pc.setRemoteDescription({ type: "answer", sdp: body });
    } catch (e) {
      session.close();
      throw e;
    }
    return session;
  }

  /* Stream names may contain '/': encode each segment, keep the slashes. */
  function encodeStreamPath(name) {
    return name.split("/").map(encodeURIComponent).join("/");
  }

  /* The stream name a page serves: ?stream= wins, else the path after
   * prefix ("/play/", "/publish/"). */
  function streamFromLocation(prefix) {
    const params = new URLSearchParams(window.location.search);
    if (params.get("stream"))
      return params.get("stream");
    const path = window.location.pathname;
    if (path.startsWith(prefix))
      return decodeURIComponent(path.slice(prefix.length)).replace(/\/+$/, "");
    return "";
  }

  /* The WHIP or WHEP endpoint: an explicit URL(?whep= / ?whip=), else the
   * page's own node. */
  function endpointFor(kind, stream, override) {
    if (override)
      return new URL(override, window.location.href).href;
    return new URL("/" + kind + "/" + encodeStreamPath(stream), window.location.origin).href;
  }

  /* Bits per second between two byte counters read at two times (ms). */
  function bitrate(bytesNow, bytesBefore, msNow, msBefore) {
    if (bytesBefore === undefined || msNow <= msBefore || bytesNow < bytesBefore)
      return 0;
    return (bytesNow - bytesBefore) * 8000 / (msNow - msBefore);
  }

  function formatBitrate(bps) {
    if (!bps)
      return "0 kb/s";
    if (bps >= 1e6)
      return (bps / 1e6).toFixed(2) + " Mb/s";
    return Math.round(bps / 1e3) + " kb/s";
  }

  window.XdnWebRtc = {
    HttpError,
    Session,
    exchange,
    subscribe,
    servedByManager,
    waitForIceGathering,
    encodeStreamPath,
    streamFromLocation,
    endpointFor,
    bitrate,
    formatBitrate,
  };
})();

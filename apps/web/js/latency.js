/* Reads the latency stamp of xdnlatencystamp from RGBA pixels (a canvas).
 *
 * The stamp is a band of 60 black and white cells across the top 1/16 of
 * the picture holding the low 40 bits of the capture time (ms since the
 * Unix epoch) and a CRC-16; docs/elements/latency.md describes the layout.
 *
 *   XdnLatency.decode(rgba, width, height) -> stamp in ms (Number) or null
 *     rgba: Uint8ClampedArray / Uint8Array / Buffer, 4 bytes per pixel, rows
 *     of `width` pixels; it may hold only the top bandHeight(height) rows.
 *   XdnLatency.measure(video, canvas) -> { latencyMs, stampMs } or null
 *     draws the band of the video's current frame into the canvas and reads
 *     it; latency is Date.now() - stamp, so the capturing machine's clock
 *     must agree with this one.
 *
 * A plain script: no build step; sets window.XdnLatency in a browser and
 * module.exports under Node.js. */
(function (root) {
  'use strict';

  var CELLS = 60;
  var TIMESTAMP_BITS = 40;
  var CHECK_BITS = 16;
  var FIRST_TIMESTAMP_CELL = 2;
  var FIRST_CHECK_CELL = FIRST_TIMESTAMP_CELL + TIMESTAMP_BITS;
  var PERIOD = Math.pow(2, TIMESTAMP_BITS);
  var MIN_WIDTH = CELLS;
  var MIN_HEIGHT = 16;
  var MIN_CONTRAST = 64;
  var MARGIN = 0.15;

  function bandHeight(height) {
    return Math.max(2, Math.floor((height + 8) / 16));
  }

  function cellStart(i, width) {
    return Math.floor((i * width) / CELLS);
  }

  /* CRC-16/CCITT-FALSE: poly 0x1021, init 0xffff, no reflection. */
  function crc16(bytes) {
    var crc = 0xffff;
    for (var i = 0; i < bytes.length; i++) {
      crc ^= bytes[i] << 8;
      for (var b = 0; b < 8; b++)
        crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
  }

  /* 40-bit value (a Number below 2^40) as five big-endian bytes. */
  function stampBytes(low) {
    var bytes = [];
    for (var i = 4; i >= 0; i--)
      bytes.push(Math.floor(low / Math.pow(2, 8 * i)) % 256);
    return bytes;
  }

  /* BT.601 luma mean of the inner area of every cell. */
  function cellMeans(rgba, width, height) {
    var band = bandHeight(height);
    var y0 = Math.floor(band / 4);
    var y1 = band - Math.floor(band / 4);
    var means = new Array(CELLS);
    for (var i = 0; i < CELLS; i++) {
      var c0 = cellStart(i, width);
      var c1 = cellStart(i + 1, width);
      var x0 = c0 + Math.floor((c1 - c0) / 4);
      var x1 = c1 - Math.floor((c1 - c0) / 4);
      var sum = 0;
      for (var y = y0; y < y1; y++) {
        var p = (y * width + x0) * 4;
        for (var x = x0; x < x1; x++, p += 4)
          sum += 0.299 * rgba[p] + 0.587 * rgba[p + 1] + 0.114 * rgba[p + 2];
      }
      means[i] = sum / ((y1 - y0) * (x1 - x0));
    }
    return means;
  }

  /* Low 40 bits of the stamp, or null. */
  function decodeLow(rgba, width, height) {
    if (width < MIN_WIDTH || height < MIN_HEIGHT)
      return null;
    if (!rgba || rgba.length < width * bandHeight(height) * 4)
      return null;
    var m = cellMeans(rgba, width, height);
    var whiteLow = Math.min(m[0], m[CELLS - 1]);
    var blackHigh = Math.max(m[1], m[CELLS - 2]);
    if (whiteLow - blackHigh < MIN_CONTRAST)
      return null;
    var white = (m[0] + m[CELLS - 1]) / 2;
    var black = (m[1] + m[CELLS - 2]) / 2;
    var threshold = (white + black) / 2;
    var margin = MARGIN * (white - black);
    var low = 0;
    var check = 0;
    for (var i = FIRST_TIMESTAMP_CELL; i < CELLS - 2; i++) {
      if (Math.abs(m[i] - threshold) < margin)
        return null;
      var bit = m[i] > threshold ? 1 : 0;
      if (i < FIRST_CHECK_CELL)
        low = low * 2 + bit; /* exact: below 2^53 */
      else
        check = check * 2 + bit;
    }
    if (crc16(stampBytes(low)) !== check)
      return null;
    return low;
  }

  /* The full time whose low 40 bits are `low`, nearest to nowMs. */
  function unwrap(low, nowMs) {
    var candidate = Math.floor(nowMs / PERIOD) * PERIOD + low;
    if (candidate - nowMs > PERIOD / 2)
      candidate -= PERIOD;
    else if (nowMs - candidate > PERIOD / 2)
      candidate += PERIOD;
    return candidate;
  }

  function decode(rgba, width, height, nowMs) {
    var low = decodeLow(rgba, width, height);
    if (low === null)
      return null;
    return unwrap(low, nowMs === undefined ? Date.now() : nowMs);
  }

  function measure(video, canvas) {
    var width = video.videoWidth;
    var height = video.videoHeight;
    if (!width || !height || width < MIN_WIDTH || height < MIN_HEIGHT)
      return null;
    var band = bandHeight(height);
    if (canvas.width !== width || canvas.height !== band) {
      canvas.width = width;
      canvas.height = band;
    }
    var ctx = canvas.getContext('2d', { willReadFrequently: true });
    /* Only the band: source rows [0, band) at the video's own size. */
    ctx.drawImage(video, 0, 0, width, band, 0, 0, width, band);
    var now = Date.now();
    var pixels = ctx.getImageData(0, 0, width, band).data;
    var stampMs = decode(pixels, width, height, now);
    if (stampMs === null)
      return null;
    return { latencyMs: now - stampMs, stampMs: stampMs };
  }

  var api = {
    decode: decode,
    measure: measure,
    bandHeight: bandHeight,
    unwrap: unwrap,
    crc16: crc16,
    CELLS: CELLS,
  };

  if (typeof module !== 'undefined' && module.exports)
    module.exports = api;
  if (root)
    root.XdnLatency = api;
})(typeof window !== 'undefined' ? window : null);

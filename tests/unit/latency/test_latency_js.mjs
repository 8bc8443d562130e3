// apps/web/js/latency.js reads the stamp that xdnlatencystamp writes.
// Frames come from the real element (through latency-frame-writer, built
// next to this test); run with `node --test` (node:test, no packages).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

const here = path.dirname(fileURLToPath(import.meta.url));
const sourceRoot = process.env.XDN_SOURCE_ROOT ?? path.resolve(here, '../../..');
const latencyJs = path.join(sourceRoot, 'apps/web/js/latency.js');
const writer = process.env.XDN_BUILD_ROOT
  ? path.join(process.env.XDN_BUILD_ROOT, 'tests/unit/latency/latency-frame-writer')
  : null;

const XdnLatency = createRequire(import.meta.url)(latencyJs);

let dir;
before(() => { dir = mkdtempSync(path.join(tmpdir(), 'xdn-latency-')); });
after(() => { rmSync(dir, { recursive: true, force: true }); });

// Writes one RGBA frame through `chain` (elements between the test source
// and the RGBA conversion) and returns its pixels.
function rgbaFrame(name, source, chain, width, height) {
  if (!writer)
    throw new Error('XDN_BUILD_ROOT is not set: run through meson test');
  const file = path.join(dir, name);
  const description = `${source} ! ${chain} ! videoconvert ! videoscale ! ` +
    `video/x-raw,format=RGBA,width=${width},height=${height} ! filesink location=${file}`;
  const run = spawnSync(writer, [description], { timeout: 30000, encoding: 'utf8' });
  assert.equal(run.status, 0, `${description}\n${run.stderr}`);
  const pixels = new Uint8Array(readFileSync(file));
  assert.equal(pixels.length, width * height * 4);
  return pixels;
}

function stampedFrame(name, inWidth, inHeight, width, height) {
  const start = Date.now();
  const pixels = rgbaFrame(name,
    `videotestsrc num-buffers=1 pattern=ball ! video/x-raw,width=${inWidth},height=${inHeight}`,
    'xdnlatencystamp', width, height);
  return { pixels, start, end: Date.now() };
}

function assertPlausible(stamp, start, end) {
  assert.equal(typeof stamp, 'number');
  assert.ok(stamp >= start && stamp <= end,
    `stamp ${stamp} not within the writer's run ${start}..${end}`);
  assert.ok(Math.abs(stamp - Date.now()) < 5000);
}

test('decodes a stamped 640x360 frame to the time it was written', () => {
  const { pixels, start, end } = stampedFrame('full.rgba', 640, 360, 640, 360);
  assertPlausible(XdnLatency.decode(pixels, 640, 360), start, end);
});

test('decodes frames scaled down 4x and 6x and to another aspect ratio', () => {
  for (const [w, h] of [[320, 180], [426, 320], [213, 120]]) {
    const { pixels, start, end } = stampedFrame(`scaled-${w}.rgba`, 1280, 720, w, h);
    assertPlausible(XdnLatency.decode(pixels, w, h), start, end);
  }
});

test('decodes from the band rows alone, as measure() draws them', () => {
  const { pixels, start, end } = stampedFrame('band.rgba', 640, 360, 640, 360);
  const band = XdnLatency.bandHeight(360);
  assert.equal(band, 23);
  assertPlausible(XdnLatency.decode(pixels.subarray(0, 640 * band * 4), 640, 360),
    start, end);
  assert.equal(XdnLatency.decode(pixels.subarray(0, 640 * (band - 1) * 4), 640, 360),
    null);
});

test('refuses a frame without a stamp, noise and a half-covered stamp', () => {
  for (const pattern of ['smpte', 'ball', 'snow']) {
    const pixels = rgbaFrame(`plain-${pattern}.rgba`,
      `videotestsrc num-buffers=1 pattern=${pattern} ! video/x-raw,width=640,height=360`,
      'identity', 640, 360);
    assert.equal(XdnLatency.decode(pixels, 640, 360), null, pattern);
  }

  const noise = new Uint8Array(640 * 360 * 4);
  let seed = 12345;
  for (let i = 0; i < noise.length; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    noise[i] = seed >> 16 & 255;
  }
  assert.equal(XdnLatency.decode(noise, 640, 360), null);

  const { pixels } = stampedFrame('covered.rgba', 640, 360, 640, 360);
  const band = XdnLatency.bandHeight(360);
  for (const [x0, x1] of [[320, 640], [0, 320], [160, 480]]) {
    const covered = Uint8Array.from(pixels);
    for (let y = 0; y < band; y++)
      covered.fill(128, (y * 640 + x0) * 4, (y * 640 + x1) * 4);
    assert.equal(XdnLatency.decode(covered, 640, 360), null, `covered ${x0}..${x1}`);
  }
  assert.equal(XdnLatency.decode(pixels, 59, 360), null, 'too narrow');
  assert.equal(XdnLatency.decode(new Uint8Array(0), 640, 360), null, 'no pixels');
});

test('measure() reads the current frame of a video through a canvas', () => {
  const { pixels, start, end } = stampedFrame('measure.rgba', 640, 360, 640, 360);
  const calls = [];
  const canvas = {
    width: 0,
    height: 0,
    getContext: () => ({
      drawImage: (...args) => calls.push(args),
      getImageData: (x, y, w, h) => ({ data: pixels.subarray(0, w * h * 4) }),
    }),
  };
  const video = { videoWidth: 640, videoHeight: 360 };
  const m = XdnLatency.measure(video, canvas);
  assert.ok(m);
  assertPlausible(m.stampMs, start, end);
  assert.ok(m.latencyMs >= 0 && m.latencyMs < 5000);
  assert.deepEqual([canvas.width, canvas.height], [640, 23]);
  assert.deepEqual(calls[0], [video, 0, 0, 640, 23, 0, 0, 640, 23]);

  assert.equal(XdnLatency.measure({ videoWidth: 0, videoHeight: 0 }, canvas), null);
});

test('loads as a plain browser script that sets window.XdnLatency', () => {
  const window = {};
  vm.runInNewContext(readFileSync(latencyJs, 'utf8'), { window });
  assert.equal(typeof window.XdnLatency.decode, 'function');
  assert.equal(typeof window.XdnLatency.measure, 'function');
});

test('uses the check and the clock reconstruction of the C++ reader', () => {
  assert.equal(XdnLatency.crc16([...Buffer.from('123456789')]), 0x29b1);
  assert.equal(XdnLatency.crc16([0x01, 0x23, 0x45, 0x67, 0x89]), 0x738e);
  const period = 2 ** 40;
  const now = 3 * period + 1000;
  assert.equal(XdnLatency.unwrap(900, now), 3 * period + 900);
  assert.equal(XdnLatency.unwrap(period - 50, now), 3 * period - 50);
  assert.equal(XdnLatency.unwrap(10, 4 * period - 20), 4 * period + 10);
});

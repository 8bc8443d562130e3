// The player page in manager mode: it asks a stream manager which node to play
// from, and asks again (without reloading) when that node goes away. The
// manager here is a stand-in (FakeManager) so that the page is tested alone;
// the nodes are real all-in-one xdn-nodes publishing their demo stream.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';

import { FakeManager, XdnNode, hook, launchChromium, openPage, summary, waitFor, waitForHook } from './xdn.mjs';

/** A small demo picture, to spare the CPU with two nodes encoding. */
function demoConfig(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xdn-player-manager-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'node.conf');
  fs.writeFileSync(file, '[demo]\nwidth=640\nheight=360\nbitrate-kbps=600\n');
  return file;
}

async function startNode(t, config) {
  const node = new XdnNode({ demo: true, args: ['--role', 'all', '--config', config] });
  t.after(() => node.stop());
  await node.start();
  return node;
}

async function startManager(t, options) {
  const manager = new FakeManager(options);
  t.after(() => manager.stop());
  return manager.start();
}

async function startBrowser(t) {
  const browser = await launchChromium();
  t.after(() => browser.close());
  return browser;
}

/** Waits until the page shows at least `count` more frames than now and the
 * video's clock moves; returns the frames and seconds it saw go by. */
async function framesAdvance(page, count, timeoutMs) {
  const read = () => page.evaluate(() => ({
    frames: window.xdnPlayer.framesPresented,
    time: document.getElementById('video').currentTime,
  }));
  const first = await read();
  const last = await waitFor(async () => {
    const now = await read();
    return now.frames >= first.frames + count && now.time > first.time ? now : null;
  }, { timeoutMs, what: `${count} more frames on the page (from ${JSON.stringify(first)})` });
  return { frames: last.frames - first.frames, seconds: last.time - first.time };
}

test('player served by a manager plays from another node within 3 s after its node is killed', async (t) => {
  const config = demoConfig(t);
  const [a, b] = await Promise.all([startNode(t, config), startNode(t, config)]);
  await Promise.all([a.waitStream('demo', { timeoutMs: 20000 }), b.waitStream('demo', { timeoutMs: 20000 })]);
  const manager = await startManager(t, { pages: true });
  manager.place('node-a', a.whepUrl('demo'));
  const browser = await startBrowser(t);

  // No ?manager=: the page finds out that a manager served it.
  const page = await openPage(browser, `${manager.url}/play/demo`, 'player');
  const onA = await waitForHook(page, 'xdnPlayer',
    (s) => s.mode === 'manager' && s.node === 'node-a' && s.playing && s.framesPresented >= 30,
    { timeoutMs: 20000, what: 'the player to play 30 frames from node-a', node: a });
  t.diagnostic(`on node-a: ${summary(onA)} presented=${onA.framesPresented}`);
  assert.equal(onA.manager, manager.url);
  assert.equal(onA.whepUrl, a.whepUrl('demo'));
  assert.match(await page.textContent('#node'), /node-a/);
  await page.evaluate(() => { window.notReloaded = true; });
  const asked = manager.subscribes().length;

  // Node A crashes; from now on the manager hands out node B.
  manager.place('node-b', b.whepUrl('demo'));
  const killedAt = Date.now();
  await a.kill();

  const onB = await waitForHook(page, 'xdnPlayer',
    (s) => s.node === 'node-b' && s.playing && s.playingSince > killedAt,
    { timeoutMs: 10000, what: 'the player to play from node-b', node: b });
  const recoveryMs = onB.playingSince - killedAt;
  t.diagnostic(`playing from node-b ${recoveryMs} ms after kill -9 of node-a ` +
    `(reconnects=${onB.reconnects}, because: ${onB.reconnectReason})`);
  const advance = await framesAdvance(page, 30, 5000);
  t.diagnostic(`node-b: ${advance.frames} frames in ${advance.seconds.toFixed(2)} s of video time`);

  assert.ok(recoveryMs < 3000, `playing again from node-b took ${recoveryMs} ms (limit 3000 ms)`);
  assert.equal(onB.whepUrl, b.whepUrl('demo'));
  assert.ok(onB.reconnects >= 1, 'the player did not count the reconnection');
  assert.ok(manager.subscribes().length > asked, 'the player did not ask the manager again');
  assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was reloaded');
  assert.match(await page.textContent('#node'), /node-b/);
});

test('player with ?manager= shows "stream not live", retries with backoff and plays once placed', async (t) => {
  const config = demoConfig(t);
  const node = await startNode(t, config);
  await node.waitStream('demo', { timeoutMs: 20000 });
  const manager = await startManager(t);
  manager.refuse(404, 'stream not live');
  const browser = await startBrowser(t);

  const page = await openPage(browser, `${node.url}/play/demo?manager=${encodeURIComponent(manager.url)}&region=eu`,
    'player');
  // 250 + 500 + 1000 + 2000 + 2000 ms: six requests in about 6 s.
  await waitFor(() => manager.subscribes().length >= 6,
    { timeoutMs: 15000, what: () => `6 subscribe requests (got ${manager.subscribes().length})` });
  const waiting = await hook(page, 'xdnPlayer');
  t.diagnostic(`while refused: state=${waiting.state} error=${waiting.error} reconnects=${waiting.reconnects}`);
  assert.equal(waiting.mode, 'manager');
  assert.equal(waiting.state, 'waiting');
  assert.equal(waiting.httpStatus, 404);
  assert.match(waiting.error, /stream not live/);
  assert.match(await page.textContent('#error'), /stream not live/);

  const asks = manager.subscribes().slice(0, 6);
  assert.ok(asks.every((r) => r.stream === 'demo' && r.region === 'eu'),
    `unexpected subscribe requests: ${JSON.stringify(asks)}`);
  const gaps = asks.slice(1).map((r, i) => r.t - asks[i].t);
  t.diagnostic(`gaps between subscribe requests: ${gaps.join(', ')} ms`);
  const expected = [250, 500, 1000, 2000, 2000];
  gaps.forEach((gap, i) => {
    assert.ok(gap >= expected[i] - 50 && gap <= expected[i] + 600,
      `gap ${i + 1} is ${gap} ms, expected about ${expected[i]} ms (all: ${gaps.join(', ')})`);
  });

  manager.place('node-1', node.whepUrl('demo'));
  const playing = await waitForHook(page, 'xdnPlayer',
    (s) => s.playing && s.node === 'node-1' && s.framesPresented >= 30,
    { timeoutMs: 15000, what: 'the player to play once the manager places it', node });
  t.diagnostic(`placed: ${summary(playing)}`);
  assert.equal(playing.error, null);
  assert.equal(playing.whepUrl, node.whepUrl('demo'));
  assert.equal(await page.textContent('#error'), '');
});

test('player served by a node stays in direct mode', async (t) => {
  const node = await startNode(t, demoConfig(t));
  await node.waitStream('demo', { timeoutMs: 20000 });
  const browser = await startBrowser(t);

  const page = await openPage(browser, `${node.url}/play/demo`, 'player');
  const playing = await waitForHook(page, 'xdnPlayer', (s) => s.playing && s.framesPresented >= 10,
    { timeoutMs: 15000, what: 'the player to play the node\'s demo', node });
  assert.equal(playing.mode, 'direct');
  assert.equal(playing.node, null);
  assert.equal(playing.whepUrl, node.whepUrl('demo'));
});

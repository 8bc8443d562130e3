// The player page against a real cluster: a manager (SQLite), an origin that
// publishes the demo stream and two edges that pull it on demand. The page,
// served by the manager, plays from the edge it is given; when that edge is
// killed with SIGKILL, the manager declares it dead and the page, asking the
// manager again, plays from the other edge within 3 s, without a reload.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';

import { XdnManager, XdnNode, launchChromium, openPage, summary, waitFor, waitForHook } from './xdn.mjs';

const HEARTBEAT_MS = 300;

test('player on a manager plays from the other edge within 3 s after its edge is killed', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xdn-cluster-failover-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  // A small demo picture, to spare the CPU of the 2-core machine.
  const config = path.join(dir, 'origin.conf');
  fs.writeFileSync(config, '[demo]\nwidth=640\nheight=360\nbitrate-kbps=600\n');

  const manager = new XdnManager({ dbPath: path.join(dir, 'manager.db'),
    args: ['--heartbeat-interval-ms', String(HEARTBEAT_MS)] });
  t.after(() => manager.stop());
  await manager.start();

  const cluster = ['--manager', manager.url, '--relay-latency', '80'];
  const origin = new XdnNode({ demo: true, args: ['--role', 'origin', '--node-id', 'origin', '--config', config, ...cluster] });
  const edges = ['edge-a', 'edge-b'].map((id) => new XdnNode({ args: ['--role', 'edge', '--node-id', id, ...cluster] }));
  for (const node of [origin, ...edges])
    t.after(() => node.stop());
  await Promise.all([origin, ...edges].map((node) => node.start()));
  await waitFor(async () => {
    const { status, body } = await manager.api('/streams/demo');
    return status === 200 && body.origin === 'origin';
  }, { timeoutMs: 20000, what: 'the manager to know the demo stream on the origin' });

  const browser = await launchChromium();
  t.after(() => browser.close());
  const page = await openPage(browser, `${manager.url}/play/demo`, 'player');
  const first = await waitForHook(page, 'xdnPlayer',
    (s) => s.mode === 'manager' && s.playing && s.framesPresented >= 30 && s.node?.startsWith('edge-'),
    { timeoutMs: 30000, what: 'the player to play 30 frames from an edge', node: origin });
  t.diagnostic(`on ${first.node}: ${summary(first)}`);
  await page.evaluate(() => { window.notReloaded = true; });

  const [victim, survivor] = first.node === 'edge-a' ? edges : [edges[1], edges[0]];
  const killedAt = Date.now();
  await victim.kill();

  const deadAfter = await waitFor(async () => {
    const { body } = await manager.api(`/nodes/${first.node}`);
    return body?.state === 'dead' && Date.now() - killedAt;
  }, { timeoutMs: 10 * HEARTBEAT_MS, what: `the manager to declare ${first.node} dead` });
  const second = await waitForHook(page, 'xdnPlayer',
    (s) => s.node !== first.node && s.playing && s.playingSince > killedAt,
    { timeoutMs: 10000, what: 'the player to play from the other edge', node: survivor });
  const recoveryMs = second.playingSince - killedAt;
  t.diagnostic(`${first.node} declared dead ${deadAfter} ms after kill -9; playing from ${second.node} ` +
    `${recoveryMs} ms after it (reconnects=${second.reconnects}, because: ${second.reconnectReason})`);

  assert.ok(deadAfter <= 3 * HEARTBEAT_MS + 300,
    `declared dead after ${deadAfter} ms (3 heartbeats: ${3 * HEARTBEAT_MS} ms, plus one check)`);
  assert.ok(recoveryMs < 3000, `playing again took ${recoveryMs} ms (limit 3000 ms)`);
  await waitFor(() => page.evaluate((before) => window.xdnPlayer.framesPresented >= before + 30,
    second.framesPresented), { timeoutMs: 5000, what: '30 more frames from the other edge' });
  assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was reloaded');
});

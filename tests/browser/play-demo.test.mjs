// The player page plays the node's demo stream in headless Chromium and reads
// the glass-to-glass latency stamped into its picture.
import assert from 'node:assert/strict';
import test from 'node:test';

import { openPage, setup, summary, waitForHook } from './xdn.mjs';

test('player plays the demo stream and reads its latency under one second', async (t) => {
  const { node, browser } = await setup(t, { demo: true });
  await node.waitStream('demo', { timeoutMs: 20000 });

  const page = await openPage(browser, `${node.url}/play/demo`, 'player');
  const status = await waitForHook(page, 'xdnPlayer',
    (s) => s.framesDecoded >= 60 && s.latency.count >= 20,
    { timeoutMs: 20000, what: '60 decoded frames and 20 latency readings', node });

  t.diagnostic(summary(status));
  assert.equal(status.state, 'playing');
  assert.ok(status.latency.p95 !== null && status.latency.p95 < 1000,
    `latency p95 ${status.latency.p95} ms is not under 1000 ms (${summary(status)})`);
  assert.ok(status.latency.p50 >= 0, `negative latency p50 ${status.latency.p50} ms`);
});

// The player page plays the node's demo stream in headless Chromium and reads
// the glass-to-glass latency stamped into its picture. Through the fan-out,
// Chromium gets the transport-wide sequence number on every packet and
// answers with transport-cc feedback, which the node counts.
import assert from 'node:assert/strict';
import test from 'node:test';

import { http, openPage, setup, summary, waitFor, waitForHook } from './xdn.mjs';

/** The value of @name{stream="@stream"} in the node's /metrics, or null. */
async function metric(node, name, stream) {
  const r = await http('GET', `${node.url}/metrics`);
  if (r.status !== 200)
    return null;
  for (const line of r.text.split('\n')) {
    const m = line.match(/^([a-z_]+)\{([^}]*)\} (\S+)$/);
    if (m && m[1] === name && m[2].includes(`stream="${stream}"`))
      return Number(m[3]);
  }
  return null;
}

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

  // webrtcbin egress (XDN_NODE_EGRESS=webrtcbin) has no fan-out metrics.
  if (process.env.XDN_NODE_EGRESS === 'webrtcbin')
    return;
  let last = {};
  await waitFor(async () => {
    last = {
      feedbacks: await metric(node, 'xdn_fanout_transport_cc_feedbacks_total', 'demo'),
      received: await metric(node, 'xdn_fanout_transport_cc_received_total', 'demo'),
    };
    return last.feedbacks > 0 && last.received > 0;
  }, {
    timeoutMs: 10000,
    what: () => `transport-cc feedback from Chromium in the node's /metrics (last: ` +
      `${JSON.stringify(last)})\n--- xdn-node log (tail) ---\n${node.logTail()}`,
  });
  t.diagnostic(`transport-cc: ${last.feedbacks} feedback messages, ${last.received} packets reported received`);
});

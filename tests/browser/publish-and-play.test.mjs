// One browser publishes its camera through the publisher page (WHIP); two
// others play it through the player page (WHEP), each in a browser context of
// its own.
import assert from 'node:assert/strict';
import test from 'node:test';

import { CAMERA, hook, openPage, setup, summary, waitFor, waitForHook } from './xdn.mjs';

const STREAM = 'live/cam';

test('a stream published from one browser plays in two others', async (t) => {
  const { node, browser } = await setup(t, {});

  const publisher = await openPage(browser, `${node.url}/publish/${STREAM}?autostart=1&${CAMERA}`, 'publisher');
  await waitForHook(publisher, 'xdnPublisher', (s) => s.state === 'publishing',
    { timeoutMs: 15000, what: 'the publisher to be publishing', node });
  const described = await node.waitStream(STREAM, { timeoutMs: 15000 });
  t.diagnostic(`GET /api/v1/streams/${STREAM}: ${JSON.stringify(described)}`);

  const viewers = [];
  for (const label of ['viewer-1', 'viewer-2']) {
    const page = await openPage(browser, `${node.url}/play/${STREAM}`, label);
    viewers.push(page);
    const status = await waitForHook(page, 'xdnPlayer', (s) => s.framesDecoded >= 30,
      { timeoutMs: 20000, what: `${label} to decode 30 frames`, node });
    t.diagnostic(`${label}: ${summary(status)}`);
  }

  // Both keep playing while the other one joined.
  for (const [i, page] of viewers.entries()) {
    const before = (await hook(page, 'xdnPlayer')).framesDecoded;
    const after = await waitForHook(page, 'xdnPlayer', (s) => s.framesDecoded >= before + 20,
      { timeoutMs: 10000, what: `viewer-${i + 1} to keep decoding`, node });
    assert.equal(after.state, 'playing');
  }

  // The node counts both viewers; closing a player's page ends its session.
  await waitFor(async () => (await node.stream(STREAM))?.viewers === 2,
    { timeoutMs: 5000, what: 'the node to count 2 viewers' });
  await viewers[1].close();
  await waitFor(async () => (await node.stream(STREAM))?.viewers === 1,
    { timeoutMs: 10000, what: 'the node to count 1 viewer after a player page closed' });

  const sent = await hook(publisher, 'xdnPublisher');
  t.diagnostic(`publisher: state=${sent.state} framesSent=${sent.framesSent} codec=${sent.codec} ` +
    `${sent.width}x${sent.height}`);
  assert.ok(sent.framesSent > 0);

  // Closing the publisher's page ends its session (DELETE with keepalive).
  await publisher.close();
  await node.waitStreamGone(STREAM, { timeoutMs: 10000 });
});

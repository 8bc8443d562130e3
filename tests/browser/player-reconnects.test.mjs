// The player keeps trying while its stream is not live and plays as soon as it
// is, also after the publisher went away and came back.
import assert from 'node:assert/strict';
import test from 'node:test';

import { CAMERA, hook, openPage, setup, summary, waitForHook } from './xdn.mjs';

const STREAM = 'live/late';

test('player waits for a stream that is not live yet and plays it when it starts', async (t) => {
  const { node, browser } = await setup(t, {});

  const viewer = await openPage(browser, `${node.url}/play/${STREAM}`, 'viewer');
  const waiting = await waitForHook(viewer, 'xdnPlayer',
    (s) => s.state === 'waiting' && s.reconnects >= 1 && s.httpStatus === 404,
    { timeoutMs: 10000, what: 'the player to be refused with 404 and retrying', node });
  t.diagnostic(`before publishing: state=${waiting.state} error=${waiting.error}`);

  const publisher = await openPage(browser, `${node.url}/publish/${STREAM}?autostart=1&${CAMERA}`, 'publisher');
  await waitForHook(publisher, 'xdnPublisher', (s) => s.state === 'publishing',
    { timeoutMs: 15000, what: 'the publisher to be publishing', node });

  const playing = await waitForHook(viewer, 'xdnPlayer', (s) => s.framesDecoded >= 30,
    { timeoutMs: 30000, what: 'the waiting player to decode 30 frames', node });
  t.diagnostic(`after publishing: ${summary(playing)}`);
  assert.equal(playing.state, 'playing');

  // The publisher stops and starts again: the player notices, retries and
  // plays the new session.
  const reconnectsBefore = playing.reconnects;
  await publisher.evaluate(() => window.xdnPublisherInstance.stop());
  await waitForHook(viewer, 'xdnPlayer', (s) => s.state !== 'playing',
    { timeoutMs: 15000, what: 'the player to notice the publisher left', node });
  await publisher.evaluate(() => window.xdnPublisherInstance.start());
  await waitForHook(publisher, 'xdnPublisher', (s) => s.state === 'publishing',
    { timeoutMs: 15000, what: 'the publisher to publish again', node });
  const again = await waitForHook(viewer, 'xdnPlayer',
    (s) => s.state === 'playing' && s.reconnects > reconnectsBefore && s.framesDecoded >= 30,
    { timeoutMs: 40000, what: 'the player to play the new session', node });
  t.diagnostic(`after the publisher came back: ${summary(again)}`);

  const final = await hook(viewer, 'xdnPlayer');
  assert.equal(final.error, null);
});

// What the pages do when the node says no, and a player on another origin.
import assert from 'node:assert/strict';
import test from 'node:test';

import { CAMERA, hook, openPage, setup, summary, waitForHook } from './xdn.mjs';

const STREAM = 'live/taken';

test('second publisher is told the stream is already being published; other origins play', async (t) => {
  const { node, browser } = await setup(t, {});

  const first = await openPage(browser, `${node.url}/publish/${STREAM}?autostart=1&${CAMERA}`, 'publisher-1');
  await waitForHook(first, 'xdnPublisher', (s) => s.state === 'publishing',
    { timeoutMs: 15000, what: 'the first publisher to be publishing', node });
  await node.waitStream(STREAM, { timeoutMs: 15000 });

  await t.test('a second publisher gets 409 and the page says why', async () => {
    const second = await openPage(browser, `${node.url}/publish/${STREAM}?autostart=1&${CAMERA}`, 'publisher-2');
    const refused = await waitForHook(second, 'xdnPublisher', (s) => s.state === 'failed',
      { timeoutMs: 15000, what: 'the second publisher to be refused', node });
    assert.equal(refused.httpStatus, 409);
    assert.match(refused.error, /stream is already being published/);
    const shown = await second.textContent('#error');
    assert.match(shown, /stream is already being published/);
    await second.close();
    // The first one is still the publisher.
    assert.equal((await hook(first, 'xdnPublisher')).state, 'publishing');
    assert.ok(await node.stream(STREAM));
  });

  await t.test('a player on a stream that is not live says so and keeps waiting', async () => {
    const page = await openPage(browser, `${node.url}/play/live/nobody`, 'viewer-nobody');
    const status = await waitForHook(page, 'xdnPlayer', (s) => s.httpStatus === 404 && s.state === 'waiting',
      { timeoutMs: 10000, what: 'the player to be refused with 404', node });
    assert.match(status.error, /not live/);
    await page.close();
  });

  await t.test('a page on another origin plays through CORS and knows its session', async () => {
    // The page comes from 127.0.0.1, the WHEP endpoint is addressed as
    // localhost: another origin, so every request goes through CORS.
    const whep = `http://localhost:${node.httpPort}/whep/${STREAM}`;
    const page = await openPage(browser, `${node.url}/play/${STREAM}?whep=${encodeURIComponent(whep)}`, 'viewer-cors');
    const status = await waitForHook(page, 'xdnPlayer', (s) => s.framesDecoded >= 30,
      { timeoutMs: 20000, what: 'the cross-origin player to decode 30 frames', node });
    t.diagnostic(`cross-origin viewer: ${summary(status)}`);
    assert.ok(status.session && status.session.startsWith(`http://localhost:${node.httpPort}/sessions/`),
      `the Location of the WHEP session is not readable from another origin ` +
      `(needs Access-Control-Expose-Headers: Location), session=${status.session}`);
    await page.close();
  });
});
